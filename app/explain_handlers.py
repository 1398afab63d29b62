"""What the "Explain" tab's events do, as plain functions: inputs in, display values out.

The network runs once per (image, model): :func:`get_analysis` keeps the last few
:class:`uniformer.explain.Analysis` values in a small thread-safe LRU cache keyed by the image
file's SHA-1 and the model name, so clicks and slider moves re-render from cached data. The
effective receptive field (a partial forward/backward per clicked stage-2 token) and the CAMs are
cached the same way. Everything drawn comes from :mod:`uniformer.explain`; this module only
picks, formats and writes the exported files. Errors users can fix raise ``gr.Error`` in words.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import gradio as gr
import plotly.graph_objects as go
from PIL import Image

from uniformer import explain as E
from uniformer.data import ImageDecodeError, load_image

from . import errors
from .cache import LRUCache, result_dir
from .models import weights_key

__all__ = ["MAX_DISPLAY_SIDE", "THUMBNAIL_SIDE", "CAM_STAGES", "analyses", "extras", "image_key",
           "get_analysis", "clamp_layer", "clamp_head", "head_slider", "ExplainView", "Rendered", "render_view",
           "export_files", "prepare_image",
           "warm_up", "click", "rerender", "export", "layer_changed", "sliders", "class_choices", "CamView", "cam_view"]

#: Long side (pixels) of the images the tab shows; clicks are scaled back to the original.
MAX_DISPLAY_SIDE = 560
#: Long side (pixels) of the smaller pictures (galleries).
THUMBNAIL_SIDE = 300
#: Stages offered to the CAM (1-based labels -> 0-based index).
CAM_STAGES = {"stage 1": 0, "stage 2": 1, "stage 3": 2, "stage 4": 3}
OUTSIDE_CROP = ("That point is outside the centre crop the model sees (the grey border): "
                "click inside the bright region.")


#: (image SHA-1, model name) -> Analysis: 4 at most, 1 GB in all (S at 224 holds ~10 MB, L at 384 ~250 MB).
analyses = LRUCache(max_items=4, max_bytes=1 << 30, weigh=lambda a: a.nbytes)
#: ('erf' | 'cam' | 'static', image SHA-1, model name, ...) -> ReceptiveField / CamResult / per-analysis views.
extras = LRUCache(max_items=32)


def image_key(image) -> str:
    """SHA-1 of the uploaded file's bytes (``image`` is a path, as RawImage passes it)."""
    if image is None:
        raise errors.no_input()
    try:
        return hashlib.sha1(Path(image).read_bytes()).hexdigest()
    except OSError as e:
        raise errors.unreadable(e) from None



def get_analysis(image, model_name: str, key: str | None = None) -> tuple[E.Analysis, bool]:
    """The cached :func:`uniformer.explain.analyze` of ``image`` with ``model_name`` ->
    (analysis, cached). Raises gr.Error for no image, an undecodable file or an unloadable model."""
    key = key or image_key(image)
    model = errors.loaded_model(model_name)

    def compute():
        try:
            return E.analyze(model, image, model_name=model_name)
        except ImageDecodeError as e:
            raise errors.unreadable(e) from None

    return analyses.get_or_compute((key, weights_key(model_name)), compute)


def clamp_layer(analysis: E.Analysis, layer: int) -> int:
    """1-based ``layer`` moved into 1..number of layers of ``analysis``."""
    return min(max(int(layer), 1), len(analysis.layers))


def clamp_head(analysis: E.Analysis, layer: int, head: int | None) -> int:
    """``head`` (0 = mean, 1..heads) moved into the range of 1-based ``layer``: a head the layer
    does not have becomes its last one, so the slider and the views show the same head."""
    heads = analysis.layers[clamp_layer(analysis, layer) - 1].heads
    return min(max(int(head or 0), 0), heads)


