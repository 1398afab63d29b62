"""What the "Segmentation" and "Pose" tabs do, as plain functions: input values in, display values out.

The work is the library's (:func:`uniformer.tasks.segment_image`, :func:`uniformer.tasks.estimate_pose`,
:mod:`uniformer.tasks.visualize`); here it is turned into what the components show: overlays,
legends, tables, downloadable files. Nothing here builds components, so every function runs (and
is tested) without a browser. Errors users can fix (no image, a bad file, a bad box, an unloadable
checkpoint) raise ``gr.Error`` with a message in words; Gradio shows it and keeps serving.
"""
from __future__ import annotations

import html
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from uniformer.data import ImageDecodeError, load_image
from uniformer.data.images import load_image_reduced
from uniformer.precision import default_precision
from uniformer.tasks import estimate_pose, segment_image
from uniformer.tasks import pose as _pose
from uniformer.tasks.pose import PoseResult, corners_to_box, format_box, format_boxes
from uniformer.tasks.segmentation import SegmentationResult
from uniformer.tasks.visualize import draw_person_boxes

from .dense_models import Stage3Twins
from .handlers import default_device, device_label
from . import errors
from .models import get_model

__all__ = ["MODES", "WINDOW_SIZES", "SHORT_SIDES", "MAX_DISPLAY_SIDE", "SegView", "SegOutputs", "segment",
           "compare_modes", "rerender", "empty_segmentation", "legend_html", "PoseOutputs", "BoxPick", "PosePhoto",
           "photo_changed", "pick_corner", "show_boxes", "find_people", "parse_box", "parse_boxes", "clear_box",
           "estimate", "empty_pose"]

#: Stage-3 attention modes (§4.3) as (label, value).
MODES = [("global", "global"), ("window", "window"), ("hybrid (every 4th block global)", "hybrid")]
#: Window sizes offered: 14 (the trained hybrid models) and 32 (the official w32 / h32 test configs).
WINDOW_SIZES = [14, 32]
#: Short sides of the test resize offered: 512 is the official (2048, 512) keep-ratio rule.
SHORT_SIDES = [("512 (official)", 512), ("384", 384), ("256 (fast)", 256)]
#: Longest side (pixels) of the pictures shown in the browser (downloads keep the full size).
MAX_DISPLAY_SIDE = 1024
#: Segmentation works on photos shrunk to this longest side (pixels; JPEGs decoded at reduced scale):
#: 4x the 512 test resize, so the result is unchanged in practice and a 24 MP photo costs a 3 MP one.
MAX_SEGMENT_SIDE = 2048
#: Classes listed in the legend (the rest are summed up in one line).
LEGEND_ROWS = 20


def _need_image(image) -> None:
    if image is None:
        raise errors.no_input()


def _decode(image, max_side: int | None = None) -> Image.Image:
    try:
        return load_image(image) if max_side is None else load_image_reduced(image, max_side)
    except ImageDecodeError as e:
        raise errors.unreadable(e) from None


def _display_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    f = min(1.0, MAX_DISPLAY_SIDE / max(w, h))
    return max(1, round(w * f)), max(1, round(h * f))


def _out_dir(prefix: str) -> Path:
    """A fresh folder in the system temp directory (where Gradio serves files from)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


# --- segmentation --------------------------------------------------------------------------------

@dataclass
class SegView:
    """What the segmentation tab keeps between events (in a ``gr.State``): the photo and class map at
    full size, the last result's summary, and the time each stage-3 mode took on this input."""

    image: Image.Image
    result: SegmentationResult
    key: tuple
    timings: dict = field(default_factory=dict)  # (mode, window) -> (ms, agreement with global or None)
    global_mask: np.ndarray | None = None


class SegOutputs(NamedTuple):
    """Outputs of a segmentation run, in the order of the tab's output components."""

    overlay: Image.Image | None
    classes: dict  # gr.CheckboxGroup update
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
    return (f"**Model:** {result.model_name} \u00b7 **Weights:** {result.weights.describe()}  \n"
            f"**Stage 3:** {_windows_caption(result)}  \n"
            f"**Device:** {device_label(torch.device(result.device))} \u00b7 **Precision:** {result.precision} "
            f"(the device's default: bf16 where native) \u00b7 **Inference:** {result.inference_ms:.0f} ms "
            f"(+ {result.preprocess_ms:.0f} ms preprocessing, {result.postprocess_ms:.0f} ms resizing) \u00b7 "
            f"**Input:** {w}\u00d7{h} (image {result.image_size[0]}\u00d7{result.image_size[1]})")


