"""Blur fusion's second pass over every fractional-alpha window of a frame, compiled (numba).

`videobg.matte.refine.estimate_foreground` computes pass 1 at reduced resolution, finds the windows where
alpha is fractional, and hands them here in one call: pass 1's means upsampled (bilinear, as
cv2.resize), pass 1's correction, pass 2's box sums and correction, and the blend over the plate, per
pixel, without the GIL. The OpenCV version of the same arithmetic (`refine._refine_window`) makes ~20
calls a window, each a full pass over a temporary array and a GIL hand-over; this one reads each pixel a
few times and writes it once. `light` 720p, whole jobs alternated with the OpenCV version: 47.9 against
40.3 frames/s (median of 5 pairs; docs/BENCHMARKS.md). The result is within one 8-bit level of the OpenCV
version (tests/unit/test_refine.py), and the blend is OpenCV's `blendLinear` to the bit.

Compiled on first use and cached on disk (numba's cache: next to this file when that is writable, else
under $NUMBA_CACHE_DIR or the user's cache directory): 2.3 s the first time on this machine, then 0.17 s
a process, plus 0.25 s to import numba; so `refine` imports this module only when a frame needs it, and
`warm()` does the compiling ahead of a job's first frame. Without numba the import fails and `refine`
keeps the OpenCV version.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _reflect(i: int, n: int) -> int:
    """cv2.BORDER_REFLECT (fedcba|abcdefgh|hgfedcb) of index i into 0..n-1."""
    if n == 1:
        return 0
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - i - 1
    return i


@numba.njit(cache=True, nogil=True)
def _tap(pos: int, n_full: int, n_small: int) -> tuple[int, int, np.float32]:
    """cv2.resize INTER_LINEAR from n_small to n_full along one axis (half-pixel centres, edges clamped):
    the two source indices and the second one's weight for full-resolution position `pos`."""
    g = (pos + 0.5) * (n_small / n_full) - 0.5
    i0 = int(np.floor(g))
    t = np.float32(g - i0)
    if i0 < 0:
        i0, t = 0, np.float32(0.0)
    if i0 >= n_small - 1:
        i0, t = n_small - 1, np.float32(0.0)
    return i0, min(i0 + 1, n_small - 1), t


