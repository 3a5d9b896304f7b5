"""Decode results the way a user's player would, for assertions in every test tier."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np


@dataclass
class Summary:
    width: int
    height: int
    frames: int
    duration_s: float  # last frame's time + one frame
    audio: bool
    audio_channels: int
    audio_duration_s: float
    video_codec: str


def summarize(path: str | Path) -> Summary:
    """Decode every video frame (and audio frame) of a result; sizes are display sizes of the frames."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        w = h = n = 0
        last_t = 0.0
        times = []
        for f in c.decode(vs):
            w, h = f.width, f.height
            t = float(f.time) if f.time is not None else n / float(vs.average_rate or 25)
            times.append(t)
            n += 1
        if len(times) >= 2:
            step = float(np.median(np.diff(times)))
        else:
            step = 1.0 / float(vs.average_rate or vs.guessed_rate or 25)
        last_t = (max(times) - min(times) + step) if times else 0.0
        codec = vs.codec_context.name
    audio, ch, adur = False, 0, 0.0
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            audio, ch = True, a.codec_context.channels
            samples = 0
            sr = a.codec_context.sample_rate or 1
            for f in c.decode(a):
                samples += f.samples
            adur = samples / sr
    return Summary(w, h, n, last_t, audio, ch, adur, codec)


def rgba_frames(path: str | Path, limit: int = 1000) -> list[np.ndarray]:
    """Decode frames as [H, W, 4] uint8 RGBA, keeping alpha: VP9 alpha needs the libvpx-vp9 decoder."""
    p = Path(path)
    if p.suffix == ".zip":
        out = []
        with zipfile.ZipFile(p) as z:
            for name in sorted(n for n in z.namelist() if n.endswith(".png"))[:limit]:
                img = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_UNCHANGED)
                if img.ndim == 3 and img.shape[2] == 4:
                    out.append(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA))
                else:
                    out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGBA))
        return out
    if p.suffix == ".webp":  # FFmpeg cannot decode animated WebP; OpenCV (libwebp) can
        ok, anim = cv2.imreadanimation(str(p))
        assert ok, f"{p} is not a readable animated WebP"
        out = []
        for img in anim.frames[:limit]:
            if img.ndim == 3 and img.shape[2] == 4:
                out.append(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA))
            else:
                out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGBA))
        return out
    frames: list[np.ndarray] = []
    with av.open(str(p)) as c:
        vs = c.streams.video[0]
        if vs.codec_context.name in ("vp9", "libvpx-vp9"):
            ctx = av.CodecContext.create("libvpx-vp9", "r")
            for pkt in c.demux(vs):
                for f in ctx.decode(pkt):
                    frames.append(f.to_ndarray(format="rgba", threads=1))  # swscale's pool races here
                    if len(frames) >= limit:
                        return frames
            try:  # flush what the decoder still holds; this PyAV raises EOFError once it is drained
                for f in ctx.decode(None):
                    frames.append(f.to_ndarray(format="rgba", threads=1))  # swscale's pool races here
            except EOFError:
                pass
        else:
            for f in c.decode(vs):
                frames.append(f.to_ndarray(format="rgba", threads=1))  # swscale's pool races here
                if len(frames) >= limit:
                    break
    return frames


def first_frame_rgb(path: str | Path) -> np.ndarray:
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            return f.to_ndarray(format="rgb24", threads=1)
    raise AssertionError(f"{path} has no video frame")
