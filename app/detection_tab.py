"""The "Detection" tab: components and their wiring only (logic in :mod:`app.detection_handlers`)."""
from __future__ import annotations

import functools

import gradio as gr

from uniformer.precision import default_precision, precision_label

from . import detection_handlers as xd
from . import handlers
from .components import NumericRadio, RawImage
from .gpu import LONG
from .weights import build_weights_panel
from .dense_models import DEFAULT_DET_MODEL, Stage3Twins, det_model_choices
from .examples import EXAMPLES_CREDIT, write_examples

__all__ = ["build_detection_tab"]

_INTRO = ("Object detection and instance segmentation on COCO's 80 classes (paper \u00a74.3) with Mask R-CNN or "
          "Cascade Mask R-CNN and the official test pipeline: keep-ratio resize to (1333, 800), FPN, region proposals, "
          "RoI heads, class-wise NMS, masks pasted into the photo. The network runs once per click on **Detect**; the "
          "score threshold, the class filter and the drawing options re-draw its result without running it again.")


def build_detection_tab(demo: gr.Blocks) -> None:
    """Add the object detection tab to ``demo`` (call inside its ``with`` block)."""
    twins = Stage3Twins(maxsize=4)
    with gr.Tab("Detection", id="detection"):
        gr.Markdown(_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                image = RawImage(label="Image", type="filepath", sources=["upload", "webcam", "clipboard"],
                                 height=300, elem_id="det-image")
                model = gr.Dropdown(det_model_choices(), value=DEFAULT_DET_MODEL, label="Model", elem_id="det-model")
                mode = gr.Radio(xd.MODES, value="hybrid", label="Stage-3 attention", elem_id="det-mode",
                                info=xd.mode_update(DEFAULT_DET_MODEL)["info"])
                short_side = NumericRadio(xd.SHORT_SIDES, value=800, label="Resolution (short side, pixels)",
                                      elem_id="det-scale", info="official: 800 (long side at most 1333); smaller "
                                      "runs faster")
                device = handlers.default_device()
                precision = gr.Radio(handlers.precision_choices(device), value=default_precision(device),
                                     label="Precision", elem_id="det-precision", info=precision_label(device))
                run = gr.Button("Detect", variant="primary", elem_id="det-run")
                examples = write_examples()
                gr.Examples([[str(examples[k])] for k in ("coffee", "astronaut", "chelsea", "china") if k in examples],
                            inputs=image, cache_examples=False, label="Examples (click one, then Detect)",
                            api_visibility="private")
                gr.Markdown(f"<small>{EXAMPLES_CREDIT}</small>")
            with gr.Column(scale=3):
                weights = gr.Markdown(elem_id="det-weights")
                banner = gr.HTML(elem_id="det-weights-banner")
                panel = build_weights_panel(demo, model, weights, banner, "det")
                overlay = gr.Image(label="Detections (masks, boxes, class and score)", type="pil", interactive=False,
                                   height=440, elem_id="det-overlay", format="png")
                with gr.Row():
                    thr = gr.Slider(0, 1, value=xd.DEFAULT_SHOW_THR, step=0.01, label="Show scores from",
                                    elem_id="det-threshold", scale=3)
                    opacity = gr.Slider(0, 1, value=0.45, step=0.05, label="Mask opacity", elem_id="det-opacity",
                                        scale=2)
                with gr.Row():
                    show_masks = gr.Checkbox(value=True, label="Masks", elem_id="det-show-masks")
                    show_labels = gr.Checkbox(value=True, label="Labels", elem_id="det-show-labels")
                note = gr.Markdown(elem_id="det-note", label="Note")
                classes = gr.CheckboxGroup([], label="Classes shown (detections at this threshold)",
                                           show_select_all=True, elem_id="det-classes")
                table = gr.Dataframe(xd.empty_detection().table, label="Detections (photo pixels)", interactive=False,
                                     elem_id="det-table", max_height=320)
                timing = gr.HTML(label="Time per step (this device)", elem_id="det-timing")
                details = gr.Markdown(elem_id="det-details", label="Details")
                files = gr.File(label="Downloads: drawing (PNG), shown detections in COCO results format with RLE "
                                "masks (JSON)", file_count="multiple", interactive=False, elem_id="det-files")
        state = gr.State(None)

    outputs = [overlay, note, classes, table, timing, details, files, state]
    bind, session = panel.bind, panel.state
    run.click(bind(functools.partial(xd.detect, twins=twins), gpu=LONG),
              [session, image, model, mode, short_side, thr, opacity, show_masks, show_labels, precision], outputs,
              api_name="detect", show_progress_on=overlay, api_description=(
        "Object detection and instance segmentation (COCO, 80 classes) of a photo: the drawing, the classes found, a "
        "table of detections (box in photo pixels, class, score), per-step timings, and downloads (PNG; COCO "
        "results JSON with RLE masks). thr: lowest score shown; precision: 'fp32', 'bf16' (default where the hardware "
        "computes bf16 natively), 'fp16' (CUDA).")).success(
        xd.class_filter, [state, thr], classes, api_visibility="private",
        show_progress="hidden")  # the filter's choices: the API returns the shown classes as a value, not an update
    redraw = dict(fn=xd.rerender, inputs=[state, thr, classes, opacity, show_masks, show_labels],
                  outputs=[overlay, note, classes, table, files, state], api_visibility="private",
                  show_progress="hidden")
    # .change: a drag, a typed value (Enter or leaving the box) and the arrows all re-draw
    thr.change(**redraw, trigger_mode="always_last")
    opacity.change(**redraw, trigger_mode="always_last")
    classes.input(**redraw)
    show_masks.input(**redraw)
    show_labels.input(**redraw)
    model.change(xd.mode_update, model, mode, api_visibility="private", show_progress="hidden")
    gr.on([image.change, model.change, short_side.change, precision.change], xd.empty_detection, None, outputs,
          api_visibility="private", show_progress="hidden")