@numba.njit(cache=True, nogil=True)
def _blend(fg: np.float32, plate: np.uint8, a: np.float32) -> np.uint8:
    """cv2.blendLinear(fg, plate, a, 1 - a) for one value, to the bit: kept out of the fastmath
    kernel, whose reassociation could move a rounding."""
    w2 = np.float32(1.0) - a
    v = (fg * a + np.float32(plate) * w2) / (a + w2 + np.float32(1e-5))
    return np.uint8(min(max(np.rint(v), np.float32(0.0)), np.float32(255.0)))


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _refine_windows(rgb, alpha, f_small, b_small, rects, r, halo, plate, with_plate, out):  # type: ignore[no-untyped-def]
    """rgb [H, W, 3] uint8, alpha [H, W] uint8, f_small / b_small [h, w, 3] float32 (pass 1's means),
    rects [N, 4] int64 (y0, y1, x0, x1), r pass 2's box size, halo the window's margin around a rect,
    plate [H, W, 3] uint8 (any [., ., 3] when not `with_plate`), out [H, W, 3] uint8: each rect's pixels
    written, the foreground or with `with_plate` its composite over the plate."""
    height, width = alpha.shape
    sh, sw = f_small.shape[0], f_small.shape[1]
    lo = r // 2  # cv2.blur's box of size r spans -lo .. r-1-lo
    unit = np.float32(1.0 / 255.0)
    eps = np.float32(1e-5)
    one, zero = np.float32(1.0), np.float32(0.0)
    norm = np.float32(1.0 / (r * r))
    for n in range(rects.shape[0]):
        y0, y1, x0, x1 = rects[n, 0], rects[n, 1], rects[n, 2], rects[n, 3]
        # the window: the rect and its halo, clipped to the frame; box sums reflect at its edges
        ya, yb = max(0, y0 - halo), min(height, y1 + halo)
        xa, xb = max(0, x0 - halo), min(width, x1 + halo)
        ny, nx = y1 - y0, x1 - x0
        py, px = ny + r - 1, nx + r - 1  # rows / columns the rect's box sums read
        ys = np.empty(py, np.int64)
        for j in range(py):
            ys[j] = ya + _reflect(y0 - ya - lo + j, yb - ya)
        xs = np.empty(px, np.int64)
        for i in range(px):
            xs[i] = xa + _reflect(x0 - xa - lo + i, xb - xa)
        # bilinear taps of pass 1's means along x (half-pixel centres, edges clamped)
        tx0 = np.empty(px, np.int64)
        tx1 = np.empty(px, np.int64)
        txw = np.empty(px, np.float32)
        for i in range(px):
            tx0[i], tx1[i], txw[i] = _tap(xs[i], width, sw)
        # small rows interpolated along x once each (separable), on first need
        rows_f = np.empty((sh, px, 3), np.float32)
        rows_b = np.empty((sh, px, 3), np.float32)
        have = np.zeros(sh, np.bool_)
        # per padded pixel: a, f1 * a (3), b1 * (1 - a) (3)  -> [7, py, px]
        v = np.empty((7, py, px), np.float32)
        for j in range(py):
            y = ys[j]
            s0, s1, ty = _tap(y, height, sh)
            for s in (s0, s1):
                if not have[s]:
                    for i in range(px):
                        w1 = txw[i]
                        w0 = one - w1
                        for c in range(3):
                            rows_f[s, i, c] = w0 * f_small[s, tx0[i], c] + w1 * f_small[s, tx1[i], c]
                            rows_b[s, i, c] = w0 * b_small[s, tx0[i], c] + w1 * b_small[s, tx1[i], c]
                    have[s] = True
            wy = one - ty
            for i in range(px):
                x = xs[i]
                a = alpha[y, x] * unit
                v[0, j, i] = a
                for c in range(3):
                    fh = wy * rows_f[s0, i, c] + ty * rows_f[s1, i, c]
                    bh = wy * rows_b[s0, i, c] + ty * rows_b[s1, i, c]
                    # pass 1's correction F = F_hat + a (I - a F_hat - (1 - a) B_hat), clipped
                    f1 = fh + a * ((rgb[y, x, c] * unit - bh) - a * (fh - bh))
                    f1 = min(max(f1, zero), one)
                    v[1 + c, j, i] = f1 * a
                    v[4 + c, j, i] = bh - bh * a
        # pass 2's box sums: along x, then along y
        hsum = np.zeros((7, py, nx), np.float32)
        for k in range(7):
            for j in range(py):
                for d in range(r):
                    for i in range(nx):
                        hsum[k, j, i] += v[k, j, i + d]
        box = np.zeros((7, ny, nx), np.float32)
        for k in range(7):
            for j in range(ny):
                for d in range(r):
                    for i in range(nx):
                        box[k, j, i] += hsum[k, j + d, i]
        # pass 2's correction with its local means, then the 8-bit foreground or its composite
        for j in range(ny):
            y = y0 + j
            for i in range(nx):
                x = x0 + i
                ba = box[0, j, i] * norm
                inv_f = norm / (ba + eps)
                inv_b = norm / ((one - ba) + eps)
                a = alpha[y, x] * unit
                for c in range(3):
                    fh = box[1 + c, j, i] * inv_f
                    bh = box[4 + c, j, i] * inv_b
                    f2 = fh + a * ((rgb[y, x, c] * unit - bh) - a * (fh - bh))
                    q = min(np.rint(max(f2, zero) * np.float32(255.0)), np.float32(255.0))
                    out[y, x, c] = _blend(q, plate[y, x, c], a) if with_plate else np.uint8(q)


_NO_PLATE = np.zeros((1, 1, 3), np.uint8)


def refine_windows(
    rgb: np.ndarray,
    alpha: np.ndarray,
    f_small: np.ndarray,
    b_small: np.ndarray,
    rects: list[tuple[int, int, int, int]],
    r: int,
    halo: int,
    plate: np.ndarray | None,
    out: np.ndarray,
) -> None:
    """Writes the refined foreground (or, with `plate`, its composite) of every rect into `out`.
    rgb [H, W, 3] uint8, alpha [H, W] uint8, f_small / b_small [h, w, 3] float32, rects (y0, y1, x0, x1),
    plate [H, W, 3] uint8 or None, out [H, W, 3] uint8 (C-contiguous)."""
    _refine_windows(
        np.ascontiguousarray(rgb),
        np.ascontiguousarray(alpha),
        np.ascontiguousarray(f_small, dtype=np.float32),
        np.ascontiguousarray(b_small, dtype=np.float32),
        np.asarray(rects, np.int64).reshape(-1, 4),
        int(r),
        int(halo),
        _NO_PLATE if plate is None else np.ascontiguousarray(plate),
        plate is not None,
        out,
    )


def warm() -> None:
    """Compile (or load from the cache) the kernel now, on a tiny frame, instead of at a job's first
    frame."""
    rgb = np.zeros((16, 16, 3), np.uint8)
    alpha = np.full((16, 16), 128, np.uint8)
    small = np.zeros((4, 4, 3), np.float32)
    out = rgb.copy()
    refine_windows(rgb, alpha, small, small, [(0, 16, 0, 16)], 3, 3, rgb, out)
    refine_windows(rgb, alpha, small, small, [(0, 16, 0, 16)], 3, 3, None, out)
