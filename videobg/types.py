"""Plain dataclasses passed between core stages (and translated to/from protos by services)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class AudioInfo:
    index: int  # stream index in the container
    codec: str  # e.g. "aac", "mp3", "opus"
    channels: int
    sample_rate: int
    layout: str  # e.g. "stereo", "5.1"


@dataclass(frozen=True)
class VideoInfo:
    container: str  # PyAV format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    size_bytes: int
    duration_s: float  # best estimate; may come from stream or frame count
    width: int  # DISPLAY size, rotation applied
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # degrees clockwise the decoded picture must be turned to be upright: 0/90/180/270
    fps_nominal: Fraction
    fps_avg: Fraction
    frame_count: int  # from the container when known, else estimated from duration
    video_codec: str  # e.g. "h264", "hevc", "vp9"
    pix_fmt: str
    bit_depth: int
    has_alpha: bool
    audio: tuple[AudioInfo, ...] = ()

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)


@dataclass
class Frame:
    """One decoded, upright frame of the trimmed span."""

    index: int  # 0-based within the trimmed span
    t: float  # seconds since the start of the trimmed span (source timestamps kept: VFR stays VFR)
    rgb: np.ndarray  # [H, W, 3] uint8, upright (display orientation)


@dataclass(frozen=True)
class Trim:
    start: float = 0.0  # seconds, inclusive
    end: float | None = None  # seconds, exclusive; None = to the end

    @property
    def is_full(self) -> bool:
        return self.start <= 0.0 and self.end is None


@dataclass(frozen=True)
class Background:
    """What goes behind the subject. kind: white | color | image | transparent | none (return original)."""

    kind: str = "white"
    rgb: tuple[int, int, int] = (255, 255, 255)
    image_path: str | None = None

    @property
    def transparent(self) -> bool:
        return self.kind == "transparent"


@dataclass
class Limits:
    """Input limits; defaults as the Pixelcut contract."""

    max_bytes: int = 100 * 1024 * 1024
    max_duration_s: float = 60.0
    min_side: int = 64
    max_side: int = 4096
    max_fps: float = 240.0  # every phone and camera clip, slow motion included
    max_frames: int = 0  # 0: max_duration_s x max_fps

    @property
    def frame_cap(self) -> int:
        return self.max_frames or int(self.max_duration_s * self.max_fps)


@dataclass
class StageTimings:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt
