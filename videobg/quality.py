"""Matte quality against binary per-frame ground-truth masks (DAVIS layout). Pure numpy/OpenCV, no models.

Per clip, with alpha a_t in 0..1 ([H, W] float32) and GT mask g_t in {0, 1} ([H, W], from a 0/255 PNG > 127):

- J (region similarity, DAVIS): mean over frames of |P & G| / |P | G| with P = a_t > 0.5, G = g_t;
  a frame where both are empty scores 1.
- F (boundary F-measure, DAVIS): 1-px boundaries of P and G (seg2bmap: a pixel whose right, lower or
  lower-right neighbour differs), matched within r = ceil(0.008 * image diagonal) px by dilating
  the other boundary with a disc of radius r; precision = matched P-boundary / P-boundary, recall =
  matched G-boundary / G-boundary, F = 2PR / (P + R); mean over frames. Both boundaries empty scores 1,
  exactly one empty scores 0.
- flicker: 1e3 * mean over t >= 1 of mean(|a_t - a_{t-1}|) over the pixels where g_t == g_{t-1}
  (where the truth did not move, any change of the matte is flicker). Frames with no such pixel are skipped.
- dtSSD (temporal gradient error, as in RobustVideoMatting's evaluation code):
  1e2 * mean over t >= 1 of sqrt(mean over pixels of ((a_t - a_{t-1}) - (g_t - g_{t-1}))^2).
  The GT here is binary, so a soft but steady edge scores 0 while an edge that moves differently from the
  truth is penalised; compare models with each other, not with papers that score against true alpha.

J and F are per-frame; flicker and dtSSD need the previous frame, so a clip of one frame has none (nan).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

ALPHA_THRESHOLD = 0.5  # alpha > this is foreground for J and F
MASK_THRESHOLD = 127  # 8-bit GT mask value > this is foreground
BOUNDARY_FRACTION = 0.008  # DAVIS: boundary tolerance as a fraction of the image diagonal

DTSSD_FORMULA = "dtSSD = 1e2 * mean_t sqrt(mean_px(((a_t - a_t-1) - (g_t - g_t-1))^2))"
FLICKER_FORMULA = "flicker = 1e3 * mean_t mean_px{g_t == g_t-1} |a_t - a_t-1|"


def mask_from_u8(mask: np.ndarray) -> np.ndarray:
    """[H, W] (or [H, W, C]) uint8 GT mask 0/255 -> [H, W] bool."""
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return mask > MASK_THRESHOLD


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two [H, W] bool masks; 1.0 when both are empty."""
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """[H, W] bool -> [H, W] bool 1-px boundary (DAVIS seg2bmap at the mask's own size).

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour; the
    image border itself is not a boundary (a mask touching the frame edge has no edge there).
    """
    m = mask.astype(bool)
    east = np.zeros_like(m)
    south = np.zeros_like(m)
    south_east = np.zeros_like(m)
    east[:, :-1] = m[:, 1:]
    south[:-1, :] = m[1:, :]
    south_east[:-1, :-1] = m[1:, 1:]
    b = (m ^ east) | (m ^ south) | (m ^ south_east)
    b[-1, :] = m[-1, :] ^ east[-1, :]
    b[:, -1] = m[:, -1] ^ south[:, -1]
    b[-1, -1] = False
    return b


def boundary_tolerance(height: int, width: int, fraction: float = BOUNDARY_FRACTION) -> int:
    """Match radius in px: ceil(fraction * diagonal), as DAVIS's db_eval_boundary; 8 px at 854x480."""
    return max(1, math.ceil(fraction * math.hypot(height, width)))


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (xx * xx + yy * yy <= radius * radius).astype(np.uint8)


