"""What the "Segmentation" tab does, as plain functions: input values in, display values out.

The work is the library's (:func:`uniformer.tasks.segment_image`, :class:`SegmentationResult`'s
``draw`` / ``save``); here it is turned into what the components show: overlay, legend, time
table, downloadable files. Nothing here builds components, so every function runs (and is tested)
without a browser. Errors users can fix (no image, a bad file, an unloadable checkpoint, a mode
the model cannot run) raise ``gr.Error`` with a message in words; Gradio shows it and keeps serving.
"""
from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass, field
from typing import NamedTuple

import gradio as gr
import pandas as pd
from PIL import Image

from uniformer.inference import describe_run
from uniformer.precision import default_precision
from uniformer.data.images import load_image_reduced
from uniformer.tasks import segment_image
from uniformer.tasks.segmentation import (ModeComparison, SegmentationResult, compare_stage3_modes, rescale_size,
                                          segmentation_scale)

from . import errors
from .dense_handlers import MAX_DISPLAY_SIDE, _decode, _display_size, _need_image, _out_dir
from .dense_models import LIGHT_STAGE3_NOTE, Stage3Twins, is_light_detector
from .handlers import default_device, model_line

__all__ = ["MODES", "WINDOW_SIZES", "SHORT_SIDES", "mode_update", "SegView", "SegOutputs", "segment", "compare_modes",
           "rerender", "empty_segmentation", "legend_html"]

#: Stage-3 attention modes (§4.3) as (label, value).
MODES = [("global", "global"), ("window", "window"), ("hybrid (every 4th block global)", "hybrid")]
#: Window sizes offered: 14 (the trained hybrid models) and 32 (the official w32 / h32 test configs).
WINDOW_SIZES = [14, 32]
#: Short sides of the test resize offered: 512 is the official (2048, 512) keep-ratio rule.
SHORT_SIDES = [("512 (official)", 512), ("384", 384), ("256 (fast)", 256)]
#: Segmentation decodes photos to at most this longest side (pixels; JPEGs at reduced scale, so a
#: 24 MP photo costs a 3 MP one), then works on a copy whose longest side is the larger of the
#: displayed size (MAX_DISPLAY_SIDE) and the network input of the official 512 resize: the class map
#: is computed at that size (logits resized once more, as officially, but to ~1 MP instead of the
#: photo's size, which cost more than the network on a 3 MP photo), panoramas keep their full input.
MAX_SEGMENT_SIDE = 2048
#: How the tab picks the precision (:func:`uniformer.precision.default_precision` of the device).
_PRECISION_NOTE = "the device's default: bf16 where native"
#: Classes listed in the legend (the rest are summed up in one line).
LEGEND_ROWS = 20


def mode_update(model_name: str) -> tuple[dict, dict]:
    """The stage-3 attention radio and the window radio for ``model_name``: enabled for the S / B
    segmentors (their setting kept); for the light ones (XXS / XS: hourglass stage-3 blocks, no
    windows) set to global and disabled, with a note, as the Detection tab does."""
    if is_light_detector(model_name):
        return (gr.update(value="global", interactive=False, info=LIGHT_STAGE3_NOTE),
                gr.update(interactive=False))
    return gr.update(interactive=True, info=""), gr.update(interactive=True)


@dataclass
class SegView:
    """What the segmentation tab keeps between events (in a ``gr.State``): the photo and class map at
    full size, the last result's summary, and the time each stage-3 mode took on this input."""

    image: Image.Image
    result: SegmentationResult | None  # None until the first run
    key: tuple
    comparison: ModeComparison = field(default_factory=ModeComparison)


class SegOutputs(NamedTuple):
    """Outputs of a segmentation run, in the order of the tab's output components."""

    overlay: Image.Image | None
    classes: list[int] | dict  # the class indices shown (a value, for the API); :func:`class_filter` sets the choices
    legend: str
    details: str
    timings: pd.DataFrame
    files: list[str] | None
    state: SegView | None


