"""Encoder service against real nats-server, S3 and gRPC: the whole chain of stage services through the
work queue ends in a decodable result with audio and one completion; repeated or concurrent encodes of
the same job complete it once; compositor errors map back onto the job."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import grpc
import numpy as np
import pytest

from devstack.procs import free_ports
from services.common.jobstore import JobStore
from services.common.stage_service import Service
from services.compositor import server as compositor
from services.encoder import server as encoder
from services.segmenter import server as segmenter
from tests import mediacheck
from tests.integration import stagekit as kit
from vbg.v1 import stages_pb2, stages_pb2_grpc
from videobg import nats_subjects, object_keys
from videobg.settings import CoreSettings

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


@pytest.fixture
def conf(nats_url, s3_endpoint, object_store, models_path):
    """settings(cls, **overrides) on the session's servers; the segmenter runs `light` on the CPU."""

    def make(cls, **kw):
        if cls is segmenter.SegmenterSettings:
            kw = {"core": CoreSettings(model_dir=models_path, device="cpu"), "chunk_frames": 8, **kw}
        return kit.stage_settings(cls, nats_url, s3_endpoint, object_store, **kw)

    return make


@contextlib.asynccontextmanager
async def stages(conf, *, segment_worker: bool = True):
    """Compositor + segmenter + encoder services, in-process; yields (segmenter, compositor, encoder)."""
    async with Service(
        conf(compositor.CompositorSettings), compositor.build_server, name="compositor"
    ) as comp:
        enc_settings = conf(encoder.EncoderSettings, compositor_target=comp.target)
        seg_worker = segmenter.build_worker if segment_worker else None
        async with (
            Service(
                conf(segmenter.SegmenterSettings), segmenter.build_server, seg_worker, name="segmenter"
            ) as seg,
            Service(enc_settings, encoder.build_server, encoder.build_worker, name="encoder") as enc,
        ):
            yield seg, comp, enc


def completions(events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("status") == "completed"]


async def encode_again(js, enc, job_id: str, msg_id: str) -> None:
    """One more encode message for the job through the queue; returns once the encoder acked it."""
    acked = enc.worker.stats.acked
    await js.publish(
        nats_subjects.WORK_ENCODE, json.dumps({"job_id": job_id}).encode(), headers={"Nats-Msg-Id": msg_id}
    )
    for _ in range(50):
        if enc.worker.stats.acked > acked:
            break
        await asyncio.sleep(0.1)
    assert enc.worker.stats.acked == acked + 1


async def test_chain_completes_once(conf, jetstream, nats_url, s3_endpoint, object_store, tmp_path, uid):
    job_id = f"enc-{uid}"
    kit.upload(object_store, f"a-{uid}")
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        async with stages(conf) as (_, _, enc):
            await kit.ingested_job(
                js, nats_url, s3_endpoint, object_store, job_id, kit.spec(source={"asset_id": f"a-{uid}"})
            )
            job = await kit.wait_record(js, job_id, lambda j: j.status in ("completed", "failed"), timeout=40)
            assert job.status == "completed", job
            # a second encode message for the finished job: acked, no work, no second completion
            await encode_again(js, enc, job_id, f"{job_id}:again")
            # a record completed whose `completed` event was never stored (the bus was down when the
            # encoder published it, and its delivery came back): a repeat delivery announces it, once
            lost_id = f"lost-{uid}"
            await JobStore(js).create(job.model_copy(update={"id": lost_id}))
            for n in range(2):
                await encode_again(js, enc, lost_id, f"{lost_id}:{n}")
            announced = completions(await kit.events_of(js, lost_id))
            assert len(announced) == 1 and announced[0]["result_key"] == job.result_key
            with grpc.insecure_channel(enc.target) as ch:
                reply = await asyncio.to_thread(
                    stages_pb2_grpc.EncoderStub(ch).Encode, stages_pb2.StageRequest(job_id=job_id), timeout=30
                )
        assert (await JobStore(js).get(job_id)) == job  # untouched by the repeats
        assert job.result_key == reply.result_key == object_keys.result(job_id, ".mp4")
        assert (job.progress, job.stage, job.frames, job.audio) == (
            100,
            "done",
            kit.CLIP_FRAMES,
            True,
        )
        assert reply.frames == kit.CLIP_FRAMES and reply.size_bytes == object_store.stat(job.result_key).size
        assert set(job.stage_seconds) == {"ingest", "segment", "composite", "encode"}
        log.warning("stage seconds (%s): %s", kit.CLIP.name, job.stage_seconds)
        out = object_store.get_file(job.result_key, tmp_path / "result.mp4")
        s = mediacheck.summarize(out)
        assert (s.width, s.height, s.video_codec) == (kit.CLIP_W, kit.CLIP_H, "h264")
        assert s.frames == kit.CLIP_FRAMES and s.audio and s.audio_channels == 1
        assert s.audio_duration_s == pytest.approx(job.billed_seconds, abs=0.1)
        first = mediacheck.first_frame_rgb(out).astype(np.float32)
        assert np.abs(first[:24, :24].reshape(-1, 3).mean(0) - kit.DODGER_BLUE).max() < 12
        events = await kit.events_of(js, job_id)
        assert len(completions(events)) == 1 and events[-1]["status"] == "completed"
        for stage in ("ingest", "segment", "encode"):
            progress = [e["progress"] for e in events if e["stage"] == stage]
            assert progress and progress == sorted(progress), (stage, progress)
        assert any(e["stage"] == "encode" and e.get("frames_done") == 10 for e in events)
        await kit.purge_work(js)