def boundary_prf(
    pred: np.ndarray, gt: np.ndarray, tolerance: int | None = None
) -> tuple[float, float, float]:
    """(precision, recall, F) of the boundaries of two [H, W] bool masks matched within `tolerance` px."""
    if tolerance is None:
        tolerance = boundary_tolerance(*gt.shape[:2])
    pb, gb = boundary_map(pred), boundary_map(gt)
    n_p, n_g = np.count_nonzero(pb), np.count_nonzero(gb)
    if n_p == 0 and n_g == 0:
        return 1.0, 1.0, 1.0
    if n_p == 0 or n_g == 0:
        return (1.0, 0.0, 0.0) if n_p == 0 else (0.0, 1.0, 0.0)
    disk = _disk(tolerance)
    g_near = cv2.dilate(gb.view(np.uint8), disk) > 0
    p_near = cv2.dilate(pb.view(np.uint8), disk) > 0
    precision = np.count_nonzero(pb & g_near) / n_p
    recall = np.count_nonzero(gb & p_near) / n_g
    if precision + recall == 0:
        return precision, recall, 0.0
    return precision, recall, 2 * precision * recall / (precision + recall)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: int | None = None) -> float:
    return boundary_prf(pred, gt, tolerance)[2]


def flicker(alpha: np.ndarray, prev_alpha: np.ndarray, gt: np.ndarray, prev_gt: np.ndarray) -> float | None:
    """1e3 * mean |a_t - a_{t-1}| over the pixels whose GT did not change; None if every pixel changed."""
    stable = gt == prev_gt
    if not stable.any():
        return None
    return float(np.abs(alpha[stable] - prev_alpha[stable]).mean()) * 1e3


def dtssd(alpha: np.ndarray, prev_alpha: np.ndarray, gt: np.ndarray, prev_gt: np.ndarray) -> float:
    """1e2 * sqrt(mean over pixels of ((a_t - a_{t-1}) - (g_t - g_{t-1}))^2); all inputs on a 0..1 scale."""
    d = (alpha - prev_alpha) - (gt.astype(np.float32) - prev_gt.astype(np.float32))
    return math.sqrt(float(np.mean(d * d, dtype=np.float64))) * 1e2


@dataclass
class ClipScore:
    frames: int
    j: float
    f: float
    flicker: float  # nan for a one-frame clip
    dtssd: float  # nan for a one-frame clip


@dataclass
class ClipScorer:
    """Streams one clip's frames in order: `add(alpha, gt)` per frame, then `result()`. Holds one frame back."""

    tolerance: int | None = None
    _j: list[float] = field(default_factory=list, init=False)
    _f: list[float] = field(default_factory=list, init=False)
    _flicker: list[float] = field(default_factory=list, init=False)
    _dtssd: list[float] = field(default_factory=list, init=False)
    _prev: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False)

    def add(self, alpha: np.ndarray, gt: np.ndarray) -> None:
        """alpha: [H, W] float 0..1; gt: [H, W] bool (or uint8 0/255, thresholded at 127)."""
        if gt.dtype != bool:
            gt = mask_from_u8(gt)
        if alpha.shape != gt.shape:
            raise ValueError(f"alpha {alpha.shape} and mask {gt.shape} differ in size")
        alpha = alpha.astype(np.float32, copy=False)
        pred = alpha > ALPHA_THRESHOLD
        self._j.append(jaccard(pred, gt))
        self._f.append(boundary_f(pred, gt, self.tolerance))
        if self._prev is not None:
            prev_alpha, prev_gt = self._prev
            fl = flicker(alpha, prev_alpha, gt, prev_gt)
            if fl is not None:
                self._flicker.append(fl)
            self._dtssd.append(dtssd(alpha, prev_alpha, gt, prev_gt))
        self._prev = (alpha, gt)

    def result(self) -> ClipScore:
        def mean(xs: list[float]) -> float:
            return float(np.mean(xs)) if xs else float("nan")

        return ClipScore(len(self._j), mean(self._j), mean(self._f), mean(self._flicker), mean(self._dtssd))
