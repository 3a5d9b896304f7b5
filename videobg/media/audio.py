"""Put the source audio back next to the encoded video.

The audio is fed to the output in step with the video (`AudioTrack.pump(t)` after each video frame), so
the muxer can interleave the two and nothing is held in memory beyond a few packets.

Rules:
- Copy (no decode, no re-encode) when the span is not trimmed and the output container accepts the
  source codec (`COPYABLE`).
- Otherwise decode, cut to [trim.start, trim.end) to the sample, and re-encode with the format's audio
  codec (AAC for MP4/MOV/MKV, Opus for WebM). The channel layout is kept (5.1 included); it is downmixed
  to stereo only when the encoder refuses it. The sample rate is kept where the encoder takes it, else 48 kHz.
- Time: source timestamps as they are, minus trim.start; the decoder gives video frames the same clock
  (`Frame.t` = source pts - trim.start), so audio and video stay in sync, offsets between them included.
- An audio stream that cannot be opened or decoded never fails the job: a warning is logged, the video is
  written without (the rest of) the audio, and `AudioSummary.warning` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer

from videobg.errors import VideoBgError
from videobg.media.formats import OutputFormat
from videobg.media.probe import open_input
from videobg.types import Trim

log = logging.getLogger(__name__)

# Output container (PyAV muxer name) -> source audio codecs it takes as they are.
COPYABLE: dict[str, frozenset[str]] = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac"}),
    "mov": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"}),
    "matroska": frozenset({"aac", "mp3", "ac3", "eac3", "opus", "vorbis", "flac", "alac", "pcm_s16le"}),
    "webm": frozenset({"opus", "vorbis"}),
}

# Encoder -> (sample format it is fed, sample rates it takes).
_ENCODERS: dict[str, tuple[str, tuple[int, ...]]] = {
    "aac": ("fltp", (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)),
    "libopus": ("flt", (48000,)),  # Opus runs at 48 kHz inside whatever it is fed; feed it 48 kHz
}
_BITRATE_PER_CHANNEL = {"aac": 64_000, "libopus": 48_000}
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass
class AudioSummary:
    """What happened to the audio; the service reports it next to the job result."""

    mode: str = "none"  # copy | reencode | none (no audio written: none in the source or span, or the
    # format carries none, or it could not be decoded)
    codec: str | None = None  # codec of the output audio stream
    channels: int = 0
    sample_rate: int = 0
    warning: str | None = None  # set when the audio was broken and left out (wholly or from some point)


class AudioTrack:
    """One output audio stream fed from a source file; subclasses copy or re-encode."""

    def __init__(self, source: InputContainer, in_stream: AudioStream, summary: AudioSummary) -> None:
        self.summary = summary
        self._source = source
        self._in = in_stream
        self._done = False
        self._written_until = 0.0  # output seconds already handed to the muxer

    def pump(self, until_s: float) -> None:
        """Mux the audio up to output second `until_s` (a little past is fine)."""
        self._guarded(until_s)

    def finish(self) -> None:
        """Mux what is left (to the trim end or the end of the source) and flush the encoder."""
        self._guarded(None)
        self._source.close()

    def close(self) -> None:
        self._source.close()

    def _guarded(self, until_s: float | None) -> None:
        if self._done:
            return
        try:
            self._feed(until_s)
        except (av.FFmpegError, ValueError) as exc:
            self._done = True
            self.summary.warning = f"audio stopped at {self._written_until:.2f} s: {exc}"
            log.warning("audio left out from %.2f s on: %s", self._written_until, exc)

    def _feed(self, until_s: float | None) -> None:
        raise NotImplementedError


class _CopyTrack(AudioTrack):
    def __init__(self, source, in_stream, output: OutputContainer, summary) -> None:
        super().__init__(source, in_stream, summary)
        self._out = output.add_stream_from_template(in_stream)
        self._packets = source.demux(in_stream)

    def _feed(self, until_s: float | None) -> None:
        while until_s is None or self._written_until < until_s:
            packet = next(self._packets, None)
            if packet is None:
                self._done = True
                return
            if packet.dts is None or packet.size == 0:  # demuxer's end-of-stream marker
                continue
            packet.stream = self._out  # untrimmed: the source timestamps are the output's
            self._out.container.mux(packet)
            self._written_until = float(packet.dts * packet.time_base)


class _EncodeTrack(AudioTrack):
    def __init__(self, source, in_stream, output: OutputContainer, codec: str, trim: Trim, summary) -> None:
        super().__init__(source, in_stream, summary)
        self._frames = self._decoded()
        first = next(self._frames)  # decode errors surface here, before the output stream exists
        self._pending: list[AudioFrame] = [first]
        self._rate = first.sample_rate
        sample_fmt, rates = _ENCODERS[codec]
        out_rate = self._rate if self._rate in rates else 48000
        layout = _encodable_layout(codec, sample_fmt, out_rate, first.layout.name, first.layout.nb_channels)
        self._output = output
        self._out = cast(AudioStream, output.add_stream(codec, rate=out_rate))
        self._out.layout = layout
        self._out.format = sample_fmt
        self._out.bit_rate = _BITRATE_PER_CHANNEL[codec] * min(self._out.layout.nb_channels, 6)
        self._out.time_base = Fraction(1, out_rate)
        self._start = round(trim.start * self._rate)  # first kept sample [source samples from origin]
        self._end = None if trim.end is None else round(trim.end * self._rate)  # exclusive
        self._pos: int | None = None  # next decoded sample's index [source samples from origin]
        summary.mode, summary.codec = "reencode", codec
        summary.channels, summary.sample_rate = self._out.layout.nb_channels, out_rate

    def _decoded(self) -> Iterator[AudioFrame]:
        for packet in self._source.demux(self._in):
            yield from packet.decode()

    def _feed(self, until_s: float | None) -> None:
        while until_s is None or self._written_until < until_s:
            frame = self._pending.pop() if self._pending else next(self._frames, None)
            if frame is None or (self._end is not None and self._pos is not None and self._pos >= self._end):
                self._flush()
                return
            self._encode(frame)

    def _encode(self, frame: AudioFrame) -> None:
        if self._pos is None:  # later frames follow on sample by sample; only the first pts places them
            t = 0.0 if frame.time is None else frame.time
            self._pos = round(t * self._rate)
        first, n = self._pos, frame.samples
        self._pos += n
        lo = max(self._start - first, 0)
        hi = n if self._end is None else min(self._end - first, n)
        if hi <= lo:
            return
        cut = frame if (lo, hi) == (0, n) else _slice(frame, lo, hi)
        cut.pts = first + lo - self._start  # may be > 0: the source audio starts after the video
        cut.time_base = Fraction(1, self._rate)
        cut.sample_rate = self._rate
        self._output.mux(self._out.encode(cut))
        self._written_until = (first + hi - self._start) / self._rate

    def _flush(self) -> None:
        self._done = True
        self._output.mux(self._out.encode(None))
        if self._written_until == 0.0:
            self.summary.mode = "none"
            self.summary.warning = "the source has no audio inside the trimmed span"


def _slice(frame: AudioFrame, lo: int, hi: int) -> AudioFrame:
    """Samples [lo, hi) of a frame, same format and layout."""
    data = frame.to_ndarray()  # planar: [C, N]; packed: [1, N * C]
    step = 1 if frame.format.is_planar else frame.layout.nb_channels
    part = np.ascontiguousarray(data[:, lo * step : hi * step])  # same dtype as the frame's samples
    out = AudioFrame.from_ndarray(part, format=frame.format.name, layout=frame.layout)  # type: ignore[arg-type]
    out.sample_rate = frame.sample_rate
    return out


def _encodable_layout(codec: str, sample_fmt: str, rate: int, layout: str, channels: int) -> str:
    """The source layout if the encoder opens with it, else the default layout for that many channels,
    else stereo (mono stays mono)."""
    candidates = [layout, _DEFAULT_LAYOUTS.get(channels, "stereo"), "stereo" if channels > 1 else "mono"]
    for name in candidates:
        ctx = cast(AudioCodecContext, av.CodecContext.create(codec, "w"))
        ctx.sample_rate, ctx.format, ctx.layout = rate, sample_fmt, name
        try:
            ctx.open()
        except (av.FFmpegError, ValueError):
            continue
        if name != layout:
            log.info("%s does not take %s audio; encoding it as %s", codec, layout, name)
        return name
    return "stereo"


def open_audio(
    output: OutputContainer,
    fmt: OutputFormat,
    src: str | Path | None,
    index: int | None,
    trim: Trim,
) -> tuple[AudioTrack | None, AudioSummary]:
    """Add the audio stream to `output` (before anything is muxed) and return the track that feeds it.

    `index` is the container stream index of the audio to use; None takes the first audio stream.
    """
    summary = AudioSummary()
    if src is None or fmt.audio_codec is None or fmt.container is None:
        return None, summary
    try:
        source = open_input(src)  # the same whitelisted opener as probe and decode
    except VideoBgError as exc:
        summary.warning = f"audio source unreadable, video written without audio: {exc.message}"
        log.warning("%s", summary.warning)
        return None, summary
    streams = [s for s in source.streams.audio if index is None or s.index == index]
    if not streams:
        source.close()
        return None, summary
    in_stream = streams[0]
    try:
        if trim.is_full and in_stream.codec_context.codec.canonical_name in COPYABLE.get(fmt.container, ()):
            track: AudioTrack = _CopyTrack(source, in_stream, output, summary)
            summary.mode, summary.codec = "copy", in_stream.codec_context.codec.canonical_name
            summary.channels, summary.sample_rate = in_stream.channels, in_stream.rate
        else:
            in_stream.codec_context.thread_type = "AUTO"
            track = _EncodeTrack(source, in_stream, output, fmt.audio_codec, trim, summary)
    except (av.FFmpegError, ValueError, StopIteration) as exc:
        source.close()
        summary = AudioSummary(warning=f"audio stream undecodable, video written without audio: {exc!r}")
        log.warning("%s", summary.warning)
        return None, summary
    return track, summary
