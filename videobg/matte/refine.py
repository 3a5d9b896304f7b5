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

import threading
from types import ModuleType

import cv2
import numpy as np

_EPS = 1e-5
# tiles per window at most: a run of fractional tiles is cut into windows of up to 4 x 64 px, whose ~10
# float arrays stay in the cache (a whole 1280-px run measured 8-12 % slower)
_MAX_RUN = 4
_TO_UNIT = np.float32(1.0 / 255.0)  # uint8 * this: one pass to float32 0..1 (no astype copy first)


_kernel_lock = threading.Lock()
_kernel_state: list[ModuleType | None] = []  # [the kernel module, or None without numba] once looked up


def compiled_kernel() -> ModuleType | None:
    """`videobg.matte.refine_kernel`, imported on first need (numba's import alone costs 0.25 s a
    process), or None where numba is not installed."""
    with _kernel_lock:
        if not _kernel_state:
            try:
                from videobg.matte import refine_kernel
            except ImportError:
                _kernel_state.append(None)
            else:
                _kernel_state.append(refine_kernel)
        return _kernel_state[0]


def warm_kernel() -> bool:
    """Load (or compile, the first time on a machine) the compiled refinement now rather than at a job's
    first frame. False where numba is not installed (the OpenCV version then serves)."""
    module = compiled_kernel()
    if module is None:
        return False
    module.warm()
    return True


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
    """Rectangles (y0, y1, x0, x1) of tile rows' contiguous runs of tiles holding fractional alpha, each
    at most `_MAX_RUN` tiles wide."""
    h, w = alpha_u8.shape
    frac = cv2.inRange(alpha_u8, 1, 254)  # [H, W] 255 where 0 < alpha < 1
    nh, nw = -(-h // tile), -(-w // tile)
    if (nh * tile, nw * tile) != (h, w):
        padded = np.zeros((nh * tile, nw * tile), np.uint8)
        padded[:h, :w] = frac
        frac = padded
    # rows first (whole rows at a time, fast), then the tile columns of the [nh, W] result
    occupied = frac.reshape(nh, tile, nw * tile).max(axis=1).reshape(nh, nw, tile).max(axis=2) > 0
    rects = []
    for ty, row in enumerate(occupied.tolist()):  # Python lists: numpy scalars cost ~1 us a look-up
        tx = 0
        while tx < nw:
            if not row[tx]:
                tx += 1
                continue
            start = tx
            while tx < nw and row[tx] and tx - start < _MAX_RUN:
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
    plate: np.ndarray | None = None,
    compiled: bool = True,
) -> np.ndarray:
    """rgb [H, W, 3] uint8, alpha [H, W] uint8 0..255 (or float32 0..1) -> foreground [H, W, 3] uint8, or
    with `plate` ([H, W, 3] uint8) the foreground composited over it (`videobg.composite.composite`'s
    pixels, computed here so that only the tiles with fractional alpha are blended).

    Only tiles where alpha is fractional are estimated; elsewhere the foreground is the image itself
    (exact where alpha is 1, and unused where alpha is 0), and the composite there is a plain choice of
    image or plate. Pass 1 runs on the whole frame at 1/coarse_scale resolution, pass 2 at full
    resolution inside those tiles (with a halo so box sums are exact): all windows in one call of the
    compiled kernel (`videobg.matte.refine_kernel`) where numba is installed and `compiled`, else window by
    window in OpenCV calls (the same arithmetic, within one 8-bit level).
    """
    if alpha.dtype != np.uint8:
        alpha = cv2.convertScaleAbs(alpha, alpha=255.0)
    h, w = alpha.shape
    if plate is None:
        out = rgb.copy()
    else:  # alpha is 0 or 255 outside the tiles: the plate, with the image copied where alpha is 255
        out = cv2.copyTo(rgb, alpha, plate.copy())
    rects = _band_rects(alpha, tile)
    if not rects:
        return out
    r1, r2 = radii or radii_for(h, w)

    # Pass 1 (large radius) at reduced resolution: its local means are smooth, upsampled once.
    k = max(1, min(coarse_scale, r1 // 8))
    small_img = shrink(rgb, k) * _TO_UNIT
    small_a = shrink(alpha, k) * _TO_UNIT
    f_small, b_small = _coarse_means(small_img, small_a, max(3, r1 // k))

    halo = r2 // 2 + 2
    kernel = compiled_kernel() if compiled else None
    if kernel is not None:
        kernel.refine_windows(rgb, alpha, f_small, b_small, rects, r2, halo, plate, out)
        return out
    for y0, y1, x0, x1 in rects:
        ya, yb, xa, xb = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
        window = (ya, yb, xa, xb)
        inner = (slice(y0 - ya, y1 - ya), slice(x0 - xa, x1 - xa))
        fg = _refine_window(rgb, alpha, f_small, b_small, (h, w), window, inner, r2)  # [y1-y0, x1-x0, 3]
        if plate is None:
            out[y0:y1, x0:x1] = fg
        else:
            wa = alpha[y0:y1, x0:x1] * _TO_UNIT
            out[y0:y1, x0:x1] = cv2.blendLinear(fg, plate[y0:y1, x0:x1], wa, 1.0 - wa)
    return out


def shrink(image: np.ndarray, k: int) -> np.ndarray:
    """[H, W, ...] uint8 -> [H // k, W // k, ...]: the mean of each k x k block (INTER_AREA). Where k is a
    power of two that divides both sides, as k/2 halvings (OpenCV's 2x2 path: 1280x720 / 4 in 0.3 ms
    against 1.4, 1920x1080 in 0.9 against 2.6); each halving rounds, so a value may differ by one level
    from the one-step mean, which the coarse pass's smooth local means do not see."""
    h, w = image.shape[:2]
    if k > 1 and k & (k - 1) == 0 and h % k == 0 and w % k == 0:
        while k > 1:
            h, w, k = h // 2, w // 2, k // 2
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return image
    return cv2.resize(image, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)


def _coarse_means(image: np.ndarray, a: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """`_means(image, image, a3, r)` with one blur fewer: here F = B = the image, so
    blur(I * (1 - a)) = blur(I) - blur(I * a); a [h, w] float32 (one channel, blurred once)."""
    a3 = cv2.merge([a, a, a])
    blur_a = _blur(a, r)
    ia = _blur(cv2.multiply(image, a3), r)
    rest = cv2.subtract(_blur(image, r), ia)
    inv_f = cv2.merge([1.0 / (blur_a + _EPS)] * 3)
    inv_b = cv2.merge([1.0 / ((1.0 - blur_a) + _EPS)] * 3)
    return cv2.multiply(ia, inv_f), cv2.multiply(rest, inv_b)


def _correct_into(image: np.ndarray, a3: np.ndarray, f_hat: np.ndarray, b_hat: np.ndarray) -> np.ndarray:
    """`_correct`'s expression regrouped as F_hat + a * ((I - B_hat) - a * (F_hat - B_hat)): six cv2 calls
    over whole arrays and two temporaries instead of eight numpy ones. Not clipped."""
    d = cv2.subtract(f_hat, b_hat)
    cv2.multiply(d, a3, dst=d)
    r = cv2.subtract(image, b_hat)
    cv2.subtract(r, d, dst=r)
    cv2.multiply(r, a3, dst=r)
    cv2.add(r, f_hat, dst=r)
    return r


def _refine_window(
    rgb: np.ndarray,
    alpha: np.ndarray,
    f_small: np.ndarray,
    b_small: np.ndarray,
    full: tuple[int, int],
    window: tuple[int, int, int, int],
    inner: tuple[slice, slice],
    r2: int,
) -> np.ndarray:
    """Pass 1's correction and pass 2 over one window (y0, y1, x0, x1, halo included) -> the foreground of
    its `inner` part, [h, w, 3] uint8. The same arithmetic as `estimate_foreground_reference`, in cv2
    calls over whole arrays (no temporaries per term), alpha blurred as one channel instead of three,
    and pass 2's correction computed only where it is kept (inside the halo)."""
    ya, yb, xa, xb = window
    img = rgb[ya:yb, xa:xb] * _TO_UNIT
    a1 = alpha[ya:yb, xa:xb] * _TO_UNIT
    a3 = cv2.merge([a1, a1, a1])
    # pass 1's means upsampled only inside this window: [yb-ya, xb-xa, 3] float32
    f_hat = _upsample_window(f_small, full, window)
    b1 = _upsample_window(b_small, full, window)
    f1 = _correct_into(img, a3, f_hat, b1)
    np.clip(f1, 0.0, 1.0, out=f1)
    # pass 2's local means, radius r2: F_hat2 = blur(f1 a) / blur(a), B_hat2 = blur(b1 (1-a)) / blur(1-a)
    blur_a = _blur(a1, r2)
    inv_f = cv2.merge([1.0 / (blur_a + _EPS)] * 3)
    inv_b = cv2.merge([1.0 / ((1.0 - blur_a) + _EPS)] * 3)
    fh2 = _blur(cv2.multiply(f1, a3), r2)
    cv2.multiply(fh2, inv_f, dst=fh2)
    ba = cv2.multiply(b1, a3)
    bh2 = _blur(cv2.subtract(b1, ba, dst=ba), r2)
    cv2.multiply(bh2, inv_b, dst=bh2)
    f2 = _correct_into(img[inner], a3[inner], fh2[inner], bh2[inner])
    np.maximum(f2, 0.0, out=f2)  # the conversion below saturates at 255 (= the clip at 1) but takes |x|
    return cv2.convertScaleAbs(f2, alpha=255.0)


def estimate_foreground_reference(rgb: np.ndarray, alpha: np.ndarray, radii: tuple[int, int]) -> np.ndarray:
    """Straight two-pass full-resolution version, used by tests to bound the coarse pass's error."""
    image = rgb.astype(np.float32) / 255.0
    a3 = np.repeat(alpha[:, :, None], 3, axis=2).astype(np.float32)
    f_hat, b1 = _means(image, image, a3, radii[0])
    f1 = _correct(image, a3, f_hat, b1)
    f_hat2, b_hat2 = _means(f1, b1, a3, radii[1])
    return _correct(image, a3, f_hat2, b_hat2)
