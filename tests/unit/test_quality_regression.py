"""Quality regression: every model, with the defaults `new_session()` applies, against DAVIS masks on the
first frames of two clips. Floors are a few hundredths under what was measured here (numbers in FLOORS),
so numeric noise across machines passes and a real regression (a step dropped, a default changed, a
tracker that loses the subject) fails. The slow models score fewer frames to keep the file under a minute.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from videobg.models import get_model
from videobg.models.weights import WEIGHTS
from videobg.quality import ClipScorer

pytestmark = [pytest.mark.unit, pytest.mark.slow]

# (clip, model) -> (frames scored, J floor, F floor, flicker ceiling). Measured here with the
# `new_session()` defaults on the first N frames (J / F / flicker):
#   breakdance light 24:    0.159 / 0.213 / 44.9   dance-twirl light 24: 0.621 / 0.661 / 15.9
#   breakdance human 24:    0.647 / 0.628 / 12.0   dance-twirl human 24: 0.795 / 0.836 / 8.3
#   breakdance original 10: 0.762 / 0.763 / 12.3   libby original 10:    0.884 / 0.917 / 7.4
#   breakdance pro 10:      0.765 / 0.783 / 11.1   dance-twirl pro 10:   0.800 / 0.821 / 6.7
#   libby pro 10:           0.885 / 0.927 / 4.4    kite-surf pro 10:     0.644 / 0.498 / 3.0
# (libby pro was 0.884 / 0.917 / 7.4 before its saliency matte was smoothed at full resolution and its
# haze cleared, 2026-12-04 fourth pass: the flicker ceiling of 6 guards that.)
# (pro 2026-12-04, issue 13: breakdance F was 0.670 with the wider gate, which the floor now rejects;
# kite-surf was 0.618 / 0.425 before person blobs were kept whole: its floor guards that.)
# (human on breakdance is J 0.391 raw over these frames: that floor guards the main-subject selection;
# pro on libby, a dog, is J 0.057 with subjects="all": that floor guards its fall-back to the saliency.)
FLOORS: dict[tuple[str, str], tuple[int, float, float, float]] = {
    ("breakdance", "light"): (24, 0.13, 0.18, 58.0),
    ("dance-twirl", "light"): (24, 0.59, 0.63, 21.0),
    ("breakdance", "human"): (24, 0.61, 0.59, 16.0),
    ("dance-twirl", "human"): (24, 0.76, 0.80, 11.0),
    ("breakdance", "original"): (10, 0.73, 0.73, 16.0),
    ("libby", "original"): (10, 0.85, 0.88, 10.0),
    ("breakdance", "pro"): (10, 0.72, 0.73, 15.0),
    ("dance-twirl", "pro"): (10, 0.77, 0.79, 9.0),
    ("libby", "pro"): (10, 0.85, 0.88, 6.0),
    ("kite-surf", "pro"): (10, 0.63, 0.47, 6.0),
}


def _pairs(clip: Path, n: int):
    for frame in sorted((clip / "frames").glob("*.jpg"))[:n]:
        rgb = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(clip / "masks" / (frame.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        yield rgb, mask


@pytest.mark.parametrize("clip,model", list(FLOORS))
def test_defaults_stay_above_floors(media, models_path, clip, model):
    if not (models_path / WEIGHTS[model].file).is_file():
        pytest.skip(f"weights for {model} absent from {models_path}")
    folder = media / "gt" / "davis2016" / clip
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    frames, j_floor, f_floor, flicker_ceiling = FLOORS[(clip, model)]
    session = get_model(model, models_path).new_session()  # the defaults, as the pipeline runs them
    scorer = ClipScorer()
    t0 = time.perf_counter()
    for rgb, mask in _pairs(folder, frames):
        alpha = session.predict(rgb)
        assert alpha.dtype == np.float32 and alpha.shape == mask.shape
        scorer.add(alpha, mask)
    s = scorer.result()
    print(
        f"{clip} {model} {s.frames} frames: J {s.j:.3f} F {s.f:.3f} flicker {s.flicker:.1f} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    assert s.frames == frames
    assert s.j >= j_floor and s.f >= f_floor, s
    assert s.flicker <= flicker_ceiling, s


# The composite clips of bench/eval_set.py (not the DAVIS tuning clips): one of each kind, pro's defaults,
# the first N frames. (clip, model) -> (frames, J floor, F floor, flicker ceiling). Measured here (J / F /
# flicker, 2026-12-04 13:30 UTC): eval-walk (person alone) 0.993 / 0.997 / 2.0 (0.989 / 0.969 / 2.9
# before its cut-out's cut was kept below the frame); eval-scooter (person + the scooter they ride)
# 0.860 / 0.760 / 6.8 (0.763 / 0.649 / 12.7 before the seam between rider and deck was closed and a
# patch of background was no longer adopted; 0.723 / 0.585 with subjects="person": the F floor guards
# both the held object and the seam); eval-cart (the scooter alone) 0.277 / 0.353 / 18.3 (guards the
# fall-back to the saliency; 0.301 / 0.354 / 18.9 before the fourth pass's full-resolution smoothing,
# which lags a little while the saliency latches on in these first frames, and gains over the clip).
EVAL_FLOORS: dict[tuple[str, str], tuple[int, float, float, float]] = {
    ("eval-walk", "pro"): (8, 0.97, 0.97, 4.0),
    ("eval-scooter", "pro"): (8, 0.81, 0.71, 10.0),
    ("eval-cart", "pro"): (8, 0.26, 0.31, 25.0),
}


def _eval_set():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[2] / "bench" / "eval_set.py"
    spec = importlib.util.spec_from_file_location("bench_eval_set", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_eval_set"] = mod  # dataclasses look the module up by name
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("clip,model", list(EVAL_FLOORS))
def test_defaults_stay_above_floors_on_held_out_clips(media, models_path, clip, model):
    if not (models_path / WEIGHTS[model].file).is_file():
        pytest.skip(f"weights for {model} absent from {models_path}")
    if not (media / "gt" / "matanyone_test-sample0").is_dir():
        pytest.skip("the MatAnyone sample (the clips' people) is absent")
    frames, j_floor, f_floor, flicker_ceiling = EVAL_FLOORS[(clip, model)]
    session = get_model(model, models_path).new_session()
    scorer = ClipScorer()
    for rgb, mask in _eval_set().frames_of(clip, media, frames):
        scorer.add(session.predict(rgb), mask)
    s = scorer.result()
    print(f"{clip} {model} {s.frames} frames: J {s.j:.3f} F {s.f:.3f} flicker {s.flicker:.1f}")
    assert s.frames == frames
    assert s.j >= j_floor and s.f >= f_floor, s
    assert s.flicker <= flicker_ceiling, s


@pytest.mark.parametrize("clip", ["eval-walk", "eval-suitcase"])
def test_half_body_cut_stays_below_the_frame(media, clip):
    """The composites' people are half-body cut-outs (cut at the sample's frame bottom). Bobbing with the
    cut in view put a straight line through the body in the truth, which no matting model can know; it
    alone made pro's F on eval-walk 0.966 (0.997 with the bottom 12 rows left out). Every frame's truth
    must reach the frame's bottom row, on the woman's columns."""
    if not (media / "gt" / "matanyone_test-sample0").is_dir():
        pytest.skip("the MatAnyone sample (the clips' people) is absent")
    frames = _eval_set().frames_of(clip, media)
    assert len(frames) == 40
    for t, (_, mask) in enumerate(frames):
        fg = np.asarray(mask) > 0
        assert fg[-1].sum() >= 50, f"{clip} frame {t}: the truth does not reach the frame's bottom"
