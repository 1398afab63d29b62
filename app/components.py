"""Gradio components adapted to this app.

``gr.Image`` decodes every upload with Pillow in its own ``preprocess`` (gradio 6.31:
``gradio.image_utils.preprocess_image`` calls ``PIL.Image.open`` even for ``type="filepath"``),
before the event handler runs. An empty file, a text file named .jpg or a decompression bomb then
fails inside Gradio with a generic "error processing input" message. :class:`RawImage` hands the
uploaded file to the handler undecoded, so :func:`uniformer.data.load_image` decodes it and its
:class:`~uniformer.data.ImageDecodeError` says, in words, what is wrong.
"""
from __future__ import annotations

import gradio as gr
from gradio import processing_utils
from gradio.data_classes import ImageData

__all__ = ["RawImage"]


class RawImage(gr.Image):
    """``gr.Image`` whose handler receives the path of the uploaded (or webcam / clipboard) file
    as is, never decoded by Gradio: ``type="filepath"`` semantics without Pillow, whatever ``type``
    says (pass ``type="filepath"`` so the API docs describe it right).

    The path is one Gradio validated (a file in its upload cache). Base64 data URLs are written to
    that cache first. Display in the browser is unchanged. The constructor is gr.Image's own, which
    Gradio needs: it sends the constructor's named parameters to the frontend.
    """

    is_template = True  # Gradio's marker for "render with the parent's (gr.Image's) frontend"

    def preprocess(self, payload: ImageData | None) -> str | None:
        """The uploaded file's local path (str), or None when there is no image."""
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return processing_utils.save_base64_to_cache(payload.url, self.GRADIO_CACHE, payload.orig_name)
        return payload.path