def head_slider(analysis: E.Analysis, layer: int, head: int | None = 0) -> dict:
    """``gr.update`` for the head slider of 1-based ``layer``: range 0 = mean, 1..heads, and the
    value ``head`` clamped into it (:func:`clamp_head`), set in the same update as the range, so the
    slider never holds a value beyond its maximum."""
    info = analysis.layers[clamp_layer(analysis, layer) - 1]
    what = "channel group (head_dim channels)" if info.kind == E.LOCAL else "head"
    return gr.update(maximum=info.heads, value=clamp_head(analysis, layer, head),
                     label=f"Head: 0 = mean over {info.heads}, else one {what}")


def _display(analysis: E.Analysis, side: int = MAX_DISPLAY_SIDE) -> tuple[int, int]:
    return E.display_size(analysis.image_size, side)


def _to_original(analysis: E.Analysis, point: tuple[float, float]) -> tuple[float, float]:
    """Display-image pixel (integers from the click) -> original-image pixel centre."""
    return E.display_to_image(point, analysis.image_size, _display(analysis))


def _erf(analysis: E.Analysis, key: str, x: float, y: float) -> E.ReceptiveField | None:
    """The stage-2 effective receptive field of the clicked token (cached per token)."""
    if not analysis.layers_of(E.LOCAL, stage=1):
        return None
    token = analysis.geometry.token_at(x, y, analysis.stage_grid(1))
    model = errors.loaded_model(analysis.model_name)
    value, _ = extras.get_or_compute(("erf", key, weights_key(analysis.model_name), token),
                                     lambda: E.effective_receptive_field(model, analysis, x, y, stage=1))
    return value


@dataclass(frozen=True)
class _Static:
    """What depends on the analysis only (not on the click or sliders), computed once per analysis."""

    pictures: E.AnalysisPictures
    #: the same pictures as PNG files (class overlay first when there is one), for the galleries:
    #: they are identical in every response about this analysis, and Gradio re-writes a PIL output
    #: in place in its content-addressed cache (gradio 6.31 ``save_pil_to_cache``), so concurrent
    #: responses could serve each other a half-written file; a file path is copied atomically.
    files: list[tuple[str, str]]


def _static(analysis: E.Analysis, key: str) -> _Static:
    def compute() -> _Static:
        pictures = E.analysis_pictures(analysis, THUMBNAIL_SIDE)
        folder = result_dir("uniformer_explain_static_")
        files = []
        for n, (im, caption) in enumerate(pictures.pictures()):
            im.save(folder / f"{n}.png")  # a fresh folder: written once, before anyone reads it
            files.append((str(folder / f"{n}.png"), caption))
        return _Static(pictures, files)

    cache_key = ("static", key, weights_key(analysis.model_name))
    static = extras.get_or_compute(cache_key, compute)[0]
    if not all(Path(f).is_file() for f, _ in static.files):  # deleted after $UNIFORMER_RESULT_TTL_S: write anew
        extras.discard(cache_key)
        static = extras.get_or_compute(cache_key, compute)[0]
    return static


class ExplainView(NamedTuple):
    """Everything the tab shows for one click and slider setting, in output order."""

    canvas: Image.Image
    info: str
    local_vs_global: list[tuple[Image.Image, str]]
    erf: Image.Image | None
    query_plot: go.Figure
    kernels_plot: go.Figure | None
    distance_plot: go.Figure
    rollout: list[tuple[Image.Image | str, str]]  # str: a PNG file (see _Static.files)


@dataclass
class Rendered:
    """A rendered view: the displayed values, plus the panels and numbers the downloads hold."""

    view: ExplainView
    panels: list[tuple[str, Image.Image]]
    payload: dict
    title: str


def _resolve(analysis: E.Analysis, key: str, point: tuple[float, float], layer: int, head: int) -> E.PointView:
    x, y = _to_original(analysis, point)
    try:
        return E.explain_point(analysis, x, y, layer, int(head) - 1 if head else None, _erf(analysis, key, x, y))
    except E.OutsideCropError:
        raise gr.Error(OUTSIDE_CROP, title="Outside the crop", print_exception=False) from None


