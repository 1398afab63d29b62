"""What the "Token shrinking" tab does, as plain functions: inputs in, display values out.

A run traces the light model on the image at every keep ratio of Table 23
(:func:`uniformer.explain.shrinking.shrink_image`) and keeps each run in the app's bounded,
thread-safe :class:`app.cache.LRUCache`, keyed by (image digest, weights, keep ratio). Moving the
layer slider or picking another keep ratio then re-renders from the cache without running the
network again. Nothing here builds components, so every function runs (and is tested) without a
browser.

Errors users can fix (no image, a bad file, an unloadable checkpoint) raise ``gr.Error``.
"""
from __future__ import annotations

from typing import NamedTuple

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
import torch
from PIL import Image

import uniformer
from uniformer.data.images import image_digest
from uniformer.explain.shrinking import KEEP_RATIOS, ShrinkingRun, scores_tied, shrink_image, tokens_figure
from uniformer.models.light import is_light

from . import errors
from .cache import LRUCache
from .handlers import TOPK, default_device, device_label, is_project_model, label_scores, model_line
from .models import weights_key

__all__ = ["DEFAULT_LIGHT_MODEL", "KEEP_RATIOS", "DEFAULT_KEEP_RATIO", "REPEATS", "MAX_DISPLAY_SIDE",
           "SWEEP_COLUMNS", "light_model_choices", "keep_ratio_choices", "TRACE_CACHE", "RunKey", "get_runs",
           "layer_caption", "sweep_table", "run_details", "ShrinkingView", "LayerView", "run_shrinking",
           "change_keep_ratio", "show_layer", "empty_view"]

#: Model selected when the tab opens (the light checkpoint on the Hub).
DEFAULT_LIGHT_MODEL = "uniformer_xxs_160_in1k"
DEFAULT_KEEP_RATIO = 0.5
#: Forwards per keep ratio; the latency shown is their median.
REPEATS = 3
#: Longest side (pixels) of the image the overlays are drawn on (larger photos are downscaled).
MAX_DISPLAY_SIDE = 800

#: Columns of the keep-ratio table (:func:`sweep_table`).
SWEEP_COLUMNS = ("keep ratio", "tokens processed", "top-1 class", "probability", "latency (ms)", "speed vs 1.0")

#: The app's traces: {(image digest, :func:`app.models.weights_key`, keep ratio): ShrinkingRun}, 8 images x 6
#: keep ratios; other weights (an upload, a download) never see an old trace.
TRACE_CACHE = LRUCache(max_items=48)


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


class RunKey(NamedTuple):
    """What the tab remembers between events (a ``gr.State``): the cache key of the shown run and
    the image file it came from (to recompute if the cache dropped it)."""

    digest: str
    model_name: str
    keep_ratio: float
    source: object


def get_runs(image, model_name: str, keep_ratios=KEEP_RATIOS, repeats: int = REPEATS,
             cache: LRUCache = TRACE_CACHE, digest: str | None = None) -> tuple[str, dict[float, ShrinkingRun]]:
    """The runs of ``model_name`` on ``image`` (path, PIL image, array or bytes) at each of
    ``keep_ratios`` -> (image digest, {keep ratio: run}), from ``cache`` where possible; only
    missing ratios run the network (one :func:`uniformer.explain.shrinking.shrink_image` call).
    ``digest``: the image's ``image_digest`` when already known (skips reading the file).

    Raises gr.Error for no image, an undecodable image (the ImageDecodeError message) and a model
    whose weights failed to load.
    """
    if image is None:
        raise errors.no_input()
    model = errors.loaded_model(model_name)
    weights = weights_key(model_name)
    with errors.reading_image():
        digest = digest or image_digest(image)
        runs = {float(r): cache.get((digest, weights, float(r))) for r in keep_ratios}
        missing = [r for r, run in runs.items() if run is None]
        if missing:
            for r, run in shrink_image(model, image, missing, repeats, TOPK, default_device(),
                                       MAX_DISPLAY_SIDE).items():
                cache.put((digest, weights, r), run)
                runs[r] = run
    return digest, runs


