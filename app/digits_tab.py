"""The "Digits" tab: components and their wiring only (logic in :mod:`app.digits_handlers`)."""
from __future__ import annotations

import gradio as gr

from . import digits_handlers as dh
from .components import BoundedSketchpad, RawImage
from .gpu import SHORT, gpu_task

__all__ = ["build_digits_tab"]

_INTRO = ("Draw a digit: **uniformer_xxs_digits**, a small light-weight UniFormer that this project trained on "
          "scikit-learn's handwritten digits (shipped in the package, so it runs offline), reads it as the 8\u00d78 "
          "picture shown below, then shows where its global attention looks and which tokens each hourglass layer "
          "kept or fused (token shrinking, \u00a75). Every stroke re-runs it (one forward, a few milliseconds); "
          "the bin icon clears the canvas.")


#: Picks the sketchpad's brush (the editor opens with no tool, so a first drag would draw nothing):
#: clicks the Brush button unless it is already highlighted, retrying while the tab renders.
_PICK_BRUSH = """() => {
  let tries = 0;
  const pick = () => {
    const brush = document.querySelector('#digits-sketch button[aria-label="Brush"]');
    if (brush && brush.offsetParent !== null) {
      if (!brush.classList.contains('highlight')) brush.click();
    } else if (tries++ < 100) setTimeout(pick, 100);
  };
  pick();
}"""


def build_digits_tab(demo: gr.Blocks) -> None:
    """Add the Digits tab to ``demo`` (call inside its ``with gr.Tabs()`` block)."""
    with gr.Tab("Digits", id="digits") as tab:
        gr.Markdown(_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                gr.Markdown("**Draw a digit (0-9), large and centred** (the bin in the toolbar clears the canvas)",
                            elem_id="digits-sketch-label")
                # a drag on the canvas must draw, never select the placeholder text under it
                gr.HTML("<style>#digits-sketch, #digits-sketch * {user-select: none; -webkit-user-select: none}"
                        "</style>", padding=False)
                sketch = BoundedSketchpad(label="Draw a digit (0-9)", show_label=False, type="numpy", image_mode="RGBA",
                                          canvas_size=(320, 320), height=380,
                                      elem_id="digits-sketch",
                                      brush=gr.Brush(default_size=22, colors=["#000000"], color_mode="fixed"),
                                      layers=False, transforms=())
                button = gr.Button("Classify the drawing", variant="primary", elem_id="digits-run")
                # the /digits API takes a picture file (the tab's sketchpad value is an editor dict)
                api_image = RawImage(label="Digit image", type="filepath", visible=False)
                api_button = gr.Button("Classify a picture", visible=False)
                examples = gr.Examples([[str(p)] for p in dh.write_digit_examples().values()], inputs=sketch,
                            cache_examples=False, examples_per_page=10, elem_id="digits-examples",
                            label="Held-out digits (scikit-learn's validation split, never trained on): click one",
                            api_visibility="private")
                weights = gr.Markdown(elem_id="digits-weights")
                banner = gr.HTML(elem_id="digits-weights-banner")
            with gr.Column(scale=3):
                with gr.Row(equal_height=False):
                    digit = gr.Image(label="What the model reads: 8\u00d78 digit", type="pil", interactive=False,
                                     height=240, elem_id="digits-input", format="png", scale=1)
                    label = gr.Label(num_top_classes=dh.TOPK, label=f"Top-{dh.TOPK} digits", elem_id="digits-top",
                                     scale=1)
                details = gr.Markdown(dh.NOTHING_DRAWN, elem_id="digits-details", label="Details")
                attention = gr.Gallery(label="Attention", columns=2, height=330, object_fit="contain",
                                       elem_id="digits-attention", format="png")
                attention_caption = gr.Markdown(elem_id="digits-attention-caption", label="About the attention")
        shrinking = gr.Gallery(label="Token shrinking: kept (green) and fused (dark, red hatch) tokens per hourglass "
                                     "layer", columns=4, height=300, object_fit="contain", elem_id="digits-shrinking",
                                     format="png")
        table = gr.Dataframe(dh.empty_view().shrinking_table, label="Tokens per hourglass layer", interactive=False,
                             elem_id="digits-shrinking-table")

    outputs = [digit, label, attention, attention_caption, shrinking, table, details]
    gr.on([button.click, sketch.change], gpu_task(SHORT)(dh.classify_sketch), sketch, outputs, api_visibility="private",
          trigger_mode="always_last", show_progress="hidden")
    api_button.click(gpu_task(SHORT)(dh.classify_digit_image), api_image, outputs, api_name="digits",
                     show_progress="hidden",
                     api_description="Read a picture of one handwritten digit (0-9; dark ink on a light "
                                     "background) with the shipped digits model: the 8x8 digit it reads, the top-3 "
                                     "digits, attention and token-shrinking views, and a table of tokens per layer.")
    # a loaded example replaces the editor's value without a change event: classify it explicitly
    examples.load_input_event.then(gpu_task(SHORT)(dh.classify_sketch), sketch, outputs, api_visibility="private",
                                   show_progress="hidden")
    demo.load(dh.weights_status, None, [weights, banner], api_visibility="private")
    for event in (tab.select, sketch.clear):  # opened, or cleared with the bin: the brush is the tool
        event(None, js=_PICK_BRUSH, api_visibility="private", show_progress="hidden")
