"""What the "Digits" tab does, as plain functions: a drawing in, display values out.

The tab runs the project-trained ``uniformer_xxs_digits`` (shipped in the package, so it works
offline) on a digit drawn on a sketchpad. The library reads it
(:func:`uniformer.explain.digits.read_digit`: the 8x8 digit of
:func:`uniformer.train.digits.sketch_to_digit`, one forward recording the global MHRA attention
and the token-shrinking trace); :func:`classify_sketch` shows the top-3 digits, the attention
view (where the last stages' tokens look; Grad-CAM instead when the capture holds no map for
them) and which tokens every hourglass layer kept or fused.

The weights line is read from the checkpoint's own export config (model card metrics), not typed
in here. Nothing here builds components, so every function runs (and is tested) without a browser;
problems users can cause (nothing drawn, an unreadable picture) come back as a message in words.
"""
from __future__ import annotations

import html
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from PIL import Image

from uniformer import explain as E
from uniformer.explain.digits import DigitReading, read_digit
from uniformer.explain.shrinking import shrinking_overlay, tokens_per_layer
from uniformer.hub import project_weights_text
from uniformer.inference import describe_run
from uniformer.models.digits import DIGITS_MODEL
from uniformer.train.digits import EmptySketchError, digit_image, sketch_to_digit, write_heldout_drawings

from .handlers import ModelStatus, default_device, render_status
from .models import LoadedModel, get_model

__all__ = ["DIGITS_MODEL", "TOPK", "DISPLAY_SIDE", "EXAMPLES_DIR", "NOTHING_DRAWN", "SHRINK_COLUMNS",
           "project_weights_text", "weights_status", "write_digit_examples", "digit_picture",
           "DigitsView", "empty_view", "classify_sketch"]

#: Digits shown with their probabilities.
TOPK = 3
#: Side (pixels) of the pictures shown: the 8x8 digit enlarged, and the overlays drawn on it.
DISPLAY_SIDE = 224
#: Where the example drawings are written (the system temp folder, where Gradio may serve files from).
EXAMPLES_DIR = Path(tempfile.gettempdir()) / "uniformer_digit_examples"
#: The message of an empty canvas.
NOTHING_DRAWN = "**Nothing drawn yet.** Draw a digit (0-9) on the sketchpad, or click one of the examples."
#: Columns of the tokens-per-layer table.
SHRINK_COLUMNS = ("layer", "tokens", "kept", "fused", "attention ran on")

_EXAMPLE_SIDE = 256


def weights_status(loaded: LoadedModel | None = None) -> ModelStatus:
    """The weights line and banner of the digits model (loaded once per process): the project
    checkpoint's line, saying it is shipped in the package and runs offline, or the app's usual
    warning / error banner when it could not be loaded."""
    loaded = loaded if loaded is not None else get_model(DIGITS_MODEL)
    text = project_weights_text(loaded.model) if loaded.model is not None else None
    if text is None:
        return render_status(loaded)
    return ModelStatus(f"**Weights:** {html.escape(text)} \u00b7 shipped inside the `uniformer` package: "
                       f"runs offline, no download", "")


def write_digit_examples(directory: str | Path = EXAMPLES_DIR) -> dict[str, Path]:
    """The example drawings (held-out digits, :func:`~uniformer.train.digits.write_heldout_drawings`)
    in ``directory`` -> {digit: path}."""
    return write_heldout_drawings(directory, _EXAMPLE_SIDE)


def digit_picture(counts: np.ndarray, side: int = DISPLAY_SIDE) -> Image.Image:
    """The 8x8 image the model reads (:func:`~uniformer.train.digits.digit_image` of ``counts``),
    enlarged to ``side`` x ``side`` with nearest-neighbour so its 64 pixels stay visible."""
    return digit_image(counts).resize((side, side), Image.NEAREST)


class DigitsView(NamedTuple):
    """Everything the tab shows for one drawing, in the order of its output components.

    digit: the 8x8 digit the model read, enlarged (DISPLAY_SIDE square); label: {digit: probability}
    of the TOPK best; attention: [(overlay, caption)] panels; attention_caption: Markdown saying
    which view is shown; shrinking: [(overlay, caption)] per hourglass layer; shrinking_table:
    tokens per layer; details: Markdown (prediction, timing, device) or the message of a problem.
    """

    digit: Image.Image | None
    label: dict[str, float] | None
    attention: list[tuple[Image.Image, str]] | None
    attention_caption: str
    shrinking: list[tuple[Image.Image, str]] | None
    shrinking_table: pd.DataFrame | None
    details: str


def empty_view(message: str = NOTHING_DRAWN) -> DigitsView:
    """No result: the outputs cleared and ``message`` shown in their place."""
    return DigitsView(None, None, None, "", None, pd.DataFrame(columns=list(SHRINK_COLUMNS)), message)


