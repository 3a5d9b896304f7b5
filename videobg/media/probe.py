"""Probe an input video into a VideoInfo and check it against the service limits.

Accepted inputs: the MP4/MOV family (PyAV "mov,mp4,m4a,3gp,3g2,mj2"), Matroska/WebM and GIF, carrying
H.264, H.265 (8/10-bit), VP8, VP9, AV1, ProRes or GIF video. The container list is enforced by FFmpeg's
`format_whitelist` when the file is opened, not checked afterwards: auto-detection would otherwise let an
upload pick any demuxer (HLS or concat playlists that read other files, image sequences, raw formats).
Other containers (AVI, MPEG-TS, FLV, ...) are refused as Unsupported even with an accepted codec.

Times: trims and decoded frame times count from the container's start_time (FFmpeg's `-ss` origin; the
audio muxer uses the same one). `duration_s` is the larger of what the container states (the video
stream's length, else the container's) and what the packets say (last pts + duration - first pts, from a
demux-only pass, cheap next to decoding). The header alone is never trusted: an `mvhd`/`mdhd` duration
patched to 1 tick would otherwise make a 10 s clip probe as 0.00007 s, pass the duration limit and be
billed nothing (tests/security/test_media_limits.py). Within one frame of each other the container's
figure stands. `fps_nominal` is FFmpeg's guessed rate (the base rate unless that is implausible, e.g.
90000 for a phone VFR clip); `fps_avg` is frames / duration.

Limits (`validate`): size, sides, duration of the trimmed span, frame rate and frame count. Decoding
(`videobg.media.decode.iter_frames`) then never yields more than `frame_budget(info, trim)` frames, the
validated and billed span at the clip's rate plus one, whatever the stream holds.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import av.error

from videobg.errors import InvalidInput, MalformedMedia, NotFound, ResolutionTooHigh, TooLarge, Unsupported
from videobg.types import AudioInfo, Limits, Trim, VideoInfo

log = logging.getLogger(__name__)

# FFmpeg demuxer names; av_match_list also accepts the single aliases ("mp4", "webm", ...)
ACCEPTED_DEMUXERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "gif")
ACCEPTED_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "prores", "gif"})
_OPEN_OPTIONS = {"format_whitelist": ",".join(ACCEPTED_DEMUXERS), "protocol_whitelist": "file"}

# Frames declared larger than this are refused before the first is decoded (8K is 33 MP); `validate`
# then applies the configured max_side to the decoded size.
MAX_HEADER_PIXELS = 8192 * 8192
# A stream that yields no picture from this many packets is taken as undecodable.
_FIRST_FRAME_PACKETS = 120
# Counting packets to find duration/frame count is I/O bound; beyond this size we estimate instead.
_SCAN_MAX_BYTES = 512 * 1024 * 1024
_AV_ERRORS = (av.error.FFmpegError, OSError, EOFError)


@contextmanager
def open_media(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open an input with the container whitelist; every failure becomes a typed error."""
    container = open_input(path)
    try:
        yield container
    finally:
        container.close()


