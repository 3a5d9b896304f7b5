"""The whole job in one process: probe -> decode/trim -> matte -> refine -> composite -> encode/mux.

The CLI calls `process`; the stage services call the same per-stage functions below (`matte_batch`,
`refine_and_composite`), so in-process and distributed runs produce the same pixels.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from videobg.composite import prepare_background
from videobg.errors import Cancelled, InvalidInput
from videobg.matte.refine import estimate_foreground, warm_kernel
from videobg.media.decode import iter_frames
from videobg.media.encode import VideoWriter, Yuv420Converter, takes_yuv420
from videobg.media.formats import get_format
from videobg.media.probe import probe, validate
from videobg.overlap import StageClock, batched, threaded
from videobg.types import Background, Frame, Limits, Trim, VideoInfo

if TYPE_CHECKING:  # importing the models pulls in torch: only the stages that matte pay for it
    from videobg.models.base import MatteSession

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (frames done, frames expected)


@dataclass
class Matted:
    frame: Frame
    alpha: np.ndarray  # [H, W] uint8 0..255


@dataclass
class Composited:
    t: float
    rgb: np.ndarray  # [H, W, 3] uint8: composited, or the refined foreground when transparent
    alpha: np.ndarray | None  # [H, W] uint8 for transparent output, else None


@dataclass
class JobResult:
    output: Path
    info: VideoInfo
    frames: int
    duration_s: float  # of the processed (trimmed) span
    wall_s: float
    busy_s: dict[str, float] = field(default_factory=dict)  # per stage, overlapped
    audio: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_HEAP_KEPT = False


def keep_freed_memory(mmap_below: int = 64 << 20, trim_above: int = 128 << 20) -> bool:
    """Process-wide, once: let glibc's malloc keep freed blocks under `mmap_below` bytes in its heap for
    the next frame instead of handing each back to the kernel. Each stage allocates fresh frame-sized
    arrays every frame (decoded frames, mattes, refinement windows, composites); by default glibc serves
    and returns many of them with mmap/munmap, so every frame touched fresh pages, each a page fault the
    kernel zeroes: `light` 720p took ~700 faults a frame more without this, and 2.6-6 ms more CPU a frame
    (docs/BENCHMARKS.md), for ~20 MB more peak RSS. False where the C library is not glibc."""
    global _HEAP_KEPT
    if _HEAP_KEPT:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _HEAP_KEPT = bool(mallopt(_M_MMAP_THRESHOLD, mmap_below)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_above))
    return _HEAP_KEPT


def frame_process_defaults(cv_threads: int | None = 1, keep_memory: bool = True) -> None:
    """Process-wide settings for a process whose threads work frames: OpenCV's threads per call (None:
    its own) and `keep_freed_memory()`. `process()` applies them, and so does every stage service at
    start (services/common/stage_service.py), so the stack's stages run frames as the CLI does."""
    if cv_threads is not None:
        cv2.setNumThreads(cv_threads)
    if keep_memory:
        keep_freed_memory()


def expected_frames(info: VideoInfo, trim: Trim) -> int:
    end = info.duration_s if trim.end is None else min(trim.end, info.duration_s)
    span = max(0.0, end - trim.start)
    fps = float(info.fps_avg or info.fps_nominal or 25)
    return max(1, round(span * fps))


SNAP_LEVELS = 2  # alpha within this many 8-bit levels of 0 or 255 is made exactly 0 or 255
# [256] uint8 lookup table: v -> 0 for v <= SNAP_LEVELS, 255 for v >= 255 - SNAP_LEVELS, else v
_SNAP = np.arange(256, dtype=np.uint8)
_SNAP[: SNAP_LEVELS + 1] = 0
_SNAP[255 - SNAP_LEVELS :] = 255


def quantize_alpha(alpha: np.ndarray) -> np.ndarray:
    """[H, W] float32 0..1 -> [H, W] uint8 (rounded, clipped): what every later stage and file carries.

    Values within `SNAP_LEVELS` (2, under 1 %) of either end become exactly 0 or 255: a blend that weak
    does not show, but a pixel that is not exactly 0 or 255 costs the edge refinement its whole tile
    (`light`'s guided edges leave such faint tails: 27.7 % of a 720p frame in refined tiles -> 24.3 %,
    1.8 ms a frame less), and a faint haze kept in a transparent output is a defect, not a detail."""
    return cv2.LUT(cv2.convertScaleAbs(alpha, alpha=255.0), _SNAP)


def matte_batch(session: MatteSession, frames: list[Frame], inferred: Any = None) -> list[Matted]:
    """Consecutive frames of one job in one inference call (one frame on a CPU, a batch on a GPU). Call
    in frame order, one session per job: a recurrent model keeps its state inside the session.
    `inferred`: what `infer_batch` gave for these frames on another thread (None: all done here)."""
    rgbs = [f.rgb for f in frames]
    alphas = session.finish(rgbs, inferred)
    return [Matted(f, quantize_alpha(a)) for f, a in zip(frames, alphas, strict=True)]


def prepare_batch(session: MatteSession, frames: list[Frame]) -> tuple[list[Frame], Any]:
    """The stateless step of inference for one batch (`MatteSession.prepare`), on a thread of its own."""
    return frames, session.prepare([f.rgb for f in frames])


def infer_batch(session: MatteSession, frames: list[Frame], prepared: Any) -> tuple[list[Frame], Any]:
    """The model's in-order step for one batch (`MatteSession.infer`), on a thread of its own."""
    return frames, session.infer([f.rgb for f in frames], prepared)


