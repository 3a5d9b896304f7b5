"""Profile: where a GPU matte session's time goes, and what a whole job waits on, on a lent GPU machine.

`bench/bench_gpu.py` showed `human` at 1080p running its network alone at 100-360 frames/s but the whole
session at 38-55, and whole jobs at 9-11. This script splits both, so the next change is aimed:

1. `predict_batch` stage by stage (the device synchronised after each): `prepare` (CPU resize, upload,
   the stateless half of RVM, `pro`'s saliency network), `infer` (the recurrent decoder), the full-res
   alpha (upload of the full frames, guided-filter affine, copy back), the CPU post step (subject
   choice or saliency gate) and the 8-bit quantisation, in ms a frame.
2. The copies alone: N full frames up (uint8, pageable and pinned) and N float32 alphas back.
3. torch.profiler over a few batches: the top operators by self CUDA and self CPU time (to a file).
4. Whole jobs (`videobg.pipeline.process`) on a longer clip: wall, time to the first frame (start-up),
   frames/s after it, and each stage's busy seconds, with one refine worker and with the auto number.

    python3 bench/profile_gpu.py --model-dir .gpu/models --clip .gpu/parkour --out /tmp/prof
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_gpu import _clip, _frames  # noqa: E402


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def stage_split(model_name: str, model_dir: str, device: str, frames: list[np.ndarray], batch: int) -> str:
    """One Markdown row: ms a frame in each step of `predict_batch`."""
    from videobg.models import get_model
    from videobg.pipeline import quantize_alpha

    model = get_model(model_name, model_dir, device)
    s = model.new_session()
    for i in range(0, 2 * batch, batch):  # warm-up (and the first frame's anchor read)
        s.predict_batch(frames[i : i + batch])
    s.reset()
    s.predict_batch(frames[:batch])
    t = dict(prepare=0.0, saliency=0.0, infer=0.0, alphas=0.0, post=0.0, quantize=0.0)
    n = 0
    for i in range(0, len(frames) - batch + 1, batch):
        fs = frames[i : i + batch]
        _sync()
        t0 = time.perf_counter()
        p = s.prepare(fs)
        _sync()
        t1 = time.perf_counter()
        inf = s.infer(fs, p)
        _sync()
        t2 = time.perf_counter()
        alphas = s._alphas(fs, inf)  # type: ignore[attr-defined]
        t3 = time.perf_counter()  # returns numpy: synchronised
        sal = inf.saliency or [None] * len(fs)
        outs = [s.post.full_res(f, a, m) for f, a, m in zip(fs, alphas, sal, strict=True)]
        t4 = time.perf_counter()
        for a in outs:
            quantize_alpha(a)
        t5 = time.perf_counter()
        t["prepare"] += t1 - t0
        t["infer"] += t2 - t1
        t["alphas"] += t3 - t2
        t["post"] += t4 - t3
        t["quantize"] += t5 - t4
        n += len(fs)
    # pro's saliency network alone (inside prepare above)
    _sync()
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        s.post.saliency_ahead(frames[i : i + batch])
    _sync()
    t["saliency"] = time.perf_counter() - t0
    total = sum(v for k, v in t.items() if k != "saliency")
    h, w = frames[0].shape[:2]
    cells = " | ".join(
        f"{t[k] / n * 1e3:.1f}" for k in ("prepare", "saliency", "infer", "alphas", "post", "quantize")
    )
    return f"| {model_name} | {w}x{h} | {batch} | {cells} | {total / n * 1e3:.1f} | {n / total:.1f} |"


def copies(frames: list[np.ndarray], batch: int) -> str:
    import torch

    h, w = frames[0].shape[:2]
    host = np.stack(frames[:batch])  # [N, H, W, 3] uint8
    pinned = torch.from_numpy(host).pin_memory()
    dev = torch.from_numpy(host).cuda()
    alpha = torch.rand(batch, h, w, device="cuda")
    out = {}
    for name, fn in (
        ("stack", lambda: np.stack(frames[:batch])),
        ("up pageable", lambda: torch.from_numpy(host).cuda()),
        ("up pinned", lambda: pinned.cuda(non_blocking=True)),
        ("back f32", lambda: alpha.cpu()),
        ("back f16", lambda: alpha.half().cpu()),
        ("back u8", lambda: alpha.mul(255).round_().to(torch.uint8).cpu()),
    ):
        fn()
        _sync()
        t0 = time.perf_counter()
        for _ in range(10):
            fn()
        _sync()
        out[name] = (time.perf_counter() - t0) / 10 / batch * 1e3
    del dev
    cells = " | ".join(f"{v:.2f}" for v in out.values())
    return f"| {w}x{h} | {batch} | {cells} |"


def torch_profile(model_name: str, model_dir: str, frames: list[np.ndarray], batch: int, path: Path) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from videobg.models import get_model

    s = get_model(model_name, model_dir, "cuda").new_session()
    for i in range(0, 2 * batch, batch):
        s.predict_batch(frames[i : i + batch])
    _sync()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(0, 4 * batch, batch):
            s.predict_batch(frames[i : i + batch])
        torch.cuda.synchronize()
    ka = prof.key_averages()
    with path.open("a") as f:
        f.write(f"\n## {model_name} batch {batch}, 4 batches\n\n")
        f.write(ka.table(sort_by="self_cuda_time_total", row_limit=15) + "\n")
        f.write(ka.table(sort_by="self_cpu_time_total", row_limit=15) + "\n")


def whole_job(
    model_name: str, model_dir: str, device: str, clip: Path, out: Path, batch: int, workers: int
) -> str:
    from videobg.pipeline import process
    from videobg.types import Background

    first: list[float] = []
    t_start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter() - t_start)

    r = process(
        clip,
        out,
        model=model_name,
        model_dir=model_dir,
        device=device,
        background=Background(kind="color", rgb=(30, 144, 255)),
        batch_frames=batch,
        refine_workers=workers,
        progress=progress,
    )
    start = first[0] if first else 0.0
    steady = (r.frames - 1) / max(1e-9, r.wall_s - start)
    busy = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.busy_s.items()))
    return (
        f"| {model_name} | {r.info.width}x{r.info.height} | {batch} | {workers} | {r.frames} | "
        f"{r.wall_s:.1f} | {start:.1f} | {r.fps:.1f} | {steady:.1f} | {busy} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", default=str(REPO / "models"))
    parser.add_argument("--clip", default=str(REPO / ".gpu" / "parkour"))
    parser.add_argument("--out", default="/tmp/prof")
    parser.add_argument("--job-frames", type=int, default=240)
    parser.add_argument("--frames", type=int, default=32, help="frames for the stage split")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the stage split and jobs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    import os

    gpu = torch.cuda.get_device_name() if cuda else "no GPU"
    print(f"# {gpu}, torch {torch.__version__}, {os.cpu_count()} CPUs\n")
    frames = _frames(Path(args.clip), 1920, 1080, args.frames)
    print(
        "| model | size | batch | prepare | (saliency) | infer | full-res alpha | post | quantize | sum ms | frames/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("human", "pro"):
        for batch in (1, 8):
            print(stage_split(name, args.model_dir, args.device, frames, batch), flush=True)
    if cuda:
        _copies_and_profile(args, frames, out)
    clip = _clip(_frames(Path(args.clip), 1920, 1080, args.job_frames), out / "in_1080.mp4")
    print(
        "\n| model | size | batch | refine workers | frames | wall s | start-up s | frames/s | after start-up | busy s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    from videobg.settings import CoreSettings

    auto = CoreSettings().resolved_refine_workers()
    for name, batch, workers in (("human", 8, 1), ("human", 8, auto), ("pro", 1, auto)):
        job = whole_job(name, args.model_dir, args.device, clip, out / "job.mp4", batch, workers)
        print(job, flush=True)
    (out / "in_1080.mp4").unlink(missing_ok=True)
    (out / "job.mp4").unlink(missing_ok=True)


def _copies_and_profile(args: argparse.Namespace, frames: list[np.ndarray], out: Path) -> None:
    print(
        "\n| size | batch | np.stack | up pageable | up pinned | back f32 | back f16 | back u8 |  (ms a frame)"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(copies(frames, 8), flush=True)
    prof_path = out / "torch_profile.txt"
    prof_path.write_text("")
    torch_profile("human", args.model_dir, frames, 8, prof_path)
    torch_profile("pro", args.model_dir, frames, 1, prof_path)
    print(f"\n(torch.profiler tables in {prof_path})\n", flush=True)


if __name__ == "__main__":
    main()