def open_input(path: str | Path) -> av.container.InputContainer:
    """THE opener of user data (probe, decode, the audio track of the encoder): a local regular file,
    read by an accepted demuxer only (`format_whitelist`, `protocol_whitelist=file`). The caller closes
    it. tests/security/test_hygiene.py checks no other `av.open` reads user data."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"Input file not found: {path.name}")
    if not path.is_file():
        raise MalformedMedia(f"Input is not a regular file: {path.name}")
    try:
        container = av.open(str(path), mode="r", options=_OPEN_OPTIONS)
    except av.error.ArgumentError as exc:
        # EINVAL at open is how FFmpeg reports a demuxer outside format_whitelist
        raise Unsupported(
            "Unsupported container: accepted inputs are MP4, MOV, WebM, MKV and GIF videos"
        ) from exc
    except _AV_ERRORS as exc:
        raise MalformedMedia(f"The file could not be read as a video ({describe_error(exc)})") from exc
    return container


def select_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream that is not a cover picture; decode and probe must agree on it."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise Unsupported("The file has no video stream (audio-only and still-image files are not accepted)")


def probe(path: str | Path) -> VideoInfo:
    size_bytes = _file_size(path)
    with open_media(path) as container:
        stream = select_video_stream(container)
        codec = _codec_name(stream)
        if codec not in ACCEPTED_CODECS:
            raise Unsupported(
                f"Unsupported video codec {codec!r}: accepted are H.264, H.265, VP8, VP9, AV1, ProRes and GIF"
            )
        _check_header_size(stream)
        first = _first_frame(container, stream)
        # only the MP4/MOV demuxer computes avg_frame_rate from the whole sample table; elsewhere (GIF)
        # it is a guess from the first few frames
        exact_avg = _positive(stream.average_rate) if container.format.name == ACCEPTED_DEMUXERS[0] else None
        stated = (_duration(container, stream), stream.frames, exact_avg)
        fps_nominal = _nominal_rate(stream)
        audio = tuple(_audio_info(s) for s in container.streams.audio)
        fmt_name = container.format.name
        alpha_tag = stream.metadata.get("alpha_mode", stream.metadata.get("ALPHA_MODE", "0")) == "1"
    duration_s, frame_count, fps_avg = _timing(path, size_bytes, *stated, fps_nominal)

    rotation = _rotation_cw(first, stream)
    coded_w, coded_h = first.width, first.height
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    return VideoInfo(
        container=fmt_name,
        size_bytes=size_bytes,
        duration_s=duration_s,
        width=width,
        height=height,
        coded_width=coded_w,
        coded_height=coded_h,
        rotation=rotation,
        fps_nominal=fps_nominal or fps_avg,
        fps_avg=fps_avg,
        frame_count=frame_count,
        video_codec=codec,
        pix_fmt=first.format.name,
        bit_depth=_bit_depth(first.format),
        # VP9 carries alpha in a side channel (alpha_mode=1) that the native decoder ignores
        has_alpha=alpha_tag or any(c.is_alpha for c in first.format.components),
        audio=audio,
    )


def _timing(
    path: str | Path,
    size_bytes: int,
    duration_s: float | None,
    frames: int,
    fps_avg: Fraction | None,
    fps_nominal: Fraction | None,
) -> tuple[float, int, Fraction]:
    """(duration, frame count, average fps): the larger of what the container states and what its packets
    say (the header is the uploader's to write), else estimated."""
    scanned = _scan_packets(path, size_bytes)
    if scanned is not None:
        count, span = scanned
        rate = fps_avg or fps_nominal or Fraction(25)
        slack = 1.0 / float(rate) + 1e-3  # a last frame counted or not
        # Matroska/WebM state no frame count: there the video's own packets beat a container figure that
        # may include other streams; elsewhere the larger figure wins
        if span > 0 and (frames <= 0 or duration_s is None or span > duration_s + slack):
            if frames > 0 and duration_s is not None:
                log.warning(
                    "container states %.6f s but its packets span %.3f s; using the packets", duration_s, span
                )
            duration_s = span
            fps_avg = None  # a rate derived from the stated duration is as wrong as it
        if count > frames:
            frames, fps_avg = count, None
    if fps_avg is None and frames > 1 and duration_s:
        fps_avg = Fraction(frames / duration_s).limit_denominator(1001)
    fps = fps_avg or fps_nominal or Fraction(25)
    if duration_s is None:
        duration_s = frames / float(fps) if frames > 0 else 0.0
    if frames <= 0:
        frames = max(1, round(duration_s * float(fps)))
    return duration_s, frames, fps


def validate(info: VideoInfo, limits: Limits, trim: Trim | None = None) -> None:
    """Raise the typed error for the first limit the input (or its trimmed span) breaks."""
    if info.size_bytes > limits.max_bytes:
        raise TooLarge(
            f"File is {info.size_bytes / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.1f} MB"
        )
    long_side, short_side = max(info.width, info.height), min(info.width, info.height)
    if long_side > limits.max_side:
        raise ResolutionTooHigh(
            f"Resolution {info.width}x{info.height} is too high; the longest side may be at most "
            f"{limits.max_side} px"
        )
    if short_side < limits.min_side:
        raise InvalidInput(
            f"Resolution {info.width}x{info.height} is too small; each side must be at least "
            f"{limits.min_side} px"
        )
    trim = trim or Trim()
    if trim.end is not None and trim.end <= trim.start:
        raise InvalidInput(f"Trim end ({trim.end:g} s) must be after its start ({trim.start:g} s)")
    if trim.start > 0 and trim.start >= info.duration_s:
        raise InvalidInput(
            f"Trim start {trim.start:g} s is beyond the end of the video ({info.duration_s:.2f} s)"
        )
    span = span_seconds(info, trim)
    # one frame of slack: a "60 s" phone clip is often 60.03 s long
    slack = 1.0 / float(info.fps_avg) if info.fps_avg else 0.0
    if span > limits.max_duration_s + slack:
        what = "The trimmed span" if not trim.is_full else "The video"
        raise InvalidInput(
            f"{what} is {span:.1f} s long; the limit is {limits.max_duration_s:g} s "
            f"(trim it with start/end or send a shorter clip)"
        )
    fps = frame_rate(info)
    if fps > limits.max_fps + 1e-6:
        raise InvalidInput(f"The frame rate is {fps:.1f} fps; the limit is {limits.max_fps:g} fps")
    frames = min(info.frame_count, frame_budget(info, trim))
    if frames > limits.frame_cap:
        raise InvalidInput(
            f"The video has {frames} frames to process; the limit is {limits.frame_cap} frames"
        )


def span_seconds(info: VideoInfo, trim: Trim) -> float:
    """Seconds of source in the trimmed span: what limits check and what a job is billed for."""
    end = info.duration_s if trim.end is None else min(trim.end, info.duration_s)
    return max(0.0, end - trim.start)


def frame_rate(info: VideoInfo) -> float:
    """The clip's rate for limits and frame budgets: the higher of the average and the nominal."""
    return max(float(info.fps_avg or 0), float(info.fps_nominal or 0)) or 25.0


def frame_budget(info: VideoInfo, trim: Trim) -> int:
    """The most frames a job may decode and emit: its validated (and billed) span at its rate, plus one.
    Decoding stops there whatever the stream holds past it."""
    return int(span_seconds(info, trim) * frame_rate(info) + 1e-6) + 1


def _file_size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError as exc:
        raise NotFound(f"Input file not found: {Path(path).name}") from exc
    except OSError as exc:
        raise MalformedMedia(f"The file could not be read ({describe_error(exc)})") from exc


def _check_header_size(stream: av.video.stream.VideoStream) -> None:
    """A frame bomb is refused from the stream's parameters, before a decoder allocates for it."""
    ctx = stream.codec_context
    w, h = (ctx.width, ctx.height) if ctx is not None else (0, 0)
    if w * h > MAX_HEADER_PIXELS:
        raise ResolutionTooHigh(
            f"The video declares {w}x{h} pixels per frame; the limit is {MAX_HEADER_PIXELS / 1e6:.0f} MP"
        )


def _codec_name(stream: av.video.stream.VideoStream) -> str:
    ctx = stream.codec_context
    if ctx is None:
        raise Unsupported("The video codec of this file is not supported (no decoder)")
    # canonical name: "av1" even when libdav1d decodes it
    return ctx.codec.canonical_name


def _first_frame(container: av.container.InputContainer, stream) -> av.VideoFrame:
    """Decode the first picture: the display matrix and real pixel format ride on frames."""
    stream.codec_context.thread_type = "AUTO"
    errors = 0
    last_error: BaseException | None = None
    packets = container.demux(stream)
    for n, packet in enumerate(demux_packets(packets)):
        if n >= _FIRST_FRAME_PACKETS:
            break
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            errors += 1
            last_error = exc
            continue
        if frames:
            return frames[0]
    try:
        frames = stream.decode(None)  # flush: a short clip may hold its only frames in the decoder
        if frames:
            return frames[0]
    except av.error.FFmpegError as exc:
        last_error = last_error or exc
    detail = f" ({errors} packets failed: {describe_error(last_error)})" if last_error else ""
    raise MalformedMedia(f"No video frame could be decoded; the file is corrupt or truncated{detail}")


def demux_packets(packets):
    """Demux until EOF or the first read error (a truncated file simply ends early)."""
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except _AV_ERRORS as exc:
            log.warning("demux stopped early: %s", describe_error(exc))
            return
        yield packet


def _duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    return None


def _scan_packets(path: str | Path, size_bytes: int) -> tuple[int, float] | None:
    """(packets, span seconds) of the video stream from a demux-only pass; None when too big or unreadable."""
    if size_bytes > _SCAN_MAX_BYTES:
        return None
    count, first, last_pts, last_end = 0, math.inf, -math.inf, -math.inf
    with open_media(path) as container:
        stream = select_video_stream(container)
        tb = stream.time_base
        for packet in demux_packets(container.demux(stream)):
            if packet.size == 0 or packet.is_discard:
                continue  # the flush packet at EOF; one an edit list cuts (the decoder drops its frame)
            count += 1
            if packet.pts is not None and tb:
                t = float(packet.pts * tb)
                first = min(first, t)
                last_pts = max(last_pts, t)
                last_end = max(last_end, t + float((packet.duration or 0) * tb))
    if count == 0:
        return None
    if not math.isfinite(first):
        return count, 0.0
    span = last_end - first
    if last_end <= last_pts and count > 1:
        # WebM blocks often carry no duration: give the last frame one mean interval
        span += (last_pts - first) / (count - 1)
    return count, span


def _nominal_rate(stream) -> Fraction | None:
    for rate in (stream.guessed_rate, stream.base_rate, stream.average_rate):
        rate = _positive(rate)
        # a "rate" equal to the time base (90000) is not a frame rate
        if rate is not None and rate <= 1000:
            return rate
    return None


def _positive(rate) -> Fraction | None:
    if rate is None:
        return None
    rate = Fraction(rate)
    return rate if rate > 0 else None


def _rotation_cw(frame: av.VideoFrame, stream) -> int:
    """Degrees clockwise that make the picture upright.

    FFmpeg's display-matrix angle is counter-clockwise (iPhone portrait: -90, which players turn 90 deg
    clockwise); old files may instead carry a `rotate` tag that is already clockwise.
    """
    try:
        ccw = float(frame.rotation)
    except (av.error.FFmpegError, ValueError, TypeError):
        ccw = 0.0
    if ccw == 0.0:
        tag = stream.metadata.get("rotate")
        try:
            return (round(float(tag) / 90) * 90) % 360 if tag else 0
        except ValueError:
            return 0
    return (round(-ccw / 90) * 90) % 360


def _bit_depth(fmt: av.video.format.VideoFormat) -> int:
    bits = [c.bits for c in fmt.components if not c.is_alpha]
    return max(bits) if bits else 8


def _audio_info(stream) -> AudioInfo:
    ctx = stream.codec_context
    if ctx is None:
        return AudioInfo(stream.index, "unknown", 0, 0, "")
    return AudioInfo(
        index=stream.index,
        codec=ctx.codec.canonical_name,
        channels=ctx.channels,
        sample_rate=ctx.sample_rate,
        layout=ctx.layout.name if ctx.layout else "",
    )


def describe_error(exc: BaseException | None) -> str:
    """A short, path-free description of a PyAV/OS error for user-facing messages."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
