"""What the "Token shrinking" tab does, as plain functions: inputs in, display values out.

A run decodes the image once, traces the light model (``UniFormerLight.forward_trace``) at every
keep ratio of Table 23 and keeps each trace in a bounded, thread-safe cache keyed by
(image hash, model name, keep ratio). Moving the layer slider or picking another keep ratio then
re-renders from the cache without running the network again. Nothing here builds components, so
every function runs (and is tested) without a browser.

Errors users can fix (no image, a bad file, an unloadable checkpoint) raise ``gr.Error``.
"""
from __future__ import annotations

import hashlib
import os
import weakref
from dataclasses import dataclass
from typing import NamedTuple

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from PIL import Image

import uniformer
from uniformer.data import ImageDecodeError, eval_transform, get_labels, load_image
from uniformer.explain.geometry import InputGeometry, input_geometry
from uniformer.explain.shrinking import shrinking_overlay, tokens_per_layer, trace_keep_ratios
from uniformer.inference import ClassScore
from uniformer.models.light import is_light
from uniformer.models.light import BlockTrace, UniFormerLight

from .handlers import TOPK, default_device, device_label, is_project_model, label_scores
from . import errors
from .cache import LRUCache

__all__ = ["DEFAULT_LIGHT_MODEL", "KEEP_RATIOS", "DEFAULT_KEEP_RATIO", "REPEATS", "MAX_DISPLAY_SIDE",
           "SWEEP_COLUMNS", "light_model_choices", "keep_ratio_choices", "image_digest", "ShrinkingRun", "TraceCache",
           "TRACE_CACHE", "RunKey", "trace_ratios", "get_runs", "layer_caption", "tokens_chart", "sweep_table",
           "run_details", "ShrinkingView", "LayerView", "run_shrinking", "change_keep_ratio", "show_layer",
           "empty_view"]

#: Model selected when the tab opens (the light checkpoint on the Hub).
DEFAULT_LIGHT_MODEL = "uniformer_xxs_160_in1k"
#: Keep ratios of Table 23; 1.0 = no shrinking, 0.5 = the paper's default.
KEEP_RATIOS = (1.0, 0.8, 0.6, 0.5, 0.4, 0.25)
DEFAULT_KEEP_RATIO = 0.5
#: Forwards per keep ratio; the latency shown is their median.
REPEATS = 3
#: Longest side (pixels) of the image the overlays are drawn on (larger photos are downscaled).
MAX_DISPLAY_SIDE = 800

#: Columns of the keep-ratio table (:func:`sweep_table`).
SWEEP_COLUMNS = ("keep ratio", "tokens processed", "top-1 class", "probability", "latency (ms)", "speed vs 1.0")

_KEPT_COLOR, _FUSED_COLOR, _PROCESSED_COLOR = "#3cb45a", "#c83c3c", "#1f3b73"


def light_model_choices() -> list[tuple[str, str]]:
    """(label shown, model name) of every registered light image classifier (uniformer_xxs_* and
    uniformer_xs_*: the models with hourglass blocks), for a dropdown."""
    names = [n for n in uniformer.list_models(task="image-classification")
             if is_light(n) and not is_project_model(n)]
    return [(f"{n} \u2014 {uniformer.get_entry(n).description}", n) for n in names]


def keep_ratio_choices() -> list[tuple[str, float]]:
    """(label, keep ratio) for the keep-ratio selector, in Table 23's order."""
    notes = {1.0: " (no shrinking)", 0.5: " (paper default)"}
    return [(f"{r:g}{notes.get(r, '')}", r) for r in KEEP_RATIOS]


