"""Decode the trimmed span of a video into upright RGB frames, one at a time.

- Trim: seek to the keyframe at or before `trim.start`, decode and drop frames before it, stop at the
  first frame at or after `trim.end`. If the seek lands after the start (bad index, WebM without cues)
  the span is decoded again from the beginning, so the cut is frame-accurate either way.
- Time: source time is pts x time_base minus the container's start_time (FFmpeg's `-ss` origin, and the
  one the audio muxer uses), so trims of video and audio line up; `Frame.t` is that minus `trim.start`.
  VFR timing is kept. Frames whose time does not increase are dropped (a muxer cannot write them).
- Rotation: pictures are turned by `info.rotation` (clockwise) and scaled to the probed size when a
  stream changes resolution mid-way, so every frame has the shape [info.height, info.width, 3].
- Budget: at most `frame_budget(info, trim)` frames come out, the span that was validated and billed at
  the clip's rate plus one; a stream holding more (timestamps that lie about the length) is cut there.
- Errors: undecodable packets are skipped with a warning; a stream where nothing decodes, or a long run
  of failures, raises MalformedMedia. A file that ends early (truncated) yields what is there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from videobg.errors import MalformedMedia
from videobg.media.probe import demux_packets, describe_error, frame_budget, open_media, select_video_stream
from videobg.types import Frame, Trim, VideoInfo

log = logging.getLogger(__name__)

_FULL = Trim()
_EPS = 1e-6  # seconds; pts x time_base in floats
_MAX_CONSECUTIVE_ERRORS = 25
_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


class _SeekOvershoot(Exception):
    """The seek landed after trim.start; raised before any frame is yielded."""


def iter_frames(path: str | Path, info: VideoInfo, trim: Trim = _FULL) -> Iterator[Frame]:
    if trim.start > 0:
        try:
            yield from _decode_span(path, info, trim, seek=True)
            return
        except _SeekOvershoot:
            log.info("seek to %.3f s overshot; decoding %s from the start", trim.start, Path(path).name)
    yield from _decode_span(path, info, trim, seek=False)


def _decode_span(path: str | Path, info: VideoInfo, trim: Trim, *, seek: bool) -> Iterator[Frame]:
    with open_media(path) as container:
        stream = select_video_stream(container)
        stream.codec_context.thread_type = "AUTO"
        tb = stream.time_base
        origin = (container.start_time or 0) / av.time_base  # [s] source time that is t=0
        if seek and not _seek(container, stream, origin + trim.start):
            raise _SeekOvershoot
        index, last_t = 0, -float("inf")
        budget = frame_budget(info, trim)
        reformatter = VideoReformatter()  # one per stream: keeps the swscale context between frames
        default_step = 1.0 / float(info.fps_avg or info.fps_nominal or 25)
        frames = _decoded_frames(container, stream)
        if seek:
            frames = _check_seek(frames, lambda f: _frame_time(f, tb, origin, -1.0, 0.0), trim.start)
        for frame in frames:
            t = _frame_time(frame, tb, origin, last_t, default_step)
            if t < trim.start - _EPS:
                continue
            if trim.end is not None and t >= trim.end - _EPS:
                break
            if t <= last_t:
                log.debug("dropping frame with non-increasing time %.6f", t)
                continue
            if index >= budget:
                log.warning("stream runs past its validated span: stopped after %d frames", index)
                break
            rgb = _to_rgb(reformatter, frame, info)
            if rgb is None:
                continue
            last_t = t
            yield Frame(index=index, t=max(0.0, t - trim.start), rgb=rgb)
            index += 1


def _check_seek(frames: Iterator[av.VideoFrame], time_of, start: float) -> Iterator[av.VideoFrame]:
    """Pass frames through; _SeekOvershoot if the first lies after `start` or none decode after the seek."""
    try:
        first = next(frames)
    except (StopIteration, MalformedMedia):
        raise _SeekOvershoot from None
    if time_of(first) > start + _EPS:
        raise _SeekOvershoot
    yield first
    yield from frames


def _seek(container, stream, source_s: float) -> bool:
    try:
        container.seek(int(source_s / stream.time_base), stream=stream, backward=True, any_frame=False)
    except (av.error.FFmpegError, OSError) as exc:
        log.info("seek failed (%s)", describe_error(exc))
        return False
    return True


def _decoded_frames(container, stream) -> Iterator[av.VideoFrame]:
    """Frames in presentation order; bad packets skipped, total failure raised as MalformedMedia."""
    decoded = errors = consecutive = 0
    last_error: BaseException | None = None
    for packet in demux_packets(container.demux(stream)):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            errors, consecutive, last_error = errors + 1, consecutive + 1, exc
            if consecutive >= _MAX_CONSECUTIVE_ERRORS:
                raise MalformedMedia(
                    f"The video stream cannot be decoded: {consecutive} packets in a row failed "
                    f"({describe_error(exc)}) after {decoded} good frames"
                ) from exc
            # the first few go to the log; the count is logged at the end
            if errors <= 3:
                log.warning("skipping undecodable video packet (pts=%s): %s", packet.pts, describe_error(exc))
            continue
        if frames:
            consecutive = 0
        for frame in frames:
            decoded += 1
            yield frame
    for frame in _flush(stream):  # after a demux error nothing has flushed the decoder
        decoded += 1
        yield frame
    if decoded == 0:
        detail = f" ({errors} packets failed: {describe_error(last_error)})" if errors else ""
        raise MalformedMedia(f"No video frame could be decoded{detail}")
    if errors:
        log.warning("skipped %d undecodable video packets, decoded %d frames", errors, decoded)


def _flush(stream) -> list[av.VideoFrame]:
    try:
        return stream.decode(None)
    except (av.error.FFmpegError, EOFError):
        return []


def _frame_time(frame: av.VideoFrame, tb, origin: float, last_t: float, step: float) -> float:
    """Seconds from the source origin; a frame without timestamps follows the previous one."""
    ts = frame.pts if frame.pts is not None else frame.dts
    if ts is None or tb is None:
        return last_t + step if last_t > -float("inf") else 0.0
    return float(ts * tb) - origin


def _to_rgb(reformatter: VideoReformatter, frame: av.VideoFrame, info: VideoInfo) -> np.ndarray | None:
    """[H, W, 3] uint8 upright; None (logged) when this one frame cannot be converted."""
    try:
        # swscale reads the frame's matrix (BT.601/709/2020); the range must be passed explicitly
        rgb = reformatter.reformat(
            frame,
            width=info.coded_width,
            height=info.coded_height,
            format="rgb24",
            src_color_range=frame.color_range,
        ).to_ndarray()  # [h, w, 3] uint8, coded orientation
    except (av.error.FFmpegError, ValueError) as exc:
        log.warning("skipping a frame that cannot be converted to RGB: %s", describe_error(exc))
        return None
    rotate = _ROTATE.get(info.rotation)
    return cv2.rotate(rgb, rotate) if rotate is not None else rgb
