"""A drawn digit, read and explained in one forward: what the Digits demo (app, notebooks, CLI) shows.

:func:`read_digit` turns a drawing into the 8x8 digit the digits model reads
(:func:`uniformer.data.sketch.sketch_to_digit`, the representation of scikit-learn's digits),
classifies it with the library's inference path (:func:`uniformer.inference.predict_image`) while
recording the global MHRA attention of the hourglass blocks (:func:`capture_attention`), and runs
the token-shrinking trace (``UniFormerLight.forward_trace``, paper §5). The attention is summarised
per block as the attention each token *receives* (:func:`attention_received`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..inference import ImagePrediction, predict_image, preprocess_images, select_device
from ..data.digits import render_digit
from ..data.sketch import sketch_to_digit
from .capture import capture_attention

__all__ = ["attention_received", "explained_blocks", "DigitReading", "read_digit"]


def attention_received(maps: torch.Tensor, grid: tuple[int, ...]) -> np.ndarray:
    """Captured attention (1, heads, N, N) of one block -> (*grid) float32, N = prod(grid): the
    attention each token receives, averaged over heads and over the N query tokens (a column mean
    of the row-stochastic matrix): where the block's tokens look."""
    return maps[0].float().mean(0).mean(0).reshape(tuple(grid)).cpu().numpy()  # (heads, N, N) -> (N,) -> grid


def explained_blocks(model: nn.Module) -> list[str]:
    """Module paths of the global MHRA blocks the digits demo shows, read from the model: the last
    block of stage 3 and every block of stage 4 (the deepest, coarsest grids)."""
    last3 = len(model.stages[2].blocks) - 1
    return [f"stages.2.blocks.{last3}.mhra"] + [f"stages.3.blocks.{b}.mhra" for b in range(len(model.stages[3].blocks))]


@dataclass
class DigitReading:
    """One drawing read by the digits model.

    counts: (8, 8) float64 ink counts 0..16 the model read; image: the 8x8 RGB picture of them;
    prediction: top-k digits with probabilities (and timings, ms); attention: block path -> (h, w)
    attention received (:func:`attention_received`) for the :func:`explained_blocks` the capture
    recorded, in that order (empty when it recorded none); kinds: block path -> 'global' /
    'hourglass'; trace: one ``BlockTrace`` per hourglass block (kept / fused tokens).
    """

    counts: np.ndarray
    image: Image.Image
    prediction: ImagePrediction
    attention: dict[str, np.ndarray] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    trace: list = field(default_factory=list)


def read_digit(model: nn.Module, sketch: Any, topk: int = 3, device: str | torch.device | None = None) -> DigitReading:
    """Read a drawing (Gradio sketchpad value, PIL image, path or array) with a light digits model
    (``uniformer_xxs_digits``) -> :class:`DigitReading`: one classifying forward with attention
    capture, plus the shrinking trace. The model is moved to ``device`` (default: where it is).

    Raises EmptySketchError (nothing drawn), ValueError / OSError (an unreadable drawing, bad topk).
    """
    counts = sketch_to_digit(sketch)
    image = render_digit(counts)
    dev = select_device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    with torch.inference_mode(), capture_attention(model) as capture:
        prediction = predict_image(model, image, topk=topk, device=dev)
        _, trace = model.forward_trace(preprocess_images([image], model.pretrained_cfg).to(dev))
    attention = {name: attention_received(capture.maps[name], tuple(capture.spatial[name]))
                 for name in explained_blocks(model) if name in capture.maps}
    kinds = {name: capture.kinds.get(name, "global") for name in attention}
    return DigitReading(counts, image, prediction, attention, kinds, list(trace))
