"""Pixel <-> token mapping through the eval transform, checked against the transform itself."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import uniformer
from uniformer.data import eval_transform
from uniformer.explain import input_geometry

CFG = uniformer.get_entry("uniformer_small_in1k").pretrained


@pytest.mark.parametrize("size", [(640, 480), (300, 500), (224, 224), (1000, 333)])
def test_geometry_matches_the_transform(size):
    """Paint one original pixel block white; the transform puts it where the geometry says."""
    W, H = size
    geo = input_geometry(size, CFG)
    x0, y0, x1, y1 = geo.crop_box()
    for x, y in [(W / 2, H / 2), (x0 + 0.3 * (x1 - x0), y0 + 0.6 * (y1 - y0))]:
        img = np.zeros((H, W, 3), np.uint8)
        r = max(W, H) // 40
        img[int(y) - r:int(y) + r, int(x) - r:int(x) + r] = 255
        t = eval_transform(CFG)(Image.fromarray(img))  # (3, 224, 224), normalized
        bright = (t[0] > 0).nonzero().float().mean(0)  # centre of the white block (row, col)
        xi, yi = geo.image_to_input(x, y)
        assert abs(bright[1].item() - xi) < 2 and abs(bright[0].item() - yi) < 2


def test_corners_and_centre_of_non_square_image():
    geo = input_geometry((640, 480), CFG)  # short side 480 -> 256, long 341; crop 224 at (58, 16)
    assert geo.resized == (341, 256) and (geo.crop_left, geo.crop_top) == (58, 16)
    x0, y0, x1, y1 = geo.crop_box()
    grid = (7, 7)
    assert geo.token_at(x0 + 0.5, y0 + 0.5, grid) == 0  # top-left corner of the crop
    assert geo.token_at(x1 - 0.5, y0 + 0.5, grid) == 6  # top-right
    assert geo.token_at(x0 + 0.5, y1 - 0.5, grid) == 42  # bottom-left
    assert geo.token_at(x1 - 0.5, y1 - 0.5, grid) == 48  # bottom-right
    assert geo.token_at(320, 240, grid) == 24  # centre
    assert geo.token_at(320, 240, (14, 14)) in (6 * 14 + 7, 7 * 14 + 7, 7 * 14 + 6, 6 * 14 + 6)
    with pytest.raises(ValueError, match="outside the centre crop"):
        geo.token_at(5, 240, grid)  # left border is cropped away


def test_token_boxes_and_centres_are_consistent():
    geo = input_geometry((500, 300), CFG)
    centres = geo.token_centers((14, 14))
    for i in (0, 13, 100, 195):
        x0, y0, x1, y1 = geo.token_box(i, (14, 14))
        cx, cy = centres[i]
        assert x0 < cx < x1 and y0 < cy < y1
        assert geo.token_at(cx, cy, (14, 14)) == i


def test_round_trip():
    geo = input_geometry((123, 457), CFG)
    x, y = geo.input_to_image(*geo.image_to_input(40.5, 300.25))
    assert x == pytest.approx(40.5) and y == pytest.approx(300.25)
    with pytest.raises(ValueError):
        input_geometry((0, 10), CFG)
