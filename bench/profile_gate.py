"""Where `pro`'s saliency gate spends its time: thread CPU per part, per frame, on the CPU.

The gate (`videobg.matte.subject.SaliencyGate`) runs on the in-order matte thread, the one that caps `pro`
on a GPU (docs/BENCHMARKS.md). This script runs a `pro` session on real frames of a person (DAVIS, resized
like bench_gpu.py does) and wraps the gate and its parts in `time.thread_time`, so the figures are the
calling thread's CPU, which a busy neighbour on a shared machine disturbs least. Parts nest (the gate's
total includes the others). A script, not a test.

    .venv/bin/python bench/profile_gate.py --size 1920x1080
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_gpu import _frames  # noqa: E402

PARTS = (  # (owner, attribute, label)
    ("videobg.matte.subject:SaliencyGate", "__call__", "gate, whole"),
    ("videobg.matte.subject:SaliencyGate", "_gate_weight", "gate weight"),
    ("videobg.matte.subject:SubjectSelector", "__call__", "main-subject selector"),
    ("videobg.matte.subject:HeldObjects", "__call__", "held objects"),
    ("videobg.matte.subject", "apply_weight", "apply_weight"),
    ("videobg.matte.temporal:TemporalSmoother", "__call__", "motion-gated smoothing"),
    ("videobg.matte.temporal", "flow_to_previous", "optical flow"),
    ("videobg.matte.subject", "flow_to_previous", "optical flow"),
)


def _wrap(owner: Any, name: str, label: str, spent: Counter[str], calls: Counter[str]) -> None:
    inner: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - t0
            calls[label] += 1

    setattr(owner, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(REPO.parent / "shared/media/gt/davis2016/parkour"))
    ap.add_argument("--model-dir", default=str(REPO / "models"))
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--warm", type=int, default=4, help="frames run before the clock starts")
    a = ap.parse_args()
    import importlib

    import cv2

    from videobg.models import get_model
    from videobg.pipeline import keep_freed_memory

    cv2.setNumThreads(1)  # as `process()` and every stage service run
    keep_freed_memory()
    width, height = (int(v) for v in a.size.split("x"))
    frames = _frames(Path(a.clip), width, height, a.frames + a.warm)
    session = get_model("pro", a.model_dir, "cpu").new_session()
    spent: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for where, name, label in PARTS:
        module, _, cls = where.partition(":")
        owner = importlib.import_module(module)
        _wrap(getattr(owner, cls) if cls else owner, name, label, spent, calls)
    for f in frames[: a.warm]:
        session.predict(f)
    spent.clear()
    calls.clear()
    for f in frames[a.warm :]:
        session.predict(f)
    n = len(frames) - a.warm
    print(f"pro's gate at {width}x{height}, {n} frames, ms of thread CPU a frame (parts nest)")
    print("| part | ms a frame | calls a frame |\n|---|---|---|")
    for label, s in spent.most_common():
        print(f"| {label} | {s / n * 1e3:.2f} | {calls[label] / n:.1f} |")


if __name__ == "__main__":
    main()
