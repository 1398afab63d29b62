"""The app's user-facing errors, written once: every handler raises these, so the same problem
reads the same on every tab. Each is a ``gr.Error`` (Gradio shows it as a toast and keeps serving)
whose message says what the user can do."""
from __future__ import annotations

import contextlib
import html

import gradio as gr
from torch import nn

from uniformer.data import ImageDecodeError

from .models import CHECKPOINT_DIR_ENV, get_model

__all__ = ["no_input", "model_not_loaded", "checkpoint_refused", "checkpoint_too_large", "unreadable", "loaded_model",
           "reading_image"]


def no_input(what: str = "image", then: str = "") -> gr.Error:
    """Nothing uploaded yet. ``what``: 'image' or 'video'; ``then``: what to do next (optional)."""
    how = ("upload a clip, record one or pick an example" if what == "video"
           else "upload a photo, take one with the webcam, paste one or pick an example")
    return gr.Error(f"No {what} yet: {how}{', then ' + then if then else ''}.", title=f"No {what}")


def model_not_loaded(model_name: str, error: str | None) -> gr.Error:
    """A checkpoint that exists but cannot be loaded (invalid, unsafe or mismatching file)."""
    return gr.Error(f"The weights of {model_name} could not be loaded: {html.escape(error or '', quote=False)}. "
                    f"Choose another model, or open \"Weights\" to download the official file or upload a checkpoint."
                    + _operator_detail(f"Fix or replace the file of {model_name} in ${CHECKPOINT_DIR_ENV}."),
                    title="Model not loaded", print_exception=False)


def _operator_detail(text: str) -> str:
    """A collapsed "Running the app yourself" part of a message (Gradio shows messages as HTML):
    what only whoever runs the app can do, kept out of the way of a Space's visitors."""
    return f"<details><summary>Running the app yourself</summary>{html.escape(text)}</details>"


def checkpoint_refused(filename: str, model_name: str, error: str | None) -> gr.Error:
    """An uploaded checkpoint the safe loader refused; ``error`` is the loader's message (the file
    named, no server path). Says what a visitor can do: upload the right file or download."""
    name, why = html.escape(filename, quote=False), html.escape((error or "").rstrip(), quote=False)
    why += "" if why.endswith((".", "!", "?")) else "."
    return gr.Error(f"{name} cannot be used as weights of {model_name}: {why} "
                    f"Upload a checkpoint file of {model_name} (official or this project's export), or use "
                    f"\"Download official weights\".", title="Checkpoint not usable", print_exception=False)


def checkpoint_too_large(filename: str, size_mb: float, limit_mb: int, model_name: str) -> gr.Error:
    """An uploaded checkpoint over the upload limit (``size_mb`` > ``limit_mb``, MB)."""
    name = html.escape(filename, quote=False)
    return gr.Error(f"{name} is {size_mb:.0f} MB; checkpoints up to {limit_mb} MB can be uploaded "
                    f"(the official ones are smaller). Upload the checkpoint of {model_name}, or use \"Download "
                    f"official weights\"."
                    + _operator_detail(f"Larger files can be put on the server as ${CHECKPOINT_DIR_ENV}/"
                                       f"{model_name}.pth (then restart the app)."),
                    title="File too large", print_exception=False)


def unreadable(error: Exception | str, what: str = "image") -> gr.Error:
    """A file that cannot be decoded as an image / a video; ``error`` says why in words."""
    return gr.Error(f"This file cannot be used as {'a video' if what == 'video' else 'an image'}: {error}",
                    title=f"Unreadable {what}", print_exception=False)


def loaded_model(model_name: str) -> nn.Module:
    """The cached model ``model_name`` (:func:`app.models.get_model`); raises :func:`model_not_loaded`."""
    loaded = get_model(model_name)
    if loaded.model is None:
        raise model_not_loaded(model_name, loaded.error)
    return loaded.model


@contextlib.contextmanager
def reading_image():
    """Turn an :class:`~uniformer.data.ImageDecodeError` raised inside into :func:`unreadable`."""
    try:
        yield
    except ImageDecodeError as e:
        raise unreadable(e) from None
