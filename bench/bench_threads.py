"""CPU per frame of one in-process job, per thread: where a `videobg process` run spends its CPU.

Runs `videobg.pipeline.process` once (model loaded before the clock starts, as bench_pipeline.py does)
and samples every thread's CPU time from /proc/self/task every 0.2 s, so threads that end before the job
does still count. Pipeline stages are named `stage-<name>`; FFmpeg's decoder threads `av:...`; threads
Python did not start (x264's, OpenCV's and PyTorch's pools) show as `other`. CPU time is what a busy
neighbour disturbs least on a shared machine (wall time and frames/s are printed too, with the load).

    .venv/bin/python bench/bench_threads.py --model light --clip ../shared/media/people/sam2_01_dog.mp4
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _thread_cpu(names: dict[int, str]) -> dict[int, tuple[str, float]]:
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # ended between the listing and the read
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        name = names.get(int(tid)) or (comm if comm.startswith("av:") else "other")
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(REPO.parent / "shared/media/people/sam2_01_dog.mp4"))
    ap.add_argument("--model", default="light")
    ap.add_argument("--model-dir", default=os.environ.get("VIDEOBG_MODEL_DIR", str(REPO / "models")))
    a = ap.parse_args()

    from videobg.models import get_model
    from videobg.pipeline import process
    from videobg.settings import CoreSettings
    from videobg.types import Background

    get_model(a.model, a.model_dir, "cpu")
    names: dict[int, str] = {}
    seen: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        for t in threading.enumerate():
            if t.native_id is not None:
                names[t.native_id] = t.name
        seen.update(_thread_cpu(names))

    def monitor() -> None:
        while not done.wait(0.2):
            sample()

    sample()
    start = dict(seen)
    threading.Thread(target=monitor, name="monitor", daemon=True).start()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    out = Path(tempfile.mkdtemp()) / "out.mp4"
    res = process(
        a.clip,
        out,
        model=a.model,
        model_dir=a.model_dir,
        background=Background("color", (30, 144, 255)),
        threads=CoreSettings().resolved_threads(),
        refine_workers=CoreSettings().resolved_refine_workers(),
    )
    done.set()
    sample()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    n = res.frames
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    per: dict[str, float] = {}
    for tid, (name, cpu) in seen.items():
        per[name] = per.get(name, 0.0) + cpu - start.get(tid, (name, 0.0))[1]
    print(
        f"{a.model} {res.info.width}x{res.info.height}: {n} frames, {res.wall_s:.2f} s, {res.fps:.1f} frames/s, "
        f"CPU {(user + system) / n * 1000:.1f} ms a frame (user {user:.1f} s, system {system:.1f} s, "
        f"{r1.ru_minflt - r0.ru_minflt} page faults), cores busy "
        f"{(user + system) / res.wall_s / len(os.sched_getaffinity(0)) * 100:.0f} %, "
        f"output {out.stat().st_size} bytes, load average {os.getloadavg()[0]:.1f}"
    )
    rows = sorted(((k, v) for k, v in per.items() if k != "monitor" and v > 0.0005), key=lambda kv: -kv[1])
    print("CPU ms a frame by thread: " + ", ".join(f"{k} {v / n * 1000:.1f}" for k, v in rows))


if __name__ == "__main__":
    main()