def legend_html(result: SegmentationResult, visible: set[int] | None = None) -> str:
    """HTML legend: colour swatch, class name and area (% of the image) of each class present,
    largest first; hidden classes are struck through."""
    areas = result.class_areas()
    rows = []
    for a in areas[:LEGEND_ROWS]:
        r, g, b = result.palette[a.index]
        name = html.escape(a.name.strip())
        style = "text-decoration:line-through;opacity:.45" if visible is not None and a.index not in visible else ""
        rows.append(f"<div style='display:flex;align-items:center;gap:8px;margin:2px 0;{style}'>"
                    f"<span style='display:inline-block;width:18px;height:14px;border:1px solid #555;"
                    f"background:rgb({r},{g},{b})'></span><span style='flex:1'>{name}</span>"
                    f"<span style='font-variant-numeric:tabular-nums'>{100 * a.fraction:.1f}%</span></div>")
    if len(areas) > LEGEND_ROWS:
        rest = sum(a.fraction for a in areas[LEGEND_ROWS:])
        rows.append(f"<div style='color:#777'>\u2026 {len(areas) - LEGEND_ROWS} more classes, "
                    f"{100 * rest:.1f}% together</div>")
    return f"<div class='seg-legend' style='font-size:14px'>{''.join(rows)}</div>"


def _class_choices(result: SegmentationResult) -> list[tuple[str, int]]:
    return [(f"{a.name.strip()} ({100 * a.fraction:.1f}%)", a.index) for a in result.class_areas()]


def _listed(blocks: list[int]) -> str:
    """[3, 7] (0-based) -> 'blocks 4 and 8 of stage 3'."""
    names = [str(i + 1) for i in blocks]
    if not names:
        return "no block of stage 3"
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
    return f"block{'s' * (len(names) > 1)} {listed} of stage 3"


def _windows_caption(result: SegmentationResult) -> str:
    if result.stage3_attention == "global":
        return "global: every stage-3 token attends to all others"
    n = len(result.window_boxes())
    ws = result.window_size
    extra = f"; {_listed(list(result.global_blocks))} stay global" if result.stage3_attention == "hybrid" else ""
    return (f"{result.stage3_attention}: {n} window{'s' * (n != 1)} of {ws}\u00d7{ws} stage-3 tokens "
            f"({16 * ws}\u00d7{16 * ws} input pixels, zero-padded at the right/bottom){extra}")


def _seg_details(result: SegmentationResult) -> str:
    w, h = result.input_size
    return (model_line(result.model_name, result.weights) + "  \n"
            f"**Stage 3:** {_windows_caption(result)}  \n"
            f"{describe_run(dataclasses.replace(result.run_info, precision_note=_PRECISION_NOTE))} \u00b7 "
            f"**Input:** {w}\u00d7{h} (image {result.image_size[0]}\u00d7{result.image_size[1]})")


def _timings_table(view: SegView | None) -> pd.DataFrame:
    columns = ["stage 3", "window", "inference (ms)", "vs global", "same class as global (%)"]
    rows = [[r["mode"], "-" if r["window"] is None else f"{r['window']}\u00d7{r['window']}", round(r["ms"]),
             "" if r["vs_global"] is None else f"{r['vs_global']:.2f}\u00d7",
             "" if r["agreement"] is None else round(100 * r["agreement"], 2)]
            for r in (view.comparison.rows() if view is not None else [])]
    return pd.DataFrame(rows, columns=columns)


def _seg_files(view: SegView, overlay_full: Image.Image) -> list[str]:
    return [str(p) for p in view.result.save(_out_dir("uniformer_seg_"), overlay_full, full_paths=False)]


def _render(view: SegView, opacity: float, visible, show_windows: bool) -> tuple[Image.Image, Image.Image]:
    """(display-size overlay, full-size overlay) of ``view`` with the stage-3 windows if asked."""
    full = view.result.draw(view.image, opacity, visible, show_windows)
    return full.resize(_display_size(full.size), Image.BILINEAR), full