def image_digest(image) -> str:
    """SHA-256 (hex) identifying an image input: of the file's bytes for a path (no decoding), of
    mode, size and pixels for a PIL image, of dtype, shape and data for an array, of the bytes for
    bytes. Raises ImageDecodeError (via ``load_image``) when a path cannot be read."""
    h = hashlib.sha256()
    if isinstance(image, (str, os.PathLike)):
        try:
            with open(image, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            load_image(image)  # raises ImageDecodeError with the reason in words
            raise
        return "file:" + h.hexdigest()
    if isinstance(image, Image.Image):
        h.update(f"{image.mode}{image.size}".encode())
        h.update(image.tobytes())
        return "pil:" + h.hexdigest()
    if isinstance(image, np.ndarray):
        h.update(f"{image.dtype}{image.shape}".encode())
        h.update(np.ascontiguousarray(image).tobytes())
        return "array:" + h.hexdigest()
    if isinstance(image, (bytes, bytearray)):
        h.update(image)
        return "bytes:" + h.hexdigest()
    raise ImageDecodeError(f"unsupported image input of type {type(image).__name__}")


@dataclass(frozen=True)
class ShrinkingRun:
    """One traced forward of a light model on one image at one keep ratio.

    image: the photo as displayed (RGB, long side <= MAX_DISPLAY_SIDE pixels); geometry: the eval
    transform's mapping for that displayed image; trace: one BlockTrace per hourglass block (CPU
    tensors, batch of 1); topk: the TOPK classes; latency_ms: median wall time (milliseconds) of
    ``repeats`` forwards (batch 1, traced); tokens_processed: tokens attention ran on, summed over
    the hourglass blocks.
    """

    model_name: str
    keep_ratio: float
    image: Image.Image
    geometry: InputGeometry
    trace: tuple[BlockTrace, ...]
    topk: tuple[ClassScore, ...]
    latency_ms: float
    repeats: int
    weights: str
    device: str

    @property
    def tokens_processed(self) -> int:
        return sum(t.tokens_processed for t in self.trace)

    @property
    def rows(self) -> list[dict]:
        """``uniformer.explain.shrinking.tokens_per_layer`` of the trace."""
        return tokens_per_layer(list(self.trace))


class TraceCache:
    """Bounded LRU cache of ShrinkingRun (an :class:`app.cache.LRUCache`), thread-safe, keyed by
    (image digest, model name, keep ratio). An entry remembers (weakly) the model object that
    produced it and is a miss for any other one, so reloaded or uploaded weights are never shown
    with an old trace."""

    def __init__(self, maxsize: int = 48):
        self.maxsize = maxsize
        self._entries = LRUCache(max_items=maxsize)

    def get(self, key: tuple, model: torch.nn.Module) -> ShrinkingRun | None:
        entry = self._entries.get(key)
        if entry is None or entry[0]() is not model:
            return None
        return entry[1]

    def put(self, key: tuple, model: torch.nn.Module, run: ShrinkingRun) -> None:
        self._entries.put(key, (weakref.ref(model), run))

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: The app's trace cache (8 images x 6 keep ratios).
TRACE_CACHE = TraceCache()


class RunKey(NamedTuple):
    """What the tab remembers between events (a ``gr.State``): the cache key of the shown run and
    the image file it came from (to recompute if the cache dropped it)."""

    digest: str
    model_name: str
    keep_ratio: float
    source: object


def _display_copy(image: Image.Image) -> Image.Image:
    scale = MAX_DISPLAY_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def trace_ratios(model: UniFormerLight, x: torch.Tensor, keep_ratios, repeats: int = REPEATS
                 ) -> dict[float, tuple[torch.Tensor, list[BlockTrace], float]]:
    """{r: (probabilities, CPU trace, median latency ms)} of
    :func:`uniformer.explain.shrinking.trace_keep_ratios` (warm-up, round-robin timing)."""
    return {r: (t.probs, t.trace, t.latency_ms) for r, t in trace_keep_ratios(model, x, keep_ratios, repeats).items()}


def get_runs(image, model_name: str, keep_ratios=KEEP_RATIOS, repeats: int = REPEATS,
             cache: TraceCache = TRACE_CACHE, digest: str | None = None) -> tuple[str, dict[float, ShrinkingRun]]:
    """The runs of ``model_name`` on ``image`` (path, PIL image, array or bytes) at each of
    ``keep_ratios`` -> (image digest, {keep ratio: run}), from ``cache`` where possible; the image
    is decoded only when some ratio is missing, and only missing ratios run the network.
    ``digest``: the image's :func:`image_digest` when already known (skips reading the file).

    Raises gr.Error for no image, an undecodable image (the ImageDecodeError message) and a model
    whose weights failed to load.
    """
    if image is None:
        raise errors.no_input()
    model = errors.loaded_model(model_name)
    try:
        digest = digest or image_digest(image)
        runs = {r: cache.get((digest, model_name, float(r)), model) for r in keep_ratios}
        missing = [r for r, run in runs.items() if run is None]
        if missing:
            original = load_image(image)
    except ImageDecodeError as e:
        raise errors.unreadable(e) from None
    if missing:
        cfg = model.pretrained_cfg
        device = default_device()
        model.to(device)
        x = eval_transform(cfg)(original).unsqueeze(0).to(device)  # (1, 3, S, S)
        shown = _display_copy(original)
        geometry = input_geometry(shown.size, cfg)
        labels = cfg.class_names() if hasattr(cfg, "class_names") else get_labels(cfg.label_set)
        weights = model.weights_info.describe()
        for r, (probs, trace, ms) in trace_ratios(model, x, missing, repeats).items():
            values, indices = probs.topk(min(TOPK, len(probs)))
            topk = tuple(ClassScore(int(i), labels[int(i)], float(p)) for p, i in zip(values, indices))
            run = ShrinkingRun(model_name, float(r), shown, geometry, tuple(trace), topk, ms, max(1, repeats),
                               weights, str(device))
            cache.put((digest, model_name, float(r)), model, run)
            runs[r] = run
    return digest, runs


def layer_caption(run: ShrinkingRun, layer: int) -> str:
    """Markdown describing hourglass layer ``layer`` (1-based) of ``run``: where it is, how many
    tokens it kept, fused and ran attention on, and the overlay's legend."""
    t = run.trace[layer - 1]
    n = int(np.prod(t.grid))
    grid = "\u00d7".join(str(g) for g in t.grid)
    head = f"**Layer {layer} of {len(run.trace)}: stage {t.stage + 1}, block {t.block + 1}** \u00b7 {grid} = {n} tokens"
    kept, fused = int(t.kept.shape[1]), int(t.fused.shape[1])
    if fused == 0:
        why = ("the first stage-3 block sees every token: its score token computes the first importance scores"
               if t.scores is None else f"keep ratio {run.keep_ratio:g}: nothing is fused")
        body = f"all {kept} kept ({why}); attention ran on {t.tokens_processed} tokens (+ the score token)."
    else:
        body = (f"**{kept} kept** (green outline) \u00b7 **{fused} fused** (dark, red hatch) into one representative "
                f"token \u00b7 attention ran on {t.tokens_processed} tokens (score token + {kept} kept + "
                f"representative); the fused tokens get the representative's update.")
    if t.scores is not None and float(t.scores.max() - t.scores.min()) <= 1e-6 * float(t.scores.max()):
        body += (" **All tokens scored the same** (an untrained score token attends uniformly), so which are kept "
                 "is arbitrary.")
    return (f"{head}  \n{body}  \n<small>Greyed: outside the centre crop the model sees. Tokens are ranked by the "
            f"score token's attention (Eq. 9), averaged over layers (\u00a75.2).</small>")


def tokens_chart(rows: list[dict], selected: int | None = None, keep_ratio: float | None = None) -> go.Figure:
    """Plotly figure of ``tokens_per_layer`` rows: stacked bars of kept and fused tokens per
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


def sweep_table(runs: dict[float, ShrinkingRun], selected: float | None = None) -> pd.DataFrame:
    """One row per keep ratio (Table 23 order): tokens processed over the hourglass layers, top-1
    class and probability, latency (ms, median) and speed relative to keep ratio 1.0. The shown
    ratio is marked with an arrow."""
    base = runs.get(1.0)
    rows = []
    for r, run in runs.items():
        top = run.topk[0]
        rows.append([f"{r:g}" + (" \u25c0" if selected is not None and r == selected else ""), run.tokens_processed,
                     top.label, round(top.probability, 4), round(run.latency_ms, 1),
                     f"{base.latency_ms / run.latency_ms:.2f}\u00d7" if base else ""])
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))


def run_details(run: ShrinkingRun, base: ShrinkingRun | None = None) -> str:
    """Markdown: keep ratio, tokens processed, latency (ms) and top-1, compared with ``base``
    (the run at keep ratio 1.0), then model, weights and device."""
    text = f"**Keep ratio {run.keep_ratio:g}** \u00b7 **Latency:** {run.latency_ms:.1f} ms"
    if base is not None and base is not run:
        text += f" (1.0: {base.latency_ms:.1f} ms)"
    text += (f" \u00b7 median of {run.repeats}, batch 1  \n**Tokens processed** by the {len(run.trace)} hourglass "
             f"layers: {run.tokens_processed}")
    if base is not None and base is not run:
        text += f" of {base.tokens_processed} without shrinking ({run.tokens_processed / base.tokens_processed:.0%})"
        same = run.topk[0].index == base.topk[0].index
        text += f" \u00b7 **Top-1** {'same as' if same else 'differs from'} keep ratio 1.0 ({base.topk[0].label})"
    return (f"{text}  \n**Model:** {run.model_name} \u00b7 **Weights:** {run.weights} \u00b7 "
            f"**Device:** {device_label(torch.device(run.device))}")


class LayerView(NamedTuple):
    """What the layer slider re-renders: the overlay (PIL RGB, the displayed photo's size), its
    caption (Markdown) and the tokens-per-layer chart with the layer highlighted."""

    overlay: Image.Image | None
    caption: str
    chart: go.Figure | None


class ShrinkingView(NamedTuple):
    """Outputs of a run, in the order of the tab's output components."""

    overlay: Image.Image | None
    caption: str
    chart: go.Figure | None
    label: dict[str, float] | None
    details: str
    sweep: pd.DataFrame | None
    layer: dict
    state: RunKey | None


def _layer_view(run: ShrinkingRun, layer: int) -> LayerView:
    layer = min(max(int(layer), 1), len(run.trace))
    overlay = shrinking_overlay(run.image, run.trace[layer - 1], run.geometry)
    return LayerView(overlay, layer_caption(run, layer), tokens_chart(run.rows, layer, run.keep_ratio))


def run_shrinking(image, model_name: str, keep_ratio: float = DEFAULT_KEEP_RATIO, layer: int = 2,
                  repeats: int = REPEATS, cache: TraceCache = TRACE_CACHE, digest: str | None = None
                  ) -> ShrinkingView:
    """The Run button: trace ``model_name`` on ``image`` at every keep ratio of Table 23 (cached)
    and show ``keep_ratio``'s run at hourglass layer ``layer`` (1-based, clamped): overlay,
    caption, chart, top-5, details, the sweep table, the layer slider's new range and the state.
    Raises gr.Error (see :func:`get_runs`)."""
    keep_ratio = float(keep_ratio)
    ratios = KEEP_RATIOS if keep_ratio in KEEP_RATIOS else (*KEEP_RATIOS, keep_ratio)
    digest, runs = get_runs(image, model_name, ratios, repeats, cache, digest)
    run = runs[keep_ratio]
    layer = min(max(int(layer), 1), len(run.trace))
    view = _layer_view(run, layer)
    return ShrinkingView(*view, label_scores(list(run.topk)), run_details(run, runs.get(1.0)),
                         sweep_table(runs, keep_ratio), gr.update(minimum=1, maximum=len(run.trace), value=layer),
                         RunKey(digest, model_name, keep_ratio, image))


def change_keep_ratio(state: RunKey | None, keep_ratio: float, layer: int, repeats: int = REPEATS,
                      cache: TraceCache = TRACE_CACHE) -> ShrinkingView:
    """The keep-ratio selector: show the shown image and model at ``keep_ratio`` (from the cache:
    the run traced every ratio). Nothing shown yet (``state`` None): nothing changes."""
    if state is None:
        return empty_view()
    return run_shrinking(state.source, state.model_name, keep_ratio, layer, repeats, cache, state.digest)


def show_layer(state: RunKey | None, layer: int, repeats: int = REPEATS, cache: TraceCache = TRACE_CACHE
               ) -> LayerView:
    """The layer slider: re-render hourglass layer ``layer`` (1-based) of the shown run from the
    cache, without running the network (unless the bounded cache has dropped the run)."""
    if state is None:
        return LayerView(None, "", None)
    _, runs = get_runs(state.source, state.model_name, (state.keep_ratio,), repeats, cache, state.digest)
    return _layer_view(runs[state.keep_ratio], layer)


def empty_view() -> ShrinkingView:
    """No result (a new image or model): nothing stale stays next to a new input."""
    return ShrinkingView(None, "", None, None, "", pd.DataFrame(columns=list(SWEEP_COLUMNS)), gr.update(), None)
