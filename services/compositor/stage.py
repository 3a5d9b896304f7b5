"""The composite stage of one job, streamed: decode the source, pair each frame with its matte from S3,
refine the foreground and composite it, hand frames to the caller (the encoder) as they come.

    reads: record spec, source_key, background_key; jobs/{id}/source{ext}; jobs/{id}/matte/*.matte as
           the segmenter writes them (each waited for with the stage deadline; between waits the record
           is checked, so a failed or cancelled job ends the stream with its error)
    writes: record stage_seconds.composite

Decode, matte pairing and refine/composite are three threads joined by bounded queues
(videobg.overlap.threaded), as in the in-process pipeline; `refine_and_composite` is the same function,
so both produce the same pixels. The stage writes no job status: its caller owns the job's outcome.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from pydantic_settings import SettingsConfigDict

from services.common import matte_chunks
from services.common.jobrun import StageRun, close_all
from services.common.record import Status
from services.common.settings import StageSettings
from services.compositor.bands import Layout, StreamedFrame, layout_for
from videobg import object_keys
from videobg.composite import prepare_background
from videobg.errors import Cancelled, InvalidInput, NotFound, Transient, VideoBgError
from videobg.matte.refine import warm_kernel
from videobg.media.decode import iter_frames
from videobg.media.encode import Yuv420Converter
from videobg.media.formats import DEFAULT_FORMAT, OutputFormat, get_format
from videobg.overlap import threaded
from videobg.pipeline import Composited, Matted, refine_and_composite
from videobg.types import Frame, VideoInfo

_T_TOLERANCE_S = 1e-4  # a matte's frame time vs the decoded frame's (same decoder: equal in practice)


class CompositorSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="VBG_COMPOSITOR_", extra="ignore")

    poll_s: float = 0.1  # how often a missing matte chunk is looked for
    check_every_s: float = 1.0  # how often, while waiting, the job record is checked


def warmup(settings: CompositorSettings, deps: object) -> None:
    """Load the compiled edge refinement (numba; compiled the first time on a machine, ~3 s) at start-up,
    so the first job's first frame does not wait for it."""
    warm_kernel()


def _mismatch(msg: str) -> VideoBgError:
    # the matte does not belong to these frames: a bug or a mixed-up job, not the user's input
    return VideoBgError(f"matte and source disagree: {msg}", code="internal_error")


class MatteReader:
    """Hands out the matte of each decoded frame, in order, loading chunk after chunk from S3."""

    def __init__(self, run: StageRun, settings: CompositorSettings, info: VideoInfo):
        self.run, self.settings, self.info = run, settings, info
        self.chunk = 0  # next chunk to load
        self.alpha = np.zeros((0, info.height, info.width), np.uint8)  # [N, H, W] uint8, current chunk
        self.t = np.zeros(0, np.float64)  # [N]
        self.index0 = 0
        self.pos = 0
        self.stopped = threading.Event()  # set when the consumer has gone

    def attach(self, frame: Frame) -> Matted:
        while self.pos >= len(self.alpha):
            self._load()
        i = self.pos
        if self.index0 + i != frame.index:
            raise _mismatch(f"matte frame {self.index0 + i} offered for decoded frame {frame.index}")
        if abs(float(self.t[i]) - frame.t) > _T_TOLERANCE_S:
            raise _mismatch(f"frame {frame.index} decoded at {frame.t:.6f} s, matted at {self.t[i]:.6f} s")
        self.pos += 1
        return Matted(frame, self.alpha[i])

    def _load(self) -> None:
        key = object_keys.matte_chunk(self.run.job_id, self.chunk)
        chunk = matte_chunks.decode(self._wait(key), height=self.info.height, width=self.info.width)
        expected0 = self.index0 + len(self.alpha)
        if chunk.index0 != expected0:
            raise _mismatch(f"chunk {self.chunk} starts at frame {chunk.index0}, expected {expected0}")
        self.alpha, self.t, self.index0, self.pos = chunk.alpha, chunk.t, chunk.index0, 0
        self.chunk += 1

    def _wait(self, key: str) -> bytes:
        """The chunk's bytes once the segmenter has written it; meanwhile watch the deadline and the job."""
        run, store = self.run, self.run.store
        while True:
            run.check()
            if self.stopped.is_set():
                raise Cancelled("composite stream closed")
            try:
                store.wait_for(
                    key,
                    timeout=min(self.settings.check_every_s, max(run.remaining, 0.01)),
                    poll=self.settings.poll_s,
                )
                return store.get_bytes(key)
            except (Transient, NotFound):
                pass  # not there yet (or S3 hiccup): check why before waiting again
            run.live_job()  # raises the job's error if it failed or was cancelled
            manifest = self.manifest()
            if manifest is not None and self.chunk >= manifest["chunks"]:
                raise _mismatch(f"the source decodes to more frames than the {manifest['frames']} matted")

    def manifest(self) -> dict | None:
        try:
            return json.loads(self.run.store.get_bytes(object_keys.matte_manifest(self.run.job_id)))
        except NotFound:
            return None

    def finish(self, frames: int) -> None:
        """After the last decoded frame: the segmenter's manifest must agree on the frame count."""
        key = object_keys.matte_manifest(self.run.job_id)
        while (manifest := self.manifest()) is None:
            self.run.check()
            self.run.live_job()
            with contextlib.suppress(Transient):
                wait = min(self.settings.check_every_s, max(self.run.remaining, 0.01))
                self.run.store.wait_for(key, timeout=wait, poll=self.settings.poll_s)
        if manifest["frames"] != frames:
            raise _mismatch(f"{frames} frames decoded, {manifest['frames']} matted")