def layer_caption(run: ShrinkingRun, layer: int) -> str:
    """Markdown describing hourglass layer ``layer`` (1-based) of ``run``: where it is, how many
    tokens it kept, fused and ran attention on, and the overlay's legend."""
    t, row = run.trace[layer - 1], run.rows[layer - 1]
    kept, fused = row["kept"], row["fused"]
    grid = "\u00d7".join(str(g) for g in t.grid)
    head = (f"**Layer {layer} of {len(run.trace)}: stage {row['stage']}, block {t.block + 1}** \u00b7 {grid} = "
            f"{row['tokens']} tokens")
    if fused == 0:
        why = ("the first stage-3 block sees every token: its score token computes the first importance scores"
               if t.scores is None else f"keep ratio {run.keep_ratio:g}: nothing is fused")
        body = f"all {kept} kept ({why}); attention ran on {t.tokens_processed} tokens (+ the score token)."
    else:
        body = (f"**{kept} kept** (green outline) \u00b7 **{fused} fused** (dark, red hatch) into one representative "
                f"token \u00b7 attention ran on {t.tokens_processed} tokens (score token + {kept} kept + "
                f"representative); the fused tokens get the representative's update.")
    if scores_tied(t):
        body += (" **All tokens scored the same** (an untrained score token attends uniformly), so which are kept "
                 "is arbitrary.")
    return (f"{head}  \n{body}  \n<small>Greyed: outside the centre crop the model sees. Tokens are ranked by the "
            f"score token's attention (Eq. 9), averaged over layers (\u00a75.2).</small>")


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
    return (f"{text}  \n{model_line(run.model_name, run.weights)} \u00b7 "
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
    layer: int | dict  # the layer shown, 1-based (a value, for the API); :func:`layer_range` sets the slider's range
    state: RunKey | None


def _layer_view(run: ShrinkingRun, layer: int) -> LayerView:
    layer = min(max(int(layer), 1), len(run.trace))
    return LayerView(run.overlay(layer), layer_caption(run, layer), tokens_figure(run.rows, layer, run.keep_ratio))


def run_shrinking(image, model_name: str, keep_ratio: float = DEFAULT_KEEP_RATIO, layer: int = 2,
                  repeats: int = REPEATS, cache: LRUCache = TRACE_CACHE, digest: str | None = None
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
                         sweep_table(runs, keep_ratio), layer, RunKey(digest, model_name, keep_ratio, image))


def change_keep_ratio(state: RunKey | None, keep_ratio: float, layer: int, repeats: int = REPEATS,
                      cache: LRUCache = TRACE_CACHE) -> ShrinkingView:
    """The keep-ratio selector: show the shown image and model at ``keep_ratio`` (from the cache:
    the run traced every ratio). Nothing shown yet (``state`` None): nothing changes."""
    if state is None:
        return empty_view()
    return run_shrinking(state.source, state.model_name, keep_ratio, layer, repeats, cache, state.digest)


def show_layer(state: RunKey | None, layer: int, repeats: int = REPEATS, cache: LRUCache = TRACE_CACHE
               ) -> LayerView:
    """The layer slider: re-render hourglass layer ``layer`` (1-based) of the shown run from the
    cache, without running the network (unless the bounded cache has dropped the run)."""
    if state is None:
        return LayerView(None, "", None)
    _, runs = get_runs(state.source, state.model_name, (state.keep_ratio,), repeats, cache, state.digest)
    return _layer_view(runs[state.keep_ratio], layer)


def layer_range(state: RunKey | None, repeats: int = REPEATS, cache: LRUCache = TRACE_CACHE) -> dict:
    """The layer slider's range after a run: 1 to the shown model's number of hourglass layers. A
    separate (private) event, so that the public API returns the layer as a plain value."""
    if state is None:
        return gr.update()
    _, runs = get_runs(state.source, state.model_name, (state.keep_ratio,), repeats, cache, state.digest)
    return gr.update(minimum=1, maximum=len(runs[state.keep_ratio].trace))


def empty_view() -> ShrinkingView:
    """No result (a new image or model): nothing stale stays next to a new input."""
    return ShrinkingView(None, "", None, None, "", pd.DataFrame(columns=list(SWEEP_COLUMNS)), gr.update(), None)
