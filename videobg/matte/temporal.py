"""Motion-gated exponential smoothing of a per-frame matte (for models without temporal state).

A per-frame model (`light`, `original`) re-decides every pixel every frame, so where nothing moves its
matte still shimmers (compression noise, threshold-borderline regions). Smoothing everything would smear
moving edges (ghosts). Here the blend weight follows how much the FRAME changed at that place:

    motion = box-blurred |I_t - I_t-1|                       (grey, at the matte's low resolution)
    gate   = clip((motion - still) / (moving - still), 0, 1)  0 where the frame did not change, 1 where it did
    w      = w_still + (1 - w_still) * gate
    out_t  = out_t-1 + w * (raw_t - out_t-1)

So a static region averages over ~1/w_still frames while a moving edge takes the new value at once. The
comparison is against the previous FRAME, not the previous output, so a slow drift cannot hide from the
gate. Runs at the model's own resolution (256-320 px): well under 1 ms per frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from videobg.errors import InvalidInput

DEFAULT_STILL = 0.15  # weight of the new frame where nothing moved: an average over ~7 frames
DEFAULT_LEVELS = (3.0, 20.0)  # grey-level change (0..255) treated as no motion / as full motion


def new_flow() -> cv2.DISOpticalFlow:
    """Dense optical flow for small frames: DIS at its fastest preset, ~1 ms at 320x180 here."""
    return cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)


def flow_to_previous(dis: cv2.DISOpticalFlow, gray: np.ndarray, prev_gray: np.ndarray) -> np.ndarray:
    """[h, w] uint8 x 2 -> [h, w, 2] float32: for each pixel of `gray`, where it was in `prev_gray`."""
    return np.asarray(dis.calc(gray, prev_gray, None))  # type: ignore[call-overload]  # cv2 allocates it


class TemporalSmoother:
    """Stateful per stream: call once per frame, in order; `reset()` at a cut or a size change."""

    def __init__(
        self,
        still_weight: float = DEFAULT_STILL,
        levels: tuple[float, float] = DEFAULT_LEVELS,
        radius: int = 2,
        flow: bool = True,
    ):
        if not 0.0 < still_weight <= 1.0:
            raise InvalidInput(f"temporal still_weight must be in (0, 1], got {still_weight}")
        if not 0.0 <= levels[0] < levels[1]:
            raise InvalidInput(f"temporal levels must be 0 <= still < moving, got {levels}")
        self.still_weight = np.float32(still_weight)
        self.still, self.moving = (np.float32(v) for v in levels)
        self.radius = radius
        self._dis = new_flow() if flow else None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        self._gray: np.ndarray | None = None  # [h, w] uint8
        self._out: np.ndarray | None = None  # [h, w] float32 0..1

    def __call__(self, small_rgb: np.ndarray, p: np.ndarray) -> np.ndarray:
        """small_rgb [h, w, 3] uint8 (the grid of p), p [h, w] float32 0..1 -> smoothed [h, w] float32."""
        gray = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2GRAY)
        prev_gray, prev_out = self._gray, self._out
        self._gray = gray
        if (
            prev_gray is None
            or prev_out is None
            or prev_gray.shape != gray.shape
            or prev_out.shape != p.shape
        ):
            self._out = p.astype(np.float32, copy=True)
            return self._out.copy()
        if self._dis is not None:
            # follow the content (camera pans, moving people): compare with and average the previous
            # frame as it lands on this one; where the flow is wrong the residual stays large and opens the gate
            mx, my = self._maps(gray.shape, flow_to_previous(self._dis, gray, prev_gray))
            prev_gray = cv2.remap(prev_gray, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            prev_out = cv2.remap(prev_out, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        k = 2 * self.radius + 1
        diff = cv2.absdiff(gray, prev_gray).astype(np.float32)
        motion = cv2.blur(diff, (k, k))
        gate = np.clip((motion - self.still) * (1.0 / (self.moving - self.still)), 0.0, 1.0)
        w = self.still_weight + (1.0 - self.still_weight) * gate
        out = prev_out + w * (p - prev_out)
        self._out = out
        return out.copy()

    def _maps(self, shape: tuple[int, int], flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """flow [h, w, 2] (this frame -> previous) -> absolute remap coordinates (mx, my)."""
        if self._grid is None or self._grid[0].shape != shape:
            h, w = shape
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (xs, ys)
        xs, ys = self._grid
        return xs + flow[..., 0], ys + flow[..., 1]
