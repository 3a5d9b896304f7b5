"""Image bombs: a background image's size is read from its header and refused before any decoding; only
PNG, JPEG and WebP are accepted.

The bomb is a valid 30000x30000 RGB PNG of zeros, about 2.6 MB on disk and 2.7 GB once decoded: before
the fix OpenCV (whose own cap is 2^30 pixels) decoded it in full.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from videobg.composite import load_image_rgb
from videobg.errors import ResolutionTooHigh, Unsupported

pytestmark = [pytest.mark.security, pytest.mark.unit]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int = 30000, rows_per_block: int = 1000) -> Path:
    """A well-formed PNG of `side` x `side` black RGB pixels. Deflating 2.7 GB would take the test a
    minute, so one block of `rows_per_block` rows is deflated (ending byte-aligned with a full flush) and
    repeated: concatenated deflate blocks are one valid stream."""
    assert side % rows_per_block == 0
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    rows = b"\x00" * ((1 + 3 * side) * rows_per_block)  # each row: filter byte "none", then the pixels
    block = raw.compress(rows) + raw.flush(zlib.Z_FULL_FLUSH)
    total = (1 + 3 * side) * side
    adler = ((total % 65521) << 16) | 1  # Adler-32 of `total` zero bytes
    idat = b"\x78\xda" + block * (side // rows_per_block) + b"\x03\x00" + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit truecolour
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


def test_the_bomb_is_a_real_png(tmp_path: Path) -> None:
    """The same construction at 3000x3000 decodes (so the 30000 one is a bomb, not garbage)."""
    small = png_bomb(tmp_path / "small.png", side=3000)
    img = load_image_rgb(small)
    assert img.shape == (3000, 3000, 3) and not img.any()


def test_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 4_000_000
    with pytest.raises(ResolutionTooHigh, match="30000x30000") as err:
        load_image_rgb(bomb)
    assert err.value.code == "resolution_too_high"


@pytest.mark.parametrize("ext", [".bmp", ".gif", ".tiff"])
def test_only_png_jpeg_webp_backgrounds(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"bg{ext}"
    ok, buf = cv2.imencode(ext, np.zeros((32, 32, 3), np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())
    with pytest.raises(Unsupported, match="PNG, JPEG and WebP"):
        load_image_rgb(path)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp"])
def test_accepted_formats_still_load(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"bg{ext}"
    path.write_bytes(cv2.imencode(ext, np.full((20, 30, 3), 200, np.uint8))[1].tobytes())
    assert load_image_rgb(path).shape == (20, 30, 3)
