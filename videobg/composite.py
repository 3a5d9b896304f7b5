"""Backgrounds: parse a user's background spec, prepare it once per job, blend each frame over it."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from videobg.errors import InvalidInput, MalformedMedia, NotFound
from videobg.media import stills
from videobg.types import Background

NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "green": (0, 255, 0),  # chroma-key green
    "blue": (0, 71, 187),  # chroma-key blue
}

_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def parse_hex(value: str, *, field: str = "background") -> tuple[int, int, int]:
    m = _HEX.match(value.strip())
    if not m:
        raise InvalidInput(f"{field}: {value!r} is not a hex colour (#RGB or #RRGGBB)")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def parse_rgb(value: object, *, field: str = "background") -> tuple[int, int, int]:
    """[R, G, B] list/tuple or "R,G,B" string, each 0..255."""
    parts: list[object]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise InvalidInput(f"{field}: expected three numbers R,G,B")
    if len(parts) != 3:
        raise InvalidInput(f"{field}: expected three numbers R,G,B, got {len(parts)}")
    out = []
    for p in parts:
        try:
            f = float(p)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidInput(f"{field}: {p!r} is not a number") from None
        if not (0 <= f <= 255) or f != int(f):
            raise InvalidInput(f"{field}: {p!r} is not an integer in 0..255")
        out.append(int(f))
    return out[0], out[1], out[2]


def parse_background(spec: str | None, *, transparent: bool = False) -> Background:
    """CLI-style spec: None/"white", a named colour, #hex, "R,G,B", "transparent", or an image path."""
    if transparent or (spec is not None and spec.strip().lower() == "transparent"):
        return Background(kind="transparent")
    if spec is None or spec.strip() == "":
        return Background(kind="white")
    s = spec.strip()
    if s.lower() in NAMED_COLOURS:
        return Background(kind="color", rgb=NAMED_COLOURS[s.lower()])
    if s.startswith("#"):
        return Background(kind="color", rgb=parse_hex(s))
    if re.fullmatch(r"\s*\d+\s*,\s*\d+\s*,\s*\d+\s*", s):
        return Background(kind="color", rgb=parse_rgb(s))
    if Path(s).exists():
        return Background(kind="image", image_path=s)
    if _HEX.match(s):
        return Background(kind="color", rgb=parse_hex(s))
    raise InvalidInput(
        f"background {spec!r} is not a colour (white, black, green, blue, #RRGGBB, R,G,B) "
        "and no image file of that name exists"
    )


def cover_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale to cover (height, width) keeping the aspect ratio, then centre-crop: never stretches."""
    ih, iw = image.shape[:2]
    scale = max(height / ih, width / iw)
    nh, nw = max(height, round(ih * scale)), max(width, round(iw * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    y0, x0 = (nh - height) // 2, (nw - width) // 2
    return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])


def load_image_rgb(path: str | Path, max_pixels: int = stills.MAX_PIXELS) -> np.ndarray:
    """A PNG, JPEG or WebP file -> [H, W, 3] uint8 RGB (alpha, if any, dropped over black). Its header is
    read first: another format is Unsupported, more than `max_pixels` is ResolutionTooHigh, before any
    decoding (videobg/media/stills.py)."""
    p = Path(path)
    if not p.exists():
        raise NotFound(f"background image {str(p)!r} does not exist")
    data = np.fromfile(p, dtype=np.uint8)
    stills.check_size(stills.read_header(data.tobytes()), max_pixels)  # JPEG's size may follow 64 KiB of EXIF
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise MalformedMedia(f"background image {p.name!r} could not be decoded")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def prepare_background(bg: Background, height: int, width: int) -> np.ndarray | None:
    """Once per job: the plate behind the subject, [H, W, 3] uint8 RGB; None for transparent output."""
    if bg.kind == "transparent":
        return None
    if bg.kind == "image":
        if not bg.image_path:
            raise InvalidInput("background image missing")
        return cover_crop(load_image_rgb(bg.image_path), height, width)
    plate = np.empty((height, width, 3), np.uint8)
    plate[:] = bg.rgb
    return plate


def composite(fg: np.ndarray, alpha: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """fg [H, W, 3] uint8, alpha [H, W] uint8, plate [H, W, 3] uint8 -> [H, W, 3] uint8 = a*fg + (1-a)*plate."""
    w = alpha.astype(np.float32) * (1.0 / 255.0)
    return cv2.blendLinear(fg, plate, w, 1.0 - w)
