"""Fast guided upsampling of a low-resolution matte (He & Sun 2015, "Fast Guided Filter", arXiv:1505.00996).

The per-frame models infer at 256 px (`light`) or 320 px (`original`); bilinear upsampling of their output
gives edges that are blurry and off by up to a low-res pixel (3-5 px at 720p). The guided filter fits, in
every low-res window, alpha ~ a * I + b against the low-res frame I, smooths (a, b), upsamples only those
two smooth maps bilinearly and applies them to the FULL-resolution frame, so the matte's edges follow the
frame's own edges at full resolution:

    mean_I, mean_p, corr_Ip, var_I  (box filters of radius r at low res)
    a = cov_Ip / (var_I + eps),  b = mean_p - a * mean_I,  then a, b box-averaged once more
    alpha = up(a) * I_full + up(b)

The guide is grey (one channel): the full-resolution work is one colour conversion, two bilinear resizes
and one multiply-add, about 3 ms at 1280x720 on this 2-core machine; a colour guide measured no better on
the DAVIS clips (docs/QUALITY.md) at 2-3x the cost.
"""

from __future__ import annotations

import cv2
import numpy as np

# measured best on the DAVIS clips (tight-boundary F, docs/QUALITY.md); larger windows round the corners
DEFAULT_RADIUS = 1  # low-res px: a 3x3 window (twice, for a and b) at 256-320 px ~ 25 px at 1280x720
DEFAULT_EPS = 1e-3  # on 0..1 intensities: contrast below ~0.03 is treated as flat, not as an edge


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def gray01(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [H, W] float32 0..1 luma."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1.0 / 255.0)


def coefficients(
    guide: np.ndarray, p: np.ndarray, radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS
) -> tuple[np.ndarray, np.ndarray]:
    """guide [h, w] float32 0..1, p [h, w] float32 -> smoothed (a, b), each [h, w] float32."""
    mean_i = _box(guide, radius)
    mean_p = _box(p, radius)
    cov_ip = _box(guide * p, radius) - mean_i * mean_p
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    return _box(a, radius), _box(b, radius)


class Scratch:
    """Full-resolution work buffers kept from frame to frame: a fresh 720p float array costs a page fault
    per 4 KiB on first touch, which doubled this step's time when allocated anew every frame."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        buf = self._bufs.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._bufs[name] = np.empty(shape, dtype)
        return buf


def apply(a: np.ndarray, b: np.ndarray, rgb: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """a, b [h, w] float32; rgb [H, W, 3] uint8 -> alpha [H, W] float32 clipped to 0..1 (a new array)."""
    height, width = rgb.shape[:2]
    scratch = scratch or Scratch()
    a_up = scratch.get("a", (height, width), np.float32)
    b_up = scratch.get("b", (height, width), np.float32)
    gray = scratch.get("gray", (height, width), np.uint8)
    # fold the /255 of the full-res guide into a: one float conversion less at full resolution
    cv2.resize(a * np.float32(1.0 / 255.0), (width, height), dst=a_up, interpolation=cv2.INTER_LINEAR)
    cv2.resize(b, (width, height), dst=b_up, interpolation=cv2.INTER_LINEAR)
    cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY, dst=gray)
    alpha = cv2.multiply(a_up, gray, dtype=cv2.CV_32F)
    cv2.add(alpha, b_up, dst=alpha)
    return np.clip(alpha, 0.0, 1.0, out=alpha)


def guided_upsample(
    rgb: np.ndarray,
    small_rgb: np.ndarray,
    p: np.ndarray,
    radius: int = DEFAULT_RADIUS,
    eps: float = DEFAULT_EPS,
    scratch: Scratch | None = None,
) -> np.ndarray:
    """Upsample the low-res matte `p` ([h, w] float32 0..1, on the grid of `small_rgb` [h, w, 3] uint8,
    which may be stretched: only the grid matters) to the size of `rgb` [H, W, 3] uint8 -> [H, W] float32."""
    if p.shape != small_rgb.shape[:2]:
        raise ValueError(f"matte {p.shape} and low-res guide {small_rgb.shape[:2]} differ in size")
    a, b = coefficients(gray01(small_rgb), p.astype(np.float32, copy=False), radius, eps)
    return apply(a, b, rgb, scratch)


def bilinear_upsample(p: np.ndarray, width: int, height: int) -> np.ndarray:
    """The plain alternative: [h, w] float32 -> [height, width] float32 clipped to 0..1."""
    up = cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(up, 0.0, 1.0, out=up)
