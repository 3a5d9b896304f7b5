"""Benchmark: one clip through the full local stack (REST -> ingest -> segmenter -> compositor -> encoder)
against the same job in one process (`videobg.pipeline.process`), one run each, printed as a ratio
(target: stack <= 1.25x in-process), with the per-stage seconds the job record carries.

The stack runs first, alone on the machine, then stops; then the in-process run. Both use the same model,
format and background, and both times include loading the model (the segmenter loads it at start-up, while
the stack comes up: that is reported separately as start-up, not in the job time). This is a script, not
a test.

    .venv/bin/python bench/bench_stack.py --clip ../shared/media/people/sam2_01_dog.mp4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.stack import FileServer, Stack, StackConfig, download, submit, wait_job  # noqa: E402
from videobg.composite import parse_background  # noqa: E402
from videobg.media.formats import get_format  # noqa: E402
from videobg.settings import CoreSettings  # noqa: E402


def run_stack(clip: Path, args: argparse.Namespace, work: Path) -> dict:
    config = StackConfig(
        data_dir=work / "stack",
        http_port=0,
        model_dir=args.model_dir,
        default_model=args.model,
        log_level="WARNING",
    )
    t0 = time.perf_counter()
    with Stack(config) as stack, FileServer(clip.parent) as files:
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        job_id = submit(stack.url, files.url_for(clip), args.background, args.format)
        status = wait_job(stack.url, job_id, timeout_s=1800, poll_s=0.1)
        wall = time.perf_counter() - t1
        if status["status"] != "completed":
            raise SystemExit(f"stack job failed: {status}")
        record = httpx.get(f"{stack.url}/internal/jobs/{job_id}", trust_env=False, timeout=10).json()
        out = download(status["result_url"], work / f"stack{get_format(args.format).extension}")
    return {"startup_s": startup, "wall_s": wall, "record": record, "bytes": out.stat().st_size}


def run_inprocess(clip: Path, args: argparse.Namespace, work: Path) -> dict:
    from videobg.pipeline import process

    background = parse_background(args.background)
    out = work / f"inprocess{get_format(args.format).extension}"
    t0 = time.perf_counter()
    result = process(
        clip,
        out,
        model=args.model,
        model_dir=args.model_dir,
        background=background,
        fmt=args.format,
        threads=CoreSettings().resolved_threads(),  # what the CLI and the segmenter use
    )
    return {"wall_s": time.perf_counter() - t0, "frames": result.frames, "busy_s": result.busy_s,
            "bytes": out.stat().st_size}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--clip", type=Path, default=REPO.parent / "shared" / "media" / "people" / "sam2_01_dog.mp4"
    )
    p.add_argument("--model", default=CoreSettings().default_model)
    p.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("VIDEOBG_MODEL_DIR", REPO / "models"))
    )
    p.add_argument("--format", default="mp4_h264")
    p.add_argument("--background", default="#1E90FF")
    p.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = p.parse_args()
    clip = args.clip.resolve()
    if (
        not (args.model_dir / "rvm_mobilenetv3_fp32.onnx").exists()
        and (REPO.parent / "shared" / "models").is_dir()
    ):
        args.model_dir = REPO.parent / "shared" / "models"

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vbg-bench-") as tmp:
        work = Path(tmp)
        stack = run_stack(clip, args, work)
        inproc = run_inprocess(clip, args, work)

    frames = inproc["frames"]
    ratio = stack["wall_s"] / inproc["wall_s"]
    print(f"clip {clip.name}: {frames} frames, model {args.model}, {args.format} over {args.background}")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}")
    # other work on the machine skews a one-run comparison: the load average says whether there was any
    print(f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    print()
    print("| run | wall s | frames/s |")
    print("|---|---:|---:|")
    print(f"| in-process pipeline | {inproc['wall_s']:.1f} | {frames / inproc['wall_s']:.2f} |")
    print(f"| local stack (submit -> completed) | {stack['wall_s']:.1f} | {frames / stack['wall_s']:.2f} |")
    print(
        f"\nstack / in-process: {ratio:.2f}x (target <= 1.25x){'' if ratio <= 1.25 else '  ** over target **'}"
    )
    print(f"stack start-up (servers + 5 services ready, not counted above): {stack['startup_s']:.1f} s")
    timings = stack["record"].get("stage_seconds") or {}
    if timings:
        print("\nper-stage seconds from the job record (stages overlap):")
        for stage, seconds in timings.items():
            print(f"  {stage:<12} {seconds:7.2f}")
    print("\nin-process busy seconds per stage (threads overlap):")
    for stage, seconds in inproc["busy_s"].items():
        print(f"  {stage:<16} {seconds:7.2f}")
    if args.json:
        print(json.dumps({"stack": stack, "inprocess": inproc, "ratio": ratio}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
