"""Foreground colour estimation by blur fusion.

Forte & Pitié 2021, "Approximate Fast Foreground Colour Estimation" (ICIP): given an image I and an alpha
matte a, estimate the foreground colour F so that a*F + (1-a)*B' has no halo of the old background B.
Two passes: a large box radius (smooth local colour means of F and B) then a small one (detail).

    F_hat = blur(F*a)/blur(a),  B_hat = blur(B*(1-a))/blur(1-a)
    F     = F_hat + a * (I - a*F_hat - (1-a)*B_hat)

The first pass's radius is large (90 px at 1080p), so its blurred quantities are smooth: we compute that
pass at reduced resolution and upsample, which costs a fraction of a full-resolution pass and changes
the result by well under one 8-bit level where alpha is fractional (see tests/unit/test_refine.py).
"""

from __future__ import annotations

import cv2
import numpy as np

_EPS = 1e-5


def _blur(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.blur(x, (r, r), borderType=cv2.BORDER_REFLECT)


def _means(fg: np.ndarray, bg: np.ndarray, a3: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Local means F_hat, B_hat. fg/bg [H, W, 3] float32 0..1, a3 [H, W, 3] float32 0..1."""
    blur_a = _blur(a3, r)
    fg_hat = _blur(fg * a3, r) / (blur_a + _EPS)
    bg_hat = _blur(bg * (1.0 - a3), r) / ((1.0 - blur_a) + _EPS)
    return fg_hat, bg_hat


def _correct(image: np.ndarray, a3: np.ndarray, fg_hat: np.ndarray, bg_hat: np.ndarray) -> np.ndarray:
    f = fg_hat + a3 * (image - a3 * fg_hat - (1.0 - a3) * bg_hat)
    np.clip(f, 0.0, 1.0, out=f)
    return f


def _upsample_window(
    small: np.ndarray, full: tuple[int, int], window: tuple[int, int, int, int]
) -> np.ndarray:
    """The window (y0, y1, x0, x1) of `small` [h, w, C] resized bilinearly to `full` (H, W): the same values
    as cv2.resize(small, (W, H))[y0:y1, x0:x1] (half-pixel centres, edges clamped), without computing the
    rest of the frame."""
    (hh, ww), (y0, y1, x0, x1) = full, window
    sy, sx = small.shape[0] / hh, small.shape[1] / ww
    m = np.array([[sx, 0.0, (x0 + 0.5) * sx - 0.5], [0.0, sy, (y0 + 0.5) * sy - 0.5]], np.float64)
    return cv2.warpAffine(
        small,
        m,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def radii_for(height: int, width: int) -> tuple[int, int]:
    """Box radii scaled from the paper's (90, 6) at 1080p to this frame size."""
    s = min(height, width) / 1080.0
    return max(9, round(90 * s)), max(3, round(6 * s))


def _band_rects(alpha_u8: np.ndarray, tile: int) -> list[tuple[int, int, int, int]]:
    """Rectangles (y0, y1, x0, x1) of tile rows' contiguous runs of tiles holding fractional alpha."""
    h, w = alpha_u8.shape
    frac = cv2.inRange(alpha_u8, 1, 254)  # [H, W] 255 where 0 < alpha < 1
    nh, nw = -(-h // tile), -(-w // tile)
    padded = np.zeros((nh * tile, nw * tile), np.uint8)
    padded[:h, :w] = frac
    occupied = padded.reshape(nh, tile, nw, tile).max(axis=(1, 3)) > 0  # [nh, nw]
    rects = []
    for ty in range(nh):
        row = occupied[ty]
        tx = 0
        while tx < nw:
            if not row[tx]:
                tx += 1
                continue
            start = tx
            while tx < nw and row[tx]:
                tx += 1
            rects.append((ty * tile, min(h, (ty + 1) * tile), start * tile, min(w, tx * tile)))
    return rects


def estimate_foreground(
    rgb: np.ndarray,
    alpha: np.ndarray,
    *,
    radii: tuple[int, int] | None = None,
    coarse_scale: int = 4,
    tile: int = 64,
) -> np.ndarray:
    """rgb [H, W, 3] uint8, alpha [H, W] uint8 0..255 (or float32 0..1) -> foreground [H, W, 3] uint8.

    Only tiles where alpha is fractional are estimated; elsewhere the foreground is the image itself
    (exact where alpha is 1, and unused where alpha is 0). Pass 1 runs on the whole frame at 1/coarse_scale
    resolution, pass 2 at full resolution inside those tiles (with a halo so box sums are exact).
    """
    if alpha.dtype != np.uint8:
        alpha = cv2.convertScaleAbs(alpha, alpha=255.0)
    h, w = alpha.shape
    out = rgb.copy()
    rects = _band_rects(alpha, tile)
    if not rects:
        return out
    r1, r2 = radii or radii_for(h, w)

    # Pass 1 (large radius) at reduced resolution: its local means are smooth, upsampled once.
    k = max(1, min(coarse_scale, r1 // 8))
    size = (max(1, w // k), max(1, h // k))
    small_img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)
    small_a = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)
    small_a3 = cv2.merge([small_a, small_a, small_a])
    f_small, b_small = _means(small_img, small_img, small_a3, max(3, r1 // k))

    halo = r2 // 2 + 2
    for y0, y1, x0, x1 in rects:
        ya, yb, xa, xb = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
        img = rgb[ya:yb, xa:xb].astype(np.float32) * (1.0 / 255.0)
        a1 = alpha[ya:yb, xa:xb].astype(np.float32) * (1.0 / 255.0)
        a3 = cv2.merge([a1, a1, a1])
        # pass 1's means upsampled only inside this rectangle: [yb-ya, xb-xa, 3] float32
        f_hat = _upsample_window(f_small, (h, w), (ya, yb, xa, xb))
        b1 = _upsample_window(b_small, (h, w), (ya, yb, xa, xb))
        f1 = _correct(img, a3, f_hat, b1)  # pass 1's correction, at full resolution
        fh2, bh2 = _means(f1, b1, a3, r2)
        f2 = _correct(img, a3, fh2, bh2)
        cy, cx = y0 - ya, x0 - xa
        inner = f2[cy : cy + (y1 - y0), cx : cx + (x1 - x0)]
        out[y0:y1, x0:x1] = cv2.convertScaleAbs(inner, alpha=255.0)
    return out


def estimate_foreground_reference(rgb: np.ndarray, alpha: np.ndarray, radii: tuple[int, int]) -> np.ndarray:
    """Straight two-pass full-resolution version, used by tests to bound the coarse pass's error."""
    image = rgb.astype(np.float32) / 255.0
    a3 = np.repeat(alpha[:, :, None], 3, axis=2).astype(np.float32)
    f_hat, b1 = _means(image, image, a3, radii[0])
    f1 = _correct(image, a3, f_hat, b1)
    f_hat2, b_hat2 = _means(f1, b1, a3, radii[1])
    return _correct(image, a3, f_hat2, b_hat2)
