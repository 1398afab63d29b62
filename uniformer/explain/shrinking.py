"""Which tokens the light models keep and fuse (§5.1 token shrinking), as data and pictures.

Input: the ``BlockTrace`` list from ``UniFormerLight.forward_trace`` and the image geometry
(:func:`uniformer.explain.input_geometry`). Output: per-block token-state maps on the token grid,
overlays on the original image, the tokens-per-layer schedule and its chart, and a keep-ratio sweep
(:func:`trace_keep_ratios` on a tensor, :func:`shrink_image` on a photo).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw

from ..data import eval_transform, load_image
from ..hub import WeightsInfo
from ..inference import ClassScore, select_device, synchronize
from ..models.light import BlockTrace
from .analysis import class_names_of
from .geometry import InputGeometry, input_geometry
from .overlay import display_size

__all__ = ["KEPT", "FUSED", "KEEP_RATIOS", "token_state_map", "score_map", "scores_tied", "shrinking_overlay",
           "tokens_per_layer", "tokens_figure", "SweepPoint", "RatioTrace", "trace_keep_ratios", "keep_ratio_sweep",
           "ShrinkingRun", "shrink_image"]

#: Keep ratios of Table 23; 1.0 = no shrinking, 0.5 = the paper's default.
KEEP_RATIOS = (1.0, 0.8, 0.6, 0.5, 0.4, 0.25)

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


def scores_tied(t: BlockTrace, sample: int = 0) -> bool:
    """True when every token of block ``t`` got the same importance score (relative spread <= 1e-6,
    e.g. an untrained score token attends uniformly): which tokens are kept is then arbitrary.
    False for the first stage-3 block (no scores yet)."""
    if t.scores is None:
        return False
    scores = t.scores[sample].float()
    return float(scores.max() - scores.min()) <= 1e-6 * float(scores.abs().max())


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
    ``repeats``), tokens processed summed over the hourglass blocks, and the spread of the timed
    forwards, (fastest, slowest) in ms."""

    keep_ratio: float
    top1: int
    probability: float
    latency_ms: float
    tokens_processed: int
    latency_range_ms: tuple[float, float] = (float("nan"), float("nan"))


@dataclass(frozen=True)
class RatioTrace:
    """One keep ratio of :func:`trace_keep_ratios`: probs (num_classes,) float32 softmax on the CPU,
    trace: one BlockTrace per hourglass block (CPU tensors, batch of 1), latency_ms: median wall
    time (milliseconds) of the timed forwards, latency_range_ms: their (fastest, slowest)."""

    keep_ratio: float
    probs: torch.Tensor
    trace: list[BlockTrace]
    latency_ms: float
    latency_range_ms: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def tokens_processed(self) -> int:
        """Tokens attention ran on, summed over the hourglass blocks."""
        return sum(t.tokens_processed for t in self.trace)


def _cpu_trace(trace: list[BlockTrace]) -> list[BlockTrace]:
    return [BlockTrace(t.stage, t.block, t.grid, t.keep_ratio, None if t.scores is None else t.scores.cpu(),
                       t.kept.cpu(), t.fused.cpu(), t.fuse_weights.cpu(), t.tokens_processed) for t in trace]