def _timings_table(view: SegView | None) -> pd.DataFrame:
    columns = ["stage 3", "window", "inference (ms)", "vs global", "same class as global (%)"]
    if view is None or not view.timings:
        return pd.DataFrame(columns=columns)
    base = view.timings.get(("global", None), (None, None))[0]
    rows = []
    order = {"global": 0, "window": 1, "hybrid": 2}
    for (mode, ws), (ms, agree) in sorted(view.timings.items(), key=lambda kv: (order[kv[0][0]], kv[0][1] or 0)):
        rows.append([mode, "-" if ws is None else f"{ws}\u00d7{ws}", round(ms),
                     f"{ms / base:.2f}\u00d7" if base else "", "" if agree is None else round(100 * agree, 2)])
    return pd.DataFrame(rows, columns=columns)


def _seg_files(view: SegView, overlay_full: Image.Image) -> list[str]:
    return [str(p) for p in view.result.save(_out_dir("uniformer_seg_"), overlay_full)]


def _render(view: SegView, opacity: float, visible, show_windows: bool) -> tuple[Image.Image, Image.Image]:
    """(display-size overlay, full-size overlay) of ``view`` with the stage-3 windows if asked."""
    full = view.result.draw(view.image, opacity, visible, show_windows)
    return full.resize(_display_size(full.size), Image.BILINEAR), full


def _scale(short_side) -> tuple[int, int]:
    s = int(short_side)
    return 4 * s, s


def _run(twins: Stage3Twins, image: Image.Image, model_name: str, mode: str, window_size: int, short_side,
         ) -> SegmentationResult:
    try:
        loaded, model = twins.get(model_name, mode, int(window_size))
    except ValueError as e:
        raise gr.Error(str(e), title="Not available for this model") from None
    if model is None:
        raise errors.model_not_loaded(model_name, loaded.error)
    try:
        return segment_image(model, image, scale=_scale(short_side), device=default_device(),
                             precision=default_precision(default_device()))
    except ValueError as e:
        raise gr.Error(str(e), title="Invalid setting") from None


def _record(view: SegView, result: SegmentationResult) -> None:
    key = (result.stage3_attention, None if result.stage3_attention == "global" else result.window_size)
    if result.stage3_attention == "global":
        view.global_mask = result.mask
    agree = None if view.global_mask is None else result.agreement(view.global_mask)
    view.timings[key] = (result.inference_ms, agree)


def _outputs(view: SegView, opacity: float, show_windows: bool) -> SegOutputs:
    shown, full = _render(view, opacity, None, show_windows)
    choices = _class_choices(view.result)
    return SegOutputs(shown, gr.update(choices=choices, value=[v for _, v in choices]), legend_html(view.result),
                      _seg_details(view.result), _timings_table(view), _seg_files(view, full), view)


def segment(image, model_name: str, mode: str, window_size: int, short_side, opacity: float, show_windows: bool,
            state: SegView | None, twins: Stage3Twins) -> SegOutputs:
    """Segment ``image`` with ``model_name``, stage 3 in ``mode`` with ``window_size`` windows, the
    keep-ratio test resize bounded by (4 x short_side, short_side). Records the time in the view's
    table (kept while image, model and resolution stay the same).

    Raises gr.Error: no image, unreadable image, model not loaded, mode not available."""
    _need_image(image)
    img = _decode(image, MAX_SEGMENT_SIDE)
    result = _run(twins, img, model_name, mode, window_size, short_side)
    key = (str(image), model_name, int(short_side))
    view = state if isinstance(state, SegView) and state.key == key else SegView(img, result, key)
    view.image, view.result = img, result
    _record(view, result)
    return _outputs(view, opacity, show_windows)


def compare_modes(image, model_name: str, mode: str, window_size: int, short_side, opacity: float,
                  show_windows: bool, state: SegView | None, twins: Stage3Twins,
                  progress: gr.Progress = gr.Progress()) -> SegOutputs:
    """Run global, window and hybrid (with ``window_size``) on ``image``, fill the time table (with
    each mode's agreement with global) and show ``mode``'s result. One untimed warm-up run comes
    first, so that the first mode timed does not pay one-time costs (kernel set-up for this input
    size). Raises gr.Error as :func:`segment`."""
    _need_image(image)
    img = _decode(image, MAX_SEGMENT_SIDE)
    key = (str(image), model_name, int(short_side))
    view = None
    shown = None
    progress(0, desc="warm-up run")
    _run(twins, img, model_name, "global", window_size, short_side)  # warm-up
    for i, m in enumerate(("global", "window", "hybrid")):
        progress((i + 1) / 4, desc=f"timing {m} ({i + 1}/3)")
        result = _run(twins, img, model_name, m, window_size, short_side)
        if view is None:
            view = state if isinstance(state, SegView) and state.key == key else SegView(img, result, key)
            view.image = img
        view.result = result
        _record(view, result)
        if m == mode:
            shown = result
    view.result = shown
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


# --- pose ----------------------------------------------------------------------------------------

