"""What the "Detection" tab (and the Pose tab's person finder) do, as plain functions: input values
in, display values out.

The work is the library's (:func:`uniformer.tasks.detection.detect_objects`,
:func:`~uniformer.tasks.detection.draw_detections`, :meth:`DetectionResult.to_coco`); here it is
turned into what the components show. The network runs once per click on Detect, with a low score
threshold, and its result is kept (a :class:`DetView` in a ``gr.State``): the score-threshold
slider, the class filter and the drawing options re-draw from it without running the network
again. Errors users can fix (no image, a bad file, an unloadable checkpoint) raise ``gr.Error``
with a message in words; Gradio shows it and keeps serving.

Masks are pasted at the size of the photo, one bool per pixel per detection; a photo larger than
:data:`MAX_DETECT_SIDE` is therefore downscaled first (the network itself never sees more than
1333x800, so its input barely changes), and the kept masks are bit-packed.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import NamedTuple

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from uniformer.explain.overlay import display_size
from uniformer.inference import describe_run
from uniformer.tasks.detection import (DETECTION_STEPS, DetectionResult, PackedMasks, detect_objects,
                                       detection_scale, draw_detections)

from .dense_handlers import _decode, _display_size, _need_image, _out_dir
from .dense_models import LIGHT_STAGE3_NOTE, Stage3Twins, is_light_detector
from .handlers import default_device, model_line
from . import errors
from .models import get_model, how_to_get_weights, operator_weights_route

__all__ = ["MODES", "WINDOW_SIZE", "SHORT_SIDES", "OFFICIAL_SCORE_THR", "DEFAULT_SHOW_THR", "MAX_DETECT_SIDE",
           "PERSON_SCORE_THR", "MAX_PERSONS", "TABLE_COLUMNS", "DetView", "DetOutputs", "RedrawOutputs", "scale_for",
           "mode_update", "detect", "rerender", "empty_detection", "timing_html", "detector_note", "find_people"]

#: Stage-3 attention modes (§4.3) as (label, value); the trained S / B detectors use hybrid.
MODES = [("hybrid (official)", "hybrid"), ("window", "window"), ("global", "global")]
#: Window size (stage-3 tokens) of the trained hybrid detectors, used for window and hybrid.
WINDOW_SIZE = 14
#: Short sides of the test resize offered; 800 is the official (1333, 800) keep-ratio bound.
SHORT_SIDES = [("800 (official)", 800), ("512", 512), ("320 (fast)", 320)]
#: Score threshold of the second stage for trained weights (every official test config).
OFFICIAL_SCORE_THR = 0.05
#: Score threshold for untrained weights: their scores are near-uniform (about 1/81), so 0.05 would
#: keep nothing; 0 keeps the 100 best candidates, which the UI then labels as meaningless.
UNTRAINED_SCORE_THR = 0.0
#: Threshold of the slider when the tab opens (mmdet's ``show_score_thr``).
DEFAULT_SHOW_THR = 0.3
#: Longest side (pixels) of the photo the detector gets; larger photos are downscaled first.
MAX_DETECT_SIDE = 2048
#: Person score the Pose tab needs to use a detector box, and how many boxes it takes at most.
PERSON_SCORE_THR = 0.5
MAX_PERSONS = 10
#: Columns of the detections table.
TABLE_COLUMNS = ["#", "class", "score", "x1", "y1", "x2", "y2", "mask (px)"]


@dataclass
class DetView:
    """What the Detection tab keeps between events (in a ``gr.State``).

    image: the photo the detector saw (the upload, downscaled to :data:`MAX_DETECT_SIDE` if larger);
    original_size: (W, H) of the upload; result: the detections with ``masks=None`` (they are in
    ``packed``, bit-packed: :meth:`DetectionResult.compact`); network_thr: the score threshold
    the network ran with; trained: whether the weights are trained; light: whether the backbone is
    light-weight (hourglass blocks); hidden: class indices the user unticked; choices: the class
    indices the filter offered last (to tell unticked from unseen).
    """

    image: Image.Image
    original_size: tuple[int, int]
    result: DetectionResult
    packed: PackedMasks | None
    network_thr: float
    trained: bool
    light: bool = False
    hidden: set[int] = field(default_factory=set)
    choices: list[int] = field(default_factory=list)

    def subset(self, idx: np.ndarray) -> DetectionResult:
        """The result restricted to detections ``idx``, with their masks unpacked."""
        return self.result.subset(idx, self.packed)


class DetOutputs(NamedTuple):
    """Outputs of a detection run, in the order of the tab's output components."""

    overlay: Image.Image | None
    note: str
    classes: list[int] | dict  # the class indices shown (a value, for the API); :func:`class_filter` sets the choices
    table: pd.DataFrame
    timing: str
    details: str
    files: list[str] | None
    state: DetView | None


