"""The typed job record (services/common/record.py): old records load, the JSON shape, the progress plan."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from pydantic import ValidationError

from services.common.protoconv import info_to_proto, spec_from_proto, spec_to_proto
from services.common.record import (
    PROGRESS_PLAN,
    BackgroundSpec,
    Job,
    JobSpec,
    MediaInfo,
    SourceRef,
    Status,
    progress_of,
)
from videobg.errors import InvalidInput, MissingParameter
from videobg.types import AudioInfo, VideoInfo

pytestmark = pytest.mark.unit

# A completed, metered job as the dict-based code stored it (before the typed record): `timings`, the
# spec's copies (`input`, `format`, `background`), floats for the frame rates, nulls for "not set".
OLD_RECORD = {
    "id": "job-1",
    "owner": "acme",
    "dialect": "removebgvideo",
    "status": "completed",
    "progress": 100,
    "stage": "done",
    "timings": {"ingest": 0.5, "segment": 2.25},
    "spec": {
        "source": {"url": "https://example.com/a.mp4"},
        "trim": {"start": 0.0, "end": None},
        "model": "light",
        "background": {"kind": "color", "rgb": [1, 2, 3], "image": None},
        "output_format": "webm_vp9",
        "webhook_url": "",
        "text_prompt": "",
        "owner": "acme",
        "dialect": "removebgvideo",
    },
    "input": {"url": "https://example.com/a.mp4"},
    "model": "light",
    "format": "webm_vp9",
    "background": {"kind": "color", "rgb": [1, 2, 3], "image": None},
    "credits": 0.25,
    "key_id": "k1",
    "billing": {
        "state": "charged", "account": "acme", "model": "light", "credits_per_minute": 6.0,
        "reserved_seconds": 60.0, "reserved_milli": 6000, "charged_milli": 250, "billed_seconds": 2.5,
    },
    "info": {
        "container": "mov,mp4,m4a,3gp,3g2,mj2", "size_bytes": 1000, "duration_s": 2.5, "width": 640,
        "height": 428, "coded_width": 640, "coded_height": 428, "rotation": 0, "fps_nominal": 29.97002997,
        "fps_avg": 30.0, "frame_count": 75, "video_codec": "h264", "pix_fmt": "yuv420p", "bit_depth": 8,
        "has_alpha": False,
        "audio": [{"index": 1, "codec": "aac", "channels": 1, "sample_rate": 44100, "layout": "mono"}],
    },
    "source_key": "jobs/job-1/source.mp4",
    "billed_seconds": 2.5,
    "frames_total": 75,
    "matte": {"chunks": 3, "frames": 75, "model": "light"},
    "result_key": "jobs/job-1/result.webm",
    "error_code": None,
    "webhook": {
        "event": "job.completed", "attempts": 1, "last_status": 200, "delivered": True,
        "events": {"job.completed": {"delivery_id": "d", "seq": 7, "attempts": 1, "last_status": 200,
                                     "delivered": True, "gave_up": False}},
    },
    "request_fingerprint": "fp",
    "created": "2026-01-01T00:00:00.000000Z",
    "updated": "2026-01-01T00:00:01.000000Z",
}  # fmt: skip


def test_an_old_record_loads_by_attribute() -> None:
    job = Job.from_json(json.dumps(OLD_RECORD))
    assert job.status is Status.COMPLETED and job.terminal
    assert job.stage_seconds == {"ingest": 0.5, "segment": 2.25}  # `timings` read as stage_seconds
    assert job.spec.source == SourceRef(url="https://example.com/a.mp4")
    assert job.spec.background.rgb == (1, 2, 3) and job.spec.output_format == "webm_vp9"
    assert job.billing is not None and job.billing.charged_milli == 250
    assert job.info is not None and job.info.fps_nominal == Fraction(30000, 1001)
    assert job.info.video_info().audio[0].sample_rate == 44100
    assert job.webhook.events["job.completed"].finished
    assert job.error_code == ""  # null -> the default
    assert job.metric_labels() == ("removebgvideo", "light", "webm_vp9")


def test_saved_json_round_trips_and_keeps_the_source_shape() -> None:
    job = Job.from_json(json.dumps(OLD_RECORD))
    doc = json.loads(job.to_json())
    assert doc["spec"]["source"] == {"url": "https://example.com/a.mp4"}  # only the set field
    assert doc["info"]["fps_nominal"] == "30000/1001"  # exact from now on
    assert "timings" not in doc and "input" not in doc
    assert Job.from_json(job.to_json()) == job


def test_weights_round_trip_and_old_records_have_none() -> None:
    assert Job.from_json(json.dumps(OLD_RECORD)).weights == ""  # written before the field: not known
    job = Job.from_json(json.dumps({**OLD_RECORD, "weights": "rvm_mobilenetv3+u2netp"}))
    assert job.weights == "rvm_mobilenetv3+u2netp"
    assert json.loads(job.to_json())["weights"] == "rvm_mobilenetv3+u2netp"
    assert Job.from_json(job.to_json()) == job
    assert Job.from_json(json.dumps({**OLD_RECORD, "weights": None})).weights == ""  # null: not set


def test_a_misspelt_or_wrong_field_is_refused() -> None:
    job = Job(id="j")
    with pytest.raises(ValueError):
        job.status = "finished"  # type: ignore[assignment]
    with pytest.raises(ValueError):
        job.progres = 5  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        Job.model_validate({"id": "j", "spec": {"background": {"kind": "plaid"}}})


def test_spec_checks_and_proto_round_trip() -> None:
    with pytest.raises(MissingParameter):
        JobSpec().validated()
    with pytest.raises(MissingParameter):
        JobSpec(source=SourceRef(url="u"), background=BackgroundSpec(kind="image")).validated()
    with pytest.raises(InvalidInput):
        JobSpec.model_validate({"source": {"url": "u"}, "trim": {"start": 3, "end": 2}}).validated()
    spec = JobSpec(
        source=SourceRef(asset_id="a1"),
        background=BackgroundSpec(kind="image", image=SourceRef(url="https://x/bg.png")),
        trim={"start": 1.0, "end": 2.0},  # type: ignore[arg-type]
        model="human",
        owner="o",
        dialect="grpc",
    ).validated()
    assert spec_from_proto(spec_to_proto(spec)) == spec


def test_one_video_info_converter() -> None:
    info = VideoInfo(
        container="matroska,webm", size_bytes=10, duration_s=1.0, width=64, height=48, coded_width=64,
        coded_height=48, rotation=90, fps_nominal=Fraction(30000, 1001), fps_avg=Fraction(30),
        frame_count=30, video_codec="vp9", pix_fmt="yuv420p", bit_depth=8, has_alpha=False,
        audio=(AudioInfo(2, "opus", 2, 48000, "stereo"),),
    )  # fmt: skip
    stored = MediaInfo.of(info)
    assert stored.video_info() == info
    p = info_to_proto(stored)
    assert (p.rotation, p.audio[0].codec) == (90, "opus")
    assert p.fps_nominal == pytest.approx(29.97, abs=1e-2)


def test_progress_plan() -> None:
    assert progress_of("ingest", 1, 1) == PROGRESS_PLAN["ingest"][1] == PROGRESS_PLAN["segment"][0]
    assert progress_of("segment", 0, 10) == PROGRESS_PLAN["segment"][0]
    assert progress_of("encode", 10, 10) == 100.0
    assert progress_of("segment", 20, 10) == PROGRESS_PLAN["segment"][1]  # more frames than expected
