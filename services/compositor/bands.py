"""Frames <-> `vbg.v1.FrameBand` messages: the Compositor.Composite stream format, both directions.

A frame [H, W, C] uint8 (C = 3 RGB, or 4 RGBA for transparent output) goes as consecutive row bands of at
most `grpcutil.BAND_BYTES` (8 MiB) each, in order; the last band of a frame has last_band set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from services.common.grpcutil import BAND_BYTES
from vbg.v1 import stages_pb2
from videobg.errors import VideoBgError


@dataclass
class StreamedFrame:
    index: int  # within the trimmed span
    t: float  # seconds since the span start
    image: np.ndarray  # [H, W, 3] uint8, or [H, W, 4] uint8 (RGBA) for transparent output

    @property
    def rgb(self) -> np.ndarray:
        return self.image[..., :3]  # [H, W, 3] uint8 view

    @property
    def alpha(self) -> np.ndarray | None:
        return self.image[..., 3] if self.image.shape[2] == 4 else None  # [H, W] uint8 view


def to_bands(
    index: int, t: float, image: np.ndarray, band_bytes: int = BAND_BYTES
) -> Iterator[stages_pb2.FrameBand]:
    """image [H, W, C] uint8 -> bands of whole rows, each at most `band_bytes` (one row at the least)."""
    h, w, c = image.shape
    rows = max(1, band_bytes // (w * c))
    for y0 in range(0, h, rows):
        part = np.ascontiguousarray(image[y0 : y0 + rows])  # [rows, W, C] uint8
        yield stages_pb2.FrameBand(
            index=index, t=t, width=w, height=h, channels=c, y0=y0, rows=part.shape[0],
            data=part.tobytes(), last_band=y0 + rows >= h,
        )  # fmt: skip


def assemble(bands: Iterable[stages_pb2.FrameBand], width: int, height: int) -> Iterator[StreamedFrame]:
    """Bands -> whole frames, checking that they tile each frame in order and that frames are consecutive."""
    image: np.ndarray | None = None
    next_row, expected_index = 0, 0
    for b in bands:
        if b.width != width or b.height != height or b.channels not in (3, 4):
            raise _broken(f"band of a {b.width}x{b.height}x{b.channels} frame, expected {width}x{height}x3|4")
        if b.index != expected_index or b.y0 != next_row or len(b.data) != b.rows * b.width * b.channels:
            raise _broken(f"band (frame {b.index}, row {b.y0}) out of order or of the wrong size")
        if image is None:
            image = np.empty((height, width, b.channels), np.uint8)
        elif image.shape[2] != b.channels:
            raise _broken("channel count changed within a frame")
        image[b.y0 : b.y0 + b.rows] = np.frombuffer(b.data, np.uint8).reshape(b.rows, width, b.channels)
        next_row = b.y0 + b.rows
        if b.last_band:
            if next_row != height:
                raise _broken(f"frame {b.index} ended at row {next_row} of {height}")
            # as it came: the encoder's writer takes the RGBA frame whole (VideoWriter.write_image)
            yield StreamedFrame(b.index, b.t, image)
            image, next_row, expected_index = None, 0, expected_index + 1
    if image is not None:
        raise _broken(f"stream ended inside frame {expected_index}")


def _broken(msg: str) -> VideoBgError:
    return VideoBgError(f"compositor stream broken: {msg}", code="internal_error")
