"""Print ms/frame of each model's session at a frame size, next to onnxruntime on the same work.

    python -m videobg.models.bench --model-dir ../shared/models [--size 1280x720] [--threads 2]

The torch figure is the whole `session.predict` (uint8 frame in, full-res alpha out). The onnxruntime
figure (if it is installed) is the export alone on the same reduced input, plus nothing else: RVM at the
same ratio (its full-res refiner included), the fixed-size models on their 256/320 input. Torch and
onnxruntime runs alternate in blocks so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import cv2
import numpy as np
import torch

from videobg.models import MODELS, get_model


def _frame(width: int, height: int) -> np.ndarray:
    # smooth random blobs rather than noise: closer to the statistics of a picture
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))


def _ort_runner(name: str, model_dir: str, rgb: np.ndarray, threads: int) -> Callable[[], object] | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    model = MODELS[name](model_dir)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(model.weight_path), opts, providers=["CPUExecutionProvider"])
    h, w = rgb.shape[:2]
    if name == "human":
        src = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        zero = np.zeros((1, 1, 1, 1), np.float32)
        ratio = np.array([min(1.0, 320 / max(h, w))], np.float32)
        feeds = {"src": src, "r1i": zero, "r2i": zero, "r3i": zero, "r4i": zero, "downsample_ratio": ratio}
    elif name == "light":
        feeds = {"input_1:0": np.random.rand(1, 256, 256, 3).astype(np.float32)}
    else:
        feeds = {"input.1": np.random.rand(1, 3, 320, 320).astype(np.float32)}
    return lambda: sess.run(None, feeds)


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default="models")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--model", action="append", choices=sorted(MODELS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    rgb = _frame(width, height)
    print(f"{width}x{height}, {args.threads} threads, median of {args.runs} after warm-up")
    for name in args.model or sorted(MODELS):
        session = get_model(name, args.model_dir).new_session()
        ort_fn = _ort_runner(name, args.model_dir, rgb, args.threads)
        runs = max(3, args.runs // 3) if name == "original" else args.runs
        for _ in range(2):
            session.predict(rgb)
            if ort_fn:
                ort_fn()
        ours: list[float] = []
        theirs: list[float] = []
        # alternate blocks, not single calls: each runtime's thread pool spins for a while after a call
        # and would steal the cores from the other's next call
        for _ in range(3):
            ours += [_time(partial(session.predict, rgb)) for _ in range(max(1, runs // 3))]
            if ort_fn:
                theirs += [_time(ort_fn) for _ in range(max(1, runs // 3))]
        line = f"{name:9s} torch session {statistics.median(ours):7.1f} ms"
        if theirs:
            line += f"   onnxruntime model only {statistics.median(theirs):7.1f} ms"
        print(line, flush=True)


if __name__ == "__main__":
    main()
