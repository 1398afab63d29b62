"""The shipped, project-trained digits model and the drawn-digit functions behind a sketchpad demo."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import uniformer
from uniformer.train import DigitsDataset, evaluate
from uniformer.train.data import SeededSamples, ShardSampler, load_digits_split
from uniformer.train.digits import EmptySketchError, predict_digit, sketch_ink, sketch_to_digit, stroke_width

WEIGHTS = Path(uniformer.__file__).parent / "weights" / "uniformer_xxs_digits"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    return uniformer.create_model("uniformer_xxs_digits", pretrained=True)


def as_sketch(counts: np.ndarray, cell: int = 24, margin=(40, 70), size=(320, 300)) -> np.ndarray:
    """An 8x8 digit drawn large, dark ink on a white canvas (H, W, 3) uint8, off-centre."""
    ink = np.kron(counts / 16.0, np.ones((cell, cell)))
    canvas = np.full(size, 255.0)
    canvas[margin[0]:margin[0] + 8 * cell, margin[1]:margin[1] + 8 * cell] -= 255 * ink
    return np.repeat(canvas.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_shipped_model_loads_offline_as_a_project_checkpoint(model):
    assert sorted(p.name for p in WEIGHTS.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert WEIGHTS.joinpath("model.safetensors").stat().st_size < 5e6
    assert model.weights_info.source == "project" and model.weights_info.trained
    assert "trained by this project" in model.weights_info.describe()
    assert model.pretrained_cfg.class_names() == tuple("0123456789") and model.pretrained_cfg.input_size == (3, 64, 64)
    assert "uniformer_xxs_digits" in uniformer.list_models("*digits*")


def test_shipped_model_reaches_97_percent_on_the_held_out_split(model):
    config = json.loads((WEIGHTS / "config.json").read_text())
    card = (WEIGHTS / "README.md").read_text()
    stated = config["metrics"]["val_top1"]
    assert stated >= 97 and f"{stated:.2f}%" in card and "python -m uniformer train" in card
    val = DigitsDataset("val", transform=uniformer.data.eval_transform(model.pretrained_cfg))
    loader = torch.utils.data.DataLoader(SeededSamples(val, 0), batch_size=180, sampler=ShardSampler(len(val)))
    metrics = evaluate(model, loader, 10, torch.device("cpu"))
    assert metrics["val_samples"] == 360
    assert metrics["val_top1"] == pytest.approx(stated, abs=0.3)  # what the card says, recomputed


def test_sketch_round_trip_recovers_the_digit():
    images, labels = load_digits_split("val")
    for counts in images[:10]:
        recovered = sketch_to_digit(as_sketch(counts))
        assert recovered.shape == (8, 8) and recovered.min() >= 0 and recovered.max() <= 16
        assert np.corrcoef(recovered.ravel(), counts.ravel())[0, 1] > 0.75


def test_sketch_background_and_format_handling():
    counts = load_digits_split("val")[0][3]
    dark_on_white = as_sketch(counts)
    reference = sketch_to_digit(dark_on_white)
    light_on_black = 255 - dark_on_white
    rgba = np.zeros(dark_on_white.shape[:2] + (4,), np.uint8)  # black strokes on a transparent canvas
    rgba[..., 3] = 255 - dark_on_white[..., 0]
    gray_float = dark_on_white[..., 0].astype(np.float32) / 255.0
    for variant in (light_on_black, rgba, gray_float, Image.fromarray(rgba),
                    {"background": None, "layers": [rgba], "composite": rgba}):
        np.testing.assert_array_equal(sketch_to_digit(variant), reference)
    assert sketch_ink(dark_on_white).max() == 1.0
    thin, bar = np.zeros((32, 32), bool), np.zeros((40, 40), bool)
    thin[4:28, 15] = True
    bar[2:38, 10:16] = True  # 6 px wide
    assert stroke_width(thin) == 2.0 and stroke_width(bar) == pytest.approx(6, rel=0.15)
    assert stroke_width(np.zeros((4, 4), bool)) == 0
    for empty in (np.full((50, 50, 3), 255, np.uint8), np.zeros((40, 40, 4), np.uint8), None,
                  {"background": None, "layers": [], "composite": None}):
        with pytest.raises(EmptySketchError):
            sketch_to_digit(empty)
    with pytest.raises(ValueError, match="shape"):
        sketch_to_digit(np.zeros((4, 4, 7), np.uint8))


def test_drawn_digits_are_recognized(model):
    images, labels = load_digits_split("val")
    preds = [predict_digit(model, as_sketch(c)).topk[0].label for c in images[:30]]
    assert np.mean([p == str(y) for p, y in zip(preds, labels[:30])]) >= 0.8

    def pen(*strokes):
        img = Image.new("RGB", (280, 280), "white")
        draw = ImageDraw.Draw(img)
        for kind, *args in strokes:
            colour = {"outline": "black"} if kind == "ellipse" else {"fill": "black"}
            getattr(draw, kind)(*args, width=18, **colour)
        return np.asarray(img)

    one = pen(("line", [(150, 40), (140, 240)]))
    result = predict_digit(model, one, topk=3)
    assert result.topk[0].label == "1" and len(result.topk) == 3 and result.weights.source == "project"
    assert sum(c.probability for c in result.topk) <= 1.0 + 1e-6 and result.input_size == (3, 64, 64)
    assert np.array(result.extra["digit_counts"]).shape == (8, 8)
    json.dumps(result.to_dict())  # JSON-ready for the app
    drawn = {
        "0": pen(("ellipse", [(80, 40), (200, 240)])),
        "7": pen(("line", [(70, 50), (210, 50)]), ("line", [(210, 50), (120, 240)])),
        "4": pen(("line", [(170, 40), (70, 170)]), ("line", [(70, 170), (220, 170)]),
                 ("line", [(170, 40), (170, 250)])),
        "2": pen(("arc", [(70, 40), (210, 150)], 180, 390), ("line", [(200, 120), (70, 240)]),
                 ("line", [(70, 240), (220, 240)])),
        "3": pen(("arc", [(80, 40), (200, 140)], 200, 450), ("arc", [(80, 140), (200, 245)], 270, 520)),
    }
    for digit, drawing in drawn.items():
        assert predict_digit(model, drawing).topk[0].label == digit, digit
    with pytest.raises(ValueError, match="topk"):
        predict_digit(model, one, topk=11)


def test_styled_drawings_augment_the_train_split_only_deterministically():
    from uniformer.train.digits import styled_digit_counts

    base = DigitsDataset("train")
    styled = DigitsDataset("train", styled_per_digit=2, styled_seed=0)
    assert len(styled) == len(base) + 20 and styled.targets[len(base):] == sorted(list(range(10)) * 2)
    np.testing.assert_array_equal(styled.images[:len(base)], base.images)  # the sklearn train split, unchanged
    counts, labels = styled_digit_counts(2, 0)
    np.testing.assert_array_equal(styled.images[len(base):], counts)  # the same drawings for the same seed
    assert counts.shape == (20, 8, 8) and counts.max() <= 16 and counts.sum((1, 2)).min() > 0
    assert not np.array_equal(styled_digit_counts(2, 1)[0], counts)  # another seed: other drawings
    with pytest.raises(ValueError, match="train split only"):
        DigitsDataset("val", styled_per_digit=2)
