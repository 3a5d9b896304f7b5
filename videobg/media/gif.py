"""GIF colour quantisation: RGB(A) frames -> pal8 for the GIF encoder (videobg/media/encode.py).

One palette of 256 colours (255 + a transparent index when `transparent`) from k-means on a grid
of pixels sampled from the first frame, kept while it fits (a stable palette does not flicker and lets
the GIF encoder send only changed pixels), refitted when a frame's quantisation error grows well past
what it was at fit time (a scene change; the new palette goes in as a local colour table). Index 255 is
transparent when `transparent` (alpha < 128 -> transparent; GIF alpha is one bit). No dithering.
Delays come (the writer places them) from the timestamps in 1/100 s; a frame less than 2/100 s after the previous one is
dropped, because browsers play shorter GIF delays as 1/10 s.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)


class GifQuantizer:
    """RGB(A) -> pal8 for GIF: one k-means palette kept while it fits (see the module docstring).

    Pixels map to the palette through a lookup table on 6 bits per channel, filled lazily for the cells
    that frames actually use (a frame touches a few thousand of the 262,144 cells).
    """

    _SAMPLES = 16384  # pixels sampled on a grid to fit a palette
    _CHECK_EVERY = 4  # every 4th of those measures how well the palette still fits
    _REFIT_RATIO = 2.0  # refit when mean squared error > ratio * error at fit time + _REFIT_SLACK
    _REFIT_SLACK = 20.0

    def __init__(self, transparent: bool) -> None:
        self.transparent = transparent
        self.colours = 255 if transparent else 256
        self.refits = 0
        self._palette: np.ndarray | None = None  # [K, 3] float32 RGB
        self._argb = np.zeros((256, 4), np.uint8)  # [256, 4] uint8 A, R, G, B as FFmpeg wants it
        self._lut = np.zeros(1 << 18, np.uint8)  # 6-bit cell key -> palette index
        self._known = np.zeros(1 << 18, bool)
        self._fit_error = 0.0

    def quantize(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image: [H, W, 3|4] uint8 -> (indices [H, W] uint8, palette [256, 4] uint8 ARGB)."""
        sample = self._sample(image)  # [N, 3] float32, opaque pixels only
        check = sample[:: self._CHECK_EVERY] if len(sample) > 4 * 1024 else sample
        if self._palette is None or self._fits_badly(check):
            self._fit(sample)
        q = image[..., :3] >> 2
        keys = q[..., 0].astype(np.uint32)  # [H, W] uint32: r6 g6 b6, built in place (fast)
        keys <<= 6
        keys |= q[..., 1]
        keys <<= 6
        keys |= q[..., 2]
        self._fill_lut(keys)
        indices = self._lut[keys]  # [H, W] uint8
        if image.shape[2] == 4:
            indices |= np.negative((image[..., 3] < 128).view(np.uint8))  # transparent: x | 255 = 255
        return indices, self._argb

    def _sample(self, image: np.ndarray) -> np.ndarray:
        h, w, c = image.shape
        share = max(float((image[::8, ::8, 3] >= 128).mean()), 1e-3) if c == 4 else 1.0  # opaque share
        step = max(1, int(np.sqrt(h * w * share / self._SAMPLES)))  # ~_SAMPLES opaque pixels
        grid = image[step // 2 :: step, step // 2 :: step].reshape(-1, c)
        if c == 4:
            grid = grid[grid[:, 3] >= 128]
        return grid[:, :3].astype(np.float32)

    def _fits_badly(self, sample: np.ndarray) -> bool:
        if len(sample) == 0:
            return False
        return _mse(sample, self._nearest(sample)) > self._REFIT_RATIO * self._fit_error + self._REFIT_SLACK

    def _nearest(self, colours: np.ndarray) -> np.ndarray:
        """colours: [N, 3] float32 -> [N, 3] float32, the nearest palette entry of each."""
        assert self._palette is not None
        return self._palette[_argmin_distance(colours, self._palette)]

    def _fit(self, sample: np.ndarray) -> None:
        unique = np.unique(sample, axis=0) if len(sample) else np.zeros((1, 3), np.float32)
        if len(unique) <= self.colours:
            palette = unique
        else:
            criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 8, 0.5)
            _, _, centres = cv2.kmeans(sample, self.colours, None, criteria, 1, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]
            palette = np.asarray(centres)
        self._palette = np.clip(np.rint(palette), 0, 255).astype(np.float32)
        self._fit_error = _mse(sample, self._nearest(sample)) if len(sample) else 0.0
        # Exactly one entry may have alpha 0: FFmpeg's GIF encoder marks no transparency when several do.
        self._argb[:] = 0
        self._argb[:, 0] = 255
        self._argb[: len(palette), 1:] = self._palette.astype(np.uint8)
        if self.transparent:
            self._argb[255] = 0
        self._known[:] = False
        log.debug("GIF palette fitted (%d colours, mse %.1f)", len(palette), self._fit_error)
        self.refits += 1

    def _fill_lut(self, keys: np.ndarray) -> None:
        missing = keys[~self._known[keys]]
        if missing.size == 0:
            return
        todo = np.unique(missing)
        centres = np.stack([todo >> 12, (todo >> 6) & 63, todo & 63], axis=1).astype(np.float32) * 4 + 1.5
        assert self._palette is not None
        self._lut[todo] = _argmin_distance(centres, self._palette)
        self._known[todo] = True


def _argmin_distance(x: np.ndarray, palette: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """x: [N, 3] float32, palette: [K, 3] float32 -> [N] uint8 index of the nearest entry (squared L2)."""
    norms = (palette * palette).sum(axis=1)  # [K]
    out = np.empty(len(x), np.uint8)
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk]
        out[i : i + chunk] = np.argmin(norms[None, :] - 2.0 * part @ palette.T, axis=1)
    return out


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).sum(axis=1).mean())
