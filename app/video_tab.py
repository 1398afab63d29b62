"""The "Video" tab: components and their wiring only (logic in :mod:`app.video_handlers`)."""
from __future__ import annotations

import functools

import gradio as gr

from . import handlers
from . import video_handlers as vh
from .gpu import LONG, MEDIUM
from .weights import build_weights_panel

__all__ = ["build_video_tab"]

_INTRO = ("UniFormer for video (paper \u00a74.2, \u00a76.2): the same blocks in 3-D \u2014 a 3\u00d74\u00d74 stem "
          "that halves time, 5\u00d75\u00d75 local MHRA in stages 1\u20132 and **joint space-time attention** over all "
          "T\u00d7H\u00d7W tokens in stages 3\u20134. Frames are sampled exactly as each checkpoint was tested "
          "(dense clips for Kinetics, uniform segments for Something-Something and the light models) and only "
          "those frames are decoded. Each view is one forward pass; their logits are averaged.")


def build_video_tab(demo: gr.Blocks) -> None:
    """Add the video classification tab to ``demo`` (call inside its ``with`` block)."""
    start, note = vh.startup_video_model()
    with gr.Tab("Video", id="video"):
        gr.Markdown(_INTRO)
        offline_note = gr.Markdown(note, elem_id="video-offline-note")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                video = gr.Video(label="Video", sources=["upload", "webcam"], include_audio=True, height=300,
                                 elem_id="video-input")
                model = gr.Dropdown(vh.video_model_choices(), value=start, label="Model", elem_id="video-model")
                views = gr.Radio(vh.view_choices(), value=vh.default_views(start),
                                 label="Test views (clips \u00d7 crops)", elem_id="video-views",
                                 info="every view is one forward pass; the paper tests Kinetics with 4 clips \u00d7 1 "
                                      "crop and Something-Something with 1 clip \u00d7 3 crops")
                button = gr.Button("Classify video", variant="primary", elem_id="video-classify")
                info = gr.Markdown(vh.model_info(start), elem_id="video-model-info")
                clips = vh.example_clips(start)
                examples = gr.Dataset(components=["html"], samples=vh.example_samples(clips),
                                      type="index", layout="gallery", samples_per_page=10,
                                      label="Examples (click one, then Classify video)", elem_id="video-examples")
                credits = [vh.MOVING_DIGITS_EXAMPLES_CREDIT, vh.VIDEO_EXAMPLES_CREDIT]
                gr.Markdown("<small>" + " ".join(credits if start == vh.OFFLINE_VIDEO_MODEL else credits[::-1])
                            + "</small>")
            with gr.Column(scale=3):
                weights = gr.Markdown(elem_id="video-weights")
                banner = gr.HTML(elem_id="video-weights-banner")
                panel = build_weights_panel(demo, model, weights, banner, "video", status=vh.video_model_status)
                label = gr.Label(num_top_classes=handlers.TOPK, label=f"Top-{handlers.TOPK} classes (views averaged)",
                                 elem_id="video-top-classes")
                details = gr.Markdown(elem_id="video-details", label="Details")
                table = gr.Dataframe(vh.empty_result().table, label="Per-view probabilities (%) of the top classes",
                                     interactive=False, elem_id="video-views-table", wrap=True)
        gr.Markdown("**Where the sampled frames sit in the video** (one row per clip), and **the frames the model "
                    "saw**, clip by clip (#frame index; yellow: the crop it saw):")
        timeline = gr.Image(label="Sampled frames on the video's time line", show_label=False, type="pil",
                            interactive=False, elem_id="video-timeline", format="png")
        strip = gr.Image(label="The frames the model saw", show_label=False, type="pil", interactive=False,
                         elem_id="video-strip", format="png")
        with gr.Accordion("Space-time explanation (first clip, centre crop)", open=True):
            with gr.Row(equal_height=False):
                with gr.Column():
                    frame = gr.Image(label="Click a token on this frame", type="pil", interactive=False,
                                     elem_id="video-attn-frame", format="png", height=300)
                    slider = gr.Slider(1, 16, value=1, step=1, label="Frame of the clip", elem_id="video-frame")
                    blocks = vh.block_choices(start)
                    block = gr.Dropdown(blocks, value=blocks[0][1], label="Attention block (global MHRA)",
                                        elem_id="video-attn-block")
                with gr.Column():
                    attention = gr.Image(label="Where the clicked token looks, at this frame", type="pil",
                                         interactive=False, elem_id="video-attn-map", format="png", height=300)
                    attention_caption = gr.Markdown(elem_id="video-attn-caption", label="About the attention")
            with gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    cam_button = gr.Button("Grad-CAM of the top class (GIF + MP4)", elem_id="video-gradcam")
                    cam_caption = gr.Markdown(elem_id="video-cam-caption")
                    cam_files = gr.File(label="Download the overlays", file_count="multiple", elem_id="video-cam-files")
                cam_gif = gr.Image(label="Grad-CAM (GIF)", type="filepath", interactive=False, elem_id="video-cam-gif",
                                   height=300, scale=1)
                cam_mp4 = gr.Video(label="Grad-CAM (MP4)", interactive=False, elem_id="video-cam-mp4", height=300,
                                   loop=True, scale=1)
        state = gr.State(None)

    outputs = [label, details, table, strip, timeline, frame, slider, attention, attention_caption, state]
    bind, session = panel.bind, panel.state
    classified = button.click(bind(vh.classify_video, gpu=LONG), [session, video, model, views], outputs,
                              api_name="classify_video", show_progress_on=label,
                              api_description="Classify a video with the checkpoint's official frame sampling and "
                                              "test views (views: 'CLIPSxCROPS', e.g. '4x1'): the top-5 classes "
                                              "(views averaged), per-view probabilities, the frames the model "
                                              "saw and where they sit in the video.")
    # the frame slider's range for the clip: set by the page, so the API answers values, not updates
    classified.success(vh.frame_range, state, slider, api_visibility="private", show_progress="hidden")
    slider.change(vh.show_frame, [state, slider], [frame, attention], api_visibility="private",
                  show_progress="hidden")
    frame.select(bind(vh.attend, gpu=MEDIUM), [session, state, slider, block],
                 [frame, attention, attention_caption, state], api_visibility="private")
    block.input(bind(vh.change_block, gpu=MEDIUM), [session, state, block],
                [frame, attention, attention_caption, state], api_visibility="private")
    cam = [cam_gif, cam_mp4, cam_files, cam_caption]
    cam_button.click(bind(vh.explain_gradcam, gpu=LONG), [session, state], cam, api_visibility="private")
    # a Grad-CAM explains one answer: it goes when the video, the model or the answer changes
    gr.on([video.change, model.change, button.click], vh.no_cam, None, cam, api_visibility="private",
          show_progress="hidden")
    demo.load(vh.opening_status, model, [model, offline_note], api_visibility="private")
    model.change(vh.model_info, model, info, api_visibility="private", show_progress="hidden")
    model.change(vh.block_update, model, block, api_visibility="private", show_progress="hidden")
    model.change(lambda name: gr.update(value=vh.default_views(name)), model, views, api_visibility="private",
                 show_progress="hidden")
    examples.click(functools.partial(vh.example_clip, clips), examples, video, api_visibility="private",
                   show_progress="hidden")
    video.upload(vh.check_upload, video, None, api_visibility="private", show_progress="hidden")
    gr.on([video.change, model.change], vh.clear_stale_result, [video, model, state], outputs,
          api_visibility="private", show_progress="hidden")
