"""The encode stage of one job: pull composited frames from the compositor, encode them with the source's
audio, upload the result and complete the job, exactly once.

    reads:  record spec, source_key; jobs/{id}/source{ext} (for the audio); Compositor.Composite stream
    writes: jobs/{id}/result{ext}; record status processing -> completed (compare-and-set), result_key,
            progress 100, stage done, stage_seconds.encode, frames, audio
    events: encode progress every ~10 frames; `completed` (msg id {job_id}:completed) once

A job already completed is acknowledged without work. Two encoders racing on one job (a redelivery after
the duplicate window) both write the same key; the compare-and-set lets one of them complete the job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from services.common import bus, grpcutil
from services.common.jobrun import StageRun, close_all, stopped_error
from services.common.metrics import count_job
from services.common.record import Job, Status
from services.common.settings import StageSettings
from services.compositor.bands import Layout, StreamedFrame, assemble, layout_for
from vbg.v1 import stages_pb2, stages_pb2_grpc
from videobg import object_keys
from videobg.errors import InvalidInput, Transient
from videobg.media.encode import QUALITIES, VideoWriter
from videobg.media.formats import DEFAULT_FORMAT, get_format
from videobg.overlap import threaded

EVENT_EVERY = 10


class EncoderSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="VBG_ENCODER_", extra="ignore")

    compositor_target: str  # host:port of the Compositor gRPC service
    quality: str = "default"  # fast | default | high (videobg.media.encode.QUALITIES)

    @field_validator("quality")
    @classmethod
    def _known_quality(cls, v: str) -> str:
        if v not in QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(QUALITIES)}")
        return v


@dataclass
class EncodeResult:
    result_key: str
    frames: int
    size_bytes: int


def _completed(run: StageRun, job: Job) -> EncodeResult:
    size = run.store.stat(job.result_key).size if job.result_key else 0
    return EncodeResult(job.result_key, job.frames, size)


def encode(run: StageRun, settings: EncoderSettings) -> EncodeResult:
    job = run.job()
    if job.status == Status.COMPLETED:
        run.log.info("already completed; nothing to do")
        # the encoder that completed the record may have lost its `completed` event (the bus down at
        # that moment: its delivery failed and came back here); the job's events must still end with it
        last = run.deps.call(bus.last_event(run.deps.js, run.job_id))
        if last is None or last.get("status") != Status.COMPLETED:
            run.log.warning("completed without its event; announcing it now")
            _announce(run, job.result_key, job.frames)
        return _completed(run, job)
    job = run.require(Status.PROCESSING)
    spec = job.spec
    trim = spec.trim.to_trim()
    background = spec.background.to_background()
    fmt = get_format(spec.output_format or DEFAULT_FORMAT, transparent=background.transparent)
    frames_total = job.frames_total

    info = job.video_info()  # ingest's probe
    audio_index = info.audio[0].index if info.audio else None
    with run.scratch() as tmp:
        # the source only for its audio: a silent clip is not fetched at all
        src = run.store.get_file(job.source_key, tmp / Path(job.source_key).name) if info.audio else None
        out = tmp / f"result{fmt.extension}"
        n = 0
        with grpcutil.channel(settings.compositor_target) as channel:
            call = stages_pb2_grpc.CompositorStub(channel).Composite(
                stages_pb2.StageRequest(job_id=run.job_id), timeout=max(run.remaining, 1.0)
            )
            # the compositor sends yuv420p planes where this output takes them, else RGB(A)
            rgb = Layout("rgba" if background.transparent else "rgb24", info.width, info.height)
            wire = layout_for(fmt, background.transparent, info.width, info.height)
            frames: Iterator[StreamedFrame] = threaded(
                _received(call, rgb, wire), name="receive", maxsize=settings.core.queue_frames
            )
            try:
                with VideoWriter(
                    out, fmt, info.width, info.height, transparent=background.transparent,
                    fps=info.fps_nominal or info.fps_avg, trim=trim, quality=settings.quality,
                    audio_src=src, audio_stream_index=audio_index,
                ) as writer:  # fmt: skip
                    for f in frames:
                        run.check()
                        if f.layout.pix_fmt == "yuv420p":
                            writer.write_yuv420(f.planes, f.t)  # converted by the compositor
                        else:
                            writer.write_image(f.image, f.t)  # [H, W, 3|4] uint8
                        run.count_frames()
                        n += 1
                        if n == 1:
                            run.set(stage="encode")
                        if n % EVENT_EVERY == 0:
                            run.progress(n, frames_total)
            finally:
                call.cancel()  # no-op after a complete stream; stops the compositor on our failure
                close_all(frames)
        if n == 0:
            raise InvalidInput("the requested span contains no frames")
        run.check()
        result_key = object_keys.result(run.job_id, fmt.extension)
        size = out.stat().st_size
        run.store.put_file(result_key, out, content_type=fmt.mime)

    return _complete(run, result_key, n, size, writer.audio_written, fmt.mime)


def _received(call: Iterator[stages_pb2.FrameBand], *layouts: Layout) -> Iterator[StreamedFrame]:
    try:
        yield from assemble(call, *layouts)
    except grpc.RpcError as e:
        raise grpcutil.error_from_rpc(e) from e


# waits between tries of the `completed` event: ~15 s in all, longer than a NATS leader election (~5 s)
ANNOUNCE_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def _announce(
    run: StageRun, result_key: str, frames: int, retry_s: tuple[float, ...] = ANNOUNCE_RETRY_S
) -> None:
    """The job's `completed` event, tried again while the bus is down: the record is completed already,
    so a failure here would end the delivery as done (the job is finished) and the event would be lost.
    Its message id makes a repeat (an earlier try that landed but whose ack was lost) land once."""
    for wait in (*retry_s, None):
        try:
            run.event(
                status="completed", stage="done", progress=100, frames_done=frames, frames_total=frames,
                result_key=result_key, msg_id=f"{run.job_id}:completed",
            )  # fmt: skip
            return
        except Transient as e:
            if wait is None:
                run.log.error("completed, but its event could not be published: %s", e)
                return
            run.log.warning("completed event not published (%s); again in %.1f s", e, wait)
            time.sleep(wait)


def _complete(run: StageRun, result_key: str, frames: int, size: int, audio: bool, mime: str) -> EncodeResult:
    """processing -> completed, once: the first encoder to get here wins; a later one changes nothing."""
    won = threading.Event()
    elapsed = round(run.elapsed, 3)

    def complete(job: Job) -> Job | None:
        won.clear()
        if job.status != Status.PROCESSING:
            return None
        won.set()
        job.status, job.stage, job.progress = Status.COMPLETED, "done", 100.0
        job.result_key, job.result_size, job.result_mime = result_key, size, mime
        job.frames, job.audio = frames, audio
        job.stage_seconds = {**job.stage_seconds, "encode": elapsed}
        return job

    job = run.update(complete)
    if not won.is_set():
        if job.status == Status.COMPLETED:
            run.log.info("completed meanwhile by another encoder; result %s", job.result_key)
            return _completed(run, job)
        raise stopped_error(job) or Transient(f"job {run.job_id} left processing ({job.status})")
    count_job(job, "completed")  # once: only the encoder whose compare-and-set won gets here
    _announce(run, result_key, frames)
    run.log.info("completed: %s (%d frames, %.1f kB) in %.2f s", result_key, frames, size / 1e3, run.elapsed)
    return EncodeResult(result_key, frames, size)
