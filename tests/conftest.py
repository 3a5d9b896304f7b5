"""Shared test fixtures: where the shared media and model weights are, and tiny synthetic clips."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def media_dir() -> Path:
    return Path(os.environ.get("VIDEOBG_MEDIA_DIR", REPO.parent / "shared" / "media"))


def model_dir() -> Path:
    env = os.environ.get("VIDEOBG_MODEL_DIR")
    if env and Path(env).is_dir():
        return Path(env)
    local = REPO / "models"
    if (local / "rvm_mobilenetv3_fp32.onnx").exists():
        return local
    return REPO.parent / "shared" / "models"


@pytest.fixture(scope="session")
def media() -> Path:
    d = media_dir()
    if not d.is_dir():
        pytest.skip(f"shared media not found at {d}")
    return d


@pytest.fixture(scope="session")
def models_path() -> Path:
    return model_dir()


def make_clip(
    path: Path,
    *,
    width: int = 160,
    height: int = 120,
    frames: int = 30,
    fps: int = 30,
    audio: bool = True,
    codec: str = "libx264",
) -> Path:
    """A synthetic clip: grey-green background, a bright disc moving left to right, optional 440 Hz tone."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=fps)
        # 4:2:0 needs even sizes: odd-sized test clips use 4:4:4, as some phone and screen captures do
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        a_stream = None
        if audio:
            a_stream = out.add_stream("aac", rate=48000)
            a_stream.layout = "stereo"
        yy, xx = np.mgrid[0:height, 0:width]
        for i in range(frames):
            img = np.empty((height, width, 3), np.uint8)
            img[:] = (40, 160, 60)
            cx = int(width * (0.25 + 0.5 * i / max(1, frames - 1)))
            disc = (xx - cx) ** 2 + (yy - height // 2) ** 2 < (min(width, height) // 4) ** 2
            img[disc] = (230, 200, 180)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if a_stream is not None:
            sr, n = 48000, 1024
            total = int(sr * frames / fps)
            t = 0
            while t < total:
                k = min(n, total - t)
                s = (0.2 * np.sin(2 * np.pi * 440 * (np.arange(t, t + k) / sr))).astype(np.float32)
                af = av.AudioFrame.from_ndarray(
                    np.stack([s, s]).reshape(1, -1), format="flt", layout="stereo"
                )
                af.sample_rate, af.pts, af.time_base = sr, t, Fraction(1, sr)
                for p in a_stream.encode(af):
                    out.mux(p)
                t += k
            for p in a_stream.encode():
                out.mux(p)
    return path
