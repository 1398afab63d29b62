"""The "Image classification" tab: components and their wiring only (logic in :mod:`app.handlers`)."""
from __future__ import annotations

import gradio as gr

from uniformer.precision import default_precision, precision_label

from . import handlers
from .components import RawImage
from .examples import EXAMPLES_CREDIT, write_examples
from .gpu import SHORT
from .models import DEFAULT_MODEL
from .weights import build_weights_panel

__all__ = ["build_image_tab"]


def build_image_tab(demo: gr.Blocks) -> None:
    """Add the image classification tab to ``demo`` (call inside its ``with`` block)."""
    with gr.Tab("Image classification", id="image"):
        with gr.Row(equal_height=False):
            with gr.Column():
                image = RawImage(label="Image", type="filepath", sources=["upload", "webcam", "clipboard"],
                                 height=360, elem_id="input-image")
                with gr.Row():
                    model = gr.Dropdown(handlers.general_image_model_choices(), value=DEFAULT_MODEL, label="Model",
                                        scale=3, elem_id="model")
                    precision = gr.Radio(handlers.precision_choices(handlers.default_device()),
                                         value=default_precision(handlers.default_device()), label="Precision",
                                         scale=2, elem_id="precision", info=precision_label(handlers.default_device()))
                button = gr.Button("Classify", variant="primary", elem_id="classify")
                examples = write_examples()
                gr.Examples([[str(p)] for p in examples.values()], inputs=image,
                            cache_examples=False, label="Examples (click one, then Classify)",
                            api_visibility="private")  # the page's own event, not part of the API
                gr.Markdown(f"<small>{EXAMPLES_CREDIT}</small>")
            with gr.Column():
                weights = gr.Markdown(elem_id="weights")
                banner = gr.HTML(elem_id="weights-banner")
                panel = build_weights_panel(demo, model, weights, banner, "image")
                label = gr.Label(num_top_classes=handlers.TOPK, label=f"Top-{handlers.TOPK} classes",
                                 elem_id="top-classes")
                details = gr.Markdown(elem_id="details", label="Details")

    button.click(panel.bind(handlers.classify_image, gpu=SHORT), [panel.state, image, model, precision],
                 [label, details], api_name="classify",
                 api_description="Classify a photo: the top-5 classes with their probabilities, and what produced "
                                 "them (model, weights, device, precision, timings).")
    gr.on([image.change, model.change], handlers.empty_result, None, [label, details], api_visibility="private",
          show_progress="hidden")
