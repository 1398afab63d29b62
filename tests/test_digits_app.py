"""The project-trained models in the app, without a browser: the "Digits" tab's handlers (a drawing
in: the 8x8 digit, top-3, attention and token-shrinking views, the weights line) and the
moving-digits video model as the Video tab's offline default (shipped weights, generated example
clips, the start-up policy)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
import torch
from hubcache import add_to_hub_cache
from PIL import Image, ImageDraw

import uniformer
from app import digits_handlers as dh
from app import models
from app import video_handlers as vh
from uniformer.explain import AttentionCapture
from uniformer.explain import digits as explain_digits
from uniformer.explain.digits import attention_received
from uniformer.models.digits import DIGITS_MODEL, MOVING_DIGITS_CLASSES, MOVING_DIGITS_MODEL
from uniformer.train.data import MOTIONS, MovingDigitsDataset

PACKAGE = Path(uniformer.__file__).resolve().parent


@pytest.fixture(scope="module", autouse=True)
def offline_empty_hub(tmp_path_factory):
    """The app sees an empty Hugging Face cache, offline, and no checkpoint folder: only what the
    package ships can load."""
    hf_home = tmp_path_factory.mktemp("hf_home_empty")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
        mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        mp.delenv(models.CHECKPOINT_DIR_ENV, raising=False)
        models.clear_cache()
        yield hf_home
    models.clear_cache()


def _card(name: str) -> dict:
    return json.loads((PACKAGE / "weights" / name / "config.json").read_text())


def _stroke(points, size=320, width=22) -> dict:
    """A sketchpad value as Gradio 6 passes it (type='numpy', RGBA): black strokes on a transparent canvas."""
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line(points, fill=(0, 0, 0, 255), width=width, joint="curve")
    layer = np.asarray(canvas)
    return {"background": None, "layers": [layer], "composite": layer.copy()}


# --- the Digits tab -------------------------------------------------------------------------------

def test_a_drawn_one_is_read_classified_and_explained():
    view = dh.classify_sketch(_stroke([(170, 40), (160, 160), (155, 285)]))
    assert isinstance(view, dh.DigitsView)
    assert len(view.label) == dh.TOPK == 3
    probs = list(view.label.values())
    assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6 and probs == sorted(probs, reverse=True)
    assert next(iter(view.label)) == "1"
    assert view.digit.size == (dh.DISPLAY_SIDE, dh.DISPLAY_SIDE)
    assert "**Prediction:** 1" in view.details and "8\u00d78 digit" in view.details
    # attention: the last stage-3 block and every stage-4 block, drawn on the enlarged digit
    model = models.get_model(DIGITS_MODEL).model
    depths = model.cfg.depths
    assert len(view.attention) == 1 + depths[3]
    assert all(im.size == (dh.DISPLAY_SIDE, dh.DISPLAY_SIDE) and im.mode == "RGB" for im, _ in view.attention)
    assert "global MHRA attention" in view.attention_caption
    assert [c.split(" (")[0] for _, c in view.attention] == [f"stage 3 block {depths[2]}", "stage 4 block 1"]
    # token shrinking: one panel and one table row per hourglass layer (stages 3-4)
    assert len(view.shrinking) == len(view.shrinking_table) == depths[2] + depths[3]
    assert all(im.size == (dh.DISPLAY_SIDE, dh.DISPLAY_SIDE) for im, _ in view.shrinking)
    table = view.shrinking_table
    assert list(table.columns) == list(dh.SHRINK_COLUMNS)
    assert (table["kept"] + table["fused"] == table["tokens"]).all() and table["fused"].iloc[0] == 0
    assert table["fused"].iloc[1:].gt(0).all()
    assert view.shrinking[0][1] == f"1: S3\u00b7B1 \u00b7 all {table['tokens'].iloc[0]} kept"
    assert view.shrinking[1][1].endswith(f"{table['kept'].iloc[1]} kept, {table['fused'].iloc[1]} fused")


def test_attention_received_is_a_column_mean():
    maps = torch.rand(1, 3, 4, 4)
    maps = maps / maps.sum(-1, keepdim=True)
    got = attention_received(maps, (2, 2))
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got.ravel(), maps[0].mean(0).mean(0).numpy(), rtol=1e-6)
    assert got.sum() == pytest.approx(1.0, abs=1e-5)  # rows sum to 1 -> the column means do too


def test_without_captured_maps_the_view_is_grad_cam_and_says_so(monkeypatch):
    @contextmanager
    def nothing_captured(model):
        yield AttentionCapture()

    monkeypatch.setattr(explain_digits, "capture_attention", nothing_captured)
    view = dh.classify_sketch(_stroke([(170, 40), (160, 160), (155, 285)]))
    assert "Grad-CAM" in view.attention_caption and "recorded no map" in view.attention_caption
    assert len(view.attention) == 1 and view.attention[0][0].size == (dh.DISPLAY_SIDE, dh.DISPLAY_SIDE)
    assert view.label is not None and view.shrinking is not None


@pytest.mark.parametrize("sketch", [None, {"background": None, "layers": [], "composite": None},
                                    {"background": None, "layers": [], "composite": np.zeros((320, 320, 4), np.uint8)},
                                    np.full((100, 100, 3), 255, np.uint8)],
                         ids=["none", "cleared", "transparent canvas", "blank white picture"])
def test_nothing_drawn_gives_a_clear_message(sketch):
    view = dh.classify_sketch(sketch)
    assert view.details == dh.NOTHING_DRAWN and "Nothing drawn yet" in view.details
    assert view.label is None and view.digit is None and view.attention is None and view.shrinking is None
    assert list(view.shrinking_table.columns) == list(dh.SHRINK_COLUMNS) and len(view.shrinking_table) == 0


def test_a_picture_that_is_not_an_image_gives_a_message(tmp_path):
    view = dh.classify_sketch(np.zeros((4, 4, 7), np.uint8))
    assert view.details.startswith("**This drawing cannot be read:**") and view.label is None
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    assert dh.classify_sketch(str(notes)).details.startswith("**This drawing cannot be read:**")


def test_a_model_that_failed_to_load_gives_a_message():
    broken = models.LoadedModel(DIGITS_MODEL, None, error="InvalidCheckpointError: truncated file")
    view = dh.classify_sketch(_stroke([(160, 40), (160, 280)]), loaded=broken)
    assert "could not be loaded" in view.details and "truncated file" in view.details and view.label is None
    weights, banner = dh.weights_status(broken)
    assert "loading failed" in weights and "could not be loaded" in banner


def test_weights_line_names_the_shipped_project_checkpoint_and_its_card():
    loaded = models.get_model(DIGITS_MODEL)
    assert loaded.fallback_reason is None and loaded.weights.source == "project"
    card = _card(DIGITS_MODEL)
    weights, banner = dh.weights_status()
    assert banner == ""
    assert (f"project-trained checkpoint {DIGITS_MODEL} (trained by this project on scikit-learn digits, "
            f"{card['metrics']['val_top1']:.2f}% held-out)") in weights
    assert "runs offline" in weights
    untrained = models.LoadedModel(DIGITS_MODEL, uniformer.create_model(DIGITS_MODEL), fallback_reason="no file")
    weights, banner = dh.weights_status(untrained)
    assert "untrained" in weights and "untrained random weights" in banner


def test_examples_are_held_out_digits_the_model_reads_right(tmp_path):
    written = dh.write_digit_examples(tmp_path)
    assert list(written) == [str(d) for d in range(10)]
    assert all(Image.open(p).size == (256, 256) for p in written.values())
    right = [d for d, path in written.items() if next(iter(dh.classify_sketch(str(path)).label)) == d]
    assert len(right) >= 9, right


def test_digit_picture_is_the_model_input_enlarged():
    counts = np.arange(64, dtype=np.float64).reshape(8, 8) % 17
    picture = dh.digit_picture(counts, side=80)
    small = np.asarray(dh.digit_image(counts))
    np.testing.assert_array_equal(np.asarray(picture)[5::10, 5::10], small)


# --- the moving-digits video model: the Video tab's offline default ------------------------------------

def test_moving_digits_model_is_shipped_small_and_registered():
    folder = PACKAGE / "weights" / MOVING_DIGITS_MODEL
    assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "config.json", "README.md"}
    assert (folder / "model.safetensors").stat().st_size < 2 * 1024 * 1024
    card = _card(MOVING_DIGITS_MODEL)
    readme = (folder / "README.md").read_text()
    assert card["command"] in readme and f"{card['metrics']['val_top1']:.2f}%" in readme
    assert card["labels"] == list(MOTIONS) == list(MOVING_DIGITS_CLASSES)
    entry = uniformer.get_entry(MOVING_DIGITS_MODEL)
    assert entry.task == "video-classification" and MOVING_DIGITS_MODEL in uniformer.list_models(task=entry.task)


def test_moving_digits_model_loads_offline_and_reads_the_motion_of_held_out_clips():
    model = uniformer.create_model(MOVING_DIGITS_MODEL, pretrained=True)
    assert model.weights_info.source == "project"
    cfg = model.pretrained_cfg
    assert cfg.class_names() == MOTIONS and cfg.input_size == (3, 8, 32, 32) and cfg.sampling == "segment"
    size = cfg.input_size[-1]
    data = MovingDigitsDataset("val", length=20, num_frames=cfg.num_frames, size=size, digit_size=round(size * 3 / 8),
                               mean=cfg.mean, std=cfg.std)
    clips, labels = zip(*(data[i] for i in range(len(data))))
    with torch.inference_mode():
        predicted = model(torch.stack(clips)).argmax(-1)
    accuracy = (predicted == torch.tensor(labels)).float().mean().item()
    assert accuracy >= 0.8, accuracy
    # the order of the frames is the label: reversed clips read as the opposite motion, mostly
    opposite = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4}
    with torch.inference_mode():
        reversed_pred = model(torch.stack(clips).flip(2)).argmax(-1)
    flipped = [opposite[int(p)] == int(r) for p, r in zip(predicted, reversed_pred)]
    assert sum(flipped) >= 0.6 * len(flipped)


def test_generated_example_clips_are_classified_in_the_video_tab(tmp_path):
    written = vh.write_moving_digits_examples(tmp_path)
    assert list(written) == list(MOVING_DIGITS_CLASSES)
    right = []
    for motion, path in written.items():
        result = vh.classify_video(str(path), MOVING_DIGITS_MODEL, "1x1")
        assert len(result.label) == 5 and f"project-trained checkpoint {MOVING_DIGITS_MODEL}" not in result.details
        assert "checkpoint trained by this project" in result.details
        assert result.state.frames.shape == (8, 32, 32, 3)
        right.append(next(iter(result.label)) == motion)
    assert sum(right) >= len(right) - 1, right
    # the space-time attention of its single global block, on frames enlarged for display (32 px -> 224 px)
    k = vh.display_scale(result.state)
    assert k == 7 and result.frame.size == (32 * k, 32 * k)
    click = gr.SelectData(None, {"index": [200, 20], "value": None, "selected": True})  # displayed pixels
    frame, overlay, caption, session = vh.attend(result.state, 1, "2,0", click)
    assert frame.size == overlay.size == (32 * k, 32 * k) and "own time step" in caption
    grid = session.attention.grid  # (T', h, w): the click lands in the top-right token
    assert session.attention.query[1:] == (int(20 / k * grid[1] / 32), int(200 / k * grid[2] / 32))
    gif, mp4, files, cam_caption = vh.explain_gradcam(session)
    assert Image.open(gif).size == (32 * k, 32 * k) and "Grad-CAM of" in cam_caption


def test_video_tab_opens_with_the_moving_digits_model_when_the_default_cannot_be_had(tmp_path, monkeypatch):
    name, note = vh.startup_video_model()
    assert name == vh.OFFLINE_VIDEO_MODEL == MOVING_DIGITS_MODEL
    assert "Offline default" in note and vh.DEFAULT_VIDEO_MODEL in note and "HF_HUB_OFFLINE" in note
    assert not vh.weights_available(vh.DEFAULT_VIDEO_MODEL) and vh.weights_available(MOVING_DIGITS_MODEL)
    assert not vh.weights_available("uniformer_small_k400_8x8")  # Google Drive only
    # cached -> the official default
    home = tmp_path / "hf_home"
    repo, filename = uniformer.get_entry(vh.DEFAULT_VIDEO_MODEL).pretrained.hub.split(":")
    add_to_hub_cache(home, repo, filename, {"w": torch.zeros(1)})
    assert vh.startup_video_model(cache_dir=home / "hub") == (vh.DEFAULT_VIDEO_MODEL, "")
    # a local checkpoint -> the official default
    monkeypatch.setenv(models.CHECKPOINT_DIR_ENV, str(tmp_path))
    (tmp_path / f"{vh.DEFAULT_VIDEO_MODEL}.pth").write_bytes(b"x")
    assert vh.startup_video_model()[0] == vh.DEFAULT_VIDEO_MODEL
    monkeypatch.delenv(models.CHECKPOINT_DIR_ENV)
    # online -> the official default (it will be downloaded)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    assert vh.startup_video_model()[0] == vh.DEFAULT_VIDEO_MODEL


def test_page_load_switches_to_the_offline_model_when_the_default_falls_back(monkeypatch):
    real_load = models.load_model

    def load(name):
        if name == vh.DEFAULT_VIDEO_MODEL:  # the untrained fallback, without building UniFormer-S
            return models.LoadedModel(name, torch.nn.Linear(1, 1), fallback_reason="the Hub cannot be reached")
        return real_load(name)

    monkeypatch.setattr(models, "load_model", load)
    models.clear_cache()
    try:
        update, note = vh.opening_status(vh.DEFAULT_VIDEO_MODEL)
        assert update["value"] == MOVING_DIGITS_MODEL and "Offline default" in note
        weights, banner = vh.video_model_status(MOVING_DIGITS_MODEL)  # the line the switch then shows
        assert f"project-trained checkpoint {MOVING_DIGITS_MODEL}" in weights and banner == ""
        update, note = vh.opening_status(MOVING_DIGITS_MODEL)
        assert "value" not in update and note == gr.skip()
    finally:
        models.clear_cache()


def test_moving_digits_model_info_and_choices():
    info = vh.model_info(MOVING_DIGITS_MODEL)
    card = _card(MOVING_DIGITS_MODEL)
    assert "8 equal segments" in info and f"{card['metrics']['val_top1']:.2f}% held-out" in info
    assert "clockwise" in info and "mean 0.45" in info
    choices = dict((v, label) for label, v in vh.video_model_choices())
    assert "trained by this project, offline" in choices[MOVING_DIGITS_MODEL]
    assert "Google Drive" not in choices[MOVING_DIGITS_MODEL]
    assert vh.block_choices(MOVING_DIGITS_MODEL) == [("stage 3, block 2 (finest global grid)", "2,1"),
                                                     ("stage 3, block 1", "2,0"), ("stage 4, block 1", "3,0")]


def test_layout_has_the_digits_tab_and_the_offline_video_default():
    from app.builder import build_app

    config = build_app().get_config_file()
    by_id = {c["props"].get("elem_id"): c for c in config["components"]}
    assert by_id["digits-sketch"]["type"] == "imageeditor"
    for elem in ("digits-input", "digits-top", "digits-attention", "digits-shrinking", "digits-weights",
                 "digits-details", "digits-run"):
        assert elem in by_id, elem
    assert "digits" in {d.get("api_name") for d in config["dependencies"]}
    assert by_id["video-model"]["props"]["value"] == MOVING_DIGITS_MODEL
    assert "Offline default" in by_id["video-offline-note"]["props"]["value"]
    assert "Digits" in {c["props"].get("label") for c in config["components"] if c["type"] == "tabitem"}
