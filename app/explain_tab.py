"""The "Explain" tab: components and their wiring only (logic in :mod:`app.explain_handlers`,
pictures and figures in :mod:`uniformer.explain`)."""
from __future__ import annotations

import gradio as gr

import uniformer
from uniformer.explain import CAM_METHODS

from . import explain_handlers as xh
from .components import RawImage
from .examples import EXAMPLES_CREDIT, write_examples
from .handlers import general_image_model_choices
from .gpu import MEDIUM, SHORT
from .models import DEFAULT_MODEL
from .weights import build_weights_panel

__all__ = ["build_explain_tab"]

_INTRO = (
    "Click a point on the photo to see how its token relates to the others, layer by layer. "
    "Stages 1-2 use **local MHRA** (Eq. 6): a learned 5\u00d75 affinity a<sub>n</sub>, the same for every image "
    "(green box: its reach). Stages 3-4 use **global MHRA** (Eq. 7): content-dependent attention over all tokens. "
    "The network runs once per image and model; clicks and sliders re-draw from the cached result."
)


def _sliders(model_name: str) -> tuple[dict, dict]:
    """Layer- and head-slider updates for ``model_name``: one layer step per block, starting at the
    first stage-3 block; the head back to 0 (the mean, which every layer has)."""
    depths = uniformer.get_entry(model_name).config.depths
    return gr.update(maximum=sum(depths), value=depths[0] + depths[1] + 1), gr.update(value=0)


