"""Build the demo's ``gr.Blocks``: a header and one tab per task (each tab is a module)."""
from __future__ import annotations

import gradio as gr

import uniformer
from uniformer.downloads import weights_available

from .dense_models import DEFAULT_DET_MODEL, DEFAULT_POSE_MODEL, DEFAULT_SEG_MODEL
from .cache import delete_cache_setting
from .handlers import default_device, device_label
from .models import DEFAULT_MODEL
from .shrinking_handlers import DEFAULT_LIGHT_MODEL
from .video_handlers import DEFAULT_VIDEO_MODEL
from .detection_tab import build_detection_tab
from .digits_tab import build_digits_tab
from .explain_tab import build_explain_tab
from .image_tab import build_image_tab
from .pose_tab import build_pose_tab
from .segmentation_tab import build_segmentation_tab
from .shrinking_tab import build_shrinking_tab
from .video_tab import build_video_tab
from .weights import MAX_CHECKPOINT_MB

__all__ = ["TITLE", "MAX_FILE_SIZE", "weights_summary", "build_app"]

TITLE = "UniFormer"

#: Largest upload the server accepts (Gradio's ``launch(max_file_size=...)``; the browser refuses a
#: bigger file at once with "File exceeds max size", the server stops the transfer, so no upload can
#: fill the disk or the memory). Sized for the largest official checkpoint (UniFormer-L: 100 M parameters,
#: ~0.4 GB in fp32, more with training state) that the weights accordion accepts
#: (:data:`app.weights.MAX_CHECKPOINT_MB`); photos and clips are far smaller. ``app.py`` passes it to ``launch``.
MAX_FILE_SIZE = f"{MAX_CHECKPOINT_MB}mb"

_INTRO = (f"# {TITLE}\n"
          "UniFormer (Li et al., *UniFormer: Unifying Convolution and Self-attention for Visual Recognition*, "
          "TPAMI 2023) in one app: image and video classification, what the network looks at, token shrinking, "
          "segmentation, object detection and pose, and a digits sketchpad. Each tab loads the official checkpoint "
          "of the model you pick when it can be had (its **Weights** panel downloads it, or runs a checkpoint file "
          "you upload); otherwise it runs untrained weights and says so.  \n"
          "{weights}  \n"
          f"`uniformer` {uniformer.__version__} \u00b7 **Device:** {{device}}")

#: (tab, the model it opens with) for the header's weights summary.
_OPENING_MODELS = (("Image classification", DEFAULT_MODEL), ("Explain", DEFAULT_MODEL),
                   ("Token shrinking", DEFAULT_LIGHT_MODEL), ("Segmentation", DEFAULT_SEG_MODEL),
                   ("Detection", DEFAULT_DET_MODEL), ("Pose", DEFAULT_POSE_MODEL), ("Video", DEFAULT_VIDEO_MODEL))


def weights_summary() -> str:
    """Which tabs open with trained weights, judged without loading or downloading anything
    (:func:`uniformer.downloads.weights_available`: a local file, a cached or reachable Hub file, a
    checkpoint shipped in the package)."""
    trained = [tab for tab, name in _OPENING_MODELS if weights_available(name)]
    untrained = [tab for tab, name in _OPENING_MODELS if tab not in trained]
    parts = []
    if trained:
        parts.append(f"**Trained weights at start:** {', '.join(trained)}.")
    if untrained:
        parts.append(f"**Untrained until you download or upload weights:** {', '.join(untrained)}"
                     + (" (the Video tab opens on a model this project trained)" if "Video" in untrained else "")
                     + ".")
    return " ".join(parts + ["The digits sketchpad runs a model this project trained."])


def build_app() -> gr.Blocks:
    """The whole demo, not launched. Theme and CSS are launch() arguments in Gradio 6; the app
    needs neither (its banners carry inline styles), so any launcher shows it as intended.
    Uploads and result files are deleted after ``$UNIFORMER_RESULT_TTL_S`` seconds
    (:func:`app.cache.delete_cache_setting`; raises ValueError for a bad value)."""
    with gr.Blocks(title=TITLE, delete_cache=delete_cache_setting()) as demo:
        gr.Markdown(_INTRO.format(device=device_label(default_device()), weights=weights_summary()))
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
