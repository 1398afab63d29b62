"""Build the demo's ``gr.Blocks``: a header and one tab per task (each tab is a module)."""
from __future__ import annotations

import gradio as gr

import uniformer

from .handlers import default_device, device_label
from .detection_tab import build_detection_tab
from .digits_tab import build_digits_tab
from .explain_tab import build_explain_tab
from .image_tab import build_image_tab
from .pose_tab import build_pose_tab
from .segmentation_tab import build_segmentation_tab
from .shrinking_tab import build_shrinking_tab
from .video_tab import build_video_tab

__all__ = ["TITLE", "MAX_FILE_SIZE", "build_app"]

TITLE = "UniFormer"

#: Largest upload the server accepts (Gradio's ``launch(max_file_size=...)``; the browser refuses a
#: bigger file at once with "File exceeds max size", the server stops the transfer, so no upload can
#: fill the disk or the memory). Sized for the largest official checkpoint (UniFormer-L: 100 M parameters,
#: ~0.4 GB in fp32, more with training state)
#: that the weights accordion accepts; photos and clips are far smaller. Pass it to ``launch``.
MAX_FILE_SIZE = "1gb"

_INTRO = (f"# {TITLE}\n"
          "UniFormer (Li et al., *UniFormer: Unifying Convolution and Self-attention for Visual Recognition*, "
          "TPAMI 2023), run with the official checkpoints: image and video classification, what the network "
          "looks at, token shrinking, segmentation, object detection and pose, and a digits sketchpad running a "
          "small model this project trained (offline). "
          f"`uniformer` {uniformer.__version__} \u00b7 **Device:** {{device}}")


def build_app() -> gr.Blocks:
    """The whole demo, not launched. Theme and CSS are launch() arguments in Gradio 6; the app
    needs neither (its banners carry inline styles), so any launcher shows it as intended."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(_INTRO.format(device=device_label(default_device())))
        with gr.Tabs():
            build_image_tab(demo)
            build_explain_tab(demo)
            build_shrinking_tab(demo)
            build_segmentation_tab(demo)
            build_detection_tab(demo)
            build_pose_tab(demo)
            build_video_tab(demo)
            build_digits_tab(demo)
    return demo
