"""The whole odd / bad image corpus through every image task of the app: /classify, /explain, /shrink,
/segment, /detect and /pose.

Valid but unusual files (CMYK, 16-bit, grey, RGBA, 1x1, 3000x8 and 8x3000 strips, an animated GIF,
an EXIF-rotated JPEG, 24 megapixels) are answered; unusable ones (empty, truncated, text, HTML, SVG,
a 400-megapixel image and a decompression bomb) are refused with the app's own message in words.
Every file goes through each task's handler with the registered model the tab opens with, at its
real size (untrained weights: the Hub cache is empty and offline); a representative subset goes
through the HTTP API of one running app with gradio_client, where a crash would read as Gradio's
generic "upstream Gradio app has raised an exception".
"""
from __future__ import annotations

import json

import gradio as gr
import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
from appfiles import make_odd_images, make_unusable_files
from PIL import Image

from app import detection_handlers as xd
from app import explain_handlers as xh
from app import handlers, models
from app import pose_handlers as ph
from app import segmentation_handlers as sh
from app import shrinking_handlers as shr
from app.dense_models import DEFAULT_POSE_MODEL, DEFAULT_SEG_MODEL, Stage3Twins
from app.examples import write_examples
from uniformer.data import ImageDecodeError, load_image

ODD = ("cmyk", "sixteen_bit", "grey", "rgba", "one_pixel", "wide", "tall", "animated", "exif_rotated", "megapixels_24")

#: What each unusable file's refusal must say (after "This file cannot be used as an image: ").
REFUSALS = {
    "empty": "empty.jpg is empty (0 bytes)",
    "truncated": "truncated or corrupt",
    "text": "notes.jpg is not an image file",
    "html": "page.png is not an image file",
    "svg": "drawing.svg is not an image file",
    "huge": "huge.png is far too large",
    "bomb": "bomb.png is far too large",
}

#: The models the tabs open with, except where a lighter registered model runs the same code path
#: (Detection: the XXS Mask R-CNN; its preprocessing and drawing are the hybrid S one's).
CLASSIFIER, LIGHT, DETECTOR = models.DEFAULT_MODEL, shr.DEFAULT_LIGHT_MODEL, "mask_rcnn_1x_xxs"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    photo = write_examples()["chelsea"]
    return {**make_odd_images(tmp_path_factory.mktemp("odd"), photo),
            **make_unusable_files(tmp_path_factory.mktemp("unusable"), photo)}


