"""Matte quality metrics (videobg/quality.py) on synthetic masks with known answers, and bench/quality.py's
clip discovery and scoring path on a tiny DAVIS-layout folder, with the GT itself as the "model"."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from videobg.quality import (
    ClipScorer,
    boundary_f,
    boundary_map,
    boundary_prf,
    boundary_tolerance,
    dtssd,
    flicker,
    jaccard,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def square(h=60, w=80, top=20, left=20, side=20) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[top : top + side, left : left + side] = True
    return m


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench" / "quality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_quality"] = mod  # dataclasses look the module up by name
    spec.loader.exec_module(mod)
    return mod


# --- per-frame metrics -------------------------------------------------------------------------------


def test_identical_masks_score_perfect():
    g = square()
    assert jaccard(g, g) == 1.0
    assert boundary_f(g, g) == 1.0
    a = g.astype(np.float32)
    assert flicker(a, a, g, g) == 0.0
    assert dtssd(a, a, g, g) == 0.0


def test_shifted_square_jaccard_by_hand():
    # 20x20 squares 5 px apart: overlap 15*20 = 300, union 2*400 - 300 = 500
    assert jaccard(square(left=25), square(left=20)) == pytest.approx(300 / 500)
    assert jaccard(square(left=50), square(left=20)) == 0.0


def test_empty_frames():
    e = np.zeros((30, 40), bool)
    assert jaccard(e, e) == 1.0
    assert boundary_f(e, e) == 1.0
    assert jaccard(e, square(30, 40, 5, 5, 10)) == 0.0
    assert boundary_f(e, square(30, 40, 5, 5, 10)) == 0.0
    assert boundary_prf(square(30, 40, 5, 5, 10), e)[:2] == (0.0, 1.0)


def test_boundary_is_one_pixel_wide():
    b = boundary_map(square(side=20))
    assert 4 * 20 - 4 <= np.count_nonzero(b) <= 4 * 20 + 4
    assert not b[25:35, 25:35].any()  # nothing inside
    assert not boundary_map(np.ones((10, 10), bool)).any()  # the frame border is not an edge


def test_boundary_tolerance():
    assert boundary_tolerance(480, 854) == 8  # DAVIS 480p
    assert boundary_tolerance(10, 10) == 1  # never below 1 px
    assert boundary_tolerance(100, 100) == 2  # DAVIS rounds up: ceil(1.13), not round
    p, g = square(left=21), square(left=20)
    assert boundary_f(p, g, tolerance=0) < 0.9  # exact matching sees the shift
    assert boundary_f(p, g, tolerance=1) == 1.0
    assert boundary_f(p, g, tolerance=3) == 1.0
    assert boundary_f(square(left=26), g, tolerance=1) < 0.9  # 6 px is beyond 1 px
    assert boundary_f(square(left=26), g, tolerance=6) == 1.0


def test_flicker_ignores_pixels_where_the_truth_moved():
    g0, g1 = square(left=20), square(left=24)
    a0, a1 = g0.astype(np.float32), g1.astype(np.float32)
    assert flicker(a1, a0, g1, g0) == 0.0  # the matte followed the truth
    assert dtssd(a1, a0, g1, g0) == 0.0
    # a matte that stands still while the truth moves: no flicker, but a temporal-gradient error
    assert flicker(a0, a0, g1, g0) == 0.0
    assert dtssd(a0, a0, g1, g0) == pytest.approx(1e2 * np.sqrt(2 * 4 * 20 / g0.size))


# --- streaming clip scorer ----------------------------------------------------------------------------


def test_one_frame_flip_raises_flicker_and_dtssd_by_hand():
    g = square(40, 40, 10, 10, 20)
    steady, flipped = ClipScorer(), ClipScorer()
    for t in range(10):
        a = g.astype(np.float32)
        steady.add(a, g)
        if t == 5:
            a = a.copy()
            a[0:10, 0:10] = 1.0 - a[0:10, 0:10]  # 100 of 1600 px flip for one frame
        flipped.add(a, g)
    s, f = steady.result(), flipped.result()
    assert (s.j, s.f, s.flicker, s.dtssd) == (1.0, 1.0, 0.0, 0.0)
    # the flip shows in two of the nine frame pairs (on and off), each a mean change of 100/1600
    assert f.flicker == pytest.approx(1e3 * 2 * (100 / 1600) / 9)
    assert f.dtssd == pytest.approx(1e2 * 2 * np.sqrt(100 / 1600) / 9)
    assert f.j == pytest.approx((9 + 400 / 500) / 10)
    assert f.frames == 10


def test_scorer_accepts_u8_masks_and_soft_alpha():
    g = square()
    sc = ClipScorer()
    sc.add(np.where(g, 0.6, 0.4).astype(np.float32), g.astype(np.uint8) * 255)
    r = sc.result()
    assert (r.j, r.f) == (1.0, 1.0)
    assert np.isnan(r.flicker) and np.isnan(r.dtssd)  # one frame has no temporal pair
    with pytest.raises(ValueError):
        sc.add(np.zeros((10, 10), np.float32), g)


# --- bench/quality.py on a tiny DAVIS-layout folder ----------------------------------------------------


def write_clip(root: Path, name: str, n: int = 4, h: int = 48, w: int = 64) -> list[np.ndarray]:
    (root / name / "frames").mkdir(parents=True)
    (root / name / "masks").mkdir(parents=True)
    masks = []
    for t in range(n):
        m = square(h, w, 10, 8 + 4 * t, 16).astype(np.uint8) * 255  # moves right 4 px a frame
        bgr = np.zeros((h, w, 3), np.uint8)
        bgr[..., 2] = 200  # red in OpenCV's BGR order
        bgr[m > 0] = (255, 255, 255)
        cv2.imwrite(str(root / name / "frames" / f"{t:05d}.jpg"), bgr)
        cv2.imwrite(str(root / name / "masks" / f"{t:05d}.png"), m)
        masks.append(m)
    return masks


def test_clip_discovery(tmp_path):
    bench = load_bench()
    write_clip(tmp_path, "b-clip")
    write_clip(tmp_path, "a-clip")
    (tmp_path / "not-a-clip" / "frames").mkdir(parents=True)
    assert [c.name for c in bench.find_clips(tmp_path)] == ["a-clip", "b-clip"]
    assert bench.find_clips(tmp_path / "a-clip") == [tmp_path / "a-clip"]
    with pytest.raises(SystemExit):
        bench.find_clips(tmp_path / "not-a-clip")
    assert len(bench.frame_mask_pairs(tmp_path / "a-clip", max_frames=3)) == 3
    rgb, gt = bench.read_pair(*bench.frame_mask_pairs(tmp_path / "a-clip")[0])
    assert rgb[0, 0, 0] > 150 and rgb[0, 0, 2] < 50  # BGR on disk -> RGB in memory
    assert gt.shape == rgb.shape[:2]


def test_score_clip_with_the_truth_as_model(tmp_path):
    bench = load_bench()
    masks = write_clip(tmp_path, "clip", n=5)
    oracle = iter(masks)  # frames arrive in order, so the n-th call gets the n-th mask

    def predict(rgb):
        return next(oracle).astype(np.float32) / 255.0

    # a post variant that blanks the matte, scored side by side with the raw one
    posts = {"none": bench.POSTS["none"], "blank": lambda: lambda rgb, a: np.zeros_like(a)}
    rows = bench.score_clip(tmp_path / "clip", predict, model="oracle", posts=posts)
    raw, blank = rows
    assert (raw.post, raw.score.frames) == ("none", 5)
    assert (raw.score.j, raw.score.f, raw.score.flicker, raw.score.dtssd) == (1.0, 1.0, 0.0, 0.0)
    assert blank.score.j == 0.0 and blank.score.dtssd > 0
    assert raw.timed_frames == 4 and raw.fps > 0

    text = bench.report(rows, ["clip"], [])
    assert "| clip | oracle | blank | 5 | 0.000 |" in text and "dtSSD = 1e2" in text


def test_set_options_are_parsed_by_type():
    bench = load_bench()
    assert bench._option("internal_size=512") == ("internal_size", 512)
    assert bench._option("guided=false") == ("guided", False)
    assert bench._option("ratio=0.5") == ("ratio", 0.5)
    assert bench._option("subjects=main") == ("subjects", "main")
    for bad in ("internal_size", "=3"):
        with pytest.raises(ValueError):
            bench._option(bad)
