"""What the app's events do, as plain functions: input values in, display values out.

Nothing here builds components, so every function runs (and is tested) without a browser or a
server. Errors users can fix (a bad image, an unloadable checkpoint) raise ``gr.Error`` with a
message in words; Gradio shows it and keeps serving.
"""
from __future__ import annotations

import functools
import html
from typing import NamedTuple

import gradio as gr
import numpy as np
import torch

import uniformer

from uniformer import WeightsInfo
from uniformer.data import ImageDecodeError
from uniformer.inference import (ClassScore, ImagePrediction, describe_run, device_label, predict_image,
                                 select_device)

from . import errors
from .models import (LoadedModel, get_fast_model, get_model, how_to_get_weights, image_model_choices,
                     operator_weights_route, weights_line)

__all__ = ["TOPK", "default_device", "device_label", "precision_choices", "ModelStatus", "render_status",
           "model_status", "label_scores", "LOW_SCORES_NOTE", "has_low_scores", "is_project_model", "trained_on_note",
           "general_image_model_choices", "model_line", "prediction_details", "ImageResult", "classify_image",
           "empty_result"]

#: Number of classes shown.
TOPK = 5

_BANNER = ("<div style='border:2px solid {border};background:{background};color:#1f1f1f;border-radius:8px;"
           "padding:10px 14px;margin:4px 0;font-size:15px;line-height:1.45'>{body}</div>")


@functools.lru_cache(maxsize=None)
def default_device() -> torch.device:
    """The device the app runs models on: CUDA when available, else CPU (``select_device('auto')``)."""
    return select_device("auto")


def precision_choices(device: torch.device) -> list[str]:
    """Precisions offered on ``device``: fp32 and bf16 everywhere, fp16 only on CUDA."""
    return ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])


class ModelStatus(NamedTuple):
    """What the UI shows about the selected model: the weights line (Markdown) and a warning or
    error banner (HTML, empty when the model has trained weights)."""

    weights: str
    banner: str


def render_status(loaded: LoadedModel) -> ModelStatus:
    """The weights line and banner of a load outcome; the untrained fallback gets an orange
    warning naming how to get real weights, a failed load a red error."""
    name = html.escape(loaded.name)
    if loaded.error is not None:
        body = (f"&#10060; <b>The weights of {name} could not be loaded.</b> {html.escape(loaded.error)}<br>"
                f"Fix or replace the file, or choose another model.")
        return ModelStatus("**Weights:** none (loading failed)", _BANNER.format(border="#d32f2f", background="#fdecea",
                                                                              body=body))
    weights = weights_line(loaded)
    if loaded.fallback_reason is None:
        return ModelStatus(weights, "")
    body = (f"&#9888;&#65039; <b>{name} runs with untrained random weights: its predictions are meaningless.</b><br>"
            f"To get real weights: {html.escape(how_to_get_weights(loaded.name))}"
            f"<details><summary>Running the app yourself</summary>"
            f"{html.escape(operator_weights_route(loaded.name))}</details>"
            f"<details><summary>Why</summary>{html.escape(loaded.fallback_reason)}</details>")
    return ModelStatus(weights, _BANNER.format(border="#ef6c00", background="#fff3e0", body=body))


def model_status(model_name: str) -> ModelStatus:
    """Load ``model_name`` (cached) and describe its weights; for the model dropdown and page load."""
    return render_status(get_model(model_name))


def label_scores(topk: list[ClassScore]) -> dict[str, float]:
    """{class name: probability} for ``gr.Label``, best first: the real softmax probabilities, so the
    bars, the API and any download carry the same numbers. A name that occurs twice in the list
    (ImageNet has two 'crane' and two 'maillot' classes) gets its class index appended.

    ``gr.Label`` prints ``round(100 p)`` %, so near-uniform scores (untrained weights: about 0.1 %
    each over 1000 classes) would all read "0%" with empty bars. When some shown probability is under
    0.5 %, every name also carries its probability with two significant digits ("tabby · 0.14 %"),
    see :data:`LOW_SCORES_NOTE`; the values stay the probabilities.
    """
    names = [c.label for c in topk]
    named = [(c.label if names.count(c.label) == 1 else f"{c.label} (class {c.index})", c.probability) for c in topk]
    if not has_low_scores(dict(named)):
        return dict(named)
    return {f"{name} \u00b7 {_percent(p)}": p for name, p in named}


