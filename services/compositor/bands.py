"""Frames <-> `vbg.v1.FrameBand` messages: the Compositor.Composite stream format, both directions.

A frame goes as consecutive row bands of at most `grpcutil.BAND_BYTES` (8 MiB) each, in order; the last
band of a frame has last_band set. What a frame is, by the bands' `pix_fmt` (`Layout`):

    rgb24    [H, W, 3] uint8, composited                     (any output the encoder converts itself)
    rgba     [H, W, 4] uint8, foreground + alpha             (transparent output)
    yuv420p  [H2 * 3 / 2, W2] uint8: Y, then U, then V, as `videobg.media.encode.Yuv420Converter` makes
             them (H2, W2: the size padded to even where the codec needs it); sent for the outputs whose
             encoder takes yuv420p (H.264, H.265, opaque VP9), so the conversion is done once, in the
             compositor, and half the bytes of RGB cross the network (issue 15)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from services.common.grpcutil import BAND_BYTES
from vbg.v1 import stages_pb2
from videobg.errors import VideoBgError
from videobg.media.encode import coded_size, takes_yuv420
from videobg.media.formats import OutputFormat


@dataclass(frozen=True)
class Layout:
    """The shape one frame has on the wire."""

    pix_fmt: str  # "rgb24" | "rgba" | "yuv420p"
    width: int  # of the picture (coded: padded to even for yuv420p where the codec needs it)
    height: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """[rows, W, channels] of the array a frame is cut from."""
        if self.pix_fmt == "yuv420p":
            return self.height * 3 // 2, self.width, 1
        return self.height, self.width, 4 if self.pix_fmt == "rgba" else 3


def layout_for(fmt: OutputFormat, transparent: bool, width: int, height: int) -> Layout:
    """What the compositor sends for this output; the encoder derives the same from the same record."""
    if takes_yuv420(fmt, transparent, width, height):
        return Layout("yuv420p", *coded_size(fmt, width, height))
    return Layout("rgba" if transparent else "rgb24", width, height)


@dataclass
class StreamedFrame:
    index: int  # within the trimmed span
    t: float  # seconds since the span start
    layout: Layout
    image: np.ndarray  # layout.shape uint8, or [H2 * 3 / 2, W2] for yuv420p

    @property
    def rgb(self) -> np.ndarray:
        return self.image[..., :3]  # [H, W, 3] uint8 view (RGB layouts)

    @property
    def alpha(self) -> np.ndarray | None:
        return self.image[..., 3] if self.layout.pix_fmt == "rgba" else None  # [H, W] uint8 view

    @property
    def planes(self) -> np.ndarray:
        return self.image.reshape(self.image.shape[:2])  # [H2 * 3 / 2, W2] uint8 view (yuv420p)


def to_bands(frame: StreamedFrame, band_bytes: int = BAND_BYTES) -> Iterator[stages_pb2.FrameBand]:
    """One frame -> bands of whole rows, each at most `band_bytes` (one row at the least)."""
    layout, image = frame.layout, frame.image
    rows_total, w, c = layout.shape
    if image.shape[:2] != (rows_total, w) or image.size != rows_total * w * c:
        raise _broken(f"frame of shape {image.shape} sent as {layout}")
    rows = max(1, band_bytes // (w * c))
    for y0 in range(0, rows_total, rows):
        part = np.ascontiguousarray(image[y0 : y0 + rows])  # [rows, W(, C)] uint8
        yield stages_pb2.FrameBand(
            index=frame.index, t=frame.t, width=w, height=layout.height, channels=c, y0=y0,
            rows=part.shape[0], data=part.tobytes(), last_band=y0 + rows >= rows_total, pix_fmt=layout.pix_fmt,
        )  # fmt: skip


def assemble(bands: Iterable[stages_pb2.FrameBand], *layouts: Layout) -> Iterator[StreamedFrame]:
    """Bands -> whole frames, checking that each frame has one of `layouts` (the RGB one the encoder can
    always take, and yuv420p where its output takes that), that the bands tile it in order, and that
    frames are consecutive."""
    by_fmt = {lay.pix_fmt: lay for lay in layouts}
    image: np.ndarray | None = None
    layout: Layout | None = None
    next_row, expected_index = 0, 0
    for b in bands:
        lay = by_fmt.get(b.pix_fmt or ("rgba" if b.channels == 4 else "rgb24"))  # "": a compositor before yuv
        if lay is None or (b.width, b.height, b.channels) != (lay.width, lay.height, lay.shape[2]):
            want = " or ".join(f"{x.width}x{x.height} {x.pix_fmt}" for x in layouts)
            raise _broken(f"band of a {b.width}x{b.height}x{b.channels} {b.pix_fmt} frame, expected {want}")
        rows_total, width, channels = lay.shape
        if b.index != expected_index or b.y0 != next_row or len(b.data) != b.rows * width * channels:
            raise _broken(f"band (frame {b.index}, row {b.y0}) out of order or of the wrong size")
        if b.y0 + b.rows > rows_total:
            raise _broken(f"band (frame {b.index}, row {b.y0}) runs past the frame's {rows_total} rows")
        if layout is not None and layout is not lay:
            raise _broken("pixel format changed within a frame")
        layout = lay
        part = np.frombuffer(b.data, np.uint8).reshape(b.rows, width, channels)
        if b.y0 == 0 and b.last_band and b.rows == rows_total:
            image = part  # the whole frame in one band: no copy (read-only; the writer copies it)
        else:
            if image is None:
                image = np.empty(lay.shape, np.uint8)
            image[b.y0 : b.y0 + b.rows] = part
        next_row = b.y0 + b.rows
        if b.last_band:
            if next_row != rows_total:
                raise _broken(f"frame {b.index} ended at row {next_row} of {rows_total}")
            assert image is not None
            yield StreamedFrame(b.index, b.t, lay, image)
            image, layout, next_row, expected_index = None, None, 0, expected_index + 1
    if layout is not None:
        raise _broken(f"stream ended inside frame {expected_index}")


def _broken(msg: str) -> VideoBgError:
    return VideoBgError(f"compositor stream broken: {msg}", code="internal_error")