class PoseOutputs(NamedTuple):
    """Outputs of a pose run, in the order of the tab's output components."""

    overlay: Image.Image | None
    table: pd.DataFrame
    details: str
    files: list[str] | None


@dataclass(frozen=True)
class BoxPick:
    """Corners clicked so far on the photo: None, or the first corner (x, y) in image pixels."""

    first: tuple[float, float] | None = None


@dataclass(frozen=True)
class PosePhoto:
    """The photo of the Pose tab (in a ``gr.State``). original: the upload's path, which the model
    always reads; shown: the file name of the copy with the boxes drawn that the clickable image
    shows now (None while it shows the upload itself)."""

    original: str | None = None
    shown: str | None = None

    def source(self, image) -> str | None:
        """The file to read for the clickable image's value ``image``: the upload when ``image`` is
        the copy with the boxes drawn, else ``image`` itself (an API call, a new upload)."""
        if image is not None and self.original and self.shown and Path(str(image)).name == self.shown:
            return self.original
        return image


_box_text = format_box  # the name app.detection_handlers imports


def _parse(fn, text, image_size):
    try:
        return fn(text, image_size)
    except ValueError as e:
        raise gr.Error(f"{str(e)[:1].upper()}{str(e)[1:]}. Click two opposite corners on the photo, type 'x, y, "
                       f"width, height', or clear the box to use the whole image.", title="Invalid person box") from None


