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
from gradio.exceptions import Error

__all__ = ["RawImage", "NumericRadio", "BoundedSketchpad", "MAX_SKETCH_SIDE"]

#: Largest picture (pixels per side) :class:`BoundedSketchpad` decodes: far above its canvas and examples.
MAX_SKETCH_SIDE = 4096


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


class NumericRadio(gr.Radio):
    """``gr.Radio`` whose choice values are numbers (int or float), documented and accepted as
    numbers by the API.

    ``gr.Radio`` documents every choice as a string (``Literal['0.5', ...]``) and then refuses the
    string a client sends, since only the number 0.5 is a choice. This radio documents a number
    enum and accepts a number or its text (``0.5``, ``"0.5"``, ``512``, ``"512"``), passing the
    matching choice value (its own type) to the handler; anything else gets a message listing the
    choices.
    """

    is_template = True

    def api_info(self) -> dict:
        return {"enum": [value for _, value in self.choices], "title": "Radio", "type": "number"}

    def preprocess(self, payload):
        """The choice whose value equals ``payload`` as a number (None passes through)."""
        if payload is None:
            return None
        try:
            number = float(payload)
        except (TypeError, ValueError):
            number = None
        for _, value in self.choices:
            if number is not None and float(value) == number:
                return value
        raise Error(f"{self.label or 'Value'}: {payload!r} is not one of {[value for _, value in self.choices]}")


class BoundedSketchpad(gr.Sketchpad):
    """``gr.Sketchpad`` that reads a picture's size from its header before decoding it, and refuses
    one over :data:`MAX_SKETCH_SIDE` pixels a side (or a file that is no picture) with a message.

    The browser sends the canvas (a few hundred pixels), but the page's event answers any HTTP caller,
    and ``gr.ImageEditor`` decodes whatever uploaded file it is pointed at: a 15 KB PNG claiming
    12000x8000 pixels took minutes of CPU and gigabytes before the handler ever ran. The constructor is
    gr.Sketchpad's own; the frontend is the image editor's, as for gr.Sketchpad.
    """

    def get_block_name(self) -> str:
        return "imageeditor"

    def convert_and_format_image(self, file, flatten_on_white: bool = False):
        """gr.ImageEditor's decoding, after the size check. Raises Error for a picture over the bound
        or a file that is not one."""
        from io import BytesIO

        from PIL import Image, UnidentifiedImageError

        if file is not None:
            try:
                with Image.open(BytesIO(file) if isinstance(file, (bytes, bytearray, memoryview)) else file.path) as im:
                    width, height = im.size  # the header only: nothing decoded yet
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                raise Error("The drawing could not be read as a picture.", title="Unreadable drawing") from None
            if max(width, height) > MAX_SKETCH_SIDE:
                raise Error(f"The drawing is {width}\u00d7{height} pixels; the sketchpad takes pictures up to "
                            f"{MAX_SKETCH_SIDE}\u00d7{MAX_SKETCH_SIDE}.", title="Drawing too large")
        return super().convert_and_format_image(file, flatten_on_white)