def composite_frames(run: StageRun, settings: CompositorSettings) -> Iterator[StreamedFrame]:
    """Every frame of the job's span, composited, in order, in the layout the job's encoder takes
    (services/compositor/bands.py): yuv420p planes for H.264/H.265/VP9, else RGB, or RGBA when transparent."""
    with run.measured():  # the composite stage has no run_stage around it: it is a stream
        yield from _composite_frames(run, settings)


def _composite_frames(run: StageRun, settings: CompositorSettings) -> Iterator[StreamedFrame]:
    job = run.require(Status.PROCESSING)
    source_key = job.source_key
    spec = job.spec
    trim = spec.trim.to_trim()
    queue = settings.core.queue_frames
    with run.scratch() as tmp:
        src = run.store.get_file(source_key, tmp / Path(source_key).name)
        image_path = None
        if spec.background.kind == "image":
            if not job.background_key:
                raise InvalidInput("the job's background image was not ingested")
            image_path = str(run.store.get_file(job.background_key, tmp / Path(job.background_key).name))
        info = job.video_info()  # ingest's probe, not a second one
        background = spec.background.to_background(image_path)
        plate = prepare_background(background, info.height, info.width)
        fmt = get_format(spec.output_format or DEFAULT_FORMAT, transparent=background.transparent)
        to_wire = _packer(layout_for(fmt, background.transparent, info.width, info.height), fmt, info)
        reader = MatteReader(run, settings, info)
        frames: Iterator[Frame] = threaded(iter_frames(src, info, trim), name="decode", maxsize=queue)
        mattes = threaded(frames, reader.attach, name="matte", maxsize=queue)
        comps = threaded(
            mattes,
            lambda m: to_wire(m.frame.index, refine_and_composite(m, plate)),
            name="refine_composite",
            maxsize=queue,
            workers=settings.core.resolved_refine_workers(),
        )
        n = 0
        try:
            for frame in comps:
                run.check()
                run.count_frames()
                yield frame
                n += 1
        finally:
            reader.stopped.set()  # a reader waiting for a chunk gives up at once
            close_all(comps, mattes, frames)
        if n == 0:
            raise InvalidInput("the requested span contains no frames")
        reader.finish(n)
    run.set(done=True)
    run.log.info("composited %d frames in %.2f s", n, run.elapsed)


def _packer(layout: Layout, fmt: OutputFormat, info: VideoInfo) -> Callable[[int, Composited], StreamedFrame]:
    """A composited frame -> the frame as it goes on the wire (on the refine/composite thread)."""
    if layout.pix_fmt == "yuv420p":
        conv = Yuv420Converter(fmt, info.width, info.height)
        return lambda index, c: StreamedFrame(index, c.t, layout, conv.planes(c.rgb))  # [H2 * 3 / 2, W2]
    if layout.pix_fmt == "rgba":
        return lambda index, c: StreamedFrame(
            index, c.t, layout, np.dstack([c.rgb, _alpha_of(c)])
        )  # [H, W, 4]
    return lambda index, c: StreamedFrame(index, c.t, layout, c.rgb)  # [H, W, 3]


def _alpha_of(c: Composited) -> np.ndarray:
    if c.alpha is None:
        raise VideoBgError("transparent output without an alpha", code="internal_error")
    return c.alpha  # [H, W] uint8