def _info(analysis: E.Analysis, q: E.PointView, cached: bool, render_ms: float) -> str:
    tokens = q.tokens(analysis)
    who = "mean over heads" if q.head is None else f"head {q.head + 1} of {q.layer.heads}"
    rows = [f"**Click** ({q.x:.0f}, {q.y:.0f}) of the {analysis.image_size[0]}\u00d7{analysis.image_size[1]} image "
            f"\u00b7 **token (row, col)** " + ", ".join(f"S{s + 1} {rc}" for s, rc in enumerate(tokens)),
            f"**Layer** {q.layer.label} \u00b7 grid {q.layer.grid[0]}\u00d7{q.layer.grid[1]} \u00b7 {who}"
            + ("" if q.shown is not None else f" \u00b7 *{analysis.skipped[q.layer.name]}*")]
    if q.receptive_field is not None:
        rf = q.receptive_field
        rows.append(f"**Stage-2 receptive field**: theoretical {rf.theoretical_size} px (white box), 90% of the "
                    f"gradient within {rf.radius_90:.0f} px (model-input pixels)")
    if analysis.top_classes():
        rows.append("**Top-5** " + ", ".join(f"{label} {p:.1%}" for _, label, p in analysis.top_classes(5)))
    rows.append(f"**Forward with capture** {analysis.forward_ms:.0f} ms" + (" (cached)" if cached else "")
                + f" \u00b7 **render** {render_ms:.0f} ms")
    return "  \n".join(rows)


def render_view(analysis: E.Analysis, key: str, point: tuple[float, float], layer: int, head: int,
                cached: bool = True) -> Rendered:
    """Draw every view for display-pixel ``point``, 1-based ``layer`` and ``head`` (0 = mean) from
    the analysis. No network runs except the (cached) stage-2 ERF of a newly clicked token.
    Raises gr.Error for a point outside the centre crop."""
    t0 = time.perf_counter()
    q = _resolve(analysis, key, point, layer, head)
    static = _static(analysis, key)
    p = E.point_pictures(analysis, q, static.pictures, MAX_DISPLAY_SIDE, THUMBNAIL_SIDE, image_sha1=key)
    shown_rollout = static.files[:1] + p.rollout[1:] + static.files[1:] if p.rollout else static.files
    view = ExplainView(p.canvas, _info(analysis, q, cached, (time.perf_counter() - t0) * 1000), p.local_vs_global,
                       p.erf, p.query_plot, p.kernels_plot, p.distance_plot, shown_rollout)
    return Rendered(view, p.panels, p.payload, p.title)


def export_files(rendered: Rendered, key: str, tag: str) -> tuple[str, str]:
    """Write the rendered view as a PNG contact sheet and a JSON file -> (png path, json path),
    in a fresh result folder (:func:`app.cache.result_dir`: deleted after ``$UNIFORMER_RESULT_TTL_S`` s)."""
    stem = result_dir("uniformer_explain_") / f"explain_{key[:12]}_{tag}"
    E.contact_sheet(rendered.panels, height=240, columns=3, title=rendered.title).save(
        stem.with_suffix(".png"), compress_level=1)
    stem.with_suffix(".json").write_text(json.dumps(rendered.payload, indent=1))
    return str(stem.with_suffix(".png")), str(stem.with_suffix(".json"))


def prepare_image(image, model_name: str) -> tuple[Image.Image | None, str, dict]:
    """On a new image or model: the clickable picture (crop outlined, outside greyed), a hint, and
    a fresh session state. Raises gr.Error for an unreadable file or model."""
    if image is None:
        return None, "Upload a photo or pick an example, then click a point on it.", {}
    try:
        picture = load_image(image)
    except ImageDecodeError as e:
        raise errors.unreadable(e) from None
    model = errors.loaded_model(model_name)
    geometry = E.input_geometry(picture.size, model.pretrained_cfg)
    canvas = E.overlay(picture, None, geometry, size=E.display_size(picture.size, MAX_DISPLAY_SIDE))
    state = {"key": image_key(image), "image": image, "model": model_name, "point": None}
    return canvas, ("**Click a point** on the picture (inside the bright region: the centre crop the model sees) "
                    "to see where that token looks in every layer."), state


