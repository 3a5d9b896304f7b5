"""Benchmark: one clip through the full local stack (REST -> ingest -> segmenter -> compositor -> encoder)
against the same job in one process (`videobg.pipeline.process`), one run each, printed as a ratio
(target: stack <= 1.25x in-process), with the per-stage seconds the job record carries, and the CPU
seconds each spent on the job: the stack's summed over its processes (the five services, nats-server,
SeaweedFS), the in-process run's over its threads. On a machine whose cores the in-process run already
keeps busy, the stack's extra work (a second decode in the compositor, matte chunks through S3, frames
over gRPC) adds to its wall time one for one; the CPU seconds show that work whatever the load.

The stack runs first, alone on the machine, then stops; then the in-process run. Both use the same model,
format and background, and both times include loading the model (the segmenter loads it at start-up, while
the stack comes up: that is reported separately as start-up, not in the job time). This is a script, not
a test.

    .venv/bin/python bench/bench_stack.py --clip ../shared/media/people/sam2_01_dog.mp4 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.procs import ServerProc  # noqa: E402
from devstack.stack import FileServer, Stack, StackConfig, download, submit, wait_job  # noqa: E402
from videobg.composite import parse_background  # noqa: E402
from videobg.media.formats import get_format  # noqa: E402
from videobg.settings import CoreSettings  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; utime and stime are 14 and 15
    return (int(fields[11]) + int(fields[12])) / _TICK


def stack_pids(stack: Stack) -> dict[str, int]:
    pids = {name: proc.pid for name, proc in stack.services.items()}
    for name, proc in (("nats", stack.nats), ("seaweedfs", stack.s3)):
        if isinstance(proc, ServerProc):
            pids[name] = proc.pid
    return pids


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
        pids = stack_pids(stack)
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        t1 = time.perf_counter()
        job_id = submit(stack.url, files.url_for(clip), args.background, args.format)
        status = wait_job(stack.url, job_id, timeout_s=1800, poll_s=0.1)
        wall = time.perf_counter() - t1
        cpu = {name: round(cpu_seconds(pid) - cpu0[name], 2) for name, pid in pids.items()}
        if status["status"] != "completed":
            raise SystemExit(f"stack job failed: {status}")
        record = httpx.get(f"{stack.url}/internal/jobs/{job_id}", trust_env=False, timeout=10).json()
        out = download(status["result_url"], work / f"stack{get_format(args.format).extension}")
    return {"startup_s": startup, "wall_s": wall, "cpu_s": cpu, "record": record, "bytes": out.stat().st_size}


def run_inprocess(clip: Path, args: argparse.Namespace, work: Path) -> dict:
    from videobg.pipeline import process

    background = parse_background(args.background)
    out = work / f"inprocess{get_format(args.format).extension}"
    settings = CoreSettings()  # what the CLI and the stage services use: device, threads, batch, workers
    device = settings.resolved_device()
    t0, c0 = time.perf_counter(), time.process_time()
    result = process(
        clip,
        out,
        model=args.model,
        model_dir=args.model_dir,
        device=device,
        background=background,
        fmt=args.format,
        threads=settings.resolved_threads(),
        batch_frames=settings.resolved_batch(device),
        refine_workers=settings.resolved_refine_workers(),
    )
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "frames": result.frames,
            "busy_s": result.busy_s, "bytes": out.stat().st_size}  # fmt: skip


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
    p.add_argument("--runs", type=int, default=1, help="alternated stack / in-process runs (medians)")
    p.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = p.parse_args()
    clip = args.clip.resolve()
    if (
        not (args.model_dir / "rvm_mobilenetv3_fp32.onnx").exists()
        and (REPO.parent / "shared" / "models").is_dir()
    ):
        args.model_dir = REPO.parent / "shared" / "models"

    load_before = os.getloadavg()[0]
    stacks: list[dict] = []
    inprocs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vbg-bench-") as tmp:
        work = Path(tmp)
        for _ in range(args.runs):  # alternated, so a change of load falls on both
            stacks.append(run_stack(clip, args, work))
            inprocs.append(run_inprocess(clip, args, work))

    def median_of(runs: list[dict]) -> dict:
        return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]

    stack, inproc = median_of(stacks), median_of(inprocs)
    frames = inproc["frames"]
    ratios = [s["wall_s"] / i["wall_s"] for s, i in zip(stacks, inprocs, strict=True)]
    ratio = statistics.median(ratios)
    stack_cpu = [sum(s["cpu_s"].values()) for s in stacks]
    inproc_cpu = [i["cpu_s"] for i in inprocs]
    print(f"clip {clip.name}: {frames} frames, model {args.model}, {args.format} over {args.background}")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}")
    # other work on the machine skews a one-run comparison: the load average says whether there was any
    print(f"load average (1 min) before: {load_before:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"runs: {args.runs} of each, alternated; figures are medians (wall: the median run's)")
    print()
    print("| run | wall s | frames/s | CPU s on the job |")
    print("|---|---:|---:|---:|")
    print(
        f"| in-process pipeline | {inproc['wall_s']:.1f} | {frames / inproc['wall_s']:.2f} "
        f"| {statistics.median(inproc_cpu):.1f} |"
    )
    print(
        f"| local stack (submit -> completed) | {stack['wall_s']:.1f} | {frames / stack['wall_s']:.2f} "
        f"| {statistics.median(stack_cpu):.1f} |"
    )
    print(
        f"\nstack / in-process: {ratio:.2f}x (target <= 1.25x){'' if ratio <= 1.25 else '  ** over target **'}"
        f"; each run: {', '.join(f'{r:.2f}' for r in ratios)}"
    )
    print(
        f"CPU seconds, stack / in-process: {statistics.median(stack_cpu) / statistics.median(inproc_cpu):.2f}x"
    )
    print(f"stack start-up (servers + 5 services ready, not counted above): {stack['startup_s']:.1f} s")
    print(
        "stack CPU seconds per process (median run): "
        + ", ".join(f"{k} {v:.1f}" for k, v in stack["cpu_s"].items())
    )
    timings = stack["record"].get("stage_seconds") or {}
    if timings:
        print("\nper-stage seconds from the job record (stages overlap):")
        for stage, seconds in timings.items():
            print(f"  {stage:<12} {seconds:7.2f}")
    print("\nin-process busy seconds per stage (threads overlap):")
    for stage, seconds in inproc["busy_s"].items():
        print(f"  {stage:<16} {seconds:7.2f}")
    if args.json:
        print(json.dumps({"stack": stacks, "inprocess": inprocs, "ratio": ratio}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
