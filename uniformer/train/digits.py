"""A drawn digit -> the digits model: the pure functions behind a "digits" sketchpad demo.

A drawing becomes the 8x8 ink counts of scikit-learn's digits by
:func:`uniformer.data.sketch.sketch_to_digit` (re-exported here with the rest of that module's
drawing functions). :func:`predict_digit` runs the model on it with the model's own preprocessing
and returns an ``ImagePrediction`` (top-k digits with probabilities), plus the 8x8 image in ``extra``.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data import eval_transform
from ..hub import WeightsInfo
from ..inference import ClassScore, ImagePrediction, autocast, select_device
from ..data.digits import render_digit
from ..data.sketch import (BLOCK_DIGITS, SEVEN_SEGMENT_DIGITS, SKETCH_CANVAS, EmptySketchError, draw_sketch, sketch_ink,
                     sketch_to_digit, stroke_width, styled_digit_counts)

__all__ = ["EmptySketchError", "sketch_ink", "stroke_width", "sketch_to_digit", "digit_image", "digit_input",
           "predict_digit",
           "load_digits_model", "write_heldout_drawings", "SKETCH_CANVAS", "BLOCK_DIGITS", "SEVEN_SEGMENT_DIGITS",
           "draw_sketch", "styled_digit_counts"]


def digit_image(counts: np.ndarray) -> Image.Image:
    """(8, 8) ink counts -> the 8x8 RGB image the digits model reads (dark ink on white)."""
    return render_digit(counts)


def digit_input(model: nn.Module, sketch: Any) -> torch.Tensor:
    """A drawing -> the model's input (1, 3, S, S): sketch_to_digit, render, the model's eval transform."""
    return eval_transform(model.pretrained_cfg)(digit_image(sketch_to_digit(sketch))).unsqueeze(0)


def load_digits_model(name: str = "uniformer_xxs_digits") -> nn.Module:
    """The shipped, project-trained digits model (offline; ``weights_info.source == 'project'``)."""
    from ..factory import create_model

    return create_model(name, pretrained=True)


@torch.inference_mode()
def predict_digit(model: nn.Module, sketch: Any, topk: int = 3, device: str | torch.device | None = None,
                  precision: str = "fp32") -> ImagePrediction:
    """Classify a drawn digit with the digits model -> ImagePrediction (top-k of '0'..'9', softmax
    probabilities; ``extra['digit_counts']``: the (8, 8) counts as nested lists; ``digit_image`` of
    them is the 8x8 image the model read). Raises EmptySketchError (nothing drawn), ValueError (bad topk)."""
    labels = model.pretrained_cfg.class_names()
    if not 1 <= topk <= len(labels):
        raise ValueError(f"topk must be between 1 and {len(labels)}, got {topk}")
    dev = select_device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    t0 = time.perf_counter()
    counts = sketch_to_digit(sketch)
    image = digit_image(counts)
    x = eval_transform(model.pretrained_cfg)(image).unsqueeze(0).to(dev)
    t1 = time.perf_counter()
    with autocast(dev, precision):
        logits = model(x)
    probs = logits.float().softmax(-1)[0]
    t2 = time.perf_counter()
    values, indices = probs.topk(topk)
    return ImagePrediction(
        topk=[ClassScore(int(i), labels[int(i)], float(p)) for p, i in zip(values.tolist(), indices.tolist())],
        model_name=getattr(model, "model_name", type(model).__name__),
        weights=getattr(model, "weights_info", WeightsInfo("untrained")), device=str(dev), precision=precision,
        input_size=tuple(x.shape[1:]), preprocess_ms=(t1 - t0) * 1000, inference_ms=(t2 - t1) * 1000,
        source="sketch", extra={"digit_counts": counts.tolist()})


def write_heldout_drawings(directory: str | Path, side: int = 256) -> dict[str, Path]:
    """Write one drawing per digit 0-9 into ``directory`` (created if needed) -> {digit: path}, in
    order: the first held-out image of each digit (scikit-learn digits, the validation split the
    shipped model never trained on), its 8x8 ink counts enlarged smoothly (bilinear) to a
    ``side`` x ``side`` PNG of dark ink on white, as a drawing on a sketchpad looks. Files that
    exist are kept; new ones appear atomically (another process never reads half a file)."""
    from ..data.digits import load_digits_split

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = load_digits_split("val", seed=0)
    written = {}
    for digit in range(10):
        counts = images[int(np.flatnonzero(labels == digit)[0])].astype(np.float32) / 16.0
        ink = Image.fromarray(counts, mode="F").resize((side, side), Image.BILINEAR)
        gray = np.clip(255.0 * (1.0 - np.asarray(ink)), 0, 255).round().astype(np.uint8)  # (side, side)
        path = directory / f"heldout_digit_{digit}.png"
        if not path.is_file():
            tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.png")
            Image.fromarray(gray, mode="L").convert("RGB").save(tmp)
            tmp.replace(path)
        written[str(digit)] = path
    return written
