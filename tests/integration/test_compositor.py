"""Compositor service against real nats-server, S3 and gRPC: it streams composited frames while the
segmenter is still writing mattes, in bands, over a colour or transparent; a failed job ends the stream."""

from __future__ import annotations

import asyncio
import threading

import grpc
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

from services.common.jobstore import JobStore
from services.common.record import Job
from services.common.stage_service import Service
from services.compositor.bands import Layout, StreamedFrame, assemble, to_bands
from services.compositor.server import CompositorSettings
from services.compositor.server import build_server as build_compositor
from services.segmenter.server import SegmenterSettings
from services.segmenter.server import build_server as build_segmenter
from tests.integration import stagekit as kit
from vbg.v1 import stages_pb2, stages_pb2_grpc
from videobg.media.encode import Yuv420Converter
from videobg.media.formats import get_format
from videobg.settings import CoreSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def compositor_settings(nats_url, s3_endpoint, object_store) -> CompositorSettings:
    return kit.stage_settings(CompositorSettings, nats_url, s3_endpoint, object_store, check_every_s=0.5)


@pytest.fixture
def segmenter_settings(nats_url, s3_endpoint, object_store, models_path) -> SegmenterSettings:
    return kit.stage_settings(
        SegmenterSettings,
        nats_url,
        s3_endpoint,
        object_store,
        core=CoreSettings(model_dir=models_path, device="cpu"),
        chunk_frames=8,
    )


LAYOUTS = [Layout(f, kit.CLIP_W, kit.CLIP_H) for f in ("yuv420p", "rgb24", "rgba")]


def pull(target: str, job_id: str, started: threading.Event | None = None) -> list[StreamedFrame]:
    """Every frame of Compositor.Composite(job_id), reassembled, in whichever layout it came."""
    with grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 16 << 20)]) as ch:
        call = stages_pb2_grpc.CompositorStub(ch).Composite(
            stages_pb2.StageRequest(job_id=job_id), timeout=40
        )
        if started is not None:
            started.set()
        return list(assemble(call, *LAYOUTS))


def rgb_of(f: StreamedFrame) -> np.ndarray:
    """[H, W, 3] uint8 of a streamed frame; yuv420p planes converted back (BT.709, limited range)."""
    if f.layout.pix_fmt != "yuv420p":
        return f.rgb
    frame = Yuv420Converter(get_format("mp4_h264"), kit.CLIP_W, kit.CLIP_H).from_planes(f.planes)
    return frame.to_ndarray(format="rgb24", src_colorspace=Colorspace.ITU709, src_color_range=ColorRange.MPEG)


def _output(job: Job, output_format: str) -> Job:
    job.spec = job.spec.model_copy(update={"output_format": output_format})
    return job


def corners(image: np.ndarray) -> list[np.ndarray]:
    """Mean colour of the two top 24x24 corners (ceiling, never the subject): [3] float each."""
    return [
        image[:24, :24].reshape(-1, image.shape[2]).mean(0),
        image[:24, -24:].reshape(-1, image.shape[2]).mean(0),
    ]


