"""Still images (backgrounds): format and size read from the header, before anything is decoded.

Only PNG, JPEG and WebP are accepted. A decoder allocates width x height x channels as the header says,
so a 3 MB PNG that declares 30000x30000 would cost 2.7 GB before a single check could run: the header is
read here first and a picture of more than `max_pixels` is refused as resolution_too_high.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from videobg.errors import MalformedMedia, ResolutionTooHigh, Unsupported

MAX_PIXELS = 64 * 1024 * 1024  # 8192 x 8192: a 48 MP phone photo passes, a decompression bomb does not
ACCEPTED = "PNG, JPEG and WebP"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xDA)) | {0x01}  # markers without a length field


@dataclass(frozen=True)
class StillHeader:
    format: str  # "png" | "jpeg" | "webp"
    width: int
    height: int

    @property
    def extension(self) -> str:
        return {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[self.format]


def read_header(data: bytes) -> StillHeader:
    """Format and size of a still image from its first bytes; Unsupported for anything but PNG, JPEG and
    WebP, MalformedMedia when the header of an accepted format is cut short or inconsistent."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            if data[12:16] != b"IHDR":
                raise MalformedMedia("The PNG image has no IHDR header")
            w, h = struct.unpack(">II", data[16:24])
            return _sized("png", w, h)
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
    except struct.error:
        raise MalformedMedia("The image header is truncated") from None
    raise Unsupported(f"Unsupported background image format: accepted are {ACCEPTED}")


def check_size(header: StillHeader, max_pixels: int = MAX_PIXELS) -> None:
    if header.width * header.height > max_pixels:
        raise ResolutionTooHigh(
            f"The image is {header.width}x{header.height} ({header.width * header.height / 1e6:.0f} MP); "
            f"the limit is {max_pixels / 1e6:.0f} MP"
        )


def _sized(fmt: str, w: int, h: int) -> StillHeader:
    if w <= 0 or h <= 0:
        raise MalformedMedia(f"The {fmt.upper()} image declares an empty size ({w}x{h})")
    return StillHeader(fmt, w, h)


def _jpeg(data: bytes) -> StillHeader:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise MalformedMedia("The JPEG image has a corrupt header")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return _sized("jpeg", w, h)
        if marker == 0xDA:  # start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    raise MalformedMedia("The JPEG image has no frame header")


def _webp(data: bytes) -> StillHeader:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: a key frame's start code, then 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            raise MalformedMedia("The WebP image has a corrupt VP8 header")
        w, h = struct.unpack("<HH", data[26:30])
        return _sized("webp", w & 0x3FFF, h & 0x3FFF)
    if chunk == b"VP8L":  # lossless: signature 0x2f, then width-1 and height-1 in 14 bits each
        if data[20] != 0x2F:
            raise MalformedMedia("The WebP image has a corrupt VP8L header")
        (bits,) = struct.unpack("<I", data[21:25])
        return _sized("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":  # extended: canvas width-1 and height-1 in 24 bits each
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return _sized("webp", w, h)
    raise MalformedMedia("The WebP image has no VP8, VP8L or VP8X header")
