"""The app's user-facing errors, written once: every handler raises these, so the same problem
reads the same on every tab. Each is a ``gr.Error`` (Gradio shows it as a toast and keeps serving)
whose message says what the user can do."""
from __future__ import annotations

import contextlib

import gradio as gr
from torch import nn

from uniformer.data import ImageDecodeError

from .models import get_model

__all__ = ["no_input", "model_not_loaded", "unreadable", "loaded_model", "reading_image"]


def no_input(what: str = "image", then: str = "") -> gr.Error:
    """Nothing uploaded yet. ``what``: 'image' or 'video'; ``then``: what to do next (optional)."""
    how = ("upload a clip, record one or pick an example" if what == "video"
           else "upload a photo, take one with the webcam, paste one or pick an example")
    return gr.Error(f"No {what} yet: {how}{', then ' + then if then else ''}.", title=f"No {what}")


def model_not_loaded(model_name: str, error: str | None) -> gr.Error:
    """A checkpoint that exists but cannot be loaded (invalid, unsafe or mismatching file)."""
    return gr.Error(f"The weights of {model_name} could not be loaded: {error}. Fix or replace the file, or choose "
                    "another model.", title="Model not loaded")


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