async def test_streams_while_segmenting(
    compositor_settings, segmenter_settings, jetstream, nats_url, s3_endpoint, object_store, uid
):
    job_id = f"cmp-{uid}"
    kit.upload(object_store, f"a-{uid}")
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        await kit.ingested_job(
            js, nats_url, s3_endpoint, object_store, job_id, kit.spec(source={"asset_id": f"a-{uid}"})
        )
        async with (
            Service(compositor_settings, build_compositor, name="compositor") as comp,
            Service(segmenter_settings, build_segmenter, name="segmenter") as seg,
        ):
            started = threading.Event()
            frames_task = asyncio.create_task(asyncio.to_thread(pull, comp.target, job_id, started))
            await asyncio.to_thread(started.wait, 10)
            await asyncio.sleep(0.5)  # the compositor is now waiting for chunk 0
            with grpc.insecure_channel(seg.target) as ch:
                stub = stages_pb2_grpc.SegmenterStub(ch)
                await asyncio.to_thread(stub.Segment, stages_pb2.StageRequest(job_id=job_id), timeout=40)
            frames = await frames_task
            assert kit.health(comp.target) == "SERVING"

            # the same job into a PNG sequence: RGB, which the encoder converts itself
            await JobStore(js).update(job_id, lambda j: _output(j, "png_sequence"))
            rgb = await asyncio.to_thread(pull, comp.target, job_id)
            # the same job over transparent: RGBA bands, alpha low on the ceiling, high on the face
            await JobStore(js).update(job_id, kit.with_background({"kind": "transparent"}))
            clear = await asyncio.to_thread(pull, comp.target, job_id)
        assert [f.index for f in frames] == list(range(kit.CLIP_FRAMES))
        assert frames[0].t == 0.0 and all(b.t > a.t for a, b in zip(frames, frames[1:], strict=False))
        for f in frames:  # H.264 takes yuv420p: the planes come, half the bytes of RGB
            assert f.layout.pix_fmt == "yuv420p" and f.planes.shape == (kit.CLIP_H * 3 // 2, kit.CLIP_W)
            assert f.alpha is None
            for c in corners(rgb_of(f)):
                assert np.abs(c - kit.DODGER_BLUE).max() < 12, c
        face = rgb_of(frames[15])[150:250, 280:380].reshape(-1, 3).mean(0)
        assert np.abs(face - kit.DODGER_BLUE).max() > 60  # the subject is kept
        assert [f.layout.pix_fmt for f in rgb] == ["rgb24"] * kit.CLIP_FRAMES
        for a, b in zip(frames, rgb, strict=True):  # the same pixels, but for the colour round trip
            assert a.t == b.t and np.abs(rgb_of(a).astype(np.int16) - b.rgb).mean() < 2.5
        assert len(clear) == kit.CLIP_FRAMES and clear[15].alpha is not None
        assert clear[15].layout.pix_fmt == "rgba"
        assert clear[15].alpha[:24, :24].mean() < 40 and clear[15].alpha[150:250, 280:380].mean() > 200
        # bands: a frame split in many small bands reassembles to the same pixels
        bands = list(to_bands(clear[3], band_bytes=kit.CLIP_W * 4 * 100))
        assert [b.rows for b in bands] == [100, 100, 100, 100, 28] and bands[-1].last_band
        for b in bands:
            b.index = 0
        (back,) = list(assemble(bands, *LAYOUTS))
        assert np.array_equal(back.rgb, clear[3].rgb) and np.array_equal(back.alpha, clear[3].alpha)
        (planes_back,) = list(assemble(to_bands(frames[0], band_bytes=kit.CLIP_W * 50), *LAYOUTS))
        assert np.array_equal(planes_back.planes, frames[0].planes)
        assert (await JobStore(js).get(job_id)).stage_seconds["composite"] > 0
        await kit.purge_work(js)


async def test_failed_job_ends_the_stream(
    compositor_settings, jetstream, nats_url, s3_endpoint, object_store, uid
):
    job_id = f"cfl-{uid}"
    kit.upload(object_store, f"a-{uid}")
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        await kit.ingested_job(
            js, nats_url, s3_endpoint, object_store, job_id, kit.spec(source={"asset_id": f"a-{uid}"})
        )
        async with Service(compositor_settings, build_compositor, name="compositor") as comp:
            started = threading.Event()
            task = asyncio.create_task(asyncio.to_thread(pull, comp.target, job_id, started))
            await asyncio.to_thread(started.wait, 10)
            await asyncio.sleep(0.5)  # waiting for a matte that will never come
            await JobStore(js).transition(
                job_id, {"processing"}, "failed", error_code="model_unavailable", error="no weights"
            )
            with pytest.raises(grpc.RpcError) as err:
                await asyncio.wait_for(task, 10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details().startswith("model_unavailable: ")
        await kit.purge_work(js)


async def test_process_serving_and_sigterm(nats_url, s3_endpoint, object_store, tmp_path):
    proc = kit.ServiceProcess("compositor", kit.service_env(nats_url, s3_endpoint, object_store), tmp_path)
    try:
        await asyncio.to_thread(proc.wait_serving)
        assert await asyncio.to_thread(proc.terminate) == 0, proc.log()
    finally:
        proc.kill()
