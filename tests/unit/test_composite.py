"""Background specs, cover-crop of replacement images, and the per-frame blend."""

import numpy as np
import pytest

from videobg.composite import (
    composite,
    cover_crop,
    parse_background,
    parse_hex,
    parse_rgb,
    prepare_background,
)
from videobg.errors import InvalidInput
from videobg.types import Background

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "spec,rgb",
    [("#1E90FF", (30, 144, 255)), ("#fff", (255, 255, 255)), ("1E90FF", (30, 144, 255)), ("#000", (0, 0, 0))],
)
def test_parse_hex(spec, rgb):
    assert parse_hex(spec) == rgb


@pytest.mark.parametrize("spec", ["#12", "#GGGGGG", "blue-ish", "#1234567", ""])
def test_parse_hex_rejects(spec):
    with pytest.raises(InvalidInput) as e:
        parse_hex(spec)
    assert e.value.code == "invalid_parameter"


def test_parse_rgb_forms():
    assert parse_rgb([0, 128, 255]) == (0, 128, 255)
    assert parse_rgb("10, 20, 30") == (10, 20, 30)
    for bad in ([0, 0], [0, 0, 256], [0, -1, 0], "a,b,c", [0.5, 0, 0], 7):
        with pytest.raises(InvalidInput):
            parse_rgb(bad)


def test_parse_background_kinds(tmp_path):
    assert parse_background(None) == Background(kind="white")
    assert parse_background("green").rgb == (0, 255, 0)
    assert parse_background("#1E90FF").rgb == (30, 144, 255)
    assert parse_background("1,2,3").rgb == (1, 2, 3)
    assert parse_background(None, transparent=True).transparent
    img = tmp_path / "bg.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((10, 10, 3), np.uint8))
    assert parse_background(str(img)).kind == "image"
    with pytest.raises(InvalidInput):
        parse_background("no/such/file.png")


def test_cover_crop_never_stretches():
    # a 100x200 image with a vertical stripe pattern into a square: crop the sides, keep stripe width
    img = np.zeros((100, 200, 3), np.uint8)
    for x0 in range(0, 200, 20):
        img[:, x0 : x0 + 4] = 255
    out = cover_crop(img, 50, 50)
    assert out.shape == (50, 50, 3)
    on = out[25, :, 0] > 128
    starts = np.where(on[1:] & ~on[:-1])[0]
    assert len(starts) >= 2 and set(np.diff(starts)) == {10}  # scale 0.5 both ways: stripes 10 px apart


def test_cover_crop_upscales_small_image():
    img = np.zeros((10, 10, 3), np.uint8)
    img[:, :5] = 255  # left half white
    out = cover_crop(img, 90, 160)
    assert out.shape == (90, 160, 3)
    assert out[45, 10, 0] > 200 and out[45, 150, 0] < 50


def test_composite_blend():
    fg = np.full((4, 4, 3), 200, np.uint8)
    plate = prepare_background(Background(kind="color", rgb=(0, 0, 100)), 4, 4)
    alpha = np.array([[0, 64, 128, 255]] * 4, np.uint8)
    out = composite(fg, alpha, plate)
    assert tuple(out[0, 0]) == (0, 0, 100)
    assert tuple(out[0, 3]) == (200, 200, 200)
    mid = out[0, 2].astype(int)
    assert abs(mid[0] - 100) <= 1 and abs(mid[2] - 150) <= 1
    assert prepare_background(Background(kind="transparent"), 4, 4) is None


def test_image_background_from_shared_media(media):
    plate = prepare_background(
        Background(kind="image", image_path=str(media / "backgrounds" / "androidx_london.jpg")), 720, 1280
    )
    assert plate.shape == (720, 1280, 3) and plate.dtype == np.uint8 and plate.std() > 10