async def test_concurrent_encodes_complete_once(conf, jetstream, nats_url, s3_endpoint, object_store, uid):
    job_id = f"two-{uid}"
    kit.upload(object_store, f"a-{uid}")
    job_spec = kit.spec(
        source={"asset_id": f"a-{uid}"}, trim={"start": 0.0, "end": 0.5}, output_format="webm_vp9"
    )
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        await kit.ingested_job(js, nats_url, s3_endpoint, object_store, job_id, job_spec)
        await kit.purge_work(js)  # drive every stage over gRPC here, not through the queue
        async with stages(conf, segment_worker=False) as (seg, _, enc):
            with grpc.insecure_channel(seg.target) as ch:
                stub = stages_pb2_grpc.SegmenterStub(ch)
                await asyncio.to_thread(stub.Segment, stages_pb2.StageRequest(job_id=job_id), timeout=30)
            await kit.purge_work(js)
            with grpc.insecure_channel(enc.target) as ch:
                stub = stages_pb2_grpc.EncoderStub(ch)
                replies = await asyncio.gather(
                    *(
                        asyncio.to_thread(stub.Encode, stages_pb2.StageRequest(job_id=job_id), timeout=30)
                        for _ in range(2)
                    )
                )
        job = await JobStore(js).get(job_id)
        assert job.status == "completed" and job.frames == 15
        assert {r.result_key for r in replies} == {job.result_key} == {object_keys.result(job_id, ".webm")}
        assert len(completions(await kit.events_of(js, job_id))) == 1
        await kit.purge_work(js)


async def test_compositor_errors_fail_the_job(conf, jetstream, nats_url, s3_endpoint, object_store, uid):
    kit.upload(object_store, f"a-{uid}")
    bad, down = f"bad-{uid}", f"down-{uid}"
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        for job_id in (bad, down):
            await kit.ingested_job(
                js, nats_url, s3_endpoint, object_store, job_id, kit.spec(source={"asset_id": f"a-{uid}"})
            )
        await kit.purge_work(js)
        # an image background whose image never reached S3: the compositor refuses, permanently
        image_bg = {"kind": "image", "rgb": [255] * 3, "image": {"asset_id": "gone"}}
        await JobStore(js).update(bad, kit.with_background(image_bg))
        async with stages(conf, segment_worker=False) as (_, _, enc):
            await js.publish(nats_subjects.WORK_ENCODE, json.dumps({"job_id": bad}).encode())
            failed = await kit.wait_record(js, bad, lambda j: j.status == "failed")
            # the record is failed before the message is terminated: wait for the term, do not race it
            deadline = time.monotonic() + 20
            while enc.worker.stats.termed < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert enc.worker.stats.termed == 1
        assert failed.error_code == "invalid_parameter" and "background image" in failed.error
        # no compositor at all: retried (max_deliver 3), then the job fails with transient_error
        (closed_port,) = free_ports(1)
        settings = conf(encoder.EncoderSettings, compositor_target=f"127.0.0.1:{closed_port}")
        async with Service(settings, encoder.build_server, encoder.build_worker, name="encoder") as enc:
            await js.publish(nats_subjects.WORK_ENCODE, json.dumps({"job_id": down}).encode())
            failed = await kit.wait_record(js, down, lambda j: j.status == "failed", timeout=20)
            assert enc.worker.stats.redeliveries == 2 and enc.worker.stats.gave_up == 1
        assert failed.error_code == "transient_error" and "encode failed 3 times" in failed.error
        await kit.purge_work(js)


async def test_process_serving_and_sigterm(nats_url, s3_endpoint, object_store, tmp_path):
    env = kit.service_env(nats_url, s3_endpoint, object_store, VBG_ENCODER_COMPOSITOR_TARGET="127.0.0.1:1")
    proc = kit.ServiceProcess("encoder", env, tmp_path)
    try:
        await asyncio.to_thread(proc.wait_serving)
        assert await asyncio.to_thread(proc.terminate) == 0, proc.log()
    finally:
        proc.kill()
