"""`videobg` command line: the media core in one process, no servers.

Exit codes: 0 done; 2 bad input or arguments (the message says what and why); 3 a model's weights are
missing or unusable; 4 cancelled (Ctrl-C); 1 anything else (a bug: the message asks for a report).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from videobg.composite import parse_background
from videobg.errors import InvalidInput, ModelUnavailable, VideoBgError
from videobg.media.formats import DEFAULT_FORMAT, FORMATS
from videobg.media.timeparse import parse_trim
from videobg.settings import CoreSettings, model_dir_places

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_MODEL, EXIT_CANCELLED = 0, 1, 2, 3, 4

_EXT_FORMATS = {
    ".mp4": "mp4_h264",
    ".webm": "webm_vp9",
    ".mkv": "mkv_h264",
    ".gif": "gif",
    ".webp": "webp",
    ".zip": "png_sequence",
}


def infer_format(output: Path, transparent: bool) -> str:
    ext = output.suffix.lower()
    if ext == ".mov":
        return "mov_proresks" if transparent else "mov_h265"
    if ext == ".mkv" and transparent:
        return "mkv_vp9"
    return _EXT_FORMATS.get(ext, DEFAULT_FORMAT)


class _Progress:
    """tqdm bar (frames, fps, ETA) on a terminal; silent when stderr is piped."""

    def __init__(self, enabled: bool):
        self.bar: Any = None  # a tqdm bar once the first frame is counted
        self.enabled = enabled

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="frame", dynamic_ncols=True, file=sys.stderr)
        if total != self.bar.total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_process(args: argparse.Namespace, settings: CoreSettings) -> int:
    from videobg.pipeline import process

    inp, out = Path(args.input), Path(args.output)
    if not inp.exists():
        raise InvalidInput(f"input file {str(inp)!r} does not exist")
    background = parse_background(args.background, transparent=args.transparent)
    fmt = args.format or infer_format(out, background.transparent)
    trim = parse_trim(args.start, args.end)
    model = settings.model_to_run(args.model or settings.default_model)
    out.parent.mkdir(parents=True, exist_ok=True)
    progress = _Progress(enabled=sys.stderr.isatty() and not args.quiet)
    cancel = threading.Event()
    device = settings.resolved_device()
    try:
        result = process(
            inp,
            out,
            model=model,
            model_dir=settings.model_dir,
            device=device,
            background=background,
            fmt=fmt,
            trim=trim,
            limits=settings.limits(),
            queue_frames=settings.queue_frames,
            threads=settings.resolved_threads(),
            batch_frames=settings.resolved_batch(device),
            refine_workers=settings.resolved_refine_workers(),
            progress=progress,
            cancel=cancel,
        )
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        progress.close()
    busy = ", ".join(f"{k} {v:.1f}s" for k, v in result.busy_s.items())
    print(
        f"wrote {out} ({fmt}, {result.info.width}x{result.info.height}, {result.frames} frames, "
        f"{result.duration_s:.2f} s, {result.fps:.1f} frames/s; busy: {busy})"
    )
    return EXIT_OK


def _cmd_models(args: argparse.Namespace, settings: CoreSettings) -> int:
    from videobg.models import MODELS

    for name, cls in MODELS.items():
        path = Path(settings.model_dir) / cls.weight_file
        state = "ok" if path.exists() else "missing"
        print(f"{name:14s} {cls.weight_file:28s} {cls.licence:12s} {state}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="videobg", description="Remove or replace the background of a video.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("process", help="process one video file")
    pr.add_argument("input", help="input video (MP4, MOV, WebM, MKV, GIF)")
    pr.add_argument("-o", "--output", required=True, help="output file; its extension picks the format")
    pr.add_argument(
        "--background",
        "-b",
        help="white (default), black, green, blue, #RRGGBB, #RGB, R,G,B, or an image file",
    )
    pr.add_argument("--transparent", action="store_true", help="keep alpha (webm, mov, gif, webp, zip)")
    pr.add_argument("--start", help="trim start: seconds or hh:mm:ss(.fff)")
    pr.add_argument("--end", help="trim end (exclusive): seconds or hh:mm:ss(.fff)")
    pr.add_argument("--model", help="matting model (default: setting VIDEOBG_DEFAULT_MODEL)")
    pr.add_argument("--format", choices=sorted(FORMATS), help="output format (default: from the extension)")
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_cmd_process)

    mo = sub.add_parser("models", help="list the models and whether their weights are installed")
    mo.set_defaults(func=_cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    settings = CoreSettings()
    t0 = time.perf_counter()
    try:
        return int(args.func(args, settings))
    except KeyboardInterrupt:
        print("videobg: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except ModelUnavailable as e:
        print(f"videobg: {e.message}", file=sys.stderr)
        print(
            f"videobg: model dir {settings.model_dir}; places looked at: {model_dir_places(settings)}",
            file=sys.stderr,
        )
        return EXIT_MODEL
    except VideoBgError as e:
        if e.code == "internal_error":
            print(f"videobg: internal error: {e.message}", file=sys.stderr)
            return EXIT_INTERNAL
        print(f"videobg: {e.message} [{e.code}]", file=sys.stderr)
        return EXIT_INPUT
    except Exception as e:  # noqa: BLE001 - a bug: say so in one line, details with -v
        logging.getLogger(__name__).debug("traceback", exc_info=True)
        print(
            f"videobg: internal error after {time.perf_counter() - t0:.1f}s: {type(e).__name__}: {e} "
            "(run with -v for details and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def run(argv: list[str] | None = None) -> NoReturn:
    """The `videobg` command: `main()`, then out of the process without Python's teardown. By then the
    job has closed its output, its threads have ended and the summary is printed; what the teardown would
    still do is unload PyTorch, ~0.45 s of every run on a 2-core machine (`python -c "import torch"`:
    1.56 s, 1.11 s leaving this way; docs/BENCHMARKS.md). Tests call `main()`, which returns."""
    code = main(argv)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say to it
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
