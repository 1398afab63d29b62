"""Drawn digits read by the shipped digits model through the app's path
(:func:`uniformer.explain.digits.read_digit`: sketch -> 8x8 ink counts -> one forward with capture).

The drawings are synthesized as a user makes them on the Digits tab's 320x320 sketchpad: straight
strokes with sharp corners ("block style"), the tab's default 22-px brush or a thick 40-px one,
large and centred or medium-sized near a corner, black on a transparent canvas (the sketchpad's
RGBA value).
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from uniformer.explain.digits import explained_blocks, read_digit
from uniformer.inference import predict_images
from uniformer.train.digits import digit_image, load_digits_model, sketch_to_digit

CANVAS = 320  # the Digits tab's sketchpad, pixels
#: Angular digits as polylines in a unit box (x right, y down), written the usual way.
BLOCK_DIGITS = {
    "0": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
    "1": [[(0.25, 0.2), (0.6, 0), (0.6, 1)]],
    "2": [[(0, 0), (1, 0), (1, 0.45), (0, 1), (1, 1)]],
    "3": [[(0, 0), (1, 0), (0.4, 0.45), (1, 0.45), (1, 1), (0, 1)]],
    "4": [[(0.7, 1), (0.7, 0), (0, 0.65), (1, 0.65)]],
    "5": [[(1, 0), (0, 0), (0, 0.45), (1, 0.45), (1, 1), (0, 1)]],
    "6": [[(1, 0), (0, 0.5), (0, 1), (1, 1), (1, 0.5), (0, 0.5)]],
    "7": [[(0, 0), (1, 0), (0.35, 1)]],
    "8": [[(0, 0), (1, 0), (1, 0.45), (0, 0.45), (0, 0)], [(0, 0.45), (1, 0.45), (1, 1), (0, 1), (0, 0.45)]],
    "9": [[(1, 0.5), (0, 0.5), (0, 0), (1, 0), (1, 0.5), (0.6, 1)]],
}
#: (centre x, centre y, height, brush width), pixels of the canvas.
PLACEMENTS = [(160, 160, 240, 22), (90, 95, 130, 22), (230, 220, 130, 22), (160, 160, 240, 40)]


def block_sketch(lines, cx: float, cy: float, height: float, brush: int, aspect: float = 0.6) -> dict:
    """A sketchpad value (Gradio 6, type='numpy', RGBA) of ``lines`` drawn in a box of ``height``
    x ``aspect * height`` pixels centred at (cx, cy)."""
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    width = aspect * height
    for line in lines:
        draw.line([(cx + (x - 0.5) * width, cy + (y - 0.5) * height) for x, y in line], fill=(0, 0, 0, 255),
                  width=brush, joint="curve")
    layer = np.asarray(canvas)  # (320, 320, 4)
    return {"background": None, "layers": [layer], "composite": layer.copy()}


@pytest.fixture(scope="module")
def model():
    return load_digits_model().eval()


def test_block_style_digits_anywhere_on_the_sketchpad_are_read_right(model):
    cases = [(digit, placement) for digit in BLOCK_DIGITS for placement in PLACEMENTS]
    # read_digit's classifying path, batched: sketch -> 8x8 counts -> 8x8 image -> predict_images
    images = [digit_image(sketch_to_digit(block_sketch(BLOCK_DIGITS[d], *p))) for d, p in cases]
    predictions = predict_images(model, images, topk=1)
    wrong = [(d, p, pred.topk[0].label) for (d, p), pred in zip(cases, predictions) if pred.topk[0].label != d]
    assert len(wrong) <= 1, wrong  # "nearly all": 39 or 40 of the 40 drawings


def test_position_does_not_change_what_the_model_reads():
    lines = BLOCK_DIGITS["2"]
    counts = [sketch_to_digit(block_sketch(lines, cx, cy, 130, 22)) for cx, cy in ((90, 95), (230, 220), (160, 160))]
    for other in counts[1:]:
        np.testing.assert_array_equal(other, counts[0])


def test_a_reading_holds_the_digit_its_attention_and_the_shrinking_trace(model):
    reading = read_digit(model, block_sketch(BLOCK_DIGITS["2"], 160, 160, 240, 22))
    assert reading.counts.shape == (8, 8) and 0 <= reading.counts.min() and reading.counts.max() <= 16
    assert reading.image.size == (8, 8)
    assert list(reading.attention) == explained_blocks(model)  # the last stage-3 block, every stage-4 block
    for received in reading.attention.values():
        assert 0 < received.sum() <= 1 + 1e-4  # column means of rows summing to at most 1 (hourglass: kept tokens)
    assert len(reading.trace) == sum(len(model.stages[s].blocks) for s in (2, 3))  # the hourglass blocks
