"""Benchmark: ways to bring a batch of full-resolution alphas back from the GPU (`human`/`pro`'s last step).

`_fine_alpha_torch` ends with N alphas [H, W] on the device that the CPU stages take as float32 numpy
arrays. Each variant below does the whole step (upload the frames, the guided-filter affine at full
resolution, the copy back, to float32 numpy), timed in ms a frame, with and without the pipeline's
`keep_freed_memory` (process-wide, so the second half runs after it):

- f32 batch: one float32 copy of the batch (the code before 2026-12-04)
- f16 frames + numpy: float16 per frame, widened by numpy
- f32 frames: float32 per frame
- f16 batch + torch: one float16 copy, widened per frame by torch on the CPU

    python3 bench/gpu_alpha_copy.py            # on a CUDA machine
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videobg.models.base import to_tensor  # noqa: E402
from videobg.pipeline import keep_freed_memory  # noqa: E402


def _alpha(ab: torch.Tensor, frames: list[np.ndarray]) -> torch.Tensor:
    height, width = frames[0].shape[:2]
    fine = to_tensor(frames, ab.device, ab.dtype).mean(1, keepdim=True)  # [N, 1, H, W]
    up = F.interpolate(ab, (height, width), mode="bilinear", align_corners=False)
    return torch.addcmul(up[:, 1:], up[:, :1], fine).clamp_(0.0, 1.0)[:, 0]  # [N, H, W]


VARIANTS = {
    "f32 batch": lambda a: list(a.float().cpu().numpy()),
    "f16 frames + numpy": lambda a: [a[i].half().cpu().numpy().astype(np.float32) for i in range(a.shape[0])],
    "f32 frames": lambda a: [a[i].float().cpu().numpy() for i in range(a.shape[0])],
    "f16 batch + torch": lambda a: [h.float().numpy() for h in a.half().cpu()],
}


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    rng = np.random.default_rng(0)
    print(f"# {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, torch {torch.__version__}\n")
    print("| size | batch | heap kept | " + " | ".join(VARIANTS) + " |  (ms a frame)")
    print("|---|---|---|" + "---|" * len(VARIANTS))
    for kept in (False, True):
        if kept:
            keep_freed_memory()
        for w, h in ((1920, 1080), (3840, 2160)):
            for batch in (1, 8):
                frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(batch)]
                ab = torch.rand(batch, 2, h * 320 // w, 320, device=device, dtype=dtype)
                cells = []
                for fn in VARIANTS.values():
                    for _ in range(3):
                        fn(_alpha(ab, frames))
                    reps = 10
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        out = fn(_alpha(ab, frames))
                    assert out[0].dtype == np.float32 and out[0].shape == (h, w)
                    cells.append(f"{(time.perf_counter() - t0) / reps / batch * 1e3:.2f}")
                print(f"| {w}x{h} | {batch} | {kept} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
