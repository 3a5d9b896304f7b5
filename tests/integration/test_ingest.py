"""Ingest service against real nats-server, S3 (SeaweedFS) and gRPC: uploaded assets and URLs in, probed
sources and segment work out; bad input fails the job without redelivery."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest

from services.common.fetch import check_url, fetch_to_file
from services.common.jobstore import JobStore
from services.common.record import Job
from services.common.stage_service import Service
from services.ingest.server import IngestSettings, build_server, build_worker
from tests.integration import stagekit as kit
from vbg.v1 import stages_pb2, stages_pb2_grpc
from videobg import nats_subjects, object_keys
from videobg.errors import InvalidInput, NotFound, TooLarge

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def http_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a temp dir holding the clip and a small PNG background."""
    root = tmp_path_factory.mktemp("www")
    (root / "clip.mov").write_bytes(kit.CLIP.read_bytes())
    bg = np.zeros((90, 120, 3), np.uint8)
    bg[:, :60] = (0, 0, 255)  # BGR: left half red, right half black
    cv2.imwrite(str(root / "bg.png"), bg)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(nats_url, s3_endpoint, object_store) -> IngestSettings:
    # the clips are served on loopback, which the SSRF guard admits only through the allow-list
    return kit.stage_settings(IngestSettings, nats_url, s3_endpoint, object_store, fetch_allow="127.0.0.0/8")


async def test_uploaded_asset_via_worker(settings, jetstream, object_store, uid):
    job_id = f"ing-{uid}"
    kit.upload(object_store, f"a-{uid}")
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        await kit.create_job(js, job_id, kit.spec(source={"asset_id": f"a-{uid}"}))
        async with Service(settings, build_server, build_worker, name="ingest"):
            await js.publish(nats_subjects.WORK_INGEST, f'{{"job_id":"{job_id}"}}'.encode())
            job = await kit.wait_record(js, job_id, lambda j: j.frames_total or j.status == "failed")
        assert job.status == "processing", job
        info = job.info
        assert (info.width, info.height, info.frame_count) == (
            kit.CLIP_W,
            kit.CLIP_H,
            kit.CLIP_FRAMES,
        )
        assert info.audio and info.audio[0].codec == "aac"
        assert job.billed_seconds == pytest.approx(info.duration_s, abs=1e-3)
        assert job.frames_total == kit.CLIP_FRAMES
        assert job.source_key == object_keys.source(job_id, ".mp4")
        assert object_store.stat(job.source_key).size == kit.CLIP.stat().st_size
        assert job.stage_seconds["ingest"] > 0
        work = await kit.work_for(js, nats_subjects.WORK_SEGMENT, job_id)
        assert work == [({"job_id": job_id}, f"{job_id}:segment")]
        events = await kit.events_of(js, job_id)
        assert [e["stage"] for e in events] == ["ingest", "ingest"]
        assert events[-1]["progress"] == 5 and events[-1]["frames_total"] == kit.CLIP_FRAMES
        await kit.purge_work(js)


async def test_bad_file_fails_job_without_redelivery(settings, jetstream, object_store, uid):
    job_id = f"bad-{uid}"
    object_store.put_bytes(
        object_keys.upload(f"a-{uid}"), b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
    )
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        await kit.create_job(js, job_id, kit.spec(source={"asset_id": f"a-{uid}"}))
        async with Service(settings, build_server, build_worker, name="ingest") as svc:
            await js.publish(nats_subjects.WORK_INGEST, f'{{"job_id":"{job_id}"}}'.encode())
            job = await kit.wait_record(js, job_id, lambda j: j.status == "failed")
            await asyncio.sleep(1.0)  # a nak would redeliver within backoff (0.3 s)
            assert svc.worker.stats.termed == 1 and svc.worker.stats.redeliveries == 0
        assert job.error_code == "malformed_image", job
        assert not object_store.exists(object_keys.source(job_id, ".mp4"))
        assert await kit.work_for(js, nats_subjects.WORK_SEGMENT, job_id) == []
        events = await kit.events_of(js, job_id)
        assert events[-1]["status"] == "failed" and events[-1]["error_code"] == "malformed_image"


