"""Which tokens the light models keep and fuse (§5.1 token shrinking), as data and pictures.

Input: the ``BlockTrace`` list from ``UniFormerLight.forward_trace`` and the image geometry
(:func:`uniformer.explain.input_geometry`). Output: per-block token-state maps on the token grid,
overlays on the original image, the tokens-per-layer schedule, and a keep-ratio sweep.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..models.light import BlockTrace
from .geometry import InputGeometry

__all__ = ["KEPT", "FUSED", "token_state_map", "score_map", "shrinking_overlay", "tokens_per_layer",
           "SweepPoint", "RatioTrace", "trace_keep_ratios", "keep_ratio_sweep"]

KEPT, FUSED = 1, 0  # values of token_state_map


def _spatial_grid(t: BlockTrace) -> tuple[int, int]:
    return tuple(t.grid[-2:])  # (h, w); video traces keep (T, h, w) and are shown per frame


def token_state_map(t: BlockTrace, sample: int = 0) -> np.ndarray:
    """(h, w) uint8 map of one block for batch element ``sample`` (video: (T, h, w)): KEPT (1) for
    tokens processed individually, FUSED (0) for tokens fused into the representative."""
    state = np.full(int(np.prod(t.grid)), FUSED, np.uint8)
    state[t.kept[sample].cpu().numpy()] = KEPT
    return state.reshape(t.grid)


def score_map(t: BlockTrace, sample: int = 0) -> np.ndarray | None:
    """(h, w) float32 importance scores (Eq. 9, running mean of §5.2) the block ranked tokens by,
    or None for the first stage-3 block (it computes the first scores)."""
    if t.scores is None:
        return None
    return t.scores[sample].float().cpu().numpy().reshape(t.grid)


def shrinking_overlay(image: Image.Image, t: BlockTrace, geometry: InputGeometry, sample: int = 0,
                      frame: int = 0, alpha: float = 0.55) -> Image.Image:
    """The original ``image`` with block ``t``'s fused tokens darkened and hatched in red and
    the kept ones outlined in green; the region outside the model's centre crop is greyed.
    ``frame`` picks the time slice of video traces. Returns a new RGB image of the same size."""
    state = token_state_map(t, sample)
    if state.ndim == 3:
        state = state[frame]
    grid = state.shape
    base = image.convert("RGB")
    shade = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(shade)
    W, H = base.size
    x0, y0, x1, y1 = geometry.crop_box()
    for box in ((0, 0, W, y0), (0, y1, W, H), (0, y0, x0, y1), (x1, y0, W, y1)):  # outside the crop
        draw.rectangle(box, fill=(128, 128, 128, int(255 * alpha)))
    width = max(1, round(min(W, H) / 300))
    for index, s in enumerate(state.ravel()):
        box = geometry.token_box(index, grid)
        if s == FUSED:
            draw.rectangle(box, fill=(20, 0, 0, int(255 * alpha)))
            draw.line((box[0], box[3], box[2], box[1]), fill=(230, 60, 60, 200), width=width)
        else:
            draw.rectangle(box, outline=(60, 220, 90, 230), width=width)
    return Image.alpha_composite(base.convert("RGBA"), shade).convert("RGB")


def tokens_per_layer(trace: list[BlockTrace]) -> list[dict]:
    """One row per hourglass block: stage (1-based as in the paper), block, tokens in the grid,
    tokens attention ran on (score token and representative included), kept and fused counts."""
    return [{"stage": t.stage + 1, "block": t.block, "tokens": int(np.prod(t.grid)),
             "processed": t.tokens_processed, "kept": int(t.kept.shape[1]), "fused": int(t.fused.shape[1])}
            for t in trace]


@dataclass(frozen=True)
class SweepPoint:
    """The model at one keep ratio: top-1 class index and probability, latency (ms, median of
    ``repeats``), and tokens processed summed over the hourglass blocks."""

    keep_ratio: float
    top1: int
    probability: float
    latency_ms: float
    tokens_processed: int


@dataclass(frozen=True)
class RatioTrace:
    """One keep ratio of :func:`trace_keep_ratios`: probs (num_classes,) float32 softmax on the CPU,
    trace: one BlockTrace per hourglass block (CPU tensors, batch of 1), latency_ms: median wall
    time (milliseconds) of the timed forwards."""

    keep_ratio: float
    probs: torch.Tensor
    trace: list[BlockTrace]
    latency_ms: float

    @property
    def tokens_processed(self) -> int:
        """Tokens attention ran on, summed over the hourglass blocks."""
        return sum(t.tokens_processed for t in self.trace)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_trace(trace: list[BlockTrace]) -> list[BlockTrace]:
    return [BlockTrace(t.stage, t.block, t.grid, t.keep_ratio, None if t.scores is None else t.scores.cpu(),
                       t.kept.cpu(), t.fused.cpu(), t.fuse_weights.cpu(), t.tokens_processed) for t in trace]


@torch.inference_mode()
def trace_keep_ratios(model, x: torch.Tensor, ratios=(1.0, 0.8, 0.6, 0.5, 0.4, 0.25),
                      repeats: int = 3) -> dict[float, RatioTrace]:
    """``model.forward_trace(x, keep_ratio=r)`` of a light model for each keep ratio r on x
    (1, 3, H, W) (on the model's device) -> {r: :class:`RatioTrace`} (Table 23's trade-off).

    Timing: one untimed warm-up forward first (first-call allocations, kernel selection); then
    ``repeats`` rounds over all ratios, round-robin, so a burst of load on a shared machine slows
    every ratio alike instead of one; CUDA is synchronized around each forward. That is
    ``1 + len(ratios) * repeats`` forwards in all.
    """
    device = x.device
    ratios = [float(r) for r in ratios]
    if not ratios:
        return {}
    model.forward_trace(x, keep_ratio=ratios[0])  # warm-up
    times: dict[float, list[float]] = {r: [] for r in ratios}
    outputs = {}
    for _ in range(max(1, repeats)):
        for r in ratios:
            _sync(device)
            t0 = time.perf_counter()
            outputs[r] = model.forward_trace(x, keep_ratio=r)
            _sync(device)
            times[r].append((time.perf_counter() - t0) * 1000)
    return {r: RatioTrace(r, logits.float().softmax(-1)[0].cpu(), _cpu_trace(trace), float(np.median(times[r])))
            for r, (logits, trace) in outputs.items()}


def keep_ratio_sweep(model, x: torch.Tensor, ratios=(1.0, 0.8, 0.6, 0.5, 0.4, 0.25), repeats: int = 3) -> list[SweepPoint]:
    """Run a light model on ``x`` (1, 3, H, W) at each keep ratio (Table 23's trade-off): top-1,
    its probability, median latency and tokens processed per ratio, timed as
    :func:`trace_keep_ratios` does (warm-up, round-robin rounds)."""
    return [SweepPoint(r, int(t.probs.argmax()), float(t.probs.max()), t.latency_ms, t.tokens_processed)
            for r, t in trace_keep_ratios(model, x, ratios, repeats).items()]
