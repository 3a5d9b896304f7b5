"""Benchmark: per-stage and end-to-end frames/s and peak RSS, per model, plus the transcode-only floor.

Each measurement runs in a fresh subprocess so its peak RSS is its own. Prints a Markdown table; the
figures go to docs/BENCHMARKS.md with the command and the machine. This is a script, not a test.

    .venv/bin/python bench/bench_pipeline.py --clip ../shared/media/people/sam2_01_dog.mp4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_run(kind: str, clip: str, fmt: str, model_dir: str, seconds: float | None) -> dict:
    """Runs inside the child process. kind: a model name, 'transcode', or 'matte:<model>'."""
    import numpy as np

    from videobg.media.decode import iter_frames
    from videobg.media.encode import VideoWriter
    from videobg.media.formats import get_format
    from videobg.media.probe import probe
    from videobg.stages import StageClock, threaded
    from videobg.types import Background, Limits, Trim

    trim = Trim(0.0, seconds)
    out = Path(tempfile.mkdtemp()) / f"bench{get_format(fmt).extension}"
    info = probe(clip)
    t0 = time.perf_counter()
    if kind == "transcode":
        clock = StageClock()
        n = 0
        with VideoWriter(
            out,
            get_format(fmt),
            info.width,
            info.height,
            transparent=False,
            fps=info.fps_nominal,
            audio_src=clip if info.audio else None,
            trim=trim,
        ) as w:
            for f in threaded(iter_frames(clip, info, trim), name="decode", clock=clock):
                t1 = time.perf_counter()
                w.write(f.rgb, None, f.t)
                clock.add("encode", time.perf_counter() - t1)
                n += 1
        busy = clock.busy
    elif kind.startswith("matte:"):
        from videobg.models import get_model

        model = get_model(kind.split(":", 1)[1], model_dir, "cpu")
        session = model.new_session()
        frames = [f.rgb for _, f in zip(range(60), iter_frames(clip, info, trim), strict=False)]
        session.predict(frames[0])  # warm-up
        t0 = time.perf_counter()
        for rgb in frames:
            a = session.predict(rgb)
        assert a.shape == frames[0].shape[:2] and np.isfinite(a).all()
        n = len(frames)
        busy = {"matte": time.perf_counter() - t0}
    else:
        # model load is counted apart: a service loads once and serves many jobs
        from videobg.models import get_model
        from videobg.pipeline import process

        tl = time.perf_counter()
        get_model(kind, model_dir, "cpu")
        load_s = time.perf_counter() - tl
        t0 = time.perf_counter()
        r = process(
            clip,
            out,
            model=kind,
            model_dir=model_dir,
            background=Background("color", (30, 144, 255)),
            fmt=fmt,
            trim=trim,
            limits=Limits(max_duration_s=3600, max_bytes=1 << 40),
        )
        n, busy = r.frames, dict(r.busy_s, model_load=load_s)
    wall = time.perf_counter() - t0
    return {
        "kind": kind,
        "frames": n,
        "wall_s": wall,
        "fps": n / wall,
        "busy_s": busy,
        "peak_rss_mb": _peak_rss_mb(),
        "size": f"{info.width}x{info.height}",
    }


def run_child(kind: str, clip: str, fmt: str, model_dir: str, seconds: float | None) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--clip",
        clip,
        "--format",
        fmt,
        "--model-dir",
        model_dir,
    ]
    if seconds:
        cmd += ["--seconds", str(seconds)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    if res.returncode != 0:
        return {"kind": kind, "error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def make_long_clip(clip: str, seconds: float) -> str:
    """Loop the clip into a longer one (video only) for the flat-memory check."""
    from videobg.media.decode import iter_frames
    from videobg.media.encode import VideoWriter
    from videobg.media.formats import get_format
    from videobg.media.probe import probe

    info = probe(clip)
    out = Path(tempfile.mkdtemp()) / f"long_{int(seconds)}s.mp4"
    offset, n = 0.0, 0
    with VideoWriter(
        out, get_format("mp4_h264"), info.width, info.height, transparent=False, fps=info.fps_nominal
    ) as w:
        while offset < seconds:
            last = 0.0
            for f in iter_frames(clip, info):
                if offset + f.t >= seconds:
                    break
                w.write(f.rgb, None, offset + f.t)
                last = f.t
                n += 1
            offset += last + 1.0 / float(info.fps_nominal)
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(REPO.parent / "shared/media/people/sam2_01_dog.mp4"))
    ap.add_argument("--models", default="light,human,original")
    ap.add_argument("--format", default="mp4_h264")
    ap.add_argument("--model-dir", default=os.environ.get("VIDEOBG_MODEL_DIR", str(REPO / "models")))
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument(
        "--long", type=float, default=60.0, help="length of the looped clip for the RSS check (0: skip)"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one_run(a.child, a.clip, a.format, a.model_dir, a.seconds)))
        return

    print(
        f"# machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"# clip: {a.clip}, format {a.format}\n")
    rows = [run_child("transcode", a.clip, a.format, a.model_dir, a.seconds)]
    for m in a.models.split(","):
        rows.append(run_child(f"matte:{m}", a.clip, a.format, a.model_dir, a.seconds))
        rows.append(run_child(m, a.clip, a.format, a.model_dir, a.seconds))
    floor = rows[0].get("fps")
    print(
        "| run | size | frames | end-to-end frames/s | vs transcode floor | busy s per stage | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['kind']} | | | error: {r['error']} | | | |")
            continue
        ratio = f"{r['fps'] / floor:.2f}" if floor else ""
        busy = ", ".join(f"{k} {v:.1f}" for k, v in r["busy_s"].items())
        print(
            f"| {r['kind']} | {r['size']} | {r['frames']} | {r['fps']:.1f} | {ratio} | {busy} | {r['peak_rss_mb']:.0f} |"
        )
    if a.long:
        long_clip = make_long_clip(a.clip, a.long)
        print(f"\nflat memory: the clip looped to {a.long:.0f} s vs its first 10 s (model light)")
        for clip, secs in ((long_clip, 10.0), (long_clip, None)):
            r = run_child("light", clip, a.format, a.model_dir, secs)
            if "error" in r:
                print(f"  error: {r['error']}")
            else:
                print(f"  {r['frames']} frames: peak RSS {r['peak_rss_mb']:.0f} MB, {r['fps']:.1f} frames/s")


if __name__ == "__main__":
    main()