class RedrawOutputs(NamedTuple):
    """Outputs of a re-draw from the kept result (no network run)."""

    overlay: Image.Image | None
    note: str
    classes: dict
    table: pd.DataFrame
    files: list[str] | None
    state: DetView | None


#: (long, short) bound of the keep-ratio resize for a short side (the library's rule).
scale_for = detection_scale


def mode_update(model_name: str) -> dict:
    """The stage-3 radio for ``model_name``: hybrid (the official setting) and enabled for the S / B
    detectors; global and disabled, with a note, for the light ones (hourglass blocks, no windows)."""
    if is_light_detector(model_name):
        return gr.update(value="global", interactive=False, info=LIGHT_STAGE3_NOTE)
    return gr.update(value="hybrid", interactive=True,
                     info=f"official: hybrid ({WINDOW_SIZE}\u00d7{WINDOW_SIZE} windows, every 4th block global)")


def _trained(model: torch.nn.Module) -> bool:
    info = getattr(model, "weights_info", None)
    return info is not None and info.trained


def _detection_image(img: Image.Image) -> Image.Image:
    size = display_size(img.size, MAX_DETECT_SIDE)
    return img if size == img.size else img.resize(size, Image.BILINEAR)


def _network(twins: Stage3Twins, model_name: str, model: torch.nn.Module, mode: str) -> torch.nn.Module:
    if is_light_detector(model_name):
        return model
    try:
        return twins.get(model_name, mode, WINDOW_SIZE)[1]
    except ValueError as e:
        raise gr.Error(str(e), title="Not available for this model") from None


# --- what is shown -------------------------------------------------------------------------------

def _class_choices(view: DetView, thr: float) -> list[tuple[str, int]]:
    """(label 'name (count)', class index) of the classes with a detection >= thr, best first."""
    return [(f"{view.result.class_names[c]} ({n})", c) for c, n in view.result.class_counts(float(thr)).items()]


def _table(shown: DetectionResult, size: tuple[int, int]) -> pd.DataFrame:
    """The shown detections in the pixels of the photo at ``size`` (the upload)."""
    return pd.DataFrame([[n, r["class"], round(r["score"], 3), *(round(r[k], 1) for k in ("x1", "y1", "x2", "y2")),
                          "" if r["mask_px"] is None else r["mask_px"]] for n, r in enumerate(shown.rows(size), 1)],
                        columns=TABLE_COLUMNS)


def _note(view: DetView, thr: float, idx: np.ndarray) -> str:
    """Markdown saying what is shown and, when nothing is, why."""
    r = view.result
    k = len(r)
    hidden_here = {int(r.labels[i]) for i in r.select(float(thr))} & view.hidden
    lines = []
    if not view.trained:
        lines.append("\u26a0\ufe0f **Untrained weights: these predictions are meaningless.** Random weights score "
                     "every class about equally (about 1/81), so the network ran with score threshold "
                     f"{view.network_thr:g} to keep its {k} best candidates"
                     + (f", scoring {float(r.scores.min()):.3f} to {float(r.scores.max()):.3f}." if k else "."))
    if k == 0:
        lines.append(f"**Nothing detected:** no candidate scored \u2265 {view.network_thr:g} "
                     f"({'the official threshold' if view.trained else 'the threshold the network ran with'}).")
    elif len(idx) == 0 and not hidden_here:
        best = int(np.argmax(r.scores))
        how = (f"lower the threshold to {float(r.scores[best]) - 0.005:.2f} or less to see the candidates"
               if not view.trained else "lower the threshold to see weaker detections")
        lines.append(f"**Nothing is shown: no detection scores \u2265 {thr:.2f}** (the best: "
                     f"{r.class_names[r.labels[best]]} {float(r.scores[best]):.3f}); {how}.")
    else:
        extra = (f", {len(hidden_here)} class{'es' * (len(hidden_here) != 1)} unticked" if hidden_here else "")
        lines.append(f"Showing **{len(idx)}** of {k} detection{'s' * (k != 1)} (score \u2265 {thr:.2f}{extra}).")
    return "  \n".join(lines)


def timing_html(times: dict[str, float]) -> str:
    """HTML bar chart of the milliseconds each step took, in pipeline order, with the total."""
    total = sum(times.values()) or 1.0
    top = max(times.values(), default=0.0) or 1.0
    rows = []
    for key, ms in times.items():
        label = html.escape(DETECTION_STEPS.get(key, key))
        rows.append(f"<div style='display:flex;align-items:center;gap:8px;margin:3px 0'>"
                    f"<span style='width:260px;flex:none'>{label}</span>"
                    f"<span style='flex:1;background:#eee;border-radius:3px;height:14px'>"
                    f"<span style='display:block;height:14px;border-radius:3px;background:#ef6c00;"
                    f"width:{100 * ms / top:.1f}%'></span></span>"
                    f"<span style='width:120px;flex:none;text-align:right;font-variant-numeric:tabular-nums'>"
                    f"{ms:.0f} ms ({100 * ms / total:.0f}%)</span></div>")
    rows.append(f"<div style='margin-top:4px'><b>Total: {sum(times.values()):.0f} ms</b></div>")
    return f"<div class='det-timing' style='font-size:14px'>{''.join(rows)}</div>"


