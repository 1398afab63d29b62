"""The "Pose" tab: components and their wiring only (logic in :mod:`app.pose_handlers`)."""
from __future__ import annotations

import functools

import gradio as gr

from . import pose_handlers as ph
from . import detection_handlers as xd
from .components import RawImage
from .gpu import LONG, MEDIUM
from .weights import build_weights_panel
from .dense_models import DEFAULT_DET_MODEL, DEFAULT_POSE_MODEL, det_model_choices, pose_model_choices
from .examples import EXAMPLES_CREDIT, write_examples

__all__ = ["build_pose_tab"]

_INTRO = ("Top-down human pose estimation on COCO's 17 keypoints (paper \u00a74.3) with the official test pipeline: "
          "the person box is widened to the input's aspect ratio and padded by 1.25, cropped, run together with its "
          "mirror image (flip test), and each joint is read off its heatmap. **Click two opposite corners** of the "
          "person on the photo to draw the box (or type it; several boxes: separate them with ';'), or let a "
          "detector find the people (it needs trained detection weights); with no box the whole image is the box.")


def build_pose_tab(demo: gr.Blocks) -> None:
    """Add the pose estimation tab to ``demo`` (call inside its ``with`` block)."""
    with gr.Tab("Pose", id="pose"):
        gr.Markdown(_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                image = RawImage(label="Image (click two corners of the person box)", type="filepath",
                                 sources=["upload", "webcam", "clipboard"], height=320, elem_id="pose-image")
                with gr.Row():
                    box = gr.Textbox(label="Person box: x, y, width, height (pixels; several: separate with ';')",
                                     placeholder="whole image", elem_id="pose-box", scale=3)
                    clear = gr.Button("Use the whole image", elem_id="pose-clear-box", scale=1)
                with gr.Row():
                    detector = gr.Dropdown(det_model_choices(), value=DEFAULT_DET_MODEL, label="Person detector",
                                           elem_id="pose-detector", scale=3)
                    find = gr.Button("Find people with the detector", elem_id="pose-find-people", scale=1)
                detector_note = gr.Markdown(elem_id="pose-detector-note")
                model = gr.Dropdown(pose_model_choices(), value=DEFAULT_POSE_MODEL, label="Model", elem_id="pose-model")
                with gr.Row():
                    flip = gr.Checkbox(value=True, label="Flip test (official)", elem_id="pose-flip")
                    threshold = gr.Slider(0, 1, value=0.0, step=0.05, label="Hide joints scoring below",
                                          elem_id="pose-threshold")
                run = gr.Button("Estimate pose", variant="primary", elem_id="pose-run")
                examples = write_examples()
                gr.Examples([[str(examples[k])] for k in ("astronaut", "coffee", "chelsea") if k in examples],
                            inputs=image, cache_examples=False, label="Examples (click one, then Estimate pose)",
                            api_visibility="private")
                gr.Markdown(f"<small>{EXAMPLES_CREDIT}</small>")
            with gr.Column(scale=3):
                weights = gr.Markdown(elem_id="pose-weights")
                banner = gr.HTML(elem_id="pose-weights-banner")
                panel = build_weights_panel(demo, model, weights, banner, "pose")
                overlay = gr.Image(label="Keypoints and scores", type="pil", interactive=False, height=480,
                                   elem_id="pose-overlay", format="png")
                details = gr.Markdown(elem_id="pose-details", label="Details")
                table = gr.Dataframe(ph.empty_pose().table, label="Keypoints (image pixels)", interactive=False,
                                     elem_id="pose-table")
                files = gr.File(label="Downloads: drawing (PNG), keypoints (JSON)", file_count="multiple",
                                interactive=False, elem_id="pose-files")
        pick = gr.State(ph.BoxPick())
        photo = gr.State(ph.PosePhoto())  # the upload: the model reads it, the image shows it with the boxes
        last_run = gr.State(None)

    outputs = [overlay, table, details, files]
    bind, session = panel.bind, panel.state
    run.click(bind(ph.estimate_live, gpu=MEDIUM), [session, image, model, box, flip, threshold, photo],
              [*outputs, last_run], api_name="pose", show_progress_on=overlay,
              api_description="Top-down pose estimation (COCO, 17 keypoints) of the people in a photo: box_text is "
                              "'x, y, width, height' in pixels (several separated by ';'; empty: the whole image). "
                              "Returns the drawing, a table of keypoints (pixels, score), and downloads (PNG, JSON).")
    private = dict(api_visibility="private", show_progress="hidden")
    image.select(ph.pick_corner, [image, photo, pick], [photo, pick, box, image], **private)
    box.submit(ph.show_boxes, [image, photo, box], [photo, pick, image], **private)
    clear.click(ph.clear_box, [image, photo], [pick, box, photo, image], **private)
    find_people = functools.partial(ph.find_people, detect_people=xd.find_people)
    find_people.__name__ = find_people.__qualname__ = ph.find_people.__name__  # named in ZeroGPU's list and logs
    find.click(bind(find_people, gpu=LONG),
               [session, image, photo, detector], [photo, pick, box, image, detector_note], api_visibility="private")
    gr.on([demo.load, detector.change], xd.detector_note, detector, detector_note, **private)
    # a new upload starts afresh; the copy with the boxes drawn (written by the events above) changes nothing
    image.change(ph.photo_changed, [image, photo], [photo, pick, box, *outputs, last_run], **private)
    threshold.change(ph.redraw_pose, [last_run, threshold], outputs, **private, trigger_mode="always_last")
    model.change(lambda: (*ph.empty_pose(), None), None, [*outputs, last_run], **private)