async def test_grpc_ingest_url_trim_and_image_background(settings, jetstream, object_store, http_files, uid):
    base, _ = http_files
    job_id = f"url-{uid}"
    job_spec = kit.spec(
        source={"url": f"{base}/clip.mov"},
        trim={"start": 0.2, "end": 0.7},
        background={"kind": "image", "rgb": [255, 255, 255], "image": {"url": f"{base}/bg.png"}},
    )
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        await kit.create_job(js, job_id, job_spec)
        async with Service(settings, build_server, name="ingest") as svc:
            with grpc.insecure_channel(svc.target) as ch:
                stub = stages_pb2_grpc.IngestStub(ch)
                reply = await asyncio.to_thread(
                    stub.Ingest, stages_pb2.StageRequest(job_id=job_id), timeout=30
                )
                again = await asyncio.to_thread(
                    stub.Ingest, stages_pb2.StageRequest(job_id=job_id), timeout=30
                )
                probed = await asyncio.to_thread(
                    stub.Probe, stages_pb2.ProbeRequest(key=reply.source_key), timeout=30
                )
                with pytest.raises(grpc.RpcError) as missing:
                    await asyncio.to_thread(
                        stub.Probe, stages_pb2.ProbeRequest(key="uploads/nope"), timeout=30
                    )
            assert kit.health(svc.target) == "SERVING"
        assert reply.billed_seconds == pytest.approx(0.5, abs=1e-3)
        assert (reply.info.width, reply.info.height) == (kit.CLIP_W, kit.CLIP_H)
        assert again.source_key == reply.source_key  # idempotent
        assert probed.frame_count == kit.CLIP_FRAMES and probed.audio[0].codec == "aac"
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        job = await JobStore(js).get(job_id)
        assert job.status == "processing" and job.frames_total == 15
        assert job.background_key == object_keys.background(job_id, ".png")
        assert object_store.exists(job.background_key)
        assert (
            len(await kit.work_for(js, nats_subjects.WORK_SEGMENT, job_id)) == 1
        )  # the retry was deduplicated
        await kit.purge_work(js)


def test_fetch_limits(http_files, tmp_path):
    base, root = http_files
    loop = "127.0.0.0/8"  # the allow-list entry that admits the loopback server
    got = fetch_to_file(f"{base}/clip.mov", tmp_path / "a", max_bytes=10**7, allow=loop)
    assert got.size == kit.CLIP.stat().st_size and (tmp_path / "a").read_bytes() == kit.CLIP.read_bytes()
    with pytest.raises(TooLarge):
        fetch_to_file(f"{base}/clip.mov", tmp_path / "b", max_bytes=1000, allow=loop)
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.part").exists()
    with pytest.raises(NotFound):
        fetch_to_file(f"{base}/nothing.mp4", tmp_path / "c", max_bytes=1000, allow=loop)
    with pytest.raises(InvalidInput):  # without the allow-list, loopback is refused
        fetch_to_file(f"{base}/clip.mov", tmp_path / "d", max_bytes=10**7)
    for bad in ("file:///etc/passwd", "ftp://127.0.0.1/x", "http:///nohost", "gopher://x"):
        with pytest.raises(InvalidInput):
            check_url(bad)


async def test_process_ingests_and_drains_on_sigterm(
    nats_url, s3_endpoint, object_store, jetstream, tmp_path, uid
):
    """`python -m services.ingest` with env settings: SERVING, does a job, exits 0 on SIGTERM."""
    job_id = f"proc-{uid}"
    kit.upload(object_store, f"a-{uid}")
    proc = kit.ServiceProcess("ingest", kit.service_env(nats_url, s3_endpoint, object_store), tmp_path)
    try:
        await asyncio.to_thread(proc.wait_serving)
        async with jetstream() as (_, js):
            await kit.purge_work(js)
            await kit.create_job(js, job_id, kit.spec(source={"asset_id": f"a-{uid}"}))
            await js.publish(nats_subjects.WORK_INGEST, f'{{"job_id":"{job_id}"}}'.encode())
            job = await kit.wait_record(js, job_id, lambda j: j.frames_total)
            await kit.purge_work(js)
        assert job.info.frame_count == kit.CLIP_FRAMES
        assert await asyncio.to_thread(proc.terminate) == 0, proc.log()
        assert "ingest stopped" in proc.log()
        # structured logs: one JSON object per line; every line of the job's stage names the job
        lines = [json.loads(line) for line in proc.log_path.read_text().splitlines() if line.startswith("{")]
        of_job = [line for line in lines if job_id in line["msg"]]
        assert of_job and all(line.get("job_id") == job_id for line in of_job), of_job
        assert any(line.get("stage") == "ingest" and "ingested" in line["msg"] for line in of_job)
    finally:
        proc.kill()


def test_a_source_longer_than_its_probed_reservation_is_refused():
    """The gateway reserved on the length its submit probe measured; a URL now serving a longer video
    is not charged past that hold (services/ingest/stage.py)."""
    from services.ingest.stage import _check_probed_reservation

    def job(**billing: Any) -> Job:
        return Job.model_validate({"id": "j", "billing": billing or None})

    probed = job(basis="probed", reserved_seconds=5.0)
    _check_probed_reservation(probed, 5.6)  # within a second: frame rounding
    with pytest.raises(InvalidInput, match="changed since it was submitted"):
        _check_probed_reservation(probed, 30.0)
    _check_probed_reservation(job(basis="worst_case", reserved_seconds=60.0), 59.0)
    _check_probed_reservation(job(), 59.0)  # unmetered