@pytest.fixture(scope="module")
def untrained_models(tmp_path_factory):
    """Real registered models with untrained weights: an empty offline Hub cache, no local folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_home") / "hub"))
        mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        mp.delenv(models.CHECKPOINT_DIR_ENV, raising=False)
        models.clear_cache()
        yield
    models.clear_cache()


def _shown_size(path) -> tuple[int, int]:
    """(W, H) of the photo as the app decodes it (EXIF orientation applied)."""
    return load_image(path).size


def _same_shape(picture: Image.Image, size: tuple[int, int]) -> None:
    """``picture`` shows a photo of ``size`` (W, H), maybe scaled: same aspect ratio within a pixel."""
    w, h = picture.size
    assert abs(w * size[1] / size[0] - h) <= max(1.0, h * 0.01) or abs(h * size[0] / size[1] - w) <= max(1.0, w * 0.01)


def _classify(path):
    result = handlers.classify_image(str(path), CLASSIFIER, "fp32")
    assert len(result.label) == handlers.TOPK and "**Input:** 3\u00d7224\u00d7224" in result.details


def _explain(path):
    try:
        w, h = _shown_size(path)
    except ImageDecodeError:  # an unusable file: the handler must refuse it before looking at the point
        w, h = 1, 1
    out = xh.explain_point(str(path), CLASSIFIER, w / 2, h / 2, None, 0)
    numbers = json.loads(out[-1]) if isinstance(out[-1], str) else out[-1]
    assert numbers and out[0]["point"] is not None
    assert isinstance(out[1], Image.Image)


def _shrink(path):
    view = shr.run_shrinking(str(path), LIGHT, 0.5, 2, repeats=1)
    assert len(view.label) == handlers.TOPK and view.sweep is not None
    _same_shape(view.overlay, _shown_size(path))


def _segment(path):
    out = sh.segment(str(path), DEFAULT_SEG_MODEL, "global", 32, 256, 0.6, True, None, twins=Stage3Twins())
    _same_shape(out.overlay, _shown_size(path))
    mask = np.asarray(Image.open(next(f for f in out.files if "mask" in f)))
    assert mask.shape[::-1] == out.state.result.image_size  # one class per pixel of the (working) photo


def _detect(path):
    out = xd.detect(str(path), DETECTOR, "global", 320, 0.3, 0.45, True, True, "fp32", twins=Stage3Twins())
    _same_shape(out.overlay, _shown_size(path))
    assert out.state.original_size == _shown_size(path)


def _pose(path):
    out = ph.estimate(str(path), DEFAULT_POSE_MODEL, "", False, 0.0)
    _same_shape(out.overlay, _shown_size(path))
    assert len(out.table) == 17 and np.isfinite(out.table[["x", "y", "score"]].to_numpy(float)).all()


TASKS = {"classify": _classify, "explain": _explain, "shrink": _shrink, "segment": _segment, "detect": _detect,
         "pose": _pose}


@pytest.mark.parametrize("kind", ODD)
@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_answers_every_valid_odd_image(untrained_models, corpus, task, kind):
    TASKS[task](corpus[kind])


@pytest.mark.parametrize("kind", list(REFUSALS))
@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_refuses_every_unusable_file_in_words(untrained_models, corpus, task, kind):
    with pytest.raises(gr.Error) as info:
        TASKS[task](corpus[kind])
    assert info.value.message.startswith("This file cannot be used as an image: ")
    assert REFUSALS[kind] in info.value.message


# -- through the API of one running app ----------------------------------------------------------------

#: Per endpoint, files that broke some tab before (a 3000x8 strip, a single pixel) and two refusals.
API_SAMPLE = ("wide", "one_pixel", "svg", "bomb")


def _api_call(client, endpoint: str, path, size: tuple[int, int] | None):
    from gradio_client import handle_file

    image = handle_file(str(path))
    w, h = size or (1, 1)
    args = {"classify": (CLASSIFIER, "fp32"), "explain": (CLASSIFIER, w / 2, h / 2, 8, 0),
            "shrink": (LIGHT, 0.5, 2), "segment": (DEFAULT_SEG_MODEL, "global", 32, 256, 0.6, False),
            "detect": (DETECTOR, "global", 320, 0.3, 0.45, True, True, "fp32"),
            "pose": (DEFAULT_POSE_MODEL, "", False, 0.0)}[endpoint]
    return client.predict(image, *args, api_name=f"/{endpoint}")


@pytest.fixture(scope="module")
def client(app_url, app_log):
    """A gradio_client on the session's shared app server (tests/conftest.py), and that server's log."""
    from gradio_client import Client

    return Client(app_url, verbose=False), app_log


@pytest.mark.parametrize("kind", API_SAMPLE)
@pytest.mark.parametrize("endpoint", list(TASKS))
def test_the_api_answers_or_refuses_odd_files_in_words(client, corpus, endpoint, kind):
    from gradio_client.exceptions import AppError

    api, log = client
    start = log.stat().st_size  # the shared server's log: only what this call writes counts
    if kind in REFUSALS:
        with pytest.raises(AppError) as info:
            _api_call(api, endpoint, corpus[kind], None)
        assert str(info.value).startswith("This file cannot be used as an image: ")
        assert REFUSALS[kind] in str(info.value)
    else:
        out = _api_call(api, endpoint, corpus[kind], _shown_size(corpus[kind]))
        assert out is not None
    with log.open("rb") as f:
        f.seek(start)
        assert b"Traceback" not in f.read()  # no crash behind a worded answer either


def test_segmentation_pads_a_strip_to_the_backbones_minimum_and_crops_it_off():
    from types import SimpleNamespace

    import torch

    from uniformer.tasks.segmentation import MIN_INPUT_SIDE, logits_to_mask, preprocess_segmentation

    cfg = SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    strip = preprocess_segmentation(Image.new("RGB", (3000, 8), (255, 255, 255)), cfg, (2048, 512))
    assert strip.input_size == (2048, 5) and strip.tensor.shape == (1, 3, MIN_INPUT_SIDE, 2048)
    assert (strip.tensor[..., :5, :] == 2).all() and (strip.tensor[..., 5:, :] == 0).all()  # white, then the mean
    photo = preprocess_segmentation(Image.new("RGB", (640, 480)), cfg, (2048, 512))
    assert photo.tensor.shape == (1, 3, 512, 683) and photo.input_size == (683, 512)  # the official size, no padding
    logits = torch.zeros(1, 2, MIN_INPUT_SIDE // 4, 2048 // 4)
    logits[:, 1, :2] = 1.0  # class 1 on the rows of the strip (stride 4), class 0 on the padding
    mask, _ = logits_to_mask(logits, (MIN_INPUT_SIDE, 2048), (8, 3000), content_hw=(5, 2048))
    assert mask.shape == (8, 3000) and (mask == 1).all()
