"""Encode + mux: the last stage. Frames arrive one at a time and leave as packets; nothing is buffered.

`VideoWriter(path, fmt, width, height, transparent=..., fps=...)` takes the composited RGB (or the
foreground and its alpha when `transparent`) with a timestamp per frame, and writes one of the formats in
`videobg.media.formats`. Choices made here:

- Timestamps: the source's are kept (VFR stays VFR, in sync with the audio): pts = round(t / time_base),
  bumped by one tick when two frames land on the same tick. The time base is the finest the container
  keeps (1/90000 for MP4/MOV, 1/1000 for Matroska/WebM/WebP, 1/100 for GIF). `fps` is only the
  average-rate hint for the encoder and Matroska (MP4 computes its own); one outside (0, 240] is taken
  for a time base posing as a rate and replaced by 30.
- MP4/MOV are written with faststart (moov first) so results stream.
- Odd sizes: H.264/H.265 refuse odd sizes in 4:2:0, so for those the frame is padded to even by
  replicating its last column/row (one pixel at most; the output is then 1 px larger). VP9, ProRes, WebP,
  GIF and PNG keep the exact size.
- Colour: YUV outputs are converted by swscale with the BT.709 matrix to limited (tv) range and tagged
  BT.709 (primaries, transfer, matrix). WebP is fed BGRA and libwebp converts it itself (WebP carries no
  colour tags; decoders assume BT.601, which libwebp uses). GIF and PNG stay RGB. libwebp_anim also
  merges identical consecutive frames into one longer frame, so a still stretch decodes as fewer frames
  with the same total duration.
- GIF: frames are quantised to one palette by `videobg.media.gif.GifQuantizer` (see there).
- PNG sequence: a zip of frame_000000.png ... streamed in frame by frame (stored: PNG is compressed
  already) plus timestamps.json.
- Audio: `videobg.media.audio` (copied when untrimmed and the container takes the codec, else cut to the
  sample and re-encoded; fed in step with the video so the muxer interleaves).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zipfile
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import cv2
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc, VideoReformatter

from videobg.errors import InvalidInput
from videobg.media.audio import AudioSummary, AudioTrack, open_audio
from videobg.media.formats import OutputFormat, get_format
from videobg.media.gif import GifQuantizer
from videobg.types import Trim

log = logging.getLogger(__name__)

QUALITIES = ("fast", "default", "high")

# Speed first (2-core CPU workers); `quality` moves one step either way.
_X264 = {"fast": ("ultrafast", "23"), "default": ("veryfast", "20"), "high": ("medium", "18")}  # preset, crf
_X265 = {"fast": ("ultrafast", "26"), "default": ("superfast", "24"), "high": ("medium", "22")}
_VP9 = {"fast": ("realtime", "8", "36"), "default": ("realtime", "8", "32"), "high": ("good", "4", "28")}
_WEBP = {"fast": ("70", "1"), "default": ("80", "3"), "high": ("90", "5")}  # quality, compression_level
_PNG_PARAMS = {  # zlib level 1 with cheap row filters: ~40 ms for a 720p frame, 3% larger than level 3
    "fast": [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB],
    "default": [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FAST_FILTERS],
    "high": [cv2.IMWRITE_PNG_COMPRESSION, 6],
}

_TIME_BASE = {"mp4": Fraction(1, 90000), "mov": Fraction(1, 90000), "gif": Fraction(1, 100)}
_DEFAULT_TIME_BASE = Fraction(1, 1000)  # Matroska, WebM and WebP store milliseconds
_GIF_MIN_DELAY = 2  # [1/100 s]
_MAX_FPS = 240  # `fps` is only the average-rate hint; the timestamps place the frames
_FALLBACK_FPS = Fraction(30)


def _video_options(fmt: OutputFormat, quality: str, transparent: bool) -> dict[str, str]:
    codec = fmt.video_codec
    if codec == "libx264":
        preset, crf = _X264[quality]
        return {"preset": preset, "crf": crf}
    if codec == "libx265":
        preset, crf = _X265[quality]
        return {"preset": preset, "crf": crf, "x265-params": "log-level=error"}
    if codec == "libvpx-vp9":
        deadline, cpu_used, crf = _VP9[quality]
        return {"deadline": deadline, "cpu-used": cpu_used, "crf": crf, "b": "0", "row-mt": "1"}
    if codec == "prores_ks":
        return {"profile": "4444" if transparent else "hq", "vendor": "apl0"}
    if codec == "libwebp_anim":
        q, level = _WEBP[quality]
        return {"quality": q, "compression_level": level}
    return {}


def _container_options(fmt: OutputFormat) -> dict[str, str]:
    if fmt.container in ("mp4", "mov"):
        return {"movflags": "+faststart"}  # moov first: the result streams
    if fmt.container in ("webp", "gif"):
        return {"loop": "0"}  # loop forever, like every animated image on the web
    return {}


def _needs_even_size(fmt: OutputFormat) -> bool:
    return fmt.video_codec in ("libx264", "libx265") and fmt.pix_fmt.startswith(("yuv420", "yuv422"))


def sink_pix_fmt(fmt: OutputFormat, transparent: bool) -> str:
    """The pixel format the output's encoder is fed."""
    return (fmt.alpha_pix_fmt if transparent else fmt.pix_fmt) or fmt.pix_fmt