@torch.inference_mode()
def trace_keep_ratios(model, x: torch.Tensor, ratios=KEEP_RATIOS,
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
            synchronize(device)
            t0 = time.perf_counter()
            outputs[r] = model.forward_trace(x, keep_ratio=r)
            synchronize(device)
            times[r].append((time.perf_counter() - t0) * 1000)
    return {r: RatioTrace(r, logits.float().softmax(-1)[0].cpu(), _cpu_trace(trace), float(np.median(times[r])),
                          (min(times[r]), max(times[r])))
            for r, (logits, trace) in outputs.items()}


def keep_ratio_sweep(model, x: torch.Tensor, ratios=KEEP_RATIOS, repeats: int = 3) -> list[SweepPoint]:
    """Run a light model on ``x`` (1, 3, H, W) at each keep ratio (Table 23's trade-off): top-1,
    its probability, median latency, its (fastest, slowest) range and tokens processed per ratio,
    timed as :func:`trace_keep_ratios` does (warm-up, round-robin rounds)."""
    return [SweepPoint(r, int(t.probs.argmax()), float(t.probs.max()), t.latency_ms, t.tokens_processed,
                       t.latency_range_ms)
            for r, t in trace_keep_ratios(model, x, ratios, repeats).items()]


_KEPT_COLOR, _FUSED_COLOR, _PROCESSED_COLOR = "#3cb45a", "#c83c3c", "#1f3b73"


def tokens_figure(rows: list[dict], selected: int | None = None, keep_ratio: float | None = None) -> go.Figure:
    """Plotly figure of :func:`tokens_per_layer` rows: stacked bars of kept and fused tokens per
    hourglass layer and a line of the tokens attention ran on; layer ``selected`` (1-based) is
    highlighted."""
    x = [f"S{r['stage']}\u00b7B{r['block'] + 1}" for r in rows]
    fig = go.Figure()
    fig.add_bar(x=x, y=[r["kept"] for r in rows], name="kept", marker_color=_KEPT_COLOR)
    fig.add_bar(x=x, y=[r["fused"] for r in rows], name="fused into the representative", marker_color=_FUSED_COLOR)
    fig.add_scatter(x=x, y=[r["processed"] for r in rows], name="attention ran on (+ score, representative)",
                    mode="lines+markers", line=dict(color=_PROCESSED_COLOR, width=2))
    if selected is not None and 1 <= selected <= len(rows):
        fig.add_vrect(x0=selected - 1.5, x1=selected - 0.5, fillcolor="#ffd54f", opacity=0.35, line_width=0,
                      layer="below")
    ratio = "" if keep_ratio is None else f" at keep ratio {keep_ratio:g}"
    fig.update_layout(barmode="stack", title=dict(text=f"Tokens per hourglass layer{ratio}", font_size=14),
                      xaxis_title="layer (stage \u00b7 block)", yaxis_title="tokens", height=320,
                      margin=dict(l=50, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.3, traceorder="normal"),
                      plot_bgcolor="white")
    fig.update_yaxes(gridcolor="#e6e6e6", rangemode="tozero")
    return fig


@dataclass(frozen=True)
class ShrinkingRun:
    """A light model's traced forward on one photo at one keep ratio (:func:`shrink_image`).

    image: the photo as shown (RGB, long side <= ``max_display_side`` pixels); geometry: the eval
    transform's mapping for that image; trace: one BlockTrace per hourglass block (CPU tensors,
    batch of 1); topk: the best classes; latency_ms: median wall time (milliseconds) of ``repeats``
    forwards (batch 1, traced); weights: where the model's weights came from; device: where it ran.
    """

    model_name: str
    keep_ratio: float
    image: Image.Image
    geometry: InputGeometry
    trace: tuple[BlockTrace, ...]
    topk: tuple[ClassScore, ...]
    latency_ms: float
    repeats: int
    weights: WeightsInfo
    device: str

    @property
    def tokens_processed(self) -> int:
        """Tokens attention ran on, summed over the hourglass blocks."""
        return sum(t.tokens_processed for t in self.trace)

    @property
    def rows(self) -> list[dict]:
        """:func:`tokens_per_layer` of the trace."""
        return tokens_per_layer(list(self.trace))

    def overlay(self, layer: int) -> Image.Image:
        """:func:`shrinking_overlay` of hourglass layer ``layer`` (1-based) on the shown photo."""
        return shrinking_overlay(self.image, self.trace[layer - 1], self.geometry)


def shrink_image(model, image, keep_ratios=KEEP_RATIOS, repeats: int = 3, topk: int = 5,
                 device: str | torch.device | None = None, max_display_side: int | None = 800
                 ) -> dict[float, ShrinkingRun]:
    """Token shrinking of a light model (``UniFormerLight``) on one photo at each keep ratio ->
    {keep ratio: :class:`ShrinkingRun`}: the photo (path, bytes, PIL image or array) is decoded and
    preprocessed as the checkpoint was evaluated (one (1, 3, S, S) input), traced and timed by
    :func:`trace_keep_ratios` (warm-up, round-robin rounds), and each run keeps its ``topk`` classes
    and a copy of the photo at most ``max_display_side`` pixels long (None: full size) with its
    geometry, for overlays. The model is moved to ``device`` (default: where it is).

    Raises ImageDecodeError for a bad image.
    """
    original = load_image(image)
    cfg = model.pretrained_cfg
    dev = select_device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    x = eval_transform(cfg)(original).unsqueeze(0).to(dev)  # (1, 3, S, S)
    size = display_size(original.size, max_display_side)
    shown = original if size == original.size else original.resize(size, Image.Resampling.LANCZOS)
    geometry = input_geometry(shown.size, cfg)
    labels = class_names_of(cfg)
    name = getattr(model, "model_name", type(model).__name__)
    weights = getattr(model, "weights_info", WeightsInfo("untrained"))
    runs = {}
    for r, t in trace_keep_ratios(model, x, keep_ratios, repeats).items():
        values, indices = t.probs.topk(min(topk, len(t.probs)))
        best = tuple(ClassScore(int(i), labels[int(i)] if labels else str(int(i)), float(p))
                     for p, i in zip(values, indices))
        runs[r] = ShrinkingRun(name, r, shown, geometry, tuple(t.trace), best, t.latency_ms, max(1, repeats),
                               weights, str(dev))
    return runs
