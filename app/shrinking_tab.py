"""The "Token shrinking" tab: components and their wiring only (logic in :mod:`app.shrinking_handlers`)."""
from __future__ import annotations

import gradio as gr

from . import handlers
from . import shrinking_handlers as sh
from .components import NumericRadio, RawImage
from .gpu import MEDIUM, SHORT
from .weights import build_weights_panel
from .examples import EXAMPLES_CREDIT, write_examples

__all__ = ["build_shrinking_tab"]

_INTRO = ("Light-weight UniFormer (XXS / XS, paper \u00a75): from the second stage-3 block on, each *hourglass* block "
          "keeps the tokens its score token finds most important, fuses the rest into **one representative token**, "
          "runs attention on the few left and hands the representative's update back to the fused tokens. "
          "Run a photo, then move through the layers and change the keep ratio: the views come from a cached trace, "
          "the network does not run again.")


def build_shrinking_tab(demo: gr.Blocks) -> None:
    """Add the token shrinking tab to ``demo`` (call inside its ``with`` block)."""
    with gr.Tab("Token shrinking", id="shrinking"):
        gr.Markdown(_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                image = RawImage(label="Image", type="filepath", sources=["upload", "webcam", "clipboard"],
                                 height=300, elem_id="shrink-image")
                examples = write_examples()
                gr.Examples([[str(p)] for p in examples.values()], inputs=image, cache_examples=False,
                            label="Examples (click one, then Run)",
                            api_visibility="private")
                model = gr.Dropdown(sh.light_model_choices(), value=sh.DEFAULT_LIGHT_MODEL, label="Light model",
                                    elem_id="shrink-model")
                weights = gr.Markdown(elem_id="shrink-weights")
                banner = gr.HTML(elem_id="shrink-weights-banner")
                panel = build_weights_panel(demo, model, weights, banner, "shrink")
                keep_ratio = NumericRadio(sh.keep_ratio_choices(), value=sh.DEFAULT_KEEP_RATIO, elem_id="shrink-ratio",
                                      label="Keep ratio (Table 23)",
                                      info="fraction of tokens each hourglass block keeps; the rest are fused")
                button = gr.Button("Run", variant="primary", elem_id="shrink-run")
                label = gr.Label(num_top_classes=handlers.TOPK, label=f"Top-{handlers.TOPK} at this keep ratio",
                                 elem_id="shrink-top-classes")
                gr.Markdown(f"<small>{EXAMPLES_CREDIT}</small>")
            with gr.Column(scale=3):
                overlay = gr.Image(label="Kept (green) and fused (dark, red hatch) tokens", type="pil",
                                   interactive=False, height=420, elem_id="shrink-overlay", format="png")
                layer = gr.Slider(1, 10, value=2, step=1, label="Hourglass layer", elem_id="shrink-layer",
                                  info="stage-3 and stage-4 blocks in forward order")
                caption = gr.Markdown(elem_id="shrink-caption", label="About this layer")
                chart = gr.Plot(label="Tokens per layer", elem_id="shrink-chart")
                details = gr.Markdown(elem_id="shrink-details", label="Details")
                sweep = gr.Dataframe(sh.empty_view().sweep,
                                     label=("All keep ratios on this image (\u25c0 = shown; latency: median of 3 "
                                            "forwards, batch 1, "
                                            "noisy on a busy CPU)"), interactive=False,
                                     elem_id="shrink-sweep")
        state = gr.State(None)

    run_outputs = [overlay, caption, chart, label, details, sweep, layer, state]
    bind, session = panel.bind, panel.state
    button.click(bind(sh.run_shrinking, gpu=MEDIUM), [session, image, model, keep_ratio, layer], run_outputs,
                 api_name="shrink",
                 api_description="Token shrinking of a light UniFormer (XXS / XS) on a photo at one keep ratio: the "
                                 "kept and fused tokens of one hourglass layer, tokens per layer, the top-5 classes, "
                                 "and every keep ratio's top class and latency.").success(
        bind(sh.layer_range, gpu=SHORT), [session, state], layer, api_visibility="private",
        show_progress="hidden")  # the slider's range: the API returns the layer as a value, not an update
    keep_ratio.change(bind(sh.change_keep_ratio, gpu=MEDIUM), [session, state, keep_ratio, layer], run_outputs,
                      api_visibility="private")
    layer.change(bind(sh.show_layer, gpu=SHORT), [session, state, layer], [overlay, caption, chart],
                 api_visibility="private", show_progress="hidden")
    gr.on([image.change, model.change], sh.empty_view, None, run_outputs, api_visibility="private",
          show_progress="hidden")