def warm_up(state: dict) -> None:
    """Run the captured forward for the current image and model in advance (fills the cache)."""
    if state and state.get("image") is not None:
        get_analysis(state["image"], state["model"], state["key"])


def _state_analysis(state: dict) -> tuple[E.Analysis, bool]:
    if not state or state.get("image") is None:
        raise errors.no_input(then="click on it")
    return get_analysis(state["image"], state["model"], state["key"])


def click(state: dict, layer: int, head: int, evt: gr.SelectData) -> tuple:
    """A click on the picture at display pixel ``evt.index`` = [x, y] -> (state, *ExplainView,
    layer-slider update, head-slider update). A click outside the centre crop shows a warning and
    changes nothing (a warning, not an error, so the picture stays clickable)."""
    n_outputs = 3 + len(ExplainView._fields)
    if evt.index is None:
        gr.Warning("Click on the picture itself.")
        return tuple(gr.skip() for _ in range(n_outputs))
    analysis, cached = _state_analysis(state)
    x, y = _to_original(analysis, tuple(evt.index))
    x0, y0, x1, y1 = analysis.geometry.crop_box()
    if not (x0 <= x < x1 and y0 <= y < y1):
        gr.Warning(OUTSIDE_CROP, title="Outside the crop")
        return tuple(gr.skip() for _ in range(n_outputs))
    layer = clamp_layer(analysis, layer)
    head = clamp_head(analysis, layer, head)
    view = render_view(analysis, state["key"], tuple(evt.index), layer, head, cached).view
    state = {**state, "point": list(evt.index)}
    return (state, *view, *_slider_updates(analysis, layer, head))


def _slider_updates(analysis: E.Analysis, layer: int, head: int) -> tuple[dict, dict]:
    """(layer-slider update, head-slider update), each with its range and its value."""
    return gr.update(maximum=len(analysis.layers), value=layer), head_slider(analysis, layer, head)


def explain_point(image, model_name: str, x: float | None, y: float | None, layer: int | None = None,
                  head: int = 0) -> tuple:
    """The API's and the tab's one-call explanation: ``image`` (path) with ``model_name``, the point
    (``x``, ``y``) in pixels of the original image, 1-based ``layer`` (None: the first stage-3 block)
    and ``head`` (0: mean over heads) -> (state, *ExplainView, layer, head, numbers): the layer and
    head shown (clamped) as plain integers; the tab sets the sliders from them (:func:`sliders`).
    ``numbers`` is the JSON of the views (clicked token's row, local-vs-global, distances, ERF,
    rollout, top-5). Raises gr.Error for a missing image / point, an unreadable file, an unloadable
    model or a point outside the centre crop."""
    if x is None or y is None:
        raise gr.Error("Give the point to explain: x and y in pixels of the image.", title="No point")
    analysis, cached = get_analysis(image, model_name)
    key = image_key(image)
    W, H = analysis.image_size
    if not (0 <= float(x) < W and 0 <= float(y) < H):
        raise gr.Error(f"The point ({x}, {y}) is outside the {W}\u00d7{H} image.", title="Outside the image")
    point = E.image_to_display((float(x), float(y)), analysis.image_size, _display(analysis))
    if layer is None:
        layer = E.first_global_layer(analysis)
    layer = clamp_layer(analysis, layer)
    head = clamp_head(analysis, layer, head)
    rendered = render_view(analysis, key, point, layer, head, cached)
    state = {"key": key, "image": image, "model": model_name, "point": list(point)}
    return (state, *rendered.view, layer, head, rendered.payload)


