"""Attacks through the media itself: a header that lies about the length, an absurd frame rate.

The doctored clip is made here: a real 10 s, 30 fps MP4 whose `mvhd`, `tkhd` and `mdhd` durations are
patched to 1 tick. FFmpeg then reports 0.00007 s; before the fix it passed a 5 s limit, was billed 0 s
and `videobg process` still wrote all 300 frames.
"""

from __future__ import annotations

import dataclasses
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from services.ingest.stage import billed_seconds
from videobg.errors import InvalidInput
from videobg.media import probe as probe_mod
from videobg.media.decode import iter_frames
from videobg.media.probe import probe, validate
from videobg.pipeline import process
from videobg.types import Limits, Trim

pytestmark = [pytest.mark.security, pytest.mark.unit]

SECONDS, FPS, SIDE = 10, 30, 64


def write_clip(path: Path, *, frames: int, fps: int) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width = s.height = SIDE
        s.pix_fmt = "yuv420p"
        s.options = {"preset": "ultrafast"}
        for i in range(frames):
            img = np.full((SIDE, SIDE, 3), (i * 7) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def patch_durations(path: Path) -> None:
    """Every movie, track and media header duration -> 1 tick (the sample table is left alone)."""
    data = bytearray(path.read_bytes())
    # offset of the duration field after the box type, for version 0 / version 1 headers
    offsets = {b"mvhd": (12, 20), b"mdhd": (12, 20), b"tkhd": (20, 28)}
    patched = 0
    for box, (v0, v1) in offsets.items():
        i = data.find(box)
        while i >= 0:
            version = data[i + 4]
            at = i + 8 + (v0 if version == 0 else v1)
            data[at : at + (4 if version == 0 else 8)] = struct.pack(">I" if version == 0 else ">Q", 1)
            patched += 1
            i = data.find(box, i + 4)
    assert patched >= 3
    path.write_bytes(data)


@pytest.fixture(scope="module")
def doctored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_clip(tmp_path_factory.mktemp("doctored") / "doctored.mp4", frames=SECONDS * FPS, fps=FPS)
    patch_durations(path)
    with av.open(str(path)) as c:  # the header really lies
        assert c.streams.video[0].duration * c.streams.video[0].time_base < 0.01
    return path


def test_doctored_duration_is_measured_from_packets(doctored: Path) -> None:
    info = probe(doctored)
    assert info.duration_s == pytest.approx(SECONDS, abs=0.05)
    assert billed_seconds(info, Trim()) == pytest.approx(SECONDS, abs=0.05)
    with pytest.raises(InvalidInput, match="limit is 5 s"):
        validate(info, Limits(max_duration_s=5))


def test_decoding_stops_at_the_validated_span(doctored: Path) -> None:
    """Even handed an info that believes the header (1 s), decoding yields at most 1 s x fps + 1 frames."""
    info = dataclasses.replace(probe(doctored), duration_s=1.0, frame_count=FPS)
    assert probe_mod.frame_budget(info, Trim()) == FPS + 1
    frames = sum(1 for _ in iter_frames(doctored, info, Trim()))
    assert frames <= FPS + 1


def test_process_bills_and_emits_what_it_decodes(doctored: Path, models_path: Path, tmp_path: Path) -> None:
    trim = Trim(0.0, 2.0)  # keeps the test short; the full clip was checked above
    result = process(doctored, tmp_path / "out.mp4", model="light", model_dir=models_path, trim=trim)
    assert result.duration_s == pytest.approx(2.0, abs=0.05)
    assert result.frames <= result.duration_s * FPS + 1
    with pytest.raises(InvalidInput, match="limit is 5 s"):
        process(
            doctored,
            tmp_path / "o2.mp4",
            model="light",
            model_dir=models_path,
            limits=Limits(max_duration_s=5),
        )


def test_frame_rate_cap_refuses_a_5000_fps_clip(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "fast.mp4", frames=500, fps=5000)  # 0.1 s: under every duration limit
    info = probe(clip)
    with pytest.raises(InvalidInput, match="limit is 240 fps") as err:
        validate(info, Limits())
    assert err.value.code == "invalid_parameter"


def test_frame_count_cap_names_its_limit(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "many.mp4", frames=90, fps=30)
    info = probe(clip)
    validate(info, Limits())
    with pytest.raises(InvalidInput, match="limit is 60 frames"):
        validate(info, Limits(max_frames=60))