def parse_box(text: str | None, image_size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """:func:`uniformer.tasks.pose.parse_box` with its errors as gr.Error."""
    return _parse(_pose.parse_box, text, image_size)


def parse_boxes(text: str | None, image_size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """:func:`uniformer.tasks.pose.parse_boxes` with its errors as gr.Error."""
    return _parse(_pose.parse_boxes, text, image_size)


def _show(photo: PosePhoto, boxes=(), corner=None) -> tuple[PosePhoto, str]:
    """Draw ``boxes`` (and the first ``corner``) on a copy of the upload, written under a fresh
    name -> (photo state naming the copy, its path for the clickable image)."""
    img = _decode(photo.original)
    folder = _out_dir("uniformer_pose_box_")
    path = folder / f"pose_box_{uuid.uuid4().hex[:12]}.png"
    draw_person_boxes(img, boxes, corner).save(path)
    return PosePhoto(photo.original, path.name), str(path)


def _photo(image, photo) -> PosePhoto:
    _need_image(image)
    photo = photo if isinstance(photo, PosePhoto) else PosePhoto()
    src = photo.source(image)
    return photo if src == photo.original else PosePhoto(str(image))


def photo_changed(image, photo: PosePhoto | None):
    """The clickable image changed -> (photo, pick, box text, *cleared pose outputs, last run). A
    copy this tab drew (its boxes) changes nothing; a new upload (or no image) starts afresh."""
    photo = photo if isinstance(photo, PosePhoto) else PosePhoto()
    if image is not None and photo.source(image) == photo.original and photo.shown:
        return tuple(gr.skip() for _ in range(4 + len(PoseOutputs._fields)))
    return (PosePhoto(None if image is None else str(image)), BoxPick(), "", *empty_pose(), None)


def pick_corner(image, photo: PosePhoto | None, pick: BoxPick | None, evt: gr.SelectData):
    """A click on the photo: the first click marks one corner, the second the opposite corner and
    makes the box -> (photo state, pick state, box text (unchanged after the first click), the
    photo with the corner or the box drawn, for the clicked image itself)."""
    photo = _photo(image, photo)
    x, y = (float(v) for v in evt.index[:2])
    pick = pick if isinstance(pick, BoxPick) else BoxPick()
    if pick.first is None:
        photo, shown = _show(photo, corner=(x, y))
        return photo, BoxPick((x, y)), gr.update(), shown
    box = corners_to_box(pick.first, (x, y))
    photo, shown = _show(photo, [box])
    return photo, BoxPick(None), format_box(box), shown


def show_boxes(image, photo: PosePhoto | None, box_text: str | None):
    """Typed boxes: draw them on the photo -> (photo state, pick state, the photo with the boxes)."""
    photo = _photo(image, photo)
    photo, shown = _show(photo, parse_boxes(box_text, _decode(photo.original).size))
    return photo, BoxPick(), shown


def clear_box(image=None, photo: PosePhoto | None = None):
    """Forget the box: the whole image is the person box -> (pick state, box text, photo state, the
    photo without boxes); only the first two without a photo."""
    if image is None or not isinstance(photo, PosePhoto) or not photo.original:
        return BoxPick(), "", gr.skip(), gr.skip()
    photo, shown = _show(_photo(image, photo))
    return BoxPick(), "", photo, shown


def find_people(image, photo: PosePhoto | None, detector_name: str, detect_people, progress=gr.Progress()):
    """``detect_people`` (:func:`app.detection_handlers.find_people`: (image, detector) -> (pick,
    box text, ..., note)) on the upload, its boxes drawn on the clicked photo -> (photo state, pick
    state, box text, the photo with the boxes, note)."""
    photo = _photo(image, photo) if image is not None else PosePhoto()
    pick, text, *_, note = detect_people(photo.original, detector_name, progress=progress)
    if not isinstance(text, str):  # declined or nobody found: the box stays
        return gr.skip(), pick, text, gr.skip(), note
    photo, shown = _show(photo, parse_boxes(text, _decode(photo.original).size))
    return photo, pick, text, shown, note


_POSE_COLUMNS = ["person", "joint", "x", "y", "score"]


def _pose_details(result: PoseResult) -> str:
    person = result.persons[0]
    w, h = result.input_size
    if len(result.persons) == 1:
        boxes = (f"**Person box:** {format_box(person.box)} (x, y, w, h) \u2192 crop {w}\u00d7{h} around "
                 f"({person.center[0]:.0f}, {person.center[1]:.0f}), {person.scale[0] * 200:.0f}\u00d7"
                 f"{person.scale[1] * 200:.0f} px (aspect fixed, \u00d71.25)")
        score = f"{person.score:.3f}"
    else:
        boxes = (f"**Person boxes:** {len(result.persons)} ("
                 + format_boxes([p.box for p in result.persons])
                 + f"; x, y, w, h) \u2192 one {w}\u00d7{h} crop each (aspect fixed, \u00d71.25)")
        score = ", ".join(f"{p.score:.3f}" for p in result.persons)
    return (f"**Model:** {result.model_name} \u00b7 **Weights:** {result.weights.describe()}  \n"
            f"{boxes} \u00b7 **Flip test:** "
            f"{'on' if result.flip_test else 'off'} \u00b7 **Mean score:** {score}  \n"
            f"**Device:** {device_label(torch.device(result.device))} \u00b7 "
            f"**Inference:** {result.inference_ms:.0f} ms "
            f"(+ {result.preprocess_ms:.0f} ms preprocessing, {result.postprocess_ms:.0f} ms decoding)")


def estimate(image, model_name: str, box_text: str | None, flip_test: bool, threshold: float) -> PoseOutputs:
    """Keypoints of the person in each box (boxes separated by ';'; the whole image when there is
    none), drawn with scores (joints below ``threshold`` hidden), a table, details and downloads
    (overlay PNG, keypoints JSON). Raises gr.Error: no image, unreadable image, bad box, model not
    loaded."""
    return PoseOutputs(*estimate_live(image, model_name, box_text, flip_test, threshold)[:-1])


@dataclass(frozen=True)
class PoseRun:
    """What one pose run keeps for re-drawing: the decoded photo and the result."""

    image: Image.Image
    result: PoseResult


def estimate_live(image, model_name: str, box_text: str | None, flip_test: bool, threshold: float,
                  photo: PosePhoto | None = None):
    """:func:`estimate` for the tab: its outputs plus a :class:`PoseRun` state, so the threshold
    re-draws (:func:`redraw_pose`) without running the model again. ``photo``: the tab's photo
    state; the model reads the upload, never the copy with the boxes drawn."""
    _need_image(image)
    img = _decode(photo.source(image) if isinstance(photo, PosePhoto) else image)
    boxes = parse_boxes(box_text, img.size)
    loaded = get_model(model_name)
    if loaded.model is None:
        raise errors.model_not_loaded(model_name, loaded.error)
    run = PoseRun(img, estimate_pose(loaded.model, img, boxes=boxes or None, flip_test=bool(flip_test),
                                     device=default_device()))
    return (*render_pose(run, threshold), run)


def redraw_pose(run: PoseRun | None, threshold: float) -> PoseOutputs:
    """The threshold moved: re-draw the last run with joints scoring below ``threshold`` hidden
    (no network); nothing to do before the first run."""
    if run is None:
        return PoseOutputs(*(gr.skip() for _ in PoseOutputs._fields))
    return render_pose(run, threshold)


def render_pose(run: PoseRun, threshold: float) -> PoseOutputs:
    """Draw ``run`` with joints scoring below ``threshold`` hidden -> outputs, files written."""
    full = run.result.draw(run.image, threshold)
    files = [str(p) for p in run.result.save(_out_dir("uniformer_pose_"), full)]
    table = pd.DataFrame(run.result.keypoint_rows(), columns=_POSE_COLUMNS)
    return PoseOutputs(full.resize(_display_size(full.size), Image.BILINEAR), table, _pose_details(run.result), files)


def empty_pose() -> PoseOutputs:
    """No result (the image or the model changed)."""
    return PoseOutputs(None, pd.DataFrame(columns=_POSE_COLUMNS), "", None)