def coded_size(fmt: OutputFormat, width: int, height: int, transparent: bool = False) -> tuple[int, int]:
    """(width, height) of the frames the encoder gets: padded to even where the codec needs it (the last
    column/row repeated). ProRes 422 (opaque ProRes) pads an odd width: prores_ks codes only floor(W/2)
    chroma columns, and the last one decoded as garbage (off by up to 939 of 1023)."""
    if _needs_even_size(fmt):
        return width + width % 2, height + height % 2
    if fmt.video_codec == "prores_ks" and sink_pix_fmt(fmt, transparent).startswith("yuv422"):
        return width + width % 2, height
    return width, height


def takes_yuv420(fmt: OutputFormat, transparent: bool, width: int, height: int) -> bool:
    """Whether this output's encoder is fed yuv420p at an even size, so that a caller may hand it the planes
    (`Yuv420Converter`) instead of RGB: H.264, H.265 and opaque VP9 at any size (H.264/H.265 pad to even)."""
    w, h = coded_size(fmt, width, height)
    return fmt.container is not None and sink_pix_fmt(fmt, transparent) == "yuv420p" and w % 2 == h % 2 == 0


def pad_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """[H, W, C] -> [height, width, C], the last column/row repeated (`coded_size`); itself when no pad."""
    pad_w, pad_h = width - image.shape[1], height - image.shape[0]
    if pad_w or pad_h:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return image


# swscale on one thread per call, not its own pool: with its pool, RGB -> 10-bit YUV (ProRes 422 and
# 4444) wrote different pixels run to run at most widths that are not a multiple of 32 (720, 848, 854,
# 176, ...: a block of the first 16 columns off by up to 112 levels of 255). One thread costs no more
# CPU (RGB -> yuv420p, 720p, heap kept: 2.6-3.0 ms against 2.9-3.3 with the pool, 0.5 ms more wall); the
# stages already convert frames in parallel.
_SWS_THREADS = 1


def _to_yuv(reformatter: VideoReformatter, frame: av.VideoFrame, pix_fmt: str) -> av.VideoFrame:
    """swscale into a YUV format: the BT.709 matrix, limited (tv) range, tagged BT.709."""
    return reformatter.reformat(
        frame,
        format=pix_fmt,
        threads=_SWS_THREADS,
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        dst_color_trc=ColorTrc.BT709,
        dst_color_primaries=ColorPrimaries.BT709,
    )


