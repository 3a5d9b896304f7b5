import dataclasses
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videobg.errors import ERROR_TABLE, MalformedMedia, VideoBgError
from videobg.media.decode import iter_frames
from videobg.media.probe import probe
from videobg.media.timeparse import parse_trim
from videobg.types import Trim

pytestmark = pytest.mark.unit

MEDIA = Path(
    os.environ.get("VIDEOBG_MEDIA_DIR") or Path(__file__).resolve().parents[2].parent / "shared" / "media"
)
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"shared media not found at {MEDIA}")

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def pattern(h: int = 64, w: int = 128) -> np.ndarray:
    """[h, w, 3] uint8 upright test card: red top-left, green top-right, blue bottom-left, black bottom-right."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = RED
    img[: h // 2, w // 2 :] = GREEN
    img[h // 2 :, : w // 2] = BLUE
    return img


def write_clip(
    path: Path, pictures, pts, *, codec="libx264", rate=10, time_base=None, rotation=None, options=None
) -> Path:
    """Encode [h, w, 3] uint8 pictures at the given pts (in time_base units, default 1/rate)."""
    h, w = pictures[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for img, p in zip(pictures, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = p
            if time_base is not None:
                frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def gray_clip(path: Path, n: int, *, rate: int = 10, gop: int = 5) -> Path:
    """Frame i is flat gray i*6: the decoded level tells which source frame came out."""
    pictures = [np.full((64, 64, 3), i * 6, np.uint8) for i in range(n)]
    return write_clip(path, pictures, range(n), rate=rate, options={"g": str(gop), "bf": "0", "crf": "0"})


def level(frame) -> int:
    return int(round(float(frame.rgb.mean()) / 6))


# ---- rotation ----


@pytest.mark.parametrize("angle", [-90, 90, 180])
def test_frames_come_out_upright(tmp_path, angle):
    """Store the card turned against the display matrix; decoding must give the card back."""
    cw = (-angle) % 360  # degrees clockwise a player turns the stored picture
    upright = pattern()
    stored = np.rot90(upright, k=cw // 90)  # np.rot90 turns counter-clockwise: undo what the player does
    path = write_clip(tmp_path / "rot.mp4", [stored] * 3, range(3), rotation=angle)
    info = probe(path)
    frames = list(iter_frames(path, info))
    assert len(frames) == 3
    rgb = frames[0].rgb
    assert rgb.shape == upright.shape == (info.height, info.width, 3)
    assert rgb.flags.c_contiguous
    err = np.abs(rgb.astype(np.int16) - upright).mean()
    assert err < 6, f"mean abs error {err:.1f}: picture not upright"


@needs_media
def test_real_portrait_4k_frames_have_display_shape():
    path = MEDIA / "odd/androidx_portrait_4k60_rot90.mp4"
    info = probe(path)
    first = next(iter_frames(path, info, Trim(0.0, 0.05)))
    assert first.rgb.shape == (3840, 2160, 3)


@needs_media
def test_real_iphone_clip_has_sky_on_top():
    """dolbyVision MOV (rotation -90): buildings under a grey sky; the sky must end up at the top."""
    path = MEDIA / "odd/androidx_dolbyVision-hdr_iphone.MOV"
    rgb = next(iter_frames(path, probe(path))).rgb  # [1280, 720, 3]
    assert rgb.shape == (1280, 720, 3)
    gray = rgb.mean(axis=2)
    top, bottom = gray[: 1280 // 4].mean(), gray[-1280 // 4 :].mean()
    assert top > bottom + 20, (top, bottom)


# ---- trim and time ----


@needs_media
@pytest.mark.parametrize(("start", "end"), [(1, 3), ("00:00:01", "00:00:03")])
def test_trim_real_clip(start, end):
    path = MEDIA / "people/sam2_01_dog.mp4"
    info = probe(path)
    trim = parse_trim(start, end)
    frames = list(iter_frames(path, info, trim))
    ts = [f.t for f in frames]
    assert all(0.0 <= t < 2.0 for t in ts)
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
    assert [f.index for f in frames] == list(range(len(frames)))
    assert abs(len(frames) - 2.0 * float(info.fps_avg)) <= 1

    # frame-accurate: the first trimmed frame is the full decode's first frame at or after 1 s
    for full in iter_frames(path, info):
        if full.t >= 1.0:
            break
    assert full.t - 1.0 == pytest.approx(frames[0].t, abs=1e-6)
    assert np.array_equal(full.rgb, frames[0].rgb)


def test_trim_is_frame_accurate_across_gops(tmp_path):
    path = gray_clip(tmp_path / "gop.mp4", 40, gop=5)  # keyframes at 0, 0.5, 1.0, ...
    info = probe(path)
    frames = list(iter_frames(path, info, Trim(1.25, 2.0)))
    assert [level(f) for f in frames] == list(range(13, 20))
    assert [f.t for f in frames] == pytest.approx([i / 10 - 1.25 for i in range(13, 20)])


def test_trim_open_end_and_full(tmp_path):
    path = gray_clip(tmp_path / "g.mp4", 20)
    info = probe(path)
    assert [level(f) for f in iter_frames(path, info)] == list(range(20))
    assert [level(f) for f in iter_frames(path, info, Trim(1.5))] == list(range(15, 20))


def test_vfr_timestamps_are_kept(tmp_path):
    pts_ms = [0, 40, 200, 230, 500, 1000, 1033]
    pictures = [np.full((64, 64, 3), i * 30, np.uint8) for i in range(len(pts_ms))]
    path = write_clip(
        tmp_path / "vfr.mkv", pictures, pts_ms, rate=30, time_base=Fraction(1, 1000), options={"bf": "0"}
    )
    info = probe(path)
    ts = [f.t for f in iter_frames(path, info)]
    assert ts == pytest.approx([p / 1000 for p in pts_ms], abs=1e-3)
    ts = [f.t for f in iter_frames(path, info, Trim(0.2, 1.0))]
    assert ts == pytest.approx([0.0, 0.03, 0.3], abs=1e-3)


@needs_media
def test_real_vfr_clip_keeps_irregular_times():
    path = MEDIA / "odd/androidx_android_slow_motion.mp4"
    ts = [f.t for f in iter_frames(path, probe(path))]
    gaps = np.diff(ts)
    assert len(ts) == 7
    assert gaps.max() > 5 * gaps.min()  # 0.33 s then 33 ms steps, as stored


# ---- formats ----


@needs_media
def test_hevc_10bit_to_8bit_rgb():
    path = MEDIA / "odd/androidx_hdr10_hevc10_1080p.mp4"
    info = probe(path)
    frame = next(iter_frames(path, info))
    assert info.bit_depth == 10
    assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (1080, 1920, 3)
    assert frame.rgb.std() > 10  # a picture, not a flat conversion failure


@needs_media
def test_gif_decodes():
    path = MEDIA / "people/intel_classroom.gif"
    frames = list(iter_frames(path, probe(path)))
    assert len(frames) == 45
    assert {f.rgb.shape for f in frames} == {(270, 480, 3)}


@needs_media
def test_truncated_mp4_decodes_what_is_there():
    path = MEDIA / "odd/androidx_sample_mdat_too_long.mp4"
    assert len(list(iter_frames(path, probe(path)))) == 30


# ---- errors ----


@needs_media
def test_every_frame_invalid_raises_malformed():
    path = MEDIA / "odd/androidx_invalid-bitstream.webm"
    # probe refuses it first; build the info probe would give so decode is tested on its own
    info = dataclasses.replace(
        probe(MEDIA / "odd/androidx_bear-vp9-odd-dimensions.webm"),
        width=320,
        height=240,
        coded_width=320,
        coded_height=240,
    )
    with pytest.raises(MalformedMedia):
        list(iter_frames(path, info))


def test_isolated_bad_packet_is_skipped(tmp_path, caplog):
    path = gray_clip(tmp_path / "c.mp4", 20, gop=1)
    with av.open(str(path)) as c:
        where = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = where[5]
    data = bytearray(path.read_bytes())
    data[pos : pos + size] = b"\xff" * size
    path.write_bytes(data)
    info = probe(path)
    with caplog.at_level(logging.WARNING, logger="videobg.media.decode"):
        levels = [level(f) for f in iter_frames(path, info)]
    assert levels == [i for i in range(20) if i != 5]
    assert "undecodable" in caplog.text


ODD = sorted(p.name for p in (MEDIA / "odd").iterdir()) if MEDIA.is_dir() else []


@needs_media
@pytest.mark.parametrize("name", ODD)
def test_every_odd_file_decodes_or_fails_typed(name):
    path = MEDIA / "odd" / name
    try:
        info = probe(path)
        n = 0
        for frame in iter_frames(path, info):
            assert frame.rgb.shape == (info.height, info.width, 3)
            assert frame.rgb.dtype == np.uint8
            n += 1
        assert n >= 1
    except VideoBgError as err:
        assert err.code in ERROR_TABLE and err.code != "internal_error"
        assert err.message


def test_trim_survives_a_seek_that_overshoots(tmp_path, monkeypatch, caplog):
    """A bad index (or WebM without cues) can land after the start: decode again from the beginning."""
    import videobg.media.decode as decode

    real_seek = decode._seek
    calls = []

    def bad_seek(container, stream, start_s):
        calls.append(start_s)
        return real_seek(container, stream, start_s + 1.0)

    monkeypatch.setattr(decode, "_seek", bad_seek)
    path = gray_clip(tmp_path / "gop.mp4", 40, gop=5)
    with caplog.at_level(logging.INFO, logger="videobg.media.decode"):
        frames = list(iter_frames(path, probe(path), Trim(1.25, 2.0)))
    assert calls == [1.25]
    assert "overshot" in caplog.text
    assert [level(f) for f in frames] == list(range(13, 20))


def test_trim_seeks_instead_of_decoding_everything(tmp_path, monkeypatch):
    import videobg.media.decode as decode

    decoded = []
    real = decode._decoded_frames

    def counting(container, stream):
        for frame in real(container, stream):
            decoded.append(frame.time)
            yield frame

    monkeypatch.setattr(decode, "_decoded_frames", counting)
    path = gray_clip(tmp_path / "gop.mp4", 40, gop=5)
    frames = list(iter_frames(path, probe(path), Trim(3.0, 3.2)))
    assert [level(f) for f in frames] == [30, 31]
    assert min(decoded) >= 2.5  # started at the keyframe at 3 s, not at 0


@needs_media
def test_times_count_from_the_container_start():
    path = MEDIA / "people/intel_asl_again.mkv"
    with av.open(str(path)) as c:
        assert c.start_time == 33_000  # the premise: first frame at 33 ms
    info = probe(path)
    assert next(iter_frames(path, info)).t == 0.0
    frames = list(iter_frames(path, info, Trim(1.0, 1.5)))
    assert frames[0].t == pytest.approx(0.0, abs=1e-6) and len(frames) == 15


def test_span_after_the_last_frame_is_empty_not_an_error(tmp_path):
    path = gray_clip(tmp_path / "g.mp4", 10)  # frames at 0.0 .. 0.9, duration 1.0
    assert list(iter_frames(path, probe(path), Trim(0.95))) == []
