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


def one_run(
    kind: str, clip: str, fmt: str, model_dir: str, seconds: float | None, matte_frames: int = 60
) -> dict:
    """Runs inside the child process. kind: a model name, 'transcode', or 'matte:<model>'."""
    import numpy as np

    from videobg.media.decode import iter_frames
    from videobg.media.encode import VideoWriter
    from videobg.media.formats import get_format
    from videobg.media.probe import probe
    from videobg.overlap import StageClock, threaded
    from videobg.settings import CoreSettings
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
        session = model.new_session(threads=CoreSettings().resolved_threads())
        frames = [f.rgb for _, f in zip(range(matte_frames), iter_frames(clip, info, trim), strict=False)]
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
            threads=CoreSettings().resolved_threads(),
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


def run_child(
    kind: str, clip: str, fmt: str, model_dir: str, seconds: float | None, matte_frames: int = 60
) -> dict:
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
    cmd += ["--matte-frames", str(matte_frames)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    if res.returncode != 0:
        return {"kind": kind, "error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def make_clip(clip: str, seconds: float, height: int | None = None) -> str:
    """A derived clip (video only): `clip` looped to `seconds`, optionally resized to `height` rows
    (16:9 kept; the 1080p rows come from the 720p clip upscaled, the only way to a 1080p clip of
    people in ../shared/media). Encoded at a high quality so decoding costs what a camera file's does."""
    import cv2

    from videobg.media.decode import iter_frames
    from videobg.media.encode import VideoWriter
    from videobg.media.formats import get_format
    from videobg.media.probe import probe

    info = probe(clip)
    w, h = info.width, info.height
    if height:
        w, h = round(w * height / h / 2) * 2, height
    out = Path(tempfile.mkdtemp()) / f"derived_{h}p_{int(seconds)}s.mp4"
    offset = 0.0
    with VideoWriter(out, get_format("mp4_h264"), w, h, transparent=False, fps=info.fps_nominal) as wr:
        while offset < seconds:
            last = 0.0
            for f in iter_frames(clip, info):
                if offset + f.t >= seconds:
                    break
                rgb = f.rgb if (w, h) == (info.width, info.height) else cv2.resize(f.rgb, (w, h))
                wr.write(rgb, None, offset + f.t)
                last = f.t
            offset += last + 1.0 / float(info.fps_nominal)
    return str(out)


def _row(r: dict, floor: float | None, matte: dict | None) -> str:
    if "error" in r:
        return f"| {r['kind']} | | | error: {r['error']} | | | | |"
    vs_floor = f"{r['fps'] / floor:.2f}" if floor else ""
    m = f"{matte['fps']:.1f}" if matte and "fps" in matte else ""
    vs_matte = f"{r['fps'] / matte['fps']:.2f}" if matte and "fps" in matte else ""
    busy = ", ".join(f"{k} {v:.1f}" for k, v in r["busy_s"].items())
    return (
        f"| {r['kind']} | {r['size']} | {r['frames']} | {m} | **{r['fps']:.1f}** | {vs_matte} | {vs_floor} "
        f"| {busy} | {r['peak_rss_mb']:.0f} |"
    )


def table(clip: str, a: argparse.Namespace, models: list[str], slow: set[str]) -> None:
    """Transcode floor, then per model: matte alone and end to end, with the ratios."""
    floor_run = run_child("transcode", clip, a.format, a.model_dir, a.seconds)
    floor = floor_run.get("fps")
    print(
        "| run | size | frames | matte alone frames/s | end-to-end frames/s | end-to-end / matte "
        "| end-to-end / transcode | busy s per stage | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(_row(floor_run, floor, None), flush=True)
    for m in models:
        seconds = a.slow_seconds if m in slow else a.seconds
        matte = run_child(f"matte:{m}", clip, a.format, a.model_dir, seconds, 20 if m in slow else 60)
        r = run_child(m, clip, a.format, a.model_dir, seconds)
        print(_row(r, floor, matte), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(REPO.parent / "shared/media/people/sam2_01_dog.mp4"))
    ap.add_argument("--models", default="light,human,original,pro")
    ap.add_argument("--slow", default="original,pro", help="models run on --slow-seconds of the clip")
    ap.add_argument("--format", default="mp4_h264")
    ap.add_argument("--model-dir", default=os.environ.get("VIDEOBG_MODEL_DIR", str(REPO / "models")))
    ap.add_argument("--seconds", type=float, default=None, help="first N seconds (default: whole clip)")
    ap.add_argument("--slow-seconds", type=float, default=3.0)
    ap.add_argument("--hd-seconds", type=float, default=3.0, help="length of the 1080p clip (0: skip)")
    ap.add_argument(
        "--long", type=float, default=60.0, help="length of the looped clip for the RSS check (0: skip)"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--matte-frames", type=int, default=60, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one_run(a.child, a.clip, a.format, a.model_dir, a.seconds, a.matte_frames)))
        return

    from videobg.settings import CoreSettings

    print(
        f"# machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch threads {CoreSettings().resolved_threads()}"
    )
    print(f"# load average before: {os.getloadavg()[0]:.2f}")
    print(f"# clip: {a.clip}, format {a.format}; matte alone = session.predict on decoded frames\n")
    models, slow = a.models.split(","), set(a.slow.split(","))
    print("## 720p (the clip as it is)\n")
    table(a.clip, a, models, slow)
    if a.hd_seconds:
        hd = make_clip(a.clip, a.hd_seconds, height=1080)
        print(f"\n## 1080p (the clip upscaled, first {a.hd_seconds:g} s)\n")
        saved = a.seconds, a.slow_seconds
        a.seconds = a.slow_seconds = None
        table(hd, a, models, slow)
        a.seconds, a.slow_seconds = saved
    if a.long:
        long_clip = make_clip(a.clip, a.long)
        print(f"\n## flat memory: the clip looped to {a.long:.0f} s vs its first 10 s (model light)\n")
        for clip, secs in ((long_clip, 10.0), (long_clip, None)):
            r = run_child("light", clip, a.format, a.model_dir, secs)
            if "error" in r:
                print(f"- error: {r['error']}")
            else:
                print(f"- {r['frames']} frames: peak RSS {r['peak_rss_mb']:.0f} MB, {r['fps']:.1f} frames/s")
    print(f"\n# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
