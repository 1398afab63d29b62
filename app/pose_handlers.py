"""What the "Pose" tab does, as plain functions: input values in, display values out.

The work is the library's (:func:`uniformer.tasks.estimate_pose`, :class:`PoseResult`'s ``draw`` /
``save``, the box helpers of :mod:`uniformer.tasks.pose`, :func:`~uniformer.tasks.visualize.draw_person_boxes`);
here it is wired to the components: the boxes picked by clicking two corners on the photo (drawn on
the photo itself, while the model reads the clean upload), the drawing, the table, the downloads.
Nothing here builds components, so every function runs (and is tested) without a browser. Errors
users can fix (no image, a bad file, a bad box, an unloadable checkpoint) raise ``gr.Error`` with a
message in words; Gradio shows it and keeps serving.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from uniformer.inference import describe_run
from uniformer.tasks import estimate_pose
from uniformer.tasks import pose as _pose
from uniformer.tasks.pose import PoseResult, corners_to_box, format_box, format_boxes
from uniformer.tasks.visualize import draw_person_boxes

from . import errors
from .dense_handlers import BoxPick, _decode, _display_size, _need_image, _out_dir
from .handlers import default_device, model_line
from .models import get_model

__all__ = ["PoseOutputs", "BoxPick", "PosePhoto", "photo_changed", "pick_corner", "show_boxes", "find_people",
           "parse_box", "parse_boxes", "clear_box", "estimate", "estimate_live", "redraw_pose", "render_pose",
           "empty_pose"]


class PoseOutputs(NamedTuple):
    """Outputs of a pose run, in the order of the tab's output components."""

    overlay: Image.Image | None
    table: pd.DataFrame
    details: str
    files: list[str] | None


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


def _parse(fn, text, image_size):
    try:
        return fn(text, image_size)
    except ValueError as e:
        raise gr.Error(f"{str(e)[:1].upper()}{str(e)[1:]}. Click two opposite corners on the photo, type 'x, y, "
                       f"width, height', or clear the box to use the whole image.",
                       title="Invalid person box") from None


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


def _click_point(index, size: tuple[int, int]) -> tuple[float, float]:
    """The clicked point (x, y) of a select event's ``index``, checked as a typed box is: two finite
    numbers inside the photo of ``size`` (W, H) pixels (the browser sends no other; any HTTP caller
    can). Raises gr.Error otherwise."""
    try:
        x, y = (float(v) for v in index[:2])
    except (TypeError, ValueError):
        raise gr.Error(f"A click is two numbers (x, y) in photo pixels, got {index!r}.",
                       title="Invalid click") from None
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x <= size[0] and 0 <= y <= size[1]):
        raise gr.Error(f"The click ({x:g}, {y:g}) is outside the {size[0]}\u00d7{size[1]} photo.",
                       title="Invalid click")
    return x, y


def pick_corner(image, photo: PosePhoto | None, pick: BoxPick | None, evt: gr.SelectData):
    """A click on the photo: the first click marks one corner, the second the opposite corner and
    makes the box -> (photo state, pick state, box text (unchanged after the first click), the
    photo with the corner or the box drawn, for the clicked image itself)."""
    photo = _photo(image, photo)
    x, y = _click_point(evt.index, _decode(photo.original).size)
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
    """``detect_people`` (:func:`app.detection_handlers.find_people`: (image, detector) -> (person
    boxes or None, note)) on the upload, its boxes drawn on the clicked photo -> (photo state, pick
    state, box text, the photo with the boxes, note); without boxes everything stays as it is."""
    photo = _photo(image, photo) if image is not None else PosePhoto()
    boxes, note = detect_people(photo.original, detector_name, progress=progress)
    if boxes is None:  # declined or nobody found: the box stays
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), note
    photo, shown = _show(photo, boxes)
    return photo, BoxPick(), format_boxes(boxes), shown, note


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
    return (model_line(result.model_name, result.weights) + "  \n"
            f"{boxes} \u00b7 **Flip test:** "
            f"{'on' if result.flip_test else 'off'} \u00b7 **Mean score:** {score}  \n"
            f"{describe_run(result.run_info)}")


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
    files = [str(p) for p in run.result.save(_out_dir("uniformer_pose_"), full, full_paths=False)]
    table = pd.DataFrame(run.result.keypoint_rows(), columns=_POSE_COLUMNS)
    return PoseOutputs(full.resize(_display_size(full.size), Image.BILINEAR), table, _pose_details(run.result), files)


def empty_pose() -> PoseOutputs:
    """No result (the image or the model changed)."""
    return PoseOutputs(None, pd.DataFrame(columns=_POSE_COLUMNS), "", None)
