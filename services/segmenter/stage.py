"""The segment stage of one job: matte every frame of the trimmed span, in order, in one model session.

    reads:   record spec, source_key; jobs/{id}/source{ext}
    writes:  jobs/{id}/matte/{chunk:06d}.matte  alpha [N, H, W] uint8, t [N] float64 (seconds since the
                                               span start), index0 (the first frame's index): the format
                                               of services/common/matte_chunks.py
             jobs/{id}/matte/manifest.json     {frames, chunks, width, height, chunk_frames, model}, last
             record: stage segment, weights (what the session loaded), matte {chunks, frames}, progress <= 50, stage_seconds.segment
    NATS:    vbg.work.encode {job_id} (msg id {job_id}:encode) published at the START, so compositing and
             encoding run while matting goes on (the compositor waits for each chunk in S3).

Deterministic and idempotent: the same frames (same decoder, same trim) go through the same model, so a
redelivery rewrites the same chunks with the same arrays; a job whose manifest exists is already done.
Chunks are written by a second thread so compression and upload overlap inference.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic_settings import SettingsConfigDict

from services.common import matte_chunks
from services.common.jobrun import StageRun, close_all
from services.common.objstore import ObjectStore
from services.common.record import MatteSummary, Status, progress_of
from services.common.settings import StageSettings
from videobg import metrics, nats_subjects, object_keys
from videobg.errors import InvalidInput
from videobg.media.decode import iter_frames
from videobg.media.probe import frame_rate
from videobg.models import MattingModel, get_model
from videobg.overlap import batched, threaded
from videobg.pipeline import infer_batch, matte_batch, prepare_batch
from videobg.types import Frame

log = logging.getLogger(__name__)

EVENT_EVERY = 10  # frames between progress events


class SegmenterSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="VBG_SEGMENTER_", extra="ignore")

    chunk_frames: int = 8  # frames per matte chunk: the compositor follows the segmenter a chunk behind
    preload: bool = True  # load the default model at start-up (as a process), not on the first job

    def model_name(self, requested: str) -> str:
        """The model a job runs: its own, else the deployment's default (VIDEOBG_DEFAULT_MODEL), on the
        weights this deployment chose for it (VIDEOBG_ORIGINAL_WEIGHTS)."""
        return self.core.model_to_run(requested or self.core.default_model)


@dataclass
class SegmentResult:
    frames: int
    chunks: int
    manifest_key: str


class ChunkWriter:
    """Compress + upload chunks in one background thread, at most one chunk queued behind the current."""

    def __init__(self, store: ObjectStore, job_id: str):
        self.store, self.job_id = store, job_id
        self.chunks = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"chunks-{job_id}")
        self._pending: concurrent.futures.Future[None] | None = None

    def put(self, index0: int, alphas: list[np.ndarray], times: list[float]) -> None:
        """alphas: N x [H, W] uint8 of consecutive frames from index0, times: their N times in seconds."""
        key = object_keys.matte_chunk(self.job_id, self.chunks)
        self.wait()  # bound memory: one chunk in flight
        self._pending = self._pool.submit(self._write, key, index0, alphas, times)
        self.chunks += 1

    def _write(self, key: str, index0: int, alphas: list[np.ndarray], times: list[float]) -> None:
        self.store.put_bytes(key, matte_chunks.encode(index0, alphas, times))

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def segment(run: StageRun, settings: SegmenterSettings) -> SegmentResult:
    job = run.require(Status.PROCESSING)
    source_key = job.source_key
    run.publish_work(nats_subjects.WORK_ENCODE, "encode")  # at the start: the encoder overlaps matting
    manifest_key = object_keys.matte_manifest(run.job_id)
    if run.store.exists(manifest_key):
        done = json.loads(run.store.get_bytes(manifest_key))
        run.log.info("matte already complete (%d frames); nothing to do", done["frames"])
        return SegmentResult(done["frames"], done["chunks"], manifest_key)

    spec = job.spec
    trim = spec.trim.to_trim()
    model_name = settings.model_name(spec.model)
    model = load_model(settings, model_name)
    frames_total = job.frames_total
    core = settings.core
    # one session per job: a recurrent model's state lives in it. Made before the record says "segment",
    # so that the record names the weights the session loaded from then on (a poll mid-job shows them).
    session = model.new_session(threads=core.resolved_threads(), text_prompt=spec.text_prompt)
    job = run.set(stage="segment", weights=session.weights)
    run.event(progress=job.progress, frames_done=0, frames_total=frames_total)

    with run.scratch() as tmp:
        src = run.store.get_file(source_key, tmp / Path(source_key).name)
        info = job.video_info()  # ingest's probe, not a second one
        chunk_frames = matte_chunks.frames_per_chunk(settings.chunk_frames, info.height, info.width)
        batch = core.resolved_batch(core.resolved_device())  # frames per inference call
        stop = threading.Event()
        writer = ChunkWriter(run.store, run.job_id)
        frames: Iterator[Frame] = threaded(
            iter_frames(src, info, trim), name="decode", maxsize=core.queue_frames, stop=stop
        )
        # the stateless step of inference and the model's in-order step each run a batch ahead on a
        # thread of their own (up to three cores per job)
        prepared = threaded(
            batched(frames, batch),
            lambda fs: prepare_batch(session, fs),
            name="prepare",
            maxsize=max(1, core.queue_frames // batch),
        )
        inferred = threaded(
            prepared,
            lambda p: infer_batch(session, *p),
            name="infer",
            maxsize=max(1, core.queue_frames // batch),
        )
        inference = metrics.INFERENCE.labels(model=model_name)
        frame_step = 1.0 / frame_rate(info)
        n, alphas, times = 0, [], []
        try:
            for group, ahead in inferred:
                run.check()
                t0 = time.perf_counter()
                matted = matte_batch(session, group, ahead)  # N x [H, W] uint8 alpha
                per_frame = (time.perf_counter() - t0) / len(group)  # the last step only
                for m in matted:
                    inference.observe(per_frame)
                    run.count_frames()
                    alphas.append(m.alpha)
                    times.append(m.frame.t)
                    n += 1
                    if len(alphas) == chunk_frames:
                        writer.put(n - len(alphas), alphas, times)
                        alphas, times = [], []
                        run.live_job()  # stop early if the job was cancelled or failed elsewhere
                    if n % EVENT_EVERY == 0:
                        # the span matted so far: what a job cancelled now is billed for
                        run.progress(n, frames_total, processed_s=m.frame.t + frame_step)
            if alphas:
                writer.put(n - len(alphas), alphas, times)
            writer.wait()
        finally:
            stop.set()
            close_all(inferred, prepared, frames)
            writer.close()
    if n == 0:
        raise InvalidInput("the requested span contains no frames")
    manifest: dict[str, Any] = {
        "frames": n,
        "chunks": writer.chunks,
        "chunk_frames": chunk_frames,
        "width": info.width,
        "height": info.height,
        "model": model_name,
        "weights": session.weights,
    }
    run.store.put_bytes(manifest_key, json.dumps(manifest).encode(), content_type="application/json")
    job = run.set(
        matte=MatteSummary(chunks=writer.chunks, frames=n, model=model_name),
        progress=progress_of("segment", n, n),
        done=True,
    )
    run.event(progress=job.progress, frames_done=n, frames_total=n)
    run.log.info(
        "matted %d frames (%d chunks, model %s) in %.2f s", n, writer.chunks, model_name, run.elapsed
    )
    return SegmentResult(n, writer.chunks, manifest_key)


_timed_loads: set[tuple[str, str]] = set()
_timed_lock = threading.Lock()


def load_model(settings: SegmenterSettings, name: str) -> MattingModel:
    """get_model, timing the first call per (model, device) in this process: that call is the load (the
    registry keeps the model loaded, so later calls return at once). A call that waited for a load running
    in another thread (the warm-up) reports that wait, close to the load time."""
    device = settings.core.resolved_device()
    t0 = time.perf_counter()
    model = get_model(name, settings.core.model_dir, device)
    seconds = time.perf_counter() - t0
    with _timed_lock:
        first = (name, device) not in _timed_loads
        _timed_loads.add((name, device))
    if first:
        metrics.MODEL_LOAD.labels(model=name, device=device).set(seconds)
        log.info("model %s loaded on %s in %.2f s", name, device, seconds)
    return model


def warmup(settings: SegmenterSettings, deps: Any) -> None:
    """Load the default model once at start-up so the first job does not pay for it."""
    if not settings.preload:
        return
    name = settings.model_name("")
    try:
        load_model(settings, name)
    except Exception as e:  # a job naming this model will report it; the service still serves others
        log.warning("could not preload model %s: %s", name, e)