def sliders(state: dict, layer: int | None, head: int | None) -> tuple:
    """The sliders for what :func:`explain_point` showed (1-based ``layer``, ``head``, both already
    clamped) -> (layer-slider update, head-slider update): each sets its range and its value in one
    update, so neither slider ever holds a value beyond its maximum. Nothing changes before a point
    was explained."""
    if not state or state.get("point") is None or layer is None:
        return gr.skip(), gr.skip()
    analysis, _ = _state_analysis(state)
    layer = clamp_layer(analysis, layer)
    return _slider_updates(analysis, layer, clamp_head(analysis, layer, head))


def rerender(state: dict, layer: int, head: int) -> tuple:
    """A slider moved: re-draw from the cached analysis (no network) -> *ExplainView; nothing
    changes before the first click."""
    if not state or state.get("point") is None:
        return tuple(gr.skip() for _ in ExplainView._fields)
    analysis, cached = _state_analysis(state)
    return tuple(render_view(analysis, state["key"], tuple(state["point"]), layer, head, cached).view)


def export(state: dict, layer: int, head: int) -> list[str]:
    """The current view (click, layer, head) as [PNG path, JSON path] for download."""
    if not state or state.get("point") is None:
        raise gr.Error("Click a point on the picture first: the export holds what the views show.",
                       title="Nothing to export")
    analysis, _ = _state_analysis(state)
    rendered = render_view(analysis, state["key"], tuple(state["point"]), layer, head)
    x, y = state["point"]
    return list(export_files(rendered, state["key"], f"{analysis.model_name}_{x}_{y}_L{layer}_H{head}"))


def layer_changed(state: dict, layer: int, head: int) -> tuple:
    """The layer slider moved -> (head-slider update, *ExplainView), in one event: the head slider
    gets the new layer's range with ``head`` clamped into it, and the views are drawn for that
    clamped head (layer 16, head 3, then a layer with 2 heads: head 2, on both). Nothing changes
    before the first click (the click clamps both sliders)."""
    if not state or state.get("point") is None:
        return (gr.skip(), *(gr.skip() for _ in ExplainView._fields))
    analysis, cached = _state_analysis(state)
    layer = clamp_layer(analysis, layer)
    head = clamp_head(analysis, layer, head)
    view = render_view(analysis, state["key"], tuple(state["point"]), layer, head, cached).view
    return (head_slider(analysis, layer, head), *view)


def class_choices(state: dict) -> dict:
    """Dropdown update listing the top-5 classes of the cached analysis ('top class' first)."""
    if not state or state.get("image") is None:
        return gr.update(choices=[("top class", -1)], value=-1)
    analysis, _ = _state_analysis(state)
    return gr.update(choices=[("top class", -1)]
                     + [(f"{label} ({p:.1%})", i) for i, label, p in analysis.top_classes(5)],
                     value=-1)


class CamView(NamedTuple):
    """The CAM output: overlay image and caption."""

    image: Image.Image
    caption: str


def cam_view(state: dict, method: str, stage: str, class_index: int | None) -> CamView:
    """``method`` on ``stage`` ('stage 1'..'stage 4') for ``class_index`` (-1/None: top class) of
    the current image -> CamView. One forward (+ backward) on a private copy of the model; cached."""
    analysis, _ = _state_analysis(state)
    model = errors.loaded_model(state["model"])
    target = None if class_index is None or int(class_index) < 0 else int(class_index)
    s = CAM_STAGES.get(stage, 3)
    t0 = time.perf_counter()
    try:
        cam, cached = extras.get_or_compute(("cam", state["key"], weights_key(state["model"]), method, s, target),
                                            lambda: E.class_activation_map(model, analysis, method, s, target))
    except ValueError as e:
        raise gr.Error(str(e), title="CAM not available") from None
    image = E.overlay(analysis.image, cam.input_map, analysis.geometry, size=_display(analysis), smooth=True,
                      colorscale="Jet", normalize=False)
    took = "cached" if cached else f"{(time.perf_counter() - t0) * 1000:.0f} ms"
    return CamView(image, f"**{method}** on stage {s + 1} for **{cam.label}** (class {cam.class_index}) \u00b7 {took}")
