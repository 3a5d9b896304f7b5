"""Whole jobs with the compiled edge refinement (numba) against the OpenCV calls it replaced, alternated.

Each run is a fresh process: the model is loaded, then `videobg.pipeline.process` runs the clip over a
colour (x264, as bench_pipeline.py does); the OpenCV runs make `videobg.matte.refine` believe numba is
missing. Prints each run's frames/s, CPU ms a frame (the process's user + system time over the job) and
cores busy, then the medians. Runs alternate so that a busy neighbour on a shared machine slows both
alike. A script, not a test.

    .venv/bin/python bench/bench_refine_kernel.py --model light --pairs 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(variant: str, model: str, clip: str, model_dir: str) -> dict[str, float | str]:
    sys.path.insert(0, str(REPO))
    from videobg.matte import refine
    from videobg.models import get_model
    from videobg.pipeline import process
    from videobg.settings import CoreSettings
    from videobg.types import Background, Limits

    if variant == "opencv":
        refine._kernel_state[:] = [None]  # as where `import numba` failed
    get_model(model, model_dir, "cpu")
    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as tmp:
        r = process(
            clip,
            Path(tmp) / "out.mp4",
            model=model,
            model_dir=model_dir,
            background=Background("color", (30, 144, 255)),
            limits=Limits(max_duration_s=3600, max_bytes=1 << 40),
            threads=CoreSettings().resolved_threads(),
        )
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cores = len(os.sched_getaffinity(0))
    return {
        "variant": variant,
        "fps": r.fps,
        "cpu_ms": cpu / r.frames * 1e3,
        "busy": cpu / r.wall_s / cores,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(REPO.parent / "shared/media/people/sam2_01_dog.mp4"))
    ap.add_argument("--model", default="light")
    ap.add_argument("--model-dir", default=os.environ.get("VIDEOBG_MODEL_DIR", str(REPO / "models")))
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--child", choices=("kernel", "opencv"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.model, a.clip, a.model_dir)))
        return
    runs: dict[str, list[dict]] = {"kernel": [], "opencv": []}
    for i in range(a.pairs):
        for variant in runs:
            cmd = [sys.executable, __file__, "--child", variant, "--model", a.model, "--clip", a.clip]
            out = subprocess.run(
                cmd + ["--model-dir", a.model_dir], check=True, capture_output=True, text=True
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            runs[variant].append(r)
            print(
                f"pair {i + 1} {variant:6s} {r['fps']:5.1f} frames/s, CPU {r['cpu_ms']:.1f} ms a frame, "
                f"cores busy {r['busy'] * 100:.0f} %",
                flush=True,
            )
    print(
        f"\n{a.model}, {Path(a.clip).name}, {a.pairs} alternated pairs, load average {os.getloadavg()[0]:.1f}"
    )
    for variant, rs in runs.items():
        fps = [r["fps"] for r in rs]
        print(
            f"{variant:6s} median {statistics.median(fps):.1f} frames/s (runs {min(fps):.1f}-{max(fps):.1f}), "
            f"CPU {statistics.median(r['cpu_ms'] for r in rs):.1f} ms a frame, "
            f"cores busy {statistics.median(r['busy'] for r in rs) * 100:.0f} %"
        )


if __name__ == "__main__":
    main()