class Yuv420Converter:
    """RGB [H, W, 3] uint8 -> what a yuv420p encoder takes: BT.709, limited range, by swscale, the frame
    padded to even by replicating its last column/row where the codec needs it. The writer converts with
    this itself; the compositor uses it to send the encoder planes that need no further conversion (half
    the bytes of RGB), and `VideoWriter.write_yuv420` takes them back: the same pixels either way."""

    def __init__(self, fmt: OutputFormat, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.coded_width, self.coded_height = coded_size(fmt, width, height)
        self._local = threading.local()  # a swscale context per thread: several refine workers convert

    @property
    def _reformatter(self) -> VideoReformatter:
        r = getattr(self._local, "reformatter", None)
        if r is None:
            r = self._local.reformatter = VideoReformatter()
        return r

    @property
    def planes_shape(self) -> tuple[int, int]:
        """[rows, columns] of `planes`: Y (H rows), then U and V (H/4 rows each, at full width)."""
        return self.coded_height * 3 // 2, self.coded_width

    def frame(self, rgb: np.ndarray) -> av.VideoFrame:
        rgb = pad_to(rgb, self.coded_width, self.coded_height)
        return _to_yuv(self._reformatter, av.VideoFrame.from_ndarray(rgb, format="rgb24"), "yuv420p")

    def planes(self, rgb: np.ndarray) -> np.ndarray:
        """rgb [H, W, 3] uint8 -> [coded H * 3 / 2, coded W] uint8: Y, U, V one after the other."""
        return self.frame(rgb).to_ndarray()

    def from_planes(self, planes: np.ndarray) -> av.VideoFrame:
        if planes.shape != self.planes_shape or planes.dtype != np.uint8:
            raise ValueError(
                f"yuv420p planes must be {list(self.planes_shape)} uint8, got {planes.shape} {planes.dtype}"
            )
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.colorspace, frame.color_range = Colorspace.ITU709, ColorRange.MPEG
        frame.color_trc, frame.color_primaries = ColorTrc.BT709, ColorPrimaries.BT709
        return frame


class VideoWriter:
    """Writes frames to `path` in `fmt`; see the module docstring for the choices made.

    rgb: [H, W, 3] uint8, composited (or the foreground when `transparent`); alpha: [H, W] uint8 or None
    (None when `transparent` means opaque); t: seconds since the start of the output.
    `audio_src`: a file whose audio (stream `audio_stream_index`, else the first) is cut to `trim` and put
    back. After `close()`, `audio` says what happened to it.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: OutputFormat | str,
        width: int,
        height: int,
        *,
        transparent: bool,
        fps: Fraction,
        audio_src: str | Path | None = None,
        audio_stream_index: int | None = None,
        trim: Trim = Trim(),  # noqa: B008 (frozen dataclass: sharing the default is safe)
        quality: str = "default",
    ) -> None:
        self.fmt = get_format(fmt if isinstance(fmt, str) else fmt.name, transparent=transparent)
        if quality not in QUALITIES:
            raise InvalidInput(f"Unknown quality {quality!r}; expected one of {', '.join(QUALITIES)}")
        if width < 1 or height < 1:
            raise InvalidInput(f"Bad frame size {width}x{height}")
        fps = Fraction(fps).limit_denominator(1_001_000)  # a float fps becomes e.g. 30000/1001
        if not 0 < fps <= _MAX_FPS:  # e.g. a time base posing as a rate (90000/1): libvpx refuses it
            log.info("fps %s is not a frame rate; hinting %s to the encoder instead", fps, _FALLBACK_FPS)
            fps = _FALLBACK_FPS
        self.path = Path(path)
        self.width, self.height = width, height
        self.transparent = transparent
        self.frames_written = 0
        self._closed = False
        if self.fmt.container is None:
            self._sink: _PngZipSink | _AvSink = _PngZipSink(self.path, transparent, fps, quality)
        else:
            self._sink = _AvSink(self.path, self.fmt, width, height, transparent, fps, quality)
            try:
                self._sink.add_audio(audio_src, audio_stream_index, trim)
            except BaseException:
                self._sink.abort()
                raise

    @property
    def audio(self) -> AudioSummary:
        return self._sink.audio_summary

    @property
    def audio_written(self) -> bool:
        """Whether the output has (some of) the source audio; final once closed."""
        return self.audio.mode != "none"

    def write(self, rgb: np.ndarray, alpha: np.ndarray | None, t: float) -> None:
        if self._closed:
            raise ValueError("write() after close()")
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"rgb must be [{self.height}, {self.width}, 3] uint8, got {rgb.shape} {rgb.dtype}"
            )
        if alpha is not None and alpha.shape != (self.height, self.width):
            raise ValueError(f"alpha must be [{self.height}, {self.width}] uint8, got {alpha.shape}")
        if self.transparent:
            a = np.full(rgb.shape[:2], 255, np.uint8) if alpha is None else alpha
            self.write_image(np.dstack([rgb, a]), t)  # [H, W, 4] uint8
        else:
            self.write_image(rgb, t)

    def write_image(self, image: np.ndarray, t: float) -> None:
        """A frame already in the sink's shape: [H, W, 4] uint8 RGBA when transparent, else [H, W, 3] uint8
        (what the compositor streams), so nothing is split and stacked again on the way in."""
        if self._closed:
            raise ValueError("write() after close()")
        channels = 4 if self.transparent else 3
        if image.shape != (self.height, self.width, channels) or image.dtype != np.uint8:
            raise ValueError(
                f"image must be [{self.height}, {self.width}, {channels}] uint8, got {image.shape} {image.dtype}"
            )
        if self._sink.write(image, max(float(t), 0.0)):
            self.frames_written += 1

    def write_yuv420(self, planes: np.ndarray, t: float) -> None:
        """A frame converted already by `Yuv420Converter.planes` (only where `takes_yuv420` holds)."""
        if self._closed:
            raise ValueError("write() after close()")
        if not isinstance(self._sink, _AvSink) or self._sink.yuv420 is None:
            raise ValueError(f"{self.fmt.name} is not fed yuv420p planes")
        if self._sink.put(self._sink.yuv420.from_planes(planes), max(float(t), 0.0)):
            self.frames_written += 1

    def close(self) -> None:
        """Flush the encoders, put the audio in and close the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._sink.close()

    def abort(self) -> None:
        """Close without finishing and remove the partial file."""
        if not self._closed:
            self._closed = True
            self._sink.abort()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Ticks:
    """Seconds -> strictly increasing pts in `time_base`."""

    def __init__(self, time_base: Fraction, min_step: int = 1) -> None:
        self.time_base = time_base
        self._min_step = min_step
        self.last: int | None = None

    def next(self, t: float, *, drop_close: bool = False) -> int | None:
        pts = round(Fraction(t) / self.time_base)
        if self.last is not None and pts < self.last + self._min_step:
            if drop_close:
                return None
            pts = self.last + self._min_step
        self.last = pts
        return pts


class _AvSink:
    """Every format that FFmpeg muxes (all but the PNG sequence)."""

    def __init__(
        self,
        path: Path,
        fmt: OutputFormat,
        width: int,
        height: int,
        transparent: bool,
        fps: Fraction,
        quality: str,
    ) -> None:
        self.fmt, self.path, self.transparent = fmt, path, transparent
        self.audio_summary = AudioSummary()
        self._audio: AudioTrack | None = None
        self._pix_fmt = sink_pix_fmt(fmt, transparent)
        self._is_gif = fmt.video_codec == "gif"
        # yuv420p outputs convert through the one converter that also prepares planes for `write_yuv420`
        self.yuv420 = (
            Yuv420Converter(fmt, width, height) if takes_yuv420(fmt, transparent, width, height) else None
        )
        self._ticks = _Ticks(
            _TIME_BASE.get(fmt.container or "", _DEFAULT_TIME_BASE), _GIF_MIN_DELAY if self._is_gif else 1
        )
        self._frame_duration = max(round(1 / (Fraction(fps) * self._ticks.time_base)), 1) if fps else 1
        self._quantizer = GifQuantizer(transparent) if self._is_gif else None
        self._reformatter = VideoReformatter()
        self._coded = coded_size(fmt, width, height, transparent)  # (W, H) the encoder gets
        self._container = av.open(str(path), "w", format=fmt.container, options=_container_options(fmt))
        try:
            self._stream = self._add_video_stream(*self._coded, fps, quality)
        except BaseException:
            self.abort()
            raise

    def _add_video_stream(self, width: int, height: int, fps: Fraction, quality: str) -> av.VideoStream:
        fmt = self.fmt
        options = _video_options(fmt, quality, self.transparent)
        stream = cast(av.VideoStream, self._container.add_stream(fmt.video_codec, rate=fps, options=options))
        stream.width, stream.height = width, height
        stream.pix_fmt = self._pix_fmt
        stream.time_base = self._ticks.time_base
        stream.codec_context.time_base = self._ticks.time_base
        stream.codec_context.thread_count = 0  # auto
        if self._is_yuv:
            ctx = stream.codec_context
            ctx.color_primaries, ctx.color_trc = ColorPrimaries.BT709, ColorTrc.BT709
            ctx.colorspace, ctx.color_range = Colorspace.ITU709, ColorRange.MPEG
        if fmt.video_codec == "libx265" and fmt.container in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # what Apple players require for HEVC
        return stream

    @property
    def _is_yuv(self) -> bool:
        return self._pix_fmt.startswith("yuv")

    def add_audio(self, src: str | Path | None, index: int | None, trim: Trim) -> None:
        self._audio, self.audio_summary = open_audio(self._container, self.fmt, src, index, trim)

    def write(self, image: np.ndarray, t: float) -> bool:
        """image: [H, W, 3 or 4] uint8 RGB(A). Returns False when the frame was dropped (GIF only)."""
        return self.put(self._to_frame(image), t)

    def put(self, frame: av.VideoFrame, t: float) -> bool:
        """A frame in the encoder's pixel format. Returns False when it was dropped (GIF only)."""
        pts = self._ticks.next(t, drop_close=self._is_gif)
        if pts is None:
            return False
        frame.pts, frame.time_base = pts, self._ticks.time_base
        frame.duration = self._frame_duration
        self._container.mux(self._stream.encode(frame))
        if self._audio is not None:
            self._audio.pump(t)
        return True

    def _to_frame(self, image: np.ndarray) -> av.VideoFrame:
        if self._quantizer is not None:
            indexed = self._quantizer.quantize(image)  # the stub does not know pal8 takes a tuple
            return av.VideoFrame.from_ndarray(indexed, format="pal8")  # type: ignore[arg-type]
        if self.yuv420 is not None:  # H.264/H.265 (padded to even there) and opaque VP9
            return self.yuv420.frame(image)
        image = pad_to(image, *self._coded)
        frame = av.VideoFrame.from_ndarray(image, format="rgba" if image.shape[2] == 4 else "rgb24")
        if not self._is_yuv:
            return self._reformatter.reformat(frame, format=self._pix_fmt, threads=_SWS_THREADS)
        return _to_yuv(self._reformatter, frame, self._pix_fmt)

    def close(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish()
            self._container.close()
        except BaseException:
            self.abort()  # a file that could not be finished is not a result
            raise

    def abort(self) -> None:
        try:
            if self._audio is not None:
                self._audio.close()
            self._container.close()
        except Exception as exc:  # the file is being thrown away; do not hide the error that got us here
            log.debug("closing an aborted output: %s", exc)
        finally:
            _remove(self.path)


class _PngZipSink:
    """A zip of frame_000000.png... (RGBA when transparent) and timestamps.json, written frame by frame."""

    def __init__(self, path: Path, transparent: bool, fps: Fraction, quality: str) -> None:
        self.path = path
        self.audio_summary = AudioSummary()
        self._fps = Fraction(fps)
        self._params = _PNG_PARAMS[quality]
        self._times: list[float] = []
        self._transparent = transparent
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED)

    def write(self, image: np.ndarray, t: float) -> bool:
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, png = cv2.imencode(".png", cv2.cvtColor(image, code), self._params)
        if not ok:
            raise RuntimeError("PNG encoding failed")
        self._zip.writestr(f"frame_{len(self._times):06d}.png", png.tobytes())
        self._times.append(round(t, 6))
        return True

    def close(self) -> None:
        meta = {
            "fps": f"{self._fps.numerator}/{self._fps.denominator}",
            "transparent": self._transparent,
            "frame_count": len(self._times),
            "timestamps": self._times,  # seconds since the start of the output, one per frame, in order
        }
        self._zip.writestr("timestamps.json", json.dumps(meta))
        self._zip.close()

    def abort(self) -> None:
        try:
            self._zip.close()
        finally:
            _remove(self.path)


def _remove(path: Path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
