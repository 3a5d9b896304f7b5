"""Blur-fusion foreground estimation: removes the old background's colour from soft edges."""

import cv2
import numpy as np
import pytest

from videobg.matte.refine import estimate_foreground, estimate_foreground_reference, radii_for

pytestmark = pytest.mark.unit

# both implementations of the windows' arithmetic: the compiled kernel (numba) and the OpenCV calls
BOTH = pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "opencv"])


def _scene(h=240, w=320, fg=(220, 40, 40), bg=(20, 60, 230)):
    """A red disc with a soft edge over blue: I = a*F + (1-a)*B, with the true F known."""
    a = np.zeros((h, w), np.float32)
    cv2.circle(a, (w // 2, h // 2), h // 3, 1.0, -1)
    a = cv2.GaussianBlur(a, (0, 0), 3)
    F = np.empty((h, w, 3), np.float32)
    F[:] = fg
    B = np.empty((h, w, 3), np.float32)
    B[:] = bg
    img = (a[..., None] * F + (1 - a[..., None]) * B).round().astype(np.uint8)
    return img, a, np.array(fg, np.float32), np.array(bg, np.float32)


@BOTH
def test_soft_edge_loses_background_colour(compiled):
    img, a, fg, bg = _scene()
    est = estimate_foreground(img, cv2.convertScaleAbs(a, alpha=255), compiled=compiled).astype(np.float32)
    band = (a > 0.1) & (a < 0.9)
    w = a[..., None]  # a composite shows a*F: weight the colour error by alpha
    # The raw image in the band is a blue/red mix; the estimate must be much closer to pure red.
    raw_err = (np.abs(img.astype(np.float32) - fg) * w)[band].mean()
    est_err = (np.abs(est - fg) * w)[band].mean()
    assert raw_err > 20
    assert est_err < raw_err / 2.5, (raw_err, est_err)


@BOTH
def test_opaque_pixels_unchanged_and_shape_dtype(compiled):
    img, a, _, _ = _scene()
    a8 = cv2.convertScaleAbs(a, alpha=255)
    est = estimate_foreground(img, a8, compiled=compiled)
    assert est.shape == img.shape and est.dtype == np.uint8
    assert np.array_equal(est[a8 == 255], img[a8 == 255])


@BOTH
def test_tiled_coarse_version_matches_full_reference(compiled):
    img, a, _, _ = _scene(360, 640)
    a8 = cv2.convertScaleAbs(a, alpha=255)
    fast = estimate_foreground(img, a8, compiled=compiled).astype(np.float32) / 255
    ref = estimate_foreground_reference(img, a8.astype(np.float32) / 255, radii_for(360, 640))
    band = (a8 > 0) & (a8 < 255)
    w = (a8.astype(np.float32) / 255)[..., None]
    # what shows in a composite is a*F: the shortcut may move it by a couple of 8-bit levels at most
    assert (np.abs(fast - ref) * w)[band].max() * 255 < 3.0


def _previous_tiled(rgb, alpha, tile=64, coarse_scale=4):
    """The tile loop as it was before its arithmetic was regrouped into cv2 calls (2026-12-04): the
    fast version must give the same foreground to within one 8-bit level."""
    from videobg.matte.refine import _band_rects, _correct, _means, _upsample_window, shrink

    h, w = alpha.shape
    out = rgb.copy()
    rects = _band_rects(alpha, tile)
    r1, r2 = radii_for(h, w)
    k = max(1, min(coarse_scale, r1 // 8))
    small_img = shrink(rgb, k).astype(np.float32) / 255  # the coarse input as the fast version makes it
    small_a = shrink(alpha, k).astype(np.float32) / 255
    f_small, b_small = _means(small_img, small_img, cv2.merge([small_a] * 3), max(3, r1 // k))
    halo = r2 // 2 + 2
    for y0, y1, x0, x1 in rects:
        ya, yb, xa, xb = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
        img = rgb[ya:yb, xa:xb].astype(np.float32) / 255
        a3 = cv2.merge([alpha[ya:yb, xa:xb].astype(np.float32) / 255] * 3)
        f_hat = _upsample_window(f_small, (h, w), (ya, yb, xa, xb))
        b1 = _upsample_window(b_small, (h, w), (ya, yb, xa, xb))
        f1 = _correct(img, a3, f_hat, b1)
        f2 = _correct(img, a3, *_means(f1, b1, a3, r2))
        inner = f2[y0 - ya : y1 - ya, x0 - xa : x1 - xa]
        out[y0:y1, x0:x1] = cv2.convertScaleAbs(inner, alpha=255.0)
    return out


@pytest.mark.parametrize(
    ("h", "w", "k"), [(720, 1280, 4), (1080, 1920, 4), (360, 640, 2), (361, 643, 4), (720, 1280, 3)]
)
def test_shrink_is_the_block_mean_within_a_level(h, w, k):
    from videobg.matte.refine import shrink

    rng = np.random.default_rng(k)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1)
    got = shrink(img, k)
    want = cv2.resize(img, (w // k, h // k), interpolation=cv2.INTER_AREA)  # one step
    assert got.shape == want.shape and got.dtype == np.uint8
    assert np.abs(got.astype(np.int16) - want).max() <= 1
    if h % k == 0 and w % k == 0:  # the exact block means, rounded
        exact = img.reshape(h // k, k, w // k, k, 3).astype(np.float64).mean(axis=(1, 3))
        assert np.abs(got - exact).max() <= 1.0
    one = shrink(img[..., 0].copy(), k)  # one channel (the alpha) too
    assert one.shape == (h // k, w // k)


def _textured_scene(h, w, seed):
    """A noisy image and an alpha with hard regions, soft edges and scattered fractional specks."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    img = cv2.addWeighted(img, 0.7, rng.integers(0, 256, (h, w, 3), dtype=np.uint8), 0.3, 0)
    a = np.zeros((h, w), np.float32)
    cv2.ellipse(a, (w // 2, h // 2), (w // 4, h // 3), 20, 0, 360, 1.0, -1)
    a[: h // 5, : w // 6] = 1.0  # a hard corner touching the frame's edges
    a = cv2.GaussianBlur(a, (0, 0), 4)
    specks = rng.random((h, w)) < 0.002
    a[specks] = rng.random(int(specks.sum()))
    return img, cv2.convertScaleAbs(a, alpha=255)


@BOTH
@pytest.mark.parametrize(("h", "w", "seed"), [(240, 320, 0), (361, 643, 1), (720, 1280, 2)])
def test_regrouped_arithmetic_matches_the_previous_tile_loop(h, w, seed, compiled):
    img, a8 = _textured_scene(h, w, seed)
    got = estimate_foreground(img, a8, compiled=compiled).astype(np.int16)
    want = _previous_tiled(img, a8).astype(np.int16)
    assert np.abs(got - want).max() <= 1
    assert (got != want).mean() < 0.001  # float rounding, on a handful of pixels


@BOTH
@pytest.mark.parametrize(("h", "w", "seed"), [(240, 320, 3), (361, 643, 4), (720, 1280, 5)])
def test_composite_inside_the_tiles_matches_composite_of_the_foreground(h, w, seed, compiled):
    from videobg.composite import composite

    img, a8 = _textured_scene(h, w, seed)
    plate = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = estimate_foreground(img, a8, plate=plate, compiled=compiled)
    want = composite(estimate_foreground(img, a8, compiled=compiled), a8, plate)
    assert got.shape == want.shape and got.dtype == np.uint8
    assert np.array_equal(got, want)  # the same blend on the same foreground, only where it matters
    assert np.array_equal(got[a8 == 255], img[a8 == 255])
    assert np.array_equal(got[a8 == 0], plate[a8 == 0])


def test_composite_without_fractional_alpha_is_a_plain_choice():
    img = np.random.default_rng(6).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    plate = np.full_like(img, 7)
    a8 = np.zeros((64, 80), np.uint8)
    a8[:, 40:] = 255
    got = estimate_foreground(img, a8, plate=plate)
    assert np.array_equal(got[:, 40:], img[:, 40:]) and np.array_equal(got[:, :40], plate[:, :40])
    assert np.array_equal(plate, np.full_like(img, 7))  # the job's plate is not written to


def test_no_fractional_alpha_is_identity():
    img = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    a8 = np.zeros((64, 80), np.uint8)
    a8[:, 40:] = 255
    assert np.array_equal(estimate_foreground(img, a8), img)


@pytest.mark.parametrize(
    ("h", "w", "seed"),
    [(720, 1280, 7), (1080, 1920, 8), (361, 643, 9), (97, 131, 10), (9, 400, 11), (300, 5, 12), (1, 1, 13)],
)
def test_kernel_matches_the_opencv_calls(h, w, seed):
    """The compiled kernel and the OpenCV calls do the same arithmetic: the same pixels to within one
    8-bit level (float rounding, on a few), with and without a plate, also where windows meet the frame's
    edges and on frames smaller than a box (reflected borders)."""
    pytest.importorskip("numba")
    img, a8 = _textured_scene(h, w, seed) if min(h, w) >= 16 else _tiny_scene(h, w, seed)
    plate = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    for p in (None, plate):
        got = estimate_foreground(img, a8, plate=p, compiled=True).astype(np.int16)
        want = estimate_foreground(img, a8, plate=p, compiled=False).astype(np.int16)
        assert got.shape == want.shape == (h, w, 3)
        assert np.abs(got - want).max() <= 1
        assert (got != want).mean() < 0.001


def _tiny_scene(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w), dtype=np.uint8)


def test_kernel_is_used_and_falls_back_without_numba(monkeypatch):
    """With numba the windows go through the kernel in one call; without it (the import fails) the
    OpenCV calls serve, with the same pixels to within a level."""
    pytest.importorskip("numba")
    from videobg.matte import refine

    img, a8 = _textured_scene(240, 320, 14)
    calls = []
    kernel = refine.compiled_kernel()
    assert kernel is not None
    original = kernel.refine_windows

    def counted(*args):
        calls.append(len(args[4]))  # the rects
        original(*args)

    monkeypatch.setattr(kernel, "refine_windows", counted)
    estimate_foreground(img, a8)
    assert len(calls) == 1 and calls[0] > 1  # every window of the frame in one call
    monkeypatch.undo()
    monkeypatch.setattr(refine, "_kernel_state", [None])  # as where `import numba` failed
    assert refine.compiled_kernel() is None and refine.warm_kernel() is False
    without = estimate_foreground(img, a8).astype(np.int16)
    monkeypatch.undo()
    assert refine.warm_kernel() is True
    with_kernel = estimate_foreground(img, a8).astype(np.int16)
    assert np.abs(without - with_kernel).max() <= 1


@pytest.mark.parametrize(("h", "w", "k"), [(720, 1280, 4), (721, 1283, 4), (100, 67, 3)])
def test_window_upsampling_matches_a_full_resize(h, w, k):
    """Pass 1's means are upsampled only inside each band; the values must be the full resize's."""
    from videobg.matte.refine import _upsample_window

    small = np.random.default_rng(1).random((h // k, w // k, 3), dtype=np.float32)
    full = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    for y0, y1, x0, x1 in [(0, h, 0, w), (10, 70, 3, 50), (h - 30, h, w - 40, w)]:
        got = _upsample_window(small, (h, w), (y0, y1, x0, x1))
        assert got.shape == (y1 - y0, x1 - x0, 3)
        np.testing.assert_allclose(got, full[y0:y1, x0:x1], atol=1e-4)


def test_auto_torch_threads_leave_a_core_for_the_other_stages(monkeypatch):
    from videobg import settings as core_settings

    monkeypatch.setattr(core_settings, "usable_cpus", lambda: 2)
    assert core_settings.CoreSettings(torch_threads=0).resolved_threads() == 1
    assert core_settings.CoreSettings(torch_threads=3).resolved_threads() == 3
    monkeypatch.setattr(core_settings, "usable_cpus", lambda: 1)
    assert core_settings.CoreSettings().resolved_threads() == 1


def test_batch_size_auto_is_one_on_cpu_and_eight_on_a_gpu():
    from videobg.settings import CoreSettings

    assert CoreSettings().resolved_batch("cpu") == 1
    assert CoreSettings().resolved_batch("cuda") == 8
    assert CoreSettings().resolved_batch("cuda:1") == 8
    assert CoreSettings(batch_frames=3).resolved_batch("cpu") == 3
    with pytest.raises(ValueError):
        CoreSettings(batch_frames=-1).resolved_batch("cpu")


def test_batched_keeps_order_and_the_short_tail():
    from videobg.overlap import batched

    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 4)) == []
    assert list(batched(range(2), 1)) == [[0], [1]]
    with pytest.raises(ValueError):
        list(batched(range(3), 0))
