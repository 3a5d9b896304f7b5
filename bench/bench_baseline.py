"""Benchmark: `videobg process` against the plain loop a user would write first, side by side.

The plain loop (`--child baseline`) decodes with PyAV, runs the same RVM weights in ONNX Runtime frame by
frame (downsample_ratio 0.25, 2 intra-op threads, recurrent state fed back), composites over a colour
and encodes with libx264 at its default preset and CRF (medium, 23), one step after the other, nothing
overlapped. Ours is the CLI (`videobg process --model human`), as a user runs it.

Runs alternate (ours, plain, ours, plain, ...) in fresh subprocesses so that a busy neighbour on a
shared machine slows both alike; it prints each run's wall seconds, CPU seconds (user + system of the
child), cores busy (CPU seconds / wall seconds / cores) and output size, then medians and the ratio of
frames/s. A script, not a test.

    .venv/bin/python bench/bench_baseline.py --clip ../shared/media/people/sam2_01_dog.mp4 --runs 3

`make bench` adds `--two-jobs --per-model`: every figure issue 16 asks for, and a summary against its
targets, in about five minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RVM_FILE = "rvm_mobilenetv3_fp32.onnx"


def baseline(clip: str, out: str, model_dir: str, color: tuple[int, int, int], threads: int) -> int:
    """The plain loop. Returns the number of frames written."""
    import av
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(Path(model_dir) / RVM_FILE), opts, providers=["CPUExecutionProvider"])
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    ratio = np.array([0.25], np.float32)
    src = av.open(clip)
    vin = src.streams.video[0]
    dst = av.open(out, "w")
    vout = dst.add_stream("libx264", rate=vin.average_rate or 25)
    vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
    plate = np.empty((vout.height, vout.width, 3), np.float32)
    plate[:] = color
    n = 0
    for frame in src.decode(vin):
        rgb = frame.to_ndarray(format="rgb24")  # [H, W, 3] uint8
        x = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]  # [1, 3, H, W] 0..1
        fgr, pha, *rec = sess.run(
            None,
            {"src": x, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2], "r4i": rec[3], "downsample_ratio": ratio},
        )
        a = pha[0, 0][..., None]  # [H, W, 1] 0..1
        img = rgb.astype(np.float32) * a + plate * (1.0 - a)
        out_frame = av.VideoFrame.from_ndarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), format="rgb24")
        for pkt in vout.encode(out_frame):
            dst.mux(pkt)
        n += 1
    for pkt in vout.encode():
        dst.mux(pkt)
    dst.close()
    src.close()
    return n


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s of the child and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _frames(path: str) -> int:
    import av

    with av.open(path) as c:
        return sum(1 for _ in c.decode(video=0))


def two_jobs(cmd: list[str], env: dict[str, str], tmp: Path) -> float:
    """Two jobs as two CLI processes: one after the other, then both at once (same clip, same options)."""
    out = cmd.index("-o") + 1
    pair = [cmd[:out] + [str(tmp / f"pair{i}.mp4")] + cmd[out + 1 :] for i in range(2)]
    t0 = time.perf_counter()
    for c in pair:
        subprocess.run(c, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in pair]
    codes = [p.wait() for p in procs]
    together = time.perf_counter() - t0
    if any(codes):
        raise SystemExit(f"a concurrent job failed: exit codes {codes}")
    print(
        f"\ntwo jobs: one after the other {serial:.1f} s, both at once {together:.1f} s "
        f"({serial / together:.2f}x)"
    )
    return serial / together


def per_model(clip: str, model_dir: str, hd_seconds: float, runs: int = 3) -> dict[str, list[float]]:
    """`light` at 720p (the whole clip) and `human` at 1080p (the clip upscaled, first `hd_seconds`), end
    to end frames/s measured as bench_pipeline.py does (a fresh process each, `videobg.pipeline.process`,
    model load excluded), so that the figures compare with the per-model table in docs/BENCHMARKS.md.
    `runs` of each, alternated: on a shared 2-core VM the same code's single run moves by +-10 %."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_pipeline

    out: dict[str, list[float]] = {}
    cases = (
        ("light 720p", "light", clip),
        ("human 1080p", "human", bench_pipeline.make_clip(clip, hd_seconds, height=1080)),
    )
    for i in range(runs):
        for label, model, path in cases:
            r = bench_pipeline.run_child(model, path, "mp4_h264", model_dir, None)
            if "error" in r:
                raise SystemExit(f"{label}: {r['error']}")
            out.setdefault(label, []).append(r["fps"])
            print(
                f"run {i + 1} {model} {r['size']}: {r['frames']} frames, {r['fps']:.1f} frames/s end to end",
                flush=True,
            )
    return out


