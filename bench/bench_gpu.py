"""Benchmark: `human` and `pro` matte frames/s at 1080p and 4K, batch size x precision, on CUDA.

What the segmenter runs on a GPU node: `session.predict_batch` on N consecutive frames of one stream
(uint8 frames uploaded, the network's per-frame parts batched, the recurrent decoder stepping through
the N frames, the full-resolution alpha computed on the GPU and copied back as float32). Each figure is
frames/s over `--frames` frames after a warm-up, with the device synchronised by the copy back. Also
prints the network alone (no upload, no full-res step) at batch 1 and the largest batch, to show where
the time goes, the peak GPU memory of each row, and with `--end-to-end` the whole job (PyAV decode on
the CPU, no NVDEC; matte on the GPU; refine, composite and x264 encode on the CPU) per size and batch.
Prints Markdown tables for docs/BENCHMARKS.md. A script, not a test. `bench/gpu_oneshot.sh` runs it on a
lent GPU machine from a clean checkout.

    .venv/bin/python bench/bench_gpu.py --model-dir models              # CUDA (exits 2 without one)
    .venv/bin/python bench/bench_gpu.py --model-dir models --device cpu --sizes 1280x720 --batches 1,4 --frames 16
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _frames(clip: Path, width: int, height: int, n: int) -> list[np.ndarray]:
    """n real frames of a person (DAVIS parkour, 854x480 JPEGs), resized to width x height and cycled."""
    import cv2

    paths = sorted((clip / "frames").glob("*.jpg"))[:n]
    if not paths:
        raise SystemExit(f"no frames under {clip}/frames")
    out = []
    for p in paths:
        bgr = cv2.imread(str(p))
        rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_CUBIC), cv2.COLOR_BGR2RGB)
        out.append(np.ascontiguousarray(rgb))  # [H, W, 3] uint8
    while len(out) < n:
        out.append(out[len(out) % len(paths)])
    return out


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def session_fps(
    model, frames: list[np.ndarray], batch: int, device: str, internal: int, warm: int = 2
) -> float:
    """Whole predict_batch path (upload, network, full-res alpha, copy back, the model's own subject
    step: `pro`'s saliency gate included), frames/s."""
    session = model.new_session(**({"internal_size": internal} if internal else {}))
    for _ in range(warm):
        session.predict_batch(frames[:batch])
    session.reset()
    _sync(device)
    t = time.perf_counter()
    for i in range(0, len(frames), batch):
        session.predict_batch(frames[i : i + batch])  # returns numpy: already synchronised
    return len(frames) / (time.perf_counter() - t)


def network_fps(model, frames: list[np.ndarray], batch: int, device: str, internal: int) -> float:
    """RVM's low-resolution pass alone (encoder + recurrent decoder + guided-filter fit), frames/s."""
    import cv2
    import torch

    from videobg.models.base import to_tensor
    from videobg.models.human import choose_ratio

    h, w = frames[0].shape[:2]
    scale = choose_ratio(h, w, internal or model.default_internal)
    small = [cv2.resize(f, (round(w * scale), round(h * scale))) for f in frames]
    net = model.net
    zero = torch.zeros(1, 1, 1, 1, device=model.device, dtype=model.dtype)
    with torch.inference_mode():
        xs = [to_tensor(small[i : i + batch], model.device, model.dtype) for i in range(0, len(small), batch)]
        for x in xs[:2]:  # warm-up
            net.coarse_seq(x, *[zero] * 4)
        _sync(device)
        rec = [zero] * 4
        t = time.perf_counter()
        for x in xs:
            *_, r1, r2, r3, r4 = net.coarse_seq(x, *rec)
            rec = [r1, r2, r3, r4]
        _sync(device)
    return len(frames) / (time.perf_counter() - t)


def _clip(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    """The frames as an H.264 MP4 (what a user uploads), decoded again by the pipeline with PyAV."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    return path


def _peak_mib(device: str) -> str:
    import torch

    if not device.startswith("cuda"):
        return ""
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def end_to_end(args: argparse.Namespace, sizes: list[tuple[int, int]], batches: list[int]) -> None:
    """videobg.pipeline.process on a clip of the frames at each size: the job as the CLI runs it."""
    import tempfile

    from videobg.pipeline import process
    from videobg.settings import CoreSettings
    from videobg.types import Background

    print()
    print("| model | size | batch | precision | frames | wall s | frames/s | peak GPU MiB |")
    print("|---|---|---|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    workers = CoreSettings().resolved_refine_workers()  # what the CLI and the compositor use here
    for width, height in sizes:
        clip = _clip(_frames(Path(args.clip), width, height, args.frames), tmp / f"in_{width}x{height}.mp4")
        for name in args.models.split(","):
            for batch in batches:
                _reset_peak(args.device)
                r = process(
                    clip,
                    tmp / "out.mp4",
                    model=name,
                    model_dir=args.model_dir,
                    device=args.device,
                    background=Background(kind="color", rgb=(30, 144, 255)),
                    batch_frames=batch,
                    refine_workers=workers,
                )
                precision = "fp16" if args.device.startswith("cuda") else "fp32"
                print(
                    f"| {name} | {width}x{height} | {batch} | {precision} | {r.frames} | {r.wall_s:.1f} | "
                    f"{r.fps:.1f} | {_peak_mib(args.device)} |",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default=str(REPO / "models"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="human,pro")
    parser.add_argument("--sizes", default="1920x1080,3840x2160")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--precisions", default="fp32,fp16", help="fp16 only on CUDA")
    parser.add_argument(
        "--internal", type=int, default=0, help="long side RVM runs at (0: the model's default)"
    )
    parser.add_argument("--frames", type=int, default=96, help="timed frames per figure")
    parser.add_argument(
        "--clip", default=str(REPO.parent / "shared" / "media" / "gt" / "davis2016" / "parkour")
    )
    parser.add_argument("--end-to-end", action="store_true", help="also time whole jobs (process())")
    args = parser.parse_args(argv)

    import torch

    from videobg.models import MODELS

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to measure (use --device cpu to try the script)")
        return 2
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.machine()
    print(f"# {args.models} on {args.device} ({gpu}), torch {torch.__version__}, {args.frames} frames each")
    print()
    print(
        "| model | size | precision | batch | internal px | session frames/s | network alone frames/s | peak GPU MiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    batches = [int(b) for b in args.batches.split(",")]
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    for width, height in sizes:
        frames = _frames(Path(args.clip), width, height, args.frames)
        for name in args.models.split(","):
            for precision in args.precisions.split(","):
                half = precision == "fp16"
                if half and not args.device.startswith("cuda"):
                    continue
                model = MODELS[name](args.model_dir, device=args.device, half=half)
                model.load()
                internal = args.internal or model.default_internal
                for batch in batches:
                    _reset_peak(args.device)
                    fps = session_fps(model, frames, batch, args.device, args.internal)
                    peak = _peak_mib(args.device)
                    net = None
                    if batch in (1, batches[-1]):
                        net = network_fps(model, frames, batch, args.device, args.internal)
                    net_s = f"{net:.1f}" if net is not None else ""
                    print(
                        f"| {name} | {width}x{height} | {precision} | {batch} | {internal} | {fps:.1f} | "
                        f"{net_s} | {peak} |",
                        flush=True,
                    )
                del model
                _reset_peak(args.device)
    if args.end_to_end:
        end_to_end(args, sizes, batches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
