"""What the "Video" tab does, as plain functions: inputs in, display values out.

Classifying decodes only the sampled frames (:func:`uniformer.inference_video.load_clips`), runs
every view, and keeps what the explanations need -- the explained view's clip (3, T, S, S) and its
frames -- in the session state (:class:`VideoSession`), so clicking a token, moving the frame
slider or asking for Grad-CAM never decodes the video again. The pictures and numbers come from
the library (:mod:`uniformer.inference_video`, :mod:`uniformer.explain.video`); these functions
wire them to the tab and format them. Nothing here builds components, so every function runs (and
is tested) without a browser.

Errors users can fix (no video, a bad file, an unloadable checkpoint, explaining before
classifying) raise ``gr.Error`` with a message in words; Gradio shows it and keeps serving.

Offline default (:func:`startup_video_model`): when the official default checkpoint cannot be had
(no local file, not in the Hugging Face cache and ``HF_HUB_OFFLINE`` set), the tab opens with the
project-trained moving-digits model instead (``uniformer_xxs_moving_digits``, shipped in the
package) and offers generated moving-digits clips first (:mod:`app.examples`); if the
default's weights turn out to be unavailable when the page loads (:func:`opening_status`), it
switches then. The weights line always names the weights that run.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

import uniformer
from uniformer.data.video import VideoDecodeError, probe_video
from uniformer.downloads import weights_available
from uniformer.explain.video import (SpaceTimeAttention, clip_strip, clip_timeline, frame_picture, global_blocks,
                                     grad_cam, token_attention, write_overlays)
from uniformer.explain.video import display_scale as video_display_scale
from uniformer.inference import describe_run
from uniformer.inference_video import (VIEW_CHOICES, VideoPrediction, Views, describe_pipeline, load_clips,
                                       official_views, predict_clips)
from uniformer.models.digits import MOVING_DIGITS_MODEL

from . import errors
from .cache import result_dir
from .digits_handlers import project_weights_text
from .examples import (MOVING_DIGITS_EXAMPLES_CREDIT, VIDEO_EXAMPLE_FILES, VIDEO_EXAMPLES_CREDIT, example_samples,
                       video_example_clips, write_moving_digits_examples, write_video_examples)
from .handlers import (LOW_SCORES_NOTE, TOPK, ModelStatus, default_device, has_low_scores, is_project_model,
                       label_scores, model_line, render_status, trained_on_note)
from .models import get_model

__all__ = ["DEFAULT_VIDEO_MODEL", "OFFLINE_VIDEO_MODEL", "VIDEO_EXAMPLE_FILES", "VIDEO_EXAMPLES_CREDIT",
           "write_video_examples", "MOVING_DIGITS_EXAMPLES_CREDIT", "write_moving_digits_examples",
           "weights_available", "startup_video_model", "video_model_status", "opening_status", "display_scale",
           "video_model_choices", "view_choices", "default_views", "model_info", "VideoSession", "VideoResult",
           "classify_video", "frame_range", "example_clip",
           "empty_result", "block_choices", "block_update", "show_frame", "attend", "change_block",
           "CamOutputs", "no_cam", "explain_gradcam",
           "views_table", "details_markdown", "example_clips", "example_samples"]

#: Model selected when the tab opens: the checkpoint of the official video demo, done right.
DEFAULT_VIDEO_MODEL = "uniformer_small_k400_16x8"
#: Model selected instead when the default's weights cannot be had offline: trained by this
#: project on moving digits and shipped in the package.
OFFLINE_VIDEO_MODEL = MOVING_DIGITS_MODEL

#: What the official Hub demo (Sense-X/uniformer_video_demo, docs/official.md §6) does differently for its model.
_DEMO_NOTE = {DEFAULT_VIDEO_MODEL: (
    " The official Hub demo of this checkpoint normalizes with ImageNet statistics, takes every 16th frame "
    "(the model was trained on every 8th) and wraps frame indices around on short videos, which scrambles their "
    "order; this tab follows the training and test pipeline instead.")}

def example_clips(start: str) -> list[Path]:
    """The example clips in gallery order: the moving-digits clips first when the tab opens with
    the moving-digits model (:func:`app.examples.video_example_clips`)."""
    return video_example_clips(moving_first=start == OFFLINE_VIDEO_MODEL)


def _offline_note(model_name: str, why: str) -> str:
    return (f"\u2139\ufe0f **Offline default:** the official checkpoint of {model_name} {why}, so this tab opened "
            f"with **{OFFLINE_VIDEO_MODEL}**, a small video model this project trained on moving digits and ships "
            f"in the package. Try it on the moving-digits examples below; pick another model to use the official "
            f"checkpoints once they can be downloaded.")


def startup_video_model(cache_dir: str | Path | None = None) -> tuple[str, str]:
    """(model the tab opens with, Markdown note): :data:`DEFAULT_VIDEO_MODEL` and '' when its
    weights are available (:func:`uniformer.downloads.weights_available`; ``cache_dir``: the Hugging
    Face cache folder to look in), else :data:`OFFLINE_VIDEO_MODEL` and a note saying why."""
    if weights_available(DEFAULT_VIDEO_MODEL, cache_dir):
        return DEFAULT_VIDEO_MODEL, ""
    return OFFLINE_VIDEO_MODEL, _offline_note(DEFAULT_VIDEO_MODEL, "is not in the local Hugging Face cache and the "
                                                                   "Hub is offline (HF_HUB_OFFLINE)")


def video_model_status(model_name: str) -> ModelStatus:
    """The weights line and banner of ``model_name`` (loaded once per process): the app's usual
    status, with project-trained checkpoints named with what their model card reports."""
    loaded = get_model(model_name)
    text = project_weights_text(loaded.model) if loaded.model is not None else None
    if text is None:
        return render_status(loaded)
    return ModelStatus(f"**Weights:** {html.escape(text)} \u00b7 shipped inside the `uniformer` package: runs "
                       f"offline", "")


def opening_status(model_name: str) -> tuple[dict, str]:
    """Page load: (model dropdown update, note). When the selected model is
    :data:`DEFAULT_VIDEO_MODEL` and its weights could not be had after all (the untrained fallback:
    the Hub unreachable without HF_HUB_OFFLINE set), switch to :data:`OFFLINE_VIDEO_MODEL` and say
    why; otherwise keep the selection. (The weights line follows the selection: the Weights panel
    writes it, :func:`app.weights.show_status`.)"""
    loaded = get_model(model_name)
    if model_name == DEFAULT_VIDEO_MODEL and loaded.model is not None and loaded.fallback_reason is not None:
        note = _offline_note(model_name, "could not be downloaded or found in the cache")
        return gr.update(value=OFFLINE_VIDEO_MODEL), note
    return gr.update(), gr.skip()


def _where_weights(entry) -> str:
    p = entry.pretrained
    if p.hub:
        return ""
    return " (trained by this project, offline)" if p.package_file else " (Google Drive)"


def video_model_choices() -> list[tuple[str, str]]:
    """(label shown, model name) of every registered video classifier: those with a Hub
    checkpoint first, then the project-trained ones shipped in the package, then the others."""
    names = uniformer.list_models(task="video-classification")

    def rank(n: str) -> tuple:
        p = uniformer.get_entry(n).pretrained
        return (0 if p.hub else 1 if p.package_file else 2, n)

    return [(f"{n} \u2014 {uniformer.get_entry(n).description}{_where_weights(uniformer.get_entry(n))}", n)
            for n in sorted(names, key=rank)]


def view_choices() -> list[tuple[str, str]]:
    """(label, 'CLIPSxCROPS') of the test views offered."""
    return [(v.label(), f"{v.clips}x{v.crops}") for v in VIEW_CHOICES]


def default_views(model_name: str) -> str:
    """The views a model is selected with: its official test views ('CLIPSxCROPS', e.g. '4x1' for
    Kinetics, '1x3' for Something-Something), as :func:`model_info` states them; the user can pick
    fewer for a faster answer."""
    views = official_views(uniformer.get_entry(model_name).pretrained)
    return f"{views.clips}x{views.crops}" if views in VIEW_CHOICES else "1x1"


def check_upload(video) -> None:
    """On upload: probe the file at once, so a file that is not a usable video gets a message in
    words (the browser's own player only says "Video not playable"). Raises :func:`app.errors.unreadable`."""
    if video is None:
        return
    try:
        probe_video(video)
    except VideoDecodeError as e:
        raise errors.unreadable(e, "video") from None


def model_info(model_name: str) -> str:
    """Markdown: how ``model_name`` samples, resizes and normalizes frames
    (:func:`uniformer.inference_video.describe_pipeline`) and what it was tested with; for the
    models this project ships, the held-out accuracy (from the export config when it loads) and
    the classes."""
    p = uniformer.get_entry(model_name).pretrained
    d = describe_pipeline(p)
    head = f"**Sampling:** {d['sampling']}.  \n"
    resize = f"**Resize:** {d['resize']}.  \n"
    if p.package_file:
        loaded = get_model(model_name)
        trained = project_weights_text(loaded.model) if loaded.model is not None else None
        return (head + f"**Test views:** {d['views']}" + (f" \u2014 {html.escape(trained)}" if trained else "")
                + ".  \n" + resize + f"**Normalization:** {d['normalization']} (as it was trained).  \n"
                f"**Classes ({len(p.class_names())}):** {', '.join(p.class_names())}: the motion of a digit hopping "
                f"across a black canvas, which only the order of the frames reveals.")
    dataset = {"kinetics-400": "Kinetics-400", "kinetics-600": "Kinetics-600",
               "something-something-v1": "Something-Something V1",
               "something-something-v2": "Something-Something V2"}.get(p.label_set, p.label_set)
    top1 = f" \u2014 top-1 {p.top1}% on {dataset} (paper / official model zoo)" if p.top1 else ""
    pre = f", fine-tuned from {p.pretrain}" if p.pretrain else ""
    return (head + f"**Official test views:** {d['views']}{top1}{pre}.  \n" + resize
            + f"**Normalization:** {d['normalization']}: the statistics the official video models were *trained* "
            f"with (slowfast defaults), not ImageNet's." + _DEMO_NOTE.get(model_name, ""))


@dataclass
class VideoSession:
    """Per-session state after a classification: enough to explain without decoding again.

    clip: (1, 3, T, S, S) normalized, the first clip's centre crop; frames: (T, S, S, 3) uint8 of that
    clip; frame_indices: its video frame indices; fps: playback rate of the sampled frames; target /
    target_label: the top class; attention: the last clicked token's maps; click: where that token
    was clicked, (frame (0-based), x, y in clip pixels), so another block can be shown for it.
    """

    model_name: str
    clip: torch.Tensor
    frames: np.ndarray
    frame_indices: list[int]
    fps: float
    target: int
    target_label: str
    attention: SpaceTimeAttention | None = None
    outputs: list[str] = field(default_factory=list)
    click: tuple[int, float, float] | None = None
    video: str | None = None  # the file classified (the video component's value)


class VideoResult(NamedTuple):
    """Outputs of a classification, in the order of the tab's output components. ``slider``: the
    frame shown (1-based; the public API's value), or the slider's reset (:func:`empty_result`)."""

    label: dict[str, float] | None
    details: str
    table: pd.DataFrame | None
    strip: Image.Image | None
    timeline: Image.Image | None
    frame: Image.Image | None
    slider: int | dict
    attention: Image.Image | None
    attention_caption: str
    state: VideoSession | None


def clear_stale_result(video, model_name: str, session: VideoSession | None) -> VideoResult | tuple:
    """On a change of the video or the model: :func:`empty_result`, unless the shown result is
    already that of ``video`` with ``model_name`` (the component's change event of a just-picked
    example can be handled after a quick Classify: it must not wipe that newer answer)."""
    if session is not None and session.video == video and session.model_name == model_name:
        return tuple(gr.skip() for _ in VideoResult._fields)
    return empty_result()


def empty_result() -> VideoResult:
    """No result: shown when the video or the model changes, so nothing stale stays on screen."""
    return VideoResult(None, "", pd.DataFrame(columns=VIEWS_TABLE_COLUMNS), None, None, None,
                       gr.update(value=1, maximum=16), None, "", None)


#: Columns of the per-view table before any view (no "1 2 3" placeholder headers).
VIEWS_TABLE_COLUMNS = ["class", "average"]


def views_table(prediction: VideoPrediction) -> pd.DataFrame:
    """The per-view table (:meth:`uniformer.inference_video.VideoPrediction.view_table`): class
    names in rows, so long names wrap between words."""
    columns, rows = prediction.view_table()
    return pd.DataFrame(rows, columns=columns)


def details_markdown(prediction: VideoPrediction) -> str:
    """Markdown: model and weights, device, decode vs inference time, input, the video's properties."""
    v = prediction.video
    views = Views(prediction.clips, prediction.crops)
    t = prediction.input_size[1]
    rot = f", rotated {v['rotation']}\u00b0 for display" if v["rotation"] else ""
    vfr = ", variable frame rate" if v["variable_frame_rate"] else ""
    return (model_line(prediction.model_name, prediction.weights) + "  \n"
            f"{describe_run(prediction.run_info)} for {views.count} view{'s' if views.count > 1 else ''} \u00b7 "
            f"**Decode:** {prediction.decode_ms:.0f} ms ({prediction.frames_decoded} of {v['num_frames']} "
            f"frames decoded)  \n"
            f"**Input:** {views.label()} ({views.paper(t)}) of 3\u00d7{t}\u00d7{prediction.input_size[-1]}"
            f"\u00b2, short side {prediction.short_side} px, mean {prediction.mean[0]} / std {prediction.std[0]}"
            f" \u00b7 **Video:** {v['width']}\u00d7{v['height']}, {v['num_frames']} "
            f"frame{'s' if v['num_frames'] > 1 else ''}, {v['fps']:.2f} fps, {v['duration_s']:.1f} s{rot}{vfr}")


def display_scale(session: VideoSession) -> int:
    """Factor the explained clip's frames are enlarged by (:func:`uniformer.explain.video.display_scale`)."""
    return video_display_scale(session.frames.shape[1])


def _frame_image(session: VideoSession, frame: int, heat: bool = False) -> Image.Image:
    """Frame ``frame`` (0-based) of the explained clip as shown (:func:`display_scale`), the clicked
    token's attention over it when ``heat``, the token outlined in its time step."""
    return frame_picture(session.frames, frame, session.attention, heat=heat, scale=display_scale(session))


def _attention_caption(session: VideoSession) -> str:
    att = session.attention
    if att is None:
        return "Click a token on the frame to see where it looks in space and time."
    own, far = att.time_reach()
    t_query = att.query[0]
    stage, block = att.block
    share = (f" {100 * att.score_token_share:.0f}% goes to the score token." if att.score_token_share else "")
    first, last = att.query_frames(len(session.frames))
    return (f"Token ({att.query[1]}, {att.query[2]}) of frames {first + 1}\u2013{last + 1} "
            f"(token time {t_query + 1} of {att.grid[0]}), "
            f"stage {stage + 1} block {block + 1}, {att.grid[0]}\u00d7{att.grid[1]}\u00d7{att.grid[2]} tokens: "
            f"{100 * own:.0f}% of its attention stays in its own time step, {100 * far:.0f}% reaches two or more "
            f"steps away (joint space-time attention, \u00a74.2).{share} Heat: one colour scale for all frames.")


def classify_video(video, model_name: str, views: str, progress=gr.Progress()) -> VideoResult:
    """Classify ``video`` (a file path) with ``model_name`` at ``views`` ('CLIPSxCROPS') on
    :func:`~app.handlers.default_device`; returns every output of the tab and a new session.

    Raises gr.Error when there is no video, the file cannot be used as a video (the
    :class:`~uniformer.data.video.VideoDecodeError` message), the model cannot be loaded or the
    views are invalid.
    """
    if video is None:
        raise errors.no_input("video")
    loaded = get_model(model_name)
    if loaded.model is None:
        raise errors.model_not_loaded(model_name, loaded.error)
    model = loaded.model
    try:
        chosen = Views.parse(views)
    except ValueError as e:
        raise gr.Error(str(e), title="Invalid views") from None

    def report(fraction: float, message: str) -> None:
        progress(fraction, desc=message)

    try:
        clips = load_clips(video, model.pretrained_cfg, chosen, progress=report)
    except VideoDecodeError as e:
        raise errors.unreadable(e, "video") from None
    prediction = predict_clips(model, clips, topk=TOPK, device=default_device(), progress=report, source=str(video))
    view = clips.centre_view()
    session = VideoSession(model_name, clips.views[view:view + 1].clone(), clips.view_frames_uint8(view).numpy(),
                           list(clips.clip_indices[0]), fps=clips.playback_fps, target=prediction.topk[0].index,
                           target_label=prediction.topk[0].label, video=str(video))
    details = details_markdown(prediction) + "".join(f"  \n\u26a0\ufe0f {note}" for note in prediction.notes)
    if is_project_model(model_name):
        details = f"{trained_on_note(model_name)}  \n{details}"
    scores = label_scores(prediction.topk)
    if has_low_scores(scores):
        details += f"  \n<small>{LOW_SCORES_NOTE}</small>"
    return VideoResult(scores, details, views_table(prediction), clip_strip(clips), clip_timeline(clips),
                       _frame_image(session, 0), 1, None, _attention_caption(session),
                       session)


def frame_range(state: VideoSession | None) -> dict:
    """The frame slider's range for the clip of :func:`classify_video` (1..T frames; its value, 1,
    is a plain number in the API and lies in every range)."""
    if state is None:
        return gr.skip()
    return gr.update(maximum=len(state.frame_indices))


def example_clip(clips: list[Path], index) -> str:
    """Path of example clip ``index`` (0-based position in the examples gallery). Raises gr.Error
    for anything but an index of the gallery (a script can send any value to the page's event)."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(clips):
        raise gr.Error(f"There is no example {index!r}: pick one of the {len(clips)} examples.",
                       title="No such example")
    return str(clips[index])


def block_choices(model_name: str) -> list[tuple[str, str]]:
    """(label, 'stage,block') of the blocks whose attention can be shown
    (:func:`uniformer.explain.video.global_blocks`, read from the registered architecture), the
    default (the last stage-3 block) first."""
    blocks = global_blocks(model_name)
    default = max(b for b in blocks if b[0] == 2)
    ordered = [default] + [b for b in blocks if b != default]
    return [(f"stage {s + 1}, block {b + 1}" + (" (finest global grid)" if (s, b) == default else ""), f"{s},{b}")
            for s, b in ordered]


def block_update(model_name: str) -> dict:
    """The attention-block dropdown for ``model_name``: its choices, the default selected."""
    choices = block_choices(model_name)
    return gr.update(choices=choices, value=choices[0][1])


def _require(session: VideoSession | None) -> VideoSession:
    if session is None:
        raise gr.Error("Classify a video first: the explanations use the clip the model saw.", title="No clip yet")
    return session


def show_frame(session: VideoSession | None, frame: int) -> tuple[Image.Image | None, Image.Image | None]:
    """Frame slider (1-based): the clickable frame and the attention overlay of that frame."""
    if session is None:
        return None, None
    f = int(min(max(frame, 1), len(session.frames))) - 1
    return _frame_image(session, f), _frame_image(session, f, heat=True) if session.attention else None


def attend(session: VideoSession | None, frame: int, block: str | None, evt: gr.SelectData):
    """A click at ``evt.index`` = (x, y) on frame ``frame`` (1-based): attention of that token.
    Returns (frame image, attention overlay, caption, session)."""
    session = _require(session)
    model = get_model(session.model_name).model
    if model is None:
        raise gr.Error(f"The model {session.model_name} is not loaded any more; classify again.")
    k = display_scale(session)
    x, y = (v / k for v in evt.index[:2])  # displayed-frame pixels -> clip pixels
    f = int(min(max(frame, 1), len(session.frames))) - 1
    return _attend_at(session, model, (f, float(x), float(y)), block)


def _attend_at(session: VideoSession, model: torch.nn.Module, click: tuple[int, float, float], block: str | None):
    """The attention of the token at ``click`` = (frame, x, y) (0-based frame, clip pixels) in
    ``block`` ('stage,block'; None: the default) -> (frame image, attention overlay, caption, session)."""
    f, x, y = click
    stage_block = tuple(int(v) for v in block.split(",")) if block else None
    try:
        session.attention = token_attention(model, session.clip, f, x, y, block=stage_block)
    except ValueError as e:
        raise gr.Error(str(e), title="Cannot show this token") from None
    session.click = click
    return _frame_image(session, f), _frame_image(session, f, heat=True), _attention_caption(session), session


def change_block(session: VideoSession | None, block: str | None):
    """The attention-block dropdown changed: the last clicked token's attention in ``block``
    ('stage,block') -> (frame image, attention overlay, caption, session); nothing changes before a
    classification or a click (the caption already says to click)."""
    if session is None or session.click is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    model = get_model(session.model_name).model
    if model is None:
        raise gr.Error(f"The model {session.model_name} is not loaded any more; classify again.")
    return _attend_at(session, model, session.click, block)


class CamOutputs(NamedTuple):
    """The Grad-CAM panel's outputs, in the order of its components: GIF, MP4, downloads, caption."""

    gif: str | None
    mp4: str | None
    files: list[str] | None
    caption: str


def no_cam() -> CamOutputs:
    """An empty Grad-CAM panel: shown when the video or the model changes or a new classification
    starts, so no explanation of an earlier answer (another model's class) stays on screen."""
    return CamOutputs(None, None, None, "")


def explain_gradcam(session: VideoSession | None, progress=gr.Progress()) -> CamOutputs:
    """Grad-CAM of the top class on the explained clip, exported as a GIF and an MP4 overlay.
    Returns (GIF path, MP4 path, [both paths] for download, caption)."""
    session = _require(session)
    model = get_model(session.model_name).model
    if model is None:
        raise gr.Error(f"The model {session.model_name} is not loaded any more; classify again.")
    progress(0.1, desc="Grad-CAM: forward and gradient of the top class")
    cam = grad_cam(model, session.clip, target=session.target)
    progress(0.6, desc="writing the GIF and MP4 overlays")
    stem = result_dir("uniformer_video_explain_") / f"gradcam_{session.model_name}"  # deleted after the TTL
    gif, mp4 = write_overlays(session.frames, cam.cam, stem, fps=session.fps, scale=display_scale(session))
    session.outputs += [str(gif), str(mp4)]
    grid = "\u00d7".join(str(s) for s in cam.raw.shape)
    caption = (f"Grad-CAM of **{html.escape(session.target_label)}** (logit {cam.score:.2f}) on the last stage's "
               f"{grid} space-time activations (T'\u00d7H'\u00d7W'; with a mean-pooled linear head this is CAM), "
               f"upsampled to the {len(session.frames)} frames; played at {session.fps:.1f} fps (the sampled "
               f"frames' own pace). Frames {session.frame_indices[0]}\u2013{session.frame_indices[-1]} of the video.")
    return CamOutputs(str(gif), str(mp4), [str(gif), str(mp4)], caption)