def matte_stages(
    session: MatteSession,
    frames: Iterator[Frame],
    *,
    batch_frames: int,
    queue_frames: int,
    clock: StageClock | None = None,
) -> Iterator[Matted]:
    """Frames in order -> mattes in order, through three overlapped threads: prepare (stateless, runs
    ahead), infer (the model's recurrent state) and matte (temporal and subject steps). Whole batches
    travel between them; the next stage gets single frames again."""
    depth = max(1, queue_frames // batch_frames)
    prepared = threaded(
        batched(frames, batch_frames),
        lambda fs: prepare_batch(session, fs),
        name="prepare",
        maxsize=depth,
        clock=clock,
    )
    inferred = threaded(
        prepared, lambda p: infer_batch(session, *p), name="infer", maxsize=depth, clock=clock
    )
    batches = threaded(inferred, lambda i: matte_batch(session, *i), name="matte", maxsize=depth, clock=clock)
    return itertools.chain.from_iterable(batches)


def refine_and_composite(m: Matted, plate: np.ndarray | None) -> Composited:
    if plate is None:
        return Composited(m.frame.t, estimate_foreground(m.frame.rgb, m.alpha), m.alpha)
    # composited inside the refinement's tiles: `composite(estimate_foreground(rgb, alpha), alpha,
    # plate)`'s pixels, blended only where alpha is fractional (a plain choice elsewhere)
    return Composited(m.frame.t, estimate_foreground(m.frame.rgb, m.alpha, plate=plate), None)


def process(
    input_path: str | Path,
    output_path: str | Path,
    *,
    model: str,
    model_dir: str | Path,
    device: str = "cpu",
    background: Background = Background(),
    fmt: str = "mp4_h264",
    trim: Trim = Trim(),
    limits: Limits | None = None,
    queue_frames: int = 8,
    threads: int | None = None,
    batch_frames: int = 1,
    refine_workers: int = 1,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    cv_threads: int | None = 1,
    keep_memory: bool = True,
) -> JobResult:
    """`cv_threads`: OpenCV's threads per call, process-wide like `threads` (PyTorch's); None leaves
    OpenCV's own setting. 1 by default: the stages already keep the cores busy, and OpenCV's pool only
    adds its hand-overs (`light` 720p: 1.3-4.7 ms less CPU a frame with 1, docs/BENCHMARKS.md).
    `refine_workers`: threads refining and compositing frames (in order; `CoreSettings.resolved_refine_workers`).
    `keep_memory`: `keep_freed_memory()` (process-wide too)."""
    t_start = time.perf_counter()
    frame_process_defaults(cv_threads, keep_memory)
    # the compiled edge refinement loads (0.4 s; compiles, ~3 s, the first time on a machine) while the
    # input is probed and the model loaded, not on the refine thread at the first frame. Not a daemon:
    # a job that fails at once leaves it to finish, never cut off inside the compiler at exit
    threading.Thread(target=warm_kernel, name="warm-refine").start()
    out_format = get_format(fmt, transparent=background.transparent)  # bad combos fail before any work
    info = probe(input_path)
    validate(info, limits or Limits(), trim)
    plate = prepare_background(background, info.height, info.width)
    from videobg.models import get_model

    matting = get_model(model, model_dir, device)
    session = matting.new_session(**({} if threads is None else {"threads": threads}))
    total = expected_frames(info, trim)
    clock = StageClock()
    stop = cancel or threading.Event()

    frames: Iterator[Frame] = threaded(
        iter_frames(input_path, info, trim), name="decode", maxsize=queue_frames, clock=clock, stop=stop
    )
    mattes = matte_stages(session, frames, batch_frames=batch_frames, queue_frames=queue_frames, clock=clock)
    # H.264/H.265/opaque VP9 take yuv420p: converted on the refine workers (as the compositor service
    # does), so the encoding thread only encodes
    yuv = (
        Yuv420Converter(out_format, info.width, info.height)
        if takes_yuv420(out_format, background.transparent, info.width, info.height)
        else None
    )

    def refine(m: Matted) -> tuple[Composited, np.ndarray | None]:
        c = refine_and_composite(m, plate)
        return c, (yuv.planes(c.rgb) if yuv is not None else None)  # [H2 * 3 / 2, W2] uint8 planes

    comps = threaded(
        mattes,
        refine,
        name="refine_composite",
        maxsize=queue_frames,
        clock=clock,
        workers=refine_workers,
    )

    audio_index = info.audio[0].index if info.audio else None
    fps = info.fps_nominal or info.fps_avg
    n = 0
    with VideoWriter(
        output_path,
        out_format,
        info.width,
        info.height,
        transparent=background.transparent,
        fps=fps,
        audio_src=input_path if audio_index is not None else None,
        audio_stream_index=audio_index,
        trim=trim,
    ) as writer:
        for c, planes in comps:
            if cancel is not None and cancel.is_set():
                raise Cancelled("job cancelled")
            t0 = time.perf_counter()
            if planes is not None:
                writer.write_yuv420(planes, c.t)
            else:
                writer.write(c.rgb, c.alpha, c.t)
            clock.add("encode", time.perf_counter() - t0)
            n += 1
            if progress is not None:
                progress(n, max(total, n))
        t0 = time.perf_counter()  # leaving the block flushes the encoder and muxes the audio: count it
    clock.add("encode", time.perf_counter() - t0)
    if n == 0:
        raise InvalidInput("the requested span contains no frames")
    wall = time.perf_counter() - t_start
    end = info.duration_s if trim.end is None else min(trim.end, info.duration_s)
    return JobResult(
        output=Path(output_path),
        info=info,
        frames=n,
        duration_s=max(0.0, end - trim.start),
        wall_s=wall,
        busy_s=dict(clock.busy),
        audio=bool(
            getattr(writer, "audio_written", audio_index is not None and out_format.audio_codec is not None)
        ),
    )