def _stage3_text(view: DetView) -> str:
    r = view.result
    if view.light:
        return "hourglass blocks (light-weight backbone: no windows)"
    if r.stage3_attention == "global":
        return "global (every stage-3 token attends to all others)"
    extra = ", every 4th block global" if r.stage3_attention == "hybrid" else ""
    return f"{r.stage3_attention} ({WINDOW_SIZE}\u00d7{WINDOW_SIZE}-token windows{extra})"


def _details(view: DetView) -> str:
    r = view.result
    (w0, h0), (w, h), (iw, ih) = view.original_size, r.image_size, r.input_size
    pw, ph = -(-iw // 32) * 32, -(-ih // 32) * 32
    shrunk = f" (downscaled to {w}\u00d7{h} for detection)" if (w, h) != (w0, h0) else ""
    return (f"{model_line(r.model_name, r.weights)}  \n"
            f"**Stage 3:** {_stage3_text(view)} \u00b7 {describe_run(r.run_info)} \u00b7 "
            f"**Total:** {r.total_ms():.0f} ms  \n"
            f"**Input:** photo {w0}\u00d7{h0}{shrunk} \u2192 network {iw}\u00d7{ih} (padded to {pw}\u00d7{ph}) \u00b7 "
            f"**Proposals:** {r.num_proposals} (RPN, after NMS) \u00b7 **Kept:** {len(r)} (score \u2265 "
            f"{view.network_thr:g}, class-wise NMS, at most 100)")


def _redraw(view: DetView, thr: float, opacity: float, show_masks: bool, show_labels: bool) -> RedrawOutputs:
    idx = view.result.select(float(thr), exclude=view.hidden)
    sub = view.subset(idx)
    try:
        full = draw_detections(view.image.convert("RGB"), sub, score_thr=0.0, mask_opacity=float(opacity),
                               show_masks=bool(show_masks), show_labels=bool(show_labels))
    except ValueError as e:
        raise gr.Error(str(e), title="Invalid setting") from None
    choices = _class_choices(view, thr)
    view.choices = [c for _, c in choices]
    folder = _out_dir("uniformer_det_")
    overlay_path, json_path = folder / "detections.png", folder / "detections_coco.json"
    full.save(overlay_path)
    json_path.write_text(json.dumps(sub.rescaled(view.original_size).to_coco()))  # upload pixels
    shown = full.resize(_display_size(full.size), Image.BILINEAR)
    classes = gr.update(choices=choices, value=_ticked(view))
    return RedrawOutputs(shown, _note(view, thr, idx), classes, _table(sub, view.original_size),
                         [str(overlay_path), str(json_path)], view)


# --- events --------------------------------------------------------------------------------------

def detect(image, model_name: str, mode: str, short_side, thr: float, opacity: float, show_masks: bool,
           show_labels: bool, precision: str = "auto", progress=gr.Progress(), *,
           twins: Stage3Twins) -> DetOutputs:
    """Detect and segment the objects of ``image`` with ``model_name`` (stage 3 in ``mode`` for
    the S / B detectors), the keep-ratio resize bounded by :func:`scale_for` (``short_side``), at
    ``precision`` ('fp32', 'bf16', 'fp16' on CUDA; 'auto': the device's default,
    :func:`uniformer.precision.default_precision`: bf16 where the hardware has it natively).

    The network keeps every candidate scoring >= :data:`OFFICIAL_SCORE_THR` (trained weights) or
    the 100 best (untrained weights); those >= ``thr`` are drawn. Returns the overlay, a note on
    what is shown, the class filter, the table, the time per step, details, downloads (overlay
    PNG, COCO-style JSON) and the kept result.

    Raises gr.Error: no image, unreadable image, model not loaded, invalid setting."""
    _need_image(image)
    img = _decode(image)
    progress(0.05, desc="Loading the model")
    model = errors.loaded_model(model_name)
    network = _network(twins, model_name, model, mode)
    trained = _trained(model)
    network_thr = OFFICIAL_SCORE_THR if trained else UNTRAINED_SCORE_THR
    work = _detection_image(img)
    progress(0.2, desc="Detecting: backbone, FPN, RPN, RoI heads, masks")
    try:
        result = detect_objects(network, work, score_thr=network_thr, scale=scale_for(short_side),
                                device=default_device(), precision=precision)
    except ValueError as e:
        raise gr.Error(str(e), title="Invalid setting") from None
    progress(0.9, desc="Drawing")
    view = DetView(work, img.size, *result.compact(), network_thr, trained, is_light_detector(model_name))
    out = _redraw(view, thr, opacity, show_masks, show_labels)
    return DetOutputs(out.overlay, out.note, _ticked(view), out.table, timing_html(result.times), _details(view),
                      out.files, view)


def _ticked(view: DetView) -> list[int]:
    """The class indices the filter has ticked: those offered, less those the user unticked."""
    return [c for c in view.choices if c not in view.hidden]


def class_filter(state: DetView | None, thr: float) -> dict:
    """The class filter after a run: the classes with a detection >= ``thr`` ('name (count)'), ticked
    unless unticked before. A separate (private) event, so that the public API returns the shown
    classes as a plain value."""
    if not isinstance(state, DetView):
        return gr.update(choices=[], value=[])
    return gr.update(choices=_class_choices(state, thr), value=_ticked(state))


def rerender(state: DetView | None, thr: float, selected, opacity: float, show_masks: bool,
             show_labels: bool) -> RedrawOutputs:
    """Re-draw for a new score threshold, class selection, opacity or drawing option, from the kept
    result (no network run) -> overlay, note, class filter, table, downloads, state. Classes the
    user unticked stay hidden when the threshold hides and then shows them again."""
    if not isinstance(state, DetView):
        return RedrawOutputs(None, "", gr.update(choices=[], value=[]), pd.DataFrame(columns=TABLE_COLUMNS), None,
                             None)
    selected = {int(c) for c in (selected or [])}
    offered = set(state.choices)
    state.hidden = (state.hidden - offered) | (offered - selected)
    return _redraw(state, thr, opacity, show_masks, show_labels)


def empty_detection() -> DetOutputs:
    """No result (the image, model or resolution changed)."""
    return DetOutputs(None, "", gr.update(choices=[], value=[]), pd.DataFrame(columns=TABLE_COLUMNS), "", "", None,
                      None)


# --- the Pose tab's person finder -----------------------------------------------------------------

def detector_note(detector_name: str) -> str:
    """Markdown for the Pose tab: whether ``detector_name``'s person boxes can be used (trained
    weights) or not (untrained: the boxes would be meaningless, so they are not used)."""
    loaded = get_model(detector_name)
    if loaded.model is None:
        return f"\u274c The weights of {detector_name} could not be loaded: {loaded.error}"
    if not _trained(loaded.model):
        return (f"\u26a0\ufe0f {detector_name} has no trained weights here, so its person boxes would be meaningless "
                f"and are not used: the pose runs on the box above (or the whole image). To use it: "
                f"{how_to_get_weights(detector_name)}  \n<details><summary>Running the app yourself</summary>"
                f"{operator_weights_route(detector_name)}</details>")
    return (f"{detector_name}: {loaded.weights.describe(full_paths=False)}. "
            "**Find people** fills the box with its person "
            f"detections scoring \u2265 {PERSON_SCORE_THR} (at most {MAX_PERSONS}).")


def find_people(image, detector_name: str, progress=gr.Progress()) -> tuple[list | None, str]:
    """Run ``detector_name`` on ``image`` (official resize) for the Pose tab -> (person boxes (x, y,
    w, h) in upload pixels scoring >= :data:`PERSON_SCORE_THR`, at most :data:`MAX_PERSONS`, best
    first; or None when the detector has untrained weights or found no person, note saying which).
    Raises gr.Error: no image, unreadable image, detector not loaded."""
    model = errors.loaded_model(detector_name)  # cached since the page loaded: declining costs no decode
    if not _trained(model):
        return None, f"**The detector was not run.** {detector_note(detector_name)}"
    _need_image(image)
    img = _decode(image)
    work = _detection_image(img)
    progress(0.2, desc=f"Finding people with {detector_name}")
    result = detect_objects(model, work, score_thr=OFFICIAL_SCORE_THR, device=default_device())
    boxes = result.rescaled(img.size, with_masks=False).person_boxes(PERSON_SCORE_THR)[:MAX_PERSONS]  # upload pixels
    if not boxes:
        best = result.select(0.0, ["person"])
        seen = f" (the best person scores {float(result.scores[best[0]]):.2f})" if len(best) else ""
        return None, (f"{detector_name} found no person scoring \u2265 {PERSON_SCORE_THR}{seen}: "
                      "the box is left as it is.")
    people = "1 person" if len(boxes) == 1 else f"{len(boxes)} people"
    return boxes, (f"{detector_name} found {people} scoring \u2265 {PERSON_SCORE_THR} ({result.total_ms():.0f} ms); "
                   f"**Estimate pose** runs on {'its box' if len(boxes) == 1 else 'each box'}.")
