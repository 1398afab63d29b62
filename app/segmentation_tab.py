"""The "Segmentation" tab: components and their wiring only (logic in :mod:`app.segmentation_handlers`)."""
from __future__ import annotations

import functools

import gradio as gr

from . import segmentation_handlers as sh
from .components import NumericRadio, RawImage
from .gpu import LONG, MEDIUM
from .weights import build_weights_panel
from .dense_models import DEFAULT_SEG_MODEL, Stage3Twins, seg_model_choices
from .examples import EXAMPLES_CREDIT, write_examples

__all__ = ["build_segmentation_tab"]

_INTRO = ("Semantic segmentation on ADE20K's 150 classes (paper \u00a74.3) with the official test pipeline: "
          "keep-ratio resize to (2048, 512), logits resized twice, argmax. At this resolution stage 3 has thousands "
          "of tokens, so the paper runs its attention in **windows** (or **hybrid**: windows, with every 4th block "
          "global). Switch the mode to see the windows on the photo and what each mode costs.")


def build_segmentation_tab(demo: gr.Blocks) -> None:
    """Add the semantic segmentation tab to ``demo`` (call inside its ``with`` block)."""
    twins = Stage3Twins()
    with gr.Tab("Segmentation", id="segmentation"):
        gr.Markdown(_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                image = RawImage(label="Image", type="filepath", sources=["upload", "webcam", "clipboard"],
                                 height=300, elem_id="seg-image")
                model = gr.Dropdown(seg_model_choices(), value=DEFAULT_SEG_MODEL, label="Model", elem_id="seg-model")
                with gr.Row():
                    mode = gr.Radio(sh.MODES, value="global", label="Stage-3 attention", elem_id="seg-mode", scale=3)
                    window = NumericRadio(sh.WINDOW_SIZES, value=32, label="Window (tokens)", elem_id="seg-window",
                                      scale=2)
                short_side = NumericRadio(sh.SHORT_SIDES, value=512, label="Resolution (short side, pixels)",
                                      elem_id="seg-scale", info="official: 512; smaller runs faster")
                with gr.Row():
                    run = gr.Button("Segment", variant="primary", elem_id="seg-run")
                    compare = gr.Button("Time all three modes", elem_id="seg-compare")
                examples = write_examples()
                gr.Examples([[str(p)] for p in examples.values()], inputs=image, cache_examples=False,
                            label="Examples (click one, then Segment)",
                            api_visibility="private")
                gr.Markdown(f"<small>{EXAMPLES_CREDIT}</small>")
            with gr.Column(scale=3):
                weights = gr.Markdown(elem_id="seg-weights")
                banner = gr.HTML(elem_id="seg-weights-banner")
                panel = build_weights_panel(demo, model, weights, banner, "seg")
                overlay = gr.Image(label="Segmentation (ADE20K palette)", type="pil", interactive=False, height=440,
                                   elem_id="seg-overlay", format="png")
                with gr.Row():
                    opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Opacity", elem_id="seg-opacity", scale=3)
                    show_windows = gr.Checkbox(value=True, label="Draw the stage-3 windows", elem_id="seg-show-windows",
                                               scale=2)
                details = gr.Markdown(elem_id="seg-details", label="Details")
                timings = gr.Dataframe(sh.empty_segmentation().timings,
                                       label="Time per stage-3 mode on this image (this device)", interactive=False,
                                       elem_id="seg-timings")
                with gr.Row(equal_height=False):
                    with gr.Column():
                        legend = gr.HTML(label="Classes (area)", elem_id="seg-legend")
                    with gr.Column():
                        classes = gr.CheckboxGroup([], label="Show classes", elem_id="seg-classes")
                files = gr.File(label="Downloads: overlay, mask (PNG, pixel value = class index), class areas (JSON)",
                                file_count="multiple", interactive=False, elem_id="seg-files")
        state = gr.State(None)

    inputs = [image, model, mode, window, short_side, opacity, show_windows, state]
    outputs = [overlay, classes, legend, details, timings, files, state]
    bind, session = panel.bind, panel.state
    filter_choices = dict(fn=sh.class_filter, inputs=state, outputs=classes, api_visibility="private",
                          show_progress="hidden")  # choices of the class filter: a value in the API, not an update
    run.click(bind(functools.partial(sh.segment, twins=twins), gpu=MEDIUM), [session, *inputs], outputs,
              api_name="segment", show_progress_on=overlay,
              api_description="Semantic segmentation (ADE20K, 150 classes) of a photo: the overlay, the classes found "
                              "with their areas, timings, and downloads (overlay PNG, class-index mask PNG, areas "
                              "JSON). mode: stage-3 attention "
                              "'global', 'window' or 'hybrid'.").success(**filter_choices)
    compare.click(bind(functools.partial(sh.compare_modes, twins=twins), gpu=LONG), [session, *inputs], outputs,
                  api_visibility="private", show_progress_on=overlay).success(**filter_choices)
    redraw = dict(fn=sh.rerender, inputs=[state, opacity, classes, show_windows], outputs=[overlay, legend, files],
                  api_visibility="private", show_progress="hidden")
    opacity.change(**redraw, trigger_mode="always_last")  # drag or typed value
    classes.input(**redraw)
    show_windows.input(**redraw)
    model.change(sh.mode_update, model, [mode, window], api_visibility="private", show_progress="hidden")
    gr.on([image.change, model.change, short_side.change], sh.empty_segmentation, None, outputs,
          api_visibility="private", show_progress="hidden")