def _attention_panels(reading: DigitReading, model, picture: Image.Image) -> list[tuple[Image.Image, str]]:
    """(overlay, caption) of the attention each token receives, per block the reading holds."""
    geometry = E.input_geometry(picture.size, model.pretrained_cfg)
    panels = []
    for name, received in reading.attention.items():
        stage, block = int(name.split(".")[1]), int(name.split(".")[3])
        tokens = "\u00d7".join(map(str, received.shape))
        caption = f"stage {stage + 1} block {block + 1} ({tokens} tokens): attention received"
        panels.append((E.overlay(picture, received, geometry, colorscale="Inferno", alpha=0.7), caption))
    return panels


def _grad_cam_panel(model, image8: Image.Image, picture: Image.Image, class_index: int) -> tuple[Image.Image, str]:
    """Grad-CAM of ``class_index`` on the output of stage 3 (the finest global grid), drawn on ``picture``."""
    analysis = E.analyze(model, image8)
    cam = E.class_activation_map(model, analysis, "GradCAM", stage=2, class_index=class_index)
    geometry = E.input_geometry(picture.size, model.pretrained_cfg)
    image = E.overlay(picture, cam.input_map, geometry, smooth=True, colorscale="Jet", normalize=False)
    return image, f"Grad-CAM of '{cam.label}' on the stage-3 output"


def _shrinking_panels(trace, model, picture: Image.Image) -> tuple[list[tuple[Image.Image, str]], pd.DataFrame]:
    geometry = E.input_geometry(picture.size, model.pretrained_cfg)
    panels, rows = [], []
    for i, (t, row) in enumerate(zip(trace, tokens_per_layer(trace)), 1):
        where = f"{i}: S{t.stage + 1}\u00b7B{t.block + 1}"
        what = f"{row['kept']} kept, {row['fused']} fused" if row["fused"] else f"all {row['tokens']} kept"
        panels.append((shrinking_overlay(picture, t, geometry), f"{where} \u00b7 {what}"))
        rows.append([f"{i} (S{t.stage + 1}\u00b7B{t.block + 1})", row["tokens"], row["kept"], row["fused"],
                     row["processed"]])
    return panels, pd.DataFrame(rows, columns=list(SHRINK_COLUMNS))


def classify_digit_image(image) -> DigitsView:
    """The ``/digits`` API: a picture of one digit (a file path: dark ink on a light background, or
    strokes on a transparent canvas; any size) -> :class:`DigitsView`, as :func:`classify_sketch`."""
    return classify_sketch(image)


def classify_sketch(sketch: Any, loaded: LoadedModel | None = None) -> DigitsView:
    """Classify a drawing (the sketchpad's value: a dict with 'composite' / 'layers' /
    'background', or an image / array / path) with the digits model -> :class:`DigitsView`.

    One forward with attention capture and the shrinking trace. Nothing drawn -> an empty view
    with :data:`NOTHING_DRAWN`; a picture that cannot be read or a model that failed to load -> an
    empty view saying so (never a traceback). ``loaded``: the model to use (default: the app's).
    """
    loaded = loaded if loaded is not None else get_model(DIGITS_MODEL)
    model = loaded.model
    try:
        if model is None:
            sketch_to_digit(sketch)  # nothing drawn / unreadable: say that first
            return empty_view(f"**The digits model could not be loaded:** {html.escape(str(loaded.error))}")
        device = default_device()
        reading = read_digit(model, sketch, topk=TOPK, device=device)
    except EmptySketchError:
        return empty_view()
    except (ValueError, OSError) as e:
        return empty_view(f"**This drawing cannot be read:** {html.escape(str(e))}")
    prediction, counts = reading.prediction, reading.counts
    label = {c.label: c.probability for c in prediction.topk}
    top, best = prediction.topk[0].label, prediction.topk[0]
    x_size = prediction.input_size
    picture = digit_picture(counts)
    attention = _attention_panels(reading, model, picture)
    if attention:
        kinds = sorted(set(reading.kinds.values()))
        attention_caption = (f"**View: global MHRA attention** ({', '.join(kinds)} blocks, Eq. 7), captured in the "
                             f"same forward: the attention each token receives from the block's tokens (mean of "
                             f"heads and queries; dark purple: least, yellow: most), in "
                             f"{'; '.join(caption.split(':')[0] for _, caption in attention)}.")
    else:
        attention = [_grad_cam_panel(model, reading.image, picture, best.index)]
        attention_caption = ("**View: Grad-CAM** (the attention capture recorded no map for this model's hourglass "
                             f"blocks): which stage-3 regions raise the score of '{html.escape(top)}'.")
    shrinking, table = _shrinking_panels(reading.trace, model, picture)
    ink = int(counts.sum())
    details = (f"**Prediction:** {html.escape(top)} ({100 * best.probability:.1f}%) \u00b7 "
               f"{describe_run(prediction.run_info)} (one forward, with capture)  \n"
               f"**Input:** the drawing as an 8\u00d78 digit (ink counts 0-16, {ink} in all, as scikit-learn's "
               f"digits), upsampled to {x_size[-2]}\u00d7{x_size[-1]}")
    return DigitsView(picture, label, attention, attention_caption, shrinking, table, details)
