"""Drawn digits read by the shipped digits model through the app's path
(:func:`uniformer.explain.digits.read_digit`: sketch -> 8x8 ink counts -> one forward with capture).

The drawings are synthesized as a user makes them on the Digits tab's 320x320 sketchpad: straight
strokes with sharp corners ("block style", and seven-segment shapes, which the shipped model learnt
from synthetic drawings made with another seed), the tab's default 22-px brush or a thick 40-px one,
large and centred or medium-sized near a corner, black on a transparent canvas (the sketchpad's
RGBA value).
"""
from __future__ import annotations

import numpy as np
import pytest

from uniformer.explain.digits import explained_blocks, read_digit
from uniformer.inference import predict_images
from uniformer.train.digits import (BLOCK_DIGITS, SEVEN_SEGMENT_DIGITS, digit_image, draw_sketch, load_digits_model,
                                    predict_digit, sketch_to_digit)

#: (centre x, centre y, height, brush width), pixels of the canvas.
PLACEMENTS = [(160, 160, 240, 22), (90, 95, 130, 22), (230, 220, 130, 22), (160, 160, 240, 40)]
#: Seed of the held-out styled drawings: the training augmentation (``styled_digit_counts``) uses seed 0.
HELDOUT_SEED = 2026


#: A sketchpad value (Gradio 6, type='numpy', RGBA) of polylines drawn in a box on the canvas.
block_sketch = draw_sketch


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


def test_the_seven_segment_two_of_issue_15_is_read_as_two(model):
    # top bar, upper-right stem, middle bar, lower-LEFT stem, bottom bar: square corners, the 22-px brush
    prediction = predict_digit(model, block_sketch(SEVEN_SEGMENT_DIGITS["2"], 160, 160, 240, 22))
    assert prediction.topk[0].label == "2", prediction.topk


def test_held_out_block_and_seven_segment_drawings_are_read_right(model):
    # drawings the training augmentation never made: another seed for the corner jitter and aspect,
    # both brushes, five placements; every digit in both styles (100 drawings)
    rng = np.random.default_rng(HELDOUT_SEED)
    cases, images = [], []
    for glyphs in (BLOCK_DIGITS, SEVEN_SEGMENT_DIGITS):
        for digit, glyph in glyphs.items():
            for placement in PLACEMENTS + [(110, 200, 160, 40)]:
                lines = [[(x + rng.uniform(-0.05, 0.05), y + rng.uniform(-0.05, 0.05)) for x, y in line]
                         for line in glyph]
                images.append(digit_image(sketch_to_digit(block_sketch(lines, *placement,
                                                                       aspect=rng.uniform(0.5, 0.75)))))
                cases.append((digit, placement))
    predictions = predict_images(model, images, topk=1)
    wrong = [(d, p, pred.topk[0].label) for (d, p), pred in zip(cases, predictions) if pred.topk[0].label != d]
    assert len(wrong) <= 5, wrong  # at least 95 of 100