#: Said next to a top-k of low scores (see :func:`label_scores`).
LOW_SCORES_NOTE = ("Scores this low are near-uniform (untrained weights give every class about the same): "
                   "each name carries its probability, which the bars round to whole percents.")


def _percent(p: float) -> str:
    """A probability as a percentage with at least two significant digits: 0.0014 -> '0.14 %'."""
    pct = 100 * p
    digits = 1 if pct >= 1 else max(2, 1 - int(np.floor(np.log10(max(pct, 1e-12)))))
    return f"{pct:.{digits}f} %"


def has_low_scores(scores: dict[str, float] | None) -> bool:
    """True when some shown probability is under 0.5 % (``gr.Label`` would print it as "0%"), so the
    names carry the probabilities (:func:`label_scores`)."""
    return bool(scores) and min(scores.values()) < 0.005


def is_project_model(model_name: str) -> bool:
    """True for a model this project trained and ships inside the package (digits, moving digits):
    its classes are not ImageNet's / Kinetics', so it belongs to its own tab or carries
    :func:`trained_on_note` next to its answers."""
    return uniformer.get_entry(model_name).pretrained.package_file is not None


def trained_on_note(model_name: str) -> str:
    """A plain line to show next to every answer of a project model (empty for other models)."""
    if not is_project_model(model_name):
        return ""
    e = uniformer.get_entry(model_name)
    classes = e.pretrained.class_names()
    shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    return (f"\u26a0\ufe0f **Trained on a toy domain**: {model_name} is a {e.description} (classes: {shown}). "
            "Other inputs (photos, real videos) give meaningless answers.")


def general_image_model_choices() -> list[tuple[str, str]]:
    """:func:`app.models.image_model_choices` without the project models (the digits model has its
    own tab: on photos its answers are meaningless)."""
    return [(label, name) for label, name in image_model_choices() if not is_project_model(name)]


def model_line(model_name: str, weights: WeightsInfo) -> str:
    """Markdown '**Model:** name · **Weights:** ...' for a result's details; local files are named,
    their server paths never shown (``WeightsInfo.describe(full_paths=False)``)."""
    return f"**Model:** {model_name} \u00b7 **Weights:** {weights.describe(full_paths=False)}"


def prediction_details(prediction: ImagePrediction) -> str:
    """Markdown of what produced ``prediction``: model and weights, then device, precision,
    inference and preprocessing time (ms) and input size."""
    size = "\u00d7".join(str(s) for s in prediction.input_size)
    return (f"{model_line(prediction.model_name, prediction.weights)}  \n"
            f"{describe_run(prediction.run_info)} \u00b7 **Input:** {size}")


class ImageResult(NamedTuple):
    """Outputs of the image tab, in the order of its output components: top-k scores for
    ``gr.Label`` and the Markdown details (see :func:`prediction_details`)."""

    label: dict[str, float] | None
    details: str


def classify_image(image, model_name: str, precision: str = "auto") -> ImageResult:
    """Classify ``image`` (a file path, as :class:`app.components.RawImage` passes it, or a PIL
    image / array) with ``model_name`` at ``precision`` on :func:`default_device`.

    Raises gr.Error when there is no image, the image cannot be decoded (the
    :class:`~uniformer.data.ImageDecodeError` message), the model cannot be loaded, or the
    precision is not available on the device.
    """
    if image is None:
        raise errors.no_input()
    device = default_device()
    try:  # the fastest faithful path for this model and device (uniformer.runtime.select)
        loaded, model, path = get_fast_model(model_name, precision, device)
        if model is None:
            raise errors.model_not_loaded(model_name, loaded.error)
        prediction = predict_image(model, image, topk=TOPK, device=device, precision=path.precision)
    except ImageDecodeError as e:
        raise errors.unreadable(e) from None
    except ValueError as e:
        raise gr.Error(str(e), title="Invalid setting") from None
    scores = label_scores(prediction.topk)
    details = f"{prediction_details(prediction)}  \n**Path:** {path.describe()}"
    if has_low_scores(scores):
        details = f"{details}  \n<small>{LOW_SCORES_NOTE}</small>"
    return ImageResult(scores, details)


def empty_result() -> ImageResult:
    """No result: shown when the image or the model changes, so no stale result stays next to a
    new input."""
    return ImageResult(None, "")