def _run(twins: Stage3Twins, image: Image.Image, model_name: str, mode: str, window_size: int, short_side,
         ) -> SegmentationResult:
    try:
        loaded, model = twins.get(model_name, mode, int(window_size))
    except ValueError as e:
        raise gr.Error(str(e), title="Not available for this model") from None
    if model is None:
        raise errors.model_not_loaded(model_name, loaded.error)
    try:
        return segment_image(model, image, scale=segmentation_scale(short_side), device=default_device(),
                             precision=default_precision(default_device()))
    except ValueError as e:
        raise gr.Error(str(e), title="Invalid setting") from None


def _outputs(view: SegView, opacity: float, show_windows: bool) -> SegOutputs:
    shown, full = _render(view, opacity, None, show_windows)
    return SegOutputs(shown, [v for _, v in _class_choices(view.result)], legend_html(view.result),
                      _seg_details(view.result), _timings_table(view), _seg_files(view, full), view)


def class_filter(state: SegView | None) -> dict:
    """The "Show classes" filter after a run: every class found (label 'name (area %)'), all ticked.
    A separate (private) event, so that the public API returns the shown classes as a plain value."""
    if not isinstance(state, SegView) or state.result is None:
        return gr.update(choices=[], value=[])
    choices = _class_choices(state.result)
    return gr.update(choices=choices, value=[v for _, v in choices])


def segment(image, model_name: str, mode: str, window_size: int, short_side, opacity: float, show_windows: bool,
            state: SegView | None, twins: Stage3Twins) -> SegOutputs:
    """Segment ``image`` with ``model_name``, stage 3 in ``mode`` with ``window_size`` windows, the
    keep-ratio test resize bounded by (4 x short_side, short_side). Records the time in the view's
    table (kept while image, model and resolution stay the same).

    Raises gr.Error: no image, unreadable image, model not loaded, mode not available."""
    view = _view(image, model_name, short_side, state)
    view.result = _run(twins, view.image, model_name, mode, window_size, short_side)
    view.comparison.record(view.result)
    return _outputs(view, opacity, show_windows)


def working_copy(img: Image.Image) -> Image.Image:
    """``img`` shrunk (keep-ratio) to the longest side :data:`MAX_SEGMENT_SIDE`'s note gives."""
    return load_image_reduced(img, max(MAX_DISPLAY_SIDE, *rescale_size(img.size)))


def _view(image, model_name: str, short_side, state: SegView | None) -> SegView:
    """The view of this image, model and resolution: ``state`` (its time table kept) when they are
    the same, else a fresh one. Raises gr.Error: no image, unreadable image."""
    _need_image(image)
    img = working_copy(_decode(image, MAX_SEGMENT_SIDE))
    key = (str(image), model_name, int(short_side))
    view = state if isinstance(state, SegView) and state.key == key else SegView(img, None, key)
    view.image = img
    return view


def compare_modes(image, model_name: str, mode: str, window_size: int, short_side, opacity: float,
                  show_windows: bool, state: SegView | None, twins: Stage3Twins,
                  progress: gr.Progress = gr.Progress()) -> SegOutputs:
    """Run global, window and hybrid (with ``window_size``) on ``image``, fill the time table (with
    each mode's agreement with global) and show ``mode``'s result. One untimed warm-up run comes
    first, so that the first mode timed does not pay one-time costs (kernel set-up for this input
    size). Raises gr.Error as :func:`segment`."""
    view = _view(image, model_name, short_side, state)
    view.result, _ = compare_stage3_modes(lambda m: _run(twins, view.image, model_name, m, window_size, short_side),
                                          mode, view.comparison, lambda fraction, text: progress(fraction, desc=text))
    return _outputs(view, opacity, show_windows)


def rerender(state: SegView | None, opacity: float, visible, show_windows: bool):
    """Re-draw the overlay for a new opacity, class selection or window display, without running
    the model -> (overlay, legend, files); nothing when there is no result yet."""
    if not isinstance(state, SegView):
        return None, "", None
    shown, full = _render(state, opacity, visible or [], show_windows)
    return shown, legend_html(state.result, {int(v) for v in (visible or [])}), _seg_files(state, full)


def empty_segmentation() -> SegOutputs:
    """No result (the image, model or resolution changed)."""
    return SegOutputs(None, gr.update(choices=[], value=[]), "", "", _timings_table(None), None, None)