def _spread(values: list[float]) -> str:
    """'median (min-max of N)' of frames/s figures."""
    return f"**{statistics.median(values):.1f}** (runs {min(values):.1f}-{max(values):.1f}, median of {len(values)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(REPO.parent / "shared/media/people/sam2_01_dog.mp4"))
    ap.add_argument("--model-dir", default=os.environ.get("VIDEOBG_MODEL_DIR", str(REPO / "models")))
    ap.add_argument("--model", default="human", help="our model to compare (the plain loop is always RVM)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each, alternated")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads in the plain loop")
    ap.add_argument(
        "--two-jobs", action="store_true", help="also: two of our jobs at once vs one after the other"
    )
    ap.add_argument(
        "--per-model",
        action="store_true",
        help="also: light at 720p and human at 1080p end to end (bench_pipeline.py's way), then a summary",
    )
    ap.add_argument("--hd-seconds", type=float, default=3.0, help="length of the 1080p clip")
    ap.add_argument("--child", choices=["baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        baseline(a.clip, a.out, a.model_dir, (30, 144, 255), a.threads)
        return

    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    env = dict(os.environ, VIDEOBG_MODEL_DIR=a.model_dir)
    cmds = {
        "ours": [
            sys.executable,
            "-m",
            "videobg.cli",
            "process",
            a.clip,
            "-o",
            str(tmp / "ours.mp4"),
            "--model",
            a.model,
            "--background",
            "#1E90FF",
            "--quiet",
        ],
        "plain": [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "baseline",
            "--clip",
            a.clip,
            "--out",
            str(tmp / "plain.mp4"),
            "--model-dir",
            a.model_dir,
            "--threads",
            str(a.threads),
        ],
    }
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "plain": []}
    print(
        f"clip {a.clip}; {platform.processor() or platform.machine()}, {cores} cores, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    for i in range(a.runs):
        for name, cmd in cmds.items():
            wall, cpu = _run(cmd, env)
            runs[name].append((wall, cpu))
            print(
                f"run {i + 1} {name:5s} wall {wall:6.1f} s  cpu {cpu:6.1f} s  cores busy {cpu / wall / cores:5.1%}",
                flush=True,
            )
    n = {name: _frames(str(tmp / f"{name}.mp4")) for name in cmds}
    print()
    print("| run | frames | median wall s | frames/s | CPU s | cores busy | output MB | encoder |")
    print("|---|---|---|---|---|---|---|---|")
    fps = {}
    for name in cmds:
        wall = statistics.median(w for w, _ in runs[name])
        cpu = statistics.median(c for _, c in runs[name])
        fps[name] = n[name] / wall
        size = (tmp / f"{name}.mp4").stat().st_size / 1e6
        enc = "x264 veryfast CRF 20" if name == "ours" else "x264 medium CRF 23 (defaults)"
        print(
            f"| {name} ({a.model if name == 'ours' else 'ORT RVM'}) | {n[name]} | {wall:.1f} | "
            f"{fps[name]:.1f} | {cpu:.1f} | {cpu / wall / cores:.0%} | {size:.2f} | {enc} |"
        )
    pair = two_jobs(cmds["ours"], env, tmp) if a.two_jobs else None
    ratio = fps["ours"] / fps["plain"]
    print(
        f"\nratio ours/plain frames/s: {ratio:.2f}x "
        f"(median of {a.runs} alternated runs each; load average {os.getloadavg()[0]:.1f} at end)"
    )
    if not a.per_model:
        return
    print()
    models = per_model(a.clip, a.model_dir, a.hd_seconds, a.runs)
    busy = (
        statistics.median(c for _, c in runs["ours"]) / statistics.median(w for w, _ in runs["ours"]) / cores
    )
    print(f"\n## issue 16, all figures (target in brackets); load average {os.getloadavg()[0]:.1f} at end\n")
    print(
        f"- {a.model} vs the plain loop: **{ratio:.2f}x** [>= 1.5x] ({fps['ours']:.1f} vs {fps['plain']:.1f} frames/s)"
    )
    print(
        f"- cores busy, ours: **{busy:.0%}** [>= 90 %] (CPU s per run: ours {statistics.median(c for _, c in runs['ours']):.1f}, plain {statistics.median(c for _, c in runs['plain']):.1f})"
    )
    if pair is not None:
        print(f"- two jobs at once vs one after the other: **{pair:.2f}x** faster [> 1.0x]")
    print(f"- light 720p end to end: {_spread(models['light 720p'])} frames/s [>= 45]")
    print(f"- human 1080p end to end: {_spread(models['human 1080p'])} frames/s [>= 12]")


if __name__ == "__main__":
    main()
