"""Media for the kit, with PyAV only: what a clip is (decoded, as a player would), a few of its frames, and
the small bad inputs the error cases send (each made here, in a temporary folder, in well under a second).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TINY = (160, 112)  # the format cases' clips: small, and a multiple of 16 each way


@dataclass(frozen=True)
class Info:
    container: str
    width: int
    height: int
    frames: int
    duration_s: float  # first to last frame, plus one frame
    frame_s: float  # one frame's length
    video_codec: str
    audio_codec: str | None
    kind: str  # mp4 | mov | webm | mkv | gif | the demuxer's name: what a file extension would say

    def describe(self) -> str:
        audio = f"+{self.audio_codec}" if self.audio_codec else ", no audio"
        return (
            f"{self.kind} {self.video_codec}{audio} {self.width}x{self.height} {self.frames} fr "
            f"{self.duration_s:.2f} s"
        )


def _kind(path: str | Path, demuxer: str, metadata: dict[str, str]) -> str:
    """One demuxer reads MP4 and QuickTime (told apart by the ftyp brand), one Matroska and WebM (by the
    EBML DocType near the start of the file)."""
    if demuxer.startswith("mov,mp4"):
        return "mov" if metadata.get("major_brand", "").strip() == "qt" else "mp4"
    if demuxer.startswith("matroska"):
        with open(path, "rb") as f:
            return "webm" if b"webm" in f.read(64) else "mkv"
    return demuxer


def inspect(path: str | Path) -> Info:
    """Decode every video frame: sizes are the decoded frames', the duration spans their timestamps."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        times: list[float] = []
        width = height = 0
        for f in c.decode(vs):
            width, height = f.width, f.height
            times.append(float(f.time) if f.time is not None else len(times) / float(vs.average_rate or 25))
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        step = float(np.median(np.diff(sorted(times)))) if len(times) > 1 else 1.0 / float(rate)
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return Info(
            kind=_kind(path, c.format.name, dict(c.metadata)),
            container=c.format.name,
            width=width,
            height=height,
            frames=len(times),
            duration_s=(max(times) - min(times) + step) if times else 0.0,
            frame_s=step,
            video_codec=vs.codec_context.name,
            audio_codec=audio,
        )


def frames(path: str | Path, *, rgba: bool = False, limit: int = 1000) -> list[np.ndarray]:
    """Decoded frames, [H, W, 3] (or [H, W, 4] with rgba) uint8. VP9 keeps its alpha in side data that
    only the libvpx decoder reads, so a VP9 stream is decoded with it."""
    out: list[np.ndarray] = []
    fmt = "rgba" if rgba else "rgb24"
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        if vs.codec_context.name in ("vp9", "libvpx-vp9") and rgba:
            ctx = av.CodecContext.create("libvpx-vp9", "r")
            for pkt in c.demux(vs):
                if pkt.size == 0:  # the demuxer's end-of-stream packet
                    continue
                for f in ctx.decode(pkt):
                    out.append(f.to_ndarray(format=fmt))
                if len(out) >= limit:
                    break
            return out[:limit]
        for f in c.decode(vs):
            out.append(f.to_ndarray(format=fmt))
            if len(out) >= limit:
                break
    return out


def share_near(frame: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> float:
    """Share of a [H, W, 3+] frame's pixels within L-inf `tol` of `rgb`."""
    diff = np.abs(frame[..., :3].astype(np.int16) - np.array(rgb, dtype=np.int16)).max(axis=-1)
    return float((diff <= tol).mean())


def border(frame: np.ndarray, frac: float = 0.08) -> np.ndarray:
    """The frame's outer ring (top, bottom, left, right strips), [N, C]: where the background shows."""
    h, w = frame.shape[:2]
    bh, bw = max(1, int(h * frac)), max(1, int(w * frac))
    parts = [frame[:bh], frame[-bh:], frame[:, :bw], frame[:, -bw:]]
    return np.concatenate([p.reshape(-1, frame.shape[-1]) for p in parts])


# --- inputs the error cases send -----------------------------------------------------------------------------


def write_clip(
    path: Path,
    *,
    width: int,
    height: int,
    frames: int,
    fps: int = 10,
    codec: str = "libx264",
    fmt: str | None = None,
) -> Path:
    """A moving grey ramp: enough to be a real, decodable video of the given size and length."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]  # [1, W, 1]
    pictures = [
        np.ascontiguousarray(np.broadcast_to((ramp + 8 * i) % 256, (height, width, 3)).astype(np.uint8))
        for i in range(frames)
    ]  # [H, W, 3] uint8 each
    return encode(path, pictures, codec=codec, fmt=fmt, fps=fps)


def tiny_clip(
    src: Path,
    dest: Path,
    *,
    codec: str,
    fmt: str | None = None,
    pix_fmt: str = "yuv420p",
    size: tuple[int, int] = TINY,
    frames: int = 6,
    fps: int = 10,
) -> Path:
    """The first `frames` frames of `src` at `size`, in another container/codec: the same person, a job
    that costs little. Sizes are multiples of 16, which every encoder here takes."""
    pictures = []  # [H, W, 3] uint8 each
    with av.open(str(src)) as c:
        for f in c.decode(c.streams.video[0]):
            pictures.append(f.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
            if len(pictures) >= frames:
                break
    return encode(dest, pictures, codec=codec, fmt=fmt, pix_fmt=pix_fmt, fps=fps)


def encode(
    dest: Path,
    pictures: list[np.ndarray],
    *,
    codec: str,
    fmt: str | None = None,
    pix_fmt: str = "yuv420p",
    fps: int = 10,
) -> Path:
    """RGB pictures, [H, W, 3] uint8, as a video file (the container from `fmt` or the file name)."""
    height, width = pictures[0].shape[:2]
    with av.open(str(dest), "w", format=fmt) as out:
        vs = out.add_stream(codec, rate=fps)
        assert isinstance(vs, av.VideoStream)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        if codec == "libx265":
            vs.options = {"x265-params": "log-level=error"}
        for picture in pictures:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return dest


def free_box_header(total_size: int, clip_size: int) -> bytes:
    """An MP4 `free` box that pads a clip of clip_size bytes to total_size: players skip it, so the file is
    a valid MP4 whose only fault is its size (32-bit box size: pads up to 4 GiB)."""
    pad = total_size - clip_size
    if not 8 <= pad < 2**32:
        raise ValueError(f"cannot pad {clip_size} bytes to {total_size}")
    return struct.pack(">I4s", pad, b"free")


MALFORMED = b"This is not a video. " * 200  # served as clip.mp4 / video/mp4
