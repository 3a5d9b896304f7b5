"""Blur-fusion foreground estimation: removes the old background's colour from soft edges."""

import cv2
import numpy as np
import pytest

from videobg.matte.refine import estimate_foreground, estimate_foreground_reference, radii_for

pytestmark = pytest.mark.unit


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


def test_soft_edge_loses_background_colour():
    img, a, fg, bg = _scene()
    est = estimate_foreground(img, cv2.convertScaleAbs(a, alpha=255)).astype(np.float32)
    band = (a > 0.1) & (a < 0.9)
    w = a[..., None]  # a composite shows a*F: weight the colour error by alpha
    # The raw image in the band is a blue/red mix; the estimate must be much closer to pure red.
    raw_err = (np.abs(img.astype(np.float32) - fg) * w)[band].mean()
    est_err = (np.abs(est - fg) * w)[band].mean()
    assert raw_err > 20
    assert est_err < raw_err / 2.5, (raw_err, est_err)


def test_opaque_pixels_unchanged_and_shape_dtype():
    img, a, _, _ = _scene()
    a8 = cv2.convertScaleAbs(a, alpha=255)
    est = estimate_foreground(img, a8)
    assert est.shape == img.shape and est.dtype == np.uint8
    assert np.array_equal(est[a8 == 255], img[a8 == 255])


def test_tiled_coarse_version_matches_full_reference():
    img, a, _, _ = _scene(360, 640)
    a8 = cv2.convertScaleAbs(a, alpha=255)
    fast = estimate_foreground(img, a8).astype(np.float32) / 255
    ref = estimate_foreground_reference(img, a8.astype(np.float32) / 255, radii_for(360, 640))
    band = (a8 > 0) & (a8 < 255)
    w = (a8.astype(np.float32) / 255)[..., None]
    # what shows in a composite is a*F: the shortcut may move it by a couple of 8-bit levels at most
    assert (np.abs(fast - ref) * w)[band].max() * 255 < 3.0


def test_no_fractional_alpha_is_identity():
    img = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    a8 = np.zeros((64, 80), np.uint8)
    a8[:, 40:] = 255
    assert np.array_equal(estimate_foreground(img, a8), img)


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