def build_explain_tab(demo: gr.Blocks) -> None:
    """Add the Explain tab to ``demo`` (call inside its ``with gr.Tabs()`` block)."""
    with gr.Tab("Explain", id="explain"):
        gr.Markdown(_INTRO)
        state = gr.State({})
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                image = RawImage(label="Image", type="filepath", sources=["upload", "webcam", "clipboard"],
                                 height=240, elem_id="explain-input")
                model = gr.Dropdown(general_image_model_choices(), value=DEFAULT_MODEL, label="Model",
                                    elem_id="explain-model")
                weights = gr.Markdown(elem_id="explain-weights")
                banner = gr.HTML(elem_id="explain-weights-banner")
                panel = build_weights_panel(demo, model, weights, banner, "explain")
                gr.Examples([[str(p)] for p in write_examples().values()], inputs=image, cache_examples=False,
                            label="Examples (pick one, then click on the picture)",
                            api_visibility="private")
                gr.Markdown(f"<small>{EXAMPLES_CREDIT}</small>")
            with gr.Column(scale=3):
                canvas = gr.Image(label="Click a point (cyan: the clicked token)", type="pil", interactive=False,
                                  height=400, elem_id="explain-canvas", buttons=["download"])
                with gr.Row():
                    layer = gr.Slider(1, 18, value=8, step=1, label="Layer (all blocks, shallow to deep)",
                                      elem_id="explain-layer")
                    head = gr.Slider(0, 8, value=0, step=1, label="Head: 0 = mean over heads", elem_id="explain-head")
                info = gr.Markdown(elem_id="explain-info", label="About this view")
                # the /explain API: the point in image pixels (the tab sets it by clicking the picture)
                x = gr.Number(label="Point x (image pixels)", visible=False)
                y = gr.Number(label="Point y (image pixels)", visible=False)
                explain_button = gr.Button("Explain this point", visible=False)
                numbers = gr.JSON(label="Numbers behind the views", visible=False)
                # the layer and head /explain showed, as values (the sliders follow in a private event)
                layer_shown = gr.Number(label="Layer shown", precision=0, visible=False)
                head_shown = gr.Number(label="Head shown", precision=0, visible=False)
        with gr.Column(visible=False) as results, gr.Row(equal_height=False):
            lvg = gr.Gallery(label="Same point: stage-2 local affinity | stage-3 | stage-4 global attention",
                             columns=3, height=330, object_fit="contain", elem_id="explain-lvg", scale=3)
            erf = gr.Image(label="Stage-2 effective receptive field", type="pil", interactive=False, height=330,
                           elem_id="explain-erf", scale=1)
        with gr.Column(visible=False) as plots:
            with gr.Row(equal_height=False):
                query_plot = gr.Plot(label="Clicked token's row (hover for values)", elem_id="explain-query-plot")
                distance_plot = gr.Plot(label="Mean attention distance per head", elem_id="explain-distance")
            kernels_plot = gr.Plot(label="Local affinity kernels a_n (Eq. 6), exact weights",
                                   elem_id="explain-kernels")
            with gr.Accordion("Attention rollout (stages 3-4) and stage features (PCA -> RGB)", open=False):
                rollout = gr.Gallery(label="Attention rollout and stage features", columns=6, height=300,
                                     object_fit="contain", elem_id="explain-rollout", show_label=False)
        with gr.Accordion("Class activation maps (pytorch-grad-cam)", open=False):
            with gr.Row():
                method = gr.Dropdown(list(CAM_METHODS), value="GradCAM", label="Method", elem_id="explain-cam-method")
                cam_stage = gr.Radio(list(xh.CAM_STAGES), value="stage 4", label="Target stage",
                                     elem_id="explain-cam-stage")
                cam_class = gr.Dropdown([("top class", -1)], value=-1, label="Class", elem_id="explain-cam-class")
                cam_button = gr.Button("Compute CAM", elem_id="explain-cam-run")
            with gr.Row(equal_height=False):
                cam_image = gr.Image(label="Class activation map", type="pil", interactive=False, height=300,
                                     show_label=False, elem_id="explain-cam")
                cam_caption = gr.Markdown(label="About the CAM", elem_id="explain-cam-caption")
        with gr.Row(equal_height=False):
            export = gr.Button("Export what is shown (PNG + JSON)", elem_id="explain-export", scale=1)
            files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="explain-files",
                            scale=3)

    view = [canvas, info, lvg, erf, query_plot, kernels_plot, distance_plot, rollout]
    cleared = [lvg, erf, query_plot, kernels_plot, distance_plot, rollout, cam_image, cam_caption, files]
    bind, session = panel.bind, panel.state
    gr.on([demo.load, model.change], _sliders, model, [layer, head], api_visibility="private")
    shown = [results, plots]
    gr.on([image.change, model.change], bind(xh.prepare_image, gpu=MEDIUM), [session, image, model],
          [canvas, info, state], api_visibility="private").then(
        lambda: [gr.Column(visible=False)] * len(shown), None, shown, api_visibility="private",
        show_progress="hidden").then(
        lambda: [None] * len(cleared), None, cleared, api_visibility="private", show_progress="hidden").then(
        bind(xh.warm_up, gpu=MEDIUM), [session, state], None, api_visibility="private", show_progress="hidden").then(
        bind(xh.class_choices, gpu=SHORT), [session, state], cam_class, api_visibility="private",
        show_progress="hidden")
    reveal = dict(fn=lambda: [gr.Column(visible=True)] * len(shown), inputs=None, outputs=shown,
                  api_visibility="private", show_progress="hidden")
    canvas.select(bind(xh.click, gpu=MEDIUM), [session, state, layer, head], [state, *view, layer, head],
                  api_visibility="private", trigger_mode="always_last").then(**reveal)
    explained = explain_button.click(
        bind(xh.explain_point, gpu=MEDIUM), [session, image, model, x, y, layer, head],
        [state, *view, layer_shown, head_shown, numbers], api_name="explain", api_description=(
            "Explain one point of a photo: the attention / local affinity of the token at (x, y) (image pixels) in "
            "the chosen layer (1-based; head 0 = mean over heads), the same point in stages 2-4, the stage-2 "
            "effective receptive field, attention distances, rollout and stage features, the layer and head shown, "
            "and the numbers behind them (JSON)."))
    # the sliders' ranges and values in one update each (never a value beyond the maximum)
    explained.success(bind(xh.sliders, gpu=SHORT), [session, state, layer_shown, head_shown], [layer, head],
                      api_visibility="private", show_progress="hidden")
    explained.then(**reveal)
    # one event sets the head slider's range and value and draws the views (never a head beyond the range)
    layer.input(bind(xh.layer_changed, gpu=SHORT), [session, state, layer, head], [head, *view],
                api_visibility="private", show_progress="hidden", trigger_mode="always_last")
    head.input(bind(xh.rerender, gpu=SHORT), [session, state, layer, head], view, api_visibility="private",
               show_progress="hidden", trigger_mode="always_last")
    export.click(bind(xh.export, gpu=SHORT), [session, state, layer, head], files, api_visibility="private")
    gr.on([cam_button.click, method.input, cam_stage.input, cam_class.input], bind(xh.cam_view, gpu=MEDIUM),
          [session, state, method, cam_stage, cam_class], [cam_image, cam_caption], api_visibility="private",
          trigger_mode="always_last")
