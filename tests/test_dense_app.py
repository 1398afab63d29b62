"""The segmentation and pose tabs' handlers (app/segmentation_handlers.py, app/pose_handlers.py), without a browser.

Tiny models (one block per stage, 16-128 channels) stand in for the registered ones through
``get_model``, so every handler runs in well under a second; the real models, weights and the
browser are covered by test_dense.py and test_dense_e2e.py.
"""
from __future__ import annotations

import dataclasses
import json

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from app import pose_handlers as ph
from app import segmentation_handlers as sh
from app import dense_models
from app.dense_models import Stage3Twins, pose_model_choices, seg_model_choices
from app.models import LoadedModel
from uniformer.hub import WeightsInfo
from uniformer.models.dense import PoseConfig, SegmentorConfig, UniFormerPose, UniFormerSegmentor
from uniformer.models.light import UniFormerLightConfig
from uniformer.models.uniformer import UniFormerConfig
from uniformer.registry import get_entry
from uniformer.tasks import pose as pose_lib
from uniformer.tasks import segment_image
from uniformer.tasks.pose import corners_to_box, format_boxes

TINY = UniFormerConfig(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), head_dim=16, out_indices=(0, 1, 2, 3))


def _dress(model, name):
    torch.manual_seed(0)
    model.pretrained_cfg = get_entry(name).pretrained
    model.model_name = name
    model.weights_info = WeightsInfo("untrained")
    return model.eval()


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    seg = _dress(UniFormerSegmentor(SegmentorConfig(TINY, "upernet", channels=16, aux_channels=8)),
                 "upernet_global_small")
    pose = _dress(UniFormerPose(PoseConfig(TINY.replace(out_indices=(3,)), deconv_channels=16)),
                  "top_down_256x192_global_small")
    light = UniFormerLightConfig(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), head_dim=16, stem="conv",
                                 keep_ratios=((1.0, 0.5), (0.5,)), trade_offs=((1.0, 0.5), (0.5,)),
                                 out_indices=(0, 1, 2, 3))
    fpn_light = _dress(UniFormerSegmentor(SegmentorConfig(light, "fpn", channels=8, neck_channels=8, aux_head=False,
                                                          test_size_divisor=32)), "fpn_xxs")
    return {"upernet_global_small": seg, "top_down_256x192_global_small": pose, "fpn_xxs": fpn_light}


@pytest.fixture(autouse=True)
def fake_get_model(monkeypatch, tiny_models):
    def get_model(name):
        if name not in tiny_models:
            return LoadedModel(name, None, error="InvalidCheckpointError: broken file")
        return LoadedModel(name, tiny_models[name], fallback_reason="offline")

    monkeypatch.setattr(dense_models, "get_model", get_model)
    monkeypatch.setattr(ph, "get_model", get_model)


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_model_choices():
    seg = [v for _, v in seg_model_choices()]
    assert seg[0] == "upernet_global_small" and "fpn_xxs" in seg and len(seg) == 10
    assert "top_down_256x192_global_small" in [v for _, v in pose_model_choices()]


def test_light_segmentors_get_the_stage3_controls_disabled():
    """XXS / XS segmentors have hourglass stage-3 blocks: the mode and window radios are set to
    global and disabled for them (as in Detection), enabled again for S / B (issue 20)."""
    for light in ("fpn_xxs", "fpn_xs"):
        mode, window = sh.mode_update(light)
        assert mode["value"] == "global" and mode["interactive"] is False and "no windows" in mode["info"]
        assert window["interactive"] is False
    mode, window = sh.mode_update("fpn_hybrid_small")
    assert mode["interactive"] is True and window["interactive"] is True and "value" not in mode  # kept


def test_segment_outputs_and_downloads(photo):
    out = sh.segment(photo, "upernet_global_small", "window", 2, 64, 0.6, True, None, twins=Stage3Twins())
    assert out.overlay.size == (120, 90)
    choices = sh.class_filter(out.state)["choices"]  # the filter's choices: a private event after the run
    assert choices and out.classes == sh.class_filter(out.state)["value"] == [v for _, v in choices]
    assert "%" in out.legend and "Inference:" in out.details
    assert "window: 6 windows of 2\u00d72" in out.details  # input 85x64: 5x4 stage-3 tokens
    assert list(out.timings["stage 3"]) == ["window"]
    overlay, mask_png, classes_json = out.files
    mask = Image.open(mask_png)
    assert mask.mode == "P" and mask.size == (120, 90)
    assert np.array_equal(np.asarray(mask), out.state.result.mask)
    data = json.loads(open(classes_json).read())
    assert data["stage3_attention"] == "window" and sum(c["pixels"] for c in data["classes"]) == 120 * 90
    assert Image.open(overlay).size == (120, 90)


def test_windows_drawn_only_when_asked(photo):
    twins = Stage3Twins()
    with_windows = sh.segment(photo, "upernet_global_small", "window", 2, 64, 0.0, True, None, twins=twins)
    without = sh.rerender(with_windows.state, 0.0, None, False)[0]
    assert np.array_equal(np.asarray(without), np.asarray(Image.open(photo).convert("RGB")))
    assert not np.array_equal(np.asarray(with_windows.overlay), np.asarray(without))


def test_compare_modes_fills_the_time_table(photo):
    twins = Stage3Twins()
    steps = []
    out = sh.compare_modes(photo, "upernet_global_small", "hybrid", 2, 64, 0.5, True, None, twins=twins,
                           progress=lambda frac, desc=None: steps.append((frac, desc)))
    assert [d for _, d in steps] == ["warm-up run", "timing global (1/3)", "timing window (2/3)", "timing hybrid (3/3)"]
    assert [f for f, _ in steps] == sorted(f for f, _ in steps)  # per-mode progress, increasing
    table = out.timings
    assert list(table["stage 3"]) == ["global", "window", "hybrid"]
    assert table["vs global"][0] == "1.00\u00d7" and table["same class as global (%)"][0] == 100
    assert out.state.result.stage3_attention == "hybrid"
    # a single run later on the same input adds to the table
    again = sh.segment(photo, "upernet_global_small", "global", 2, 64, 0.5, True, out.state, twins=twins)
    assert len(again.timings) == 3
    # another resolution starts a new table
    other = sh.segment(photo, "upernet_global_small", "global", 2, 96, 0.5, True, again.state, twins=twins)
    assert len(other.timings) == 1


def test_rerender_hides_classes_without_running(photo):
    out = sh.segment(photo, "upernet_global_small", "global", 2, 64, 1.0, False, None, twins=Stage3Twins())
    shown, legend, files = sh.rerender(out.state, 1.0, [], False)
    assert np.array_equal(np.asarray(shown), np.asarray(Image.open(photo).convert("RGB")))
    assert legend.count("line-through") == len(out.classes) or "line-through" in legend
    assert len(files) == 3
    assert sh.rerender(None, 0.5, [], True) == (None, "", None)


def test_segmentation_errors(photo, tmp_path):
    twins = Stage3Twins()
    with pytest.raises(gr.Error, match="No image"):
        sh.segment(None, "upernet_global_small", "global", 2, 64, 0.5, True, None, twins=twins)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    with pytest.raises(gr.Error, match="cannot be used as an image"):
        sh.segment(str(bad), "upernet_global_small", "global", 2, 64, 0.5, True, None, twins=twins)
    with pytest.raises(gr.Error, match="hourglass"):
        sh.segment(photo, "fpn_xxs", "window", 2, 64, 0.5, True, None, twins=twins)
    with pytest.raises(gr.Error, match="could not be loaded"):
        sh.segment(photo, "fpn_global_base", "global", 2, 64, 0.5, True, None, twins=twins)
    light = sh.segment(photo, "fpn_xxs", "global", 2, 64, 0.5, True, None, twins=twins)
    assert light.state.result.stage3_attention == "global"
    empty = sh.empty_segmentation()
    assert empty.overlay is None and empty.files is None and empty.state is None


def test_stage3_twins_are_cached_and_share_weights(tiny_models):
    twins = Stage3Twins(maxsize=2)
    loaded, a = twins.get("upernet_global_small", "window", 2)
    _, b = twins.get("upernet_global_small", "window", 2)
    assert a is b and a is not loaded.model
    assert a.decode_head is loaded.model.decode_head
    assert twins.get("upernet_global_small", "global", 32)[1] is loaded.model
    twins.get("upernet_global_small", "hybrid", 14)
    twins.get("upernet_global_small", "hybrid", 32)
    assert twins.get("upernet_global_small", "window", 2)[1] is not a  # evicted (bounded cache)


def test_parse_box():
    assert ph.parse_box("", (100, 80)) is None and ph.parse_box(None, (100, 80)) is None
    assert ph.parse_box("10, 20, 30, 40", (100, 80)) == (10, 20, 30, 40)
    assert ph.parse_box("10 20 30.5 40", (100, 80)) == (10, 20, 30.5, 40)
    for text in ("10, 20, 30", "a, b, c, d", "0, 0, 0, 5", "200, 0, 10, 10"):
        with pytest.raises(gr.Error, match="box"):
            ph.parse_box(text, (100, 80))


def test_parse_boxes():
    assert ph.parse_boxes("", (100, 80)) == [] and ph.parse_boxes(None, (100, 80)) == []
    assert ph.parse_boxes("10, 20, 30, 40", (100, 80)) == [(10, 20, 30, 40)]
    assert ph.parse_boxes("10, 20, 30, 40; 0 0 50 50\n5, 5, 5, 5;", (100, 80)) == [(10, 20, 30, 40), (0, 0, 50, 50),
                                                                                 (5, 5, 5, 5)]
    with pytest.raises(gr.Error, match="Box 2 of 2: .*four numbers"):
        ph.parse_boxes("10, 20, 30, 40; 1, 2, 3", (100, 80))


def _red(path, xy) -> bool:
    r, g, b = Image.open(path).convert("RGB").getpixel(xy)
    return r > 200 and g < 100 and b < 100


def test_pick_two_corners_draws_on_the_clicked_photo_and_the_model_reads_the_clean_upload(photo):
    original = np.asarray(Image.open(photo)).copy()
    photo_state = ph.photo_changed(photo, None)[0]
    assert photo_state == ph.PosePhoto(photo)
    first = gr.SelectData(None, {"index": [50, 60], "value": None, "selected": True})
    photo_state, pick, box, shown = ph.pick_corner(photo, photo_state, ph.BoxPick(), first)
    assert pick.first == (50.0, 60.0) and box == gr.update() and _red(shown, (50 - 3, 60))  # the corner marked
    assert Image.open(shown).size == (120, 90) and photo_state.original == photo
    # the clickable image now holds the drawn copy: its change event is ours and changes nothing
    assert all(v == gr.skip() for v in ph.photo_changed(shown, photo_state))
    second = gr.SelectData(None, {"index": [10, 20], "value": None, "selected": True})
    photo_state, pick, box, shown = ph.pick_corner(shown, photo_state, pick, second)  # clicked on the copy
    assert pick.first is None and box == "10, 20, 41, 41"
    assert ph.parse_box(box, (120, 90)) == (10, 20, 41, 41)
    assert _red(shown, (10, 30)) and _red(shown, (30, 20)) and _red(shown, (50, 40))  # the box's edges
    assert photo_state.source(shown) == photo and (np.asarray(Image.open(photo)) == original).all()
    # Estimate pose runs on the clean upload, not on the copy with the box
    clean = ph.estimate_live(photo, "top_down_256x192_global_small", box, False, 0.0)
    via_copy = ph.estimate_live(shown, "top_down_256x192_global_small", box, False, 0.0, photo_state)
    assert np.array_equal(via_copy[-1].image, clean[-1].image)
    assert via_copy[-1].result.persons[0].keypoints.tolist() == clean[-1].result.persons[0].keypoints.tolist()
    # typed boxes are drawn too; clearing shows the photo without boxes
    photo_state, _, shown = ph.show_boxes(shown, photo_state, "5, 5, 20, 20; 60, 10, 30, 30")
    assert _red(shown, (5, 15)) and _red(shown, (60, 25))
    pick, text, photo_state, shown = ph.clear_box(shown, photo_state)
    assert text == "" and np.array_equal(np.asarray(Image.open(shown).convert("RGB")), original)
    # a new upload starts afresh
    other = photo.replace("photo.png", "other.png")
    Image.open(photo).save(other)
    assert ph.photo_changed(other, photo_state)[:3] == (ph.PosePhoto(other), ph.BoxPick(), "")


def test_find_people_draws_the_detector_boxes_on_the_clicked_photo(photo):
    seen = []

    def detect(image, detector_name, progress=None):
        seen.append(image)
        return [(10, 10, 30, 40), (70, 20, 20, 50)], "found 2 people"

    photo_state = ph.photo_changed(photo, None)[0]
    photo_state, pick, text, shown, note = ph.find_people(photo, photo_state, "det", detect)
    assert seen == [photo] and text.startswith("10, 10") and note == "found 2 people"
    assert _red(shown, (10, 20)) and _red(shown, (70, 40))
    # run again from the drawn copy: the detector still gets the upload
    ph.find_people(shown, photo_state, "det", detect)
    assert seen == [photo, photo]
    declined = ph.find_people(photo, photo_state, "det", lambda *a, **k: (None, "no"))
    assert declined[0] == gr.skip() and declined[3] == gr.skip() and declined[4] == "no"


def test_estimate_pose_outputs(photo):
    out = ph.estimate(photo, "top_down_256x192_global_small", "10, 5, 60, 80", True, 0.0)
    assert out.overlay.size == (120, 90)
    assert len(out.table) == 17 and list(out.table.columns) == ["person", "joint", "x", "y", "score"]
    assert "Flip test:** on" in out.details and "10, 5, 60, 80" in out.details
    drawing, keypoints = out.files
    data = json.loads(open(keypoints).read())
    assert data["persons"][0]["box_xywh"] == [10, 5, 60, 80] and len(data["persons"][0]["joints"]) == 17
    assert Image.open(drawing).size == (120, 90)
    whole = ph.estimate(photo, "top_down_256x192_global_small", "", False, 0.5)
    assert "0, 0, 120, 90" in whole.details and "Flip test:** off" in whole.details


def test_estimate_pose_in_several_boxes(photo):
    out = ph.estimate(photo, "top_down_256x192_global_small", "10, 5, 60, 80; 70, 10, 40, 70", True, 0.0)
    assert len(out.table) == 34 and list(out.table["person"].unique()) == [1, 2]
    assert "Person boxes:** 2 (10, 5, 60, 80; 70, 10, 40, 70; x, y, w, h)" in out.details
    data = json.loads(open(out.files[1]).read())
    assert [p["box_xywh"] for p in data["persons"]] == [[10, 5, 60, 80], [70, 10, 40, 70]]


def test_pose_errors(photo, tmp_path):
    with pytest.raises(gr.Error, match="No image"):
        ph.estimate(None, "top_down_256x192_global_small", "", True, 0.0)
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    with pytest.raises(gr.Error, match="cannot be used as an image"):
        ph.estimate(str(bad), "top_down_256x192_global_small", "", True, 0.0)
    with pytest.raises(gr.Error, match="Invalid person box|box"):
        ph.estimate(photo, "top_down_256x192_global_small", "500, 500, 10, 10", True, 0.0)
    with pytest.raises(gr.Error, match="could not be loaded"):
        ph.estimate(photo, "top_down_256x192_global_base", "", True, 0.0)
    assert ph.empty_pose().overlay is None


def test_hybrid_global_blocks_are_read_from_the_model_config(photo, tiny_models):
    seg = _dress(UniFormerSegmentor(SegmentorConfig(TINY.replace(depths=(1, 1, 8, 1)), "upernet", channels=16,
                                                    aux_channels=8)), "upernet_global_small")
    result = segment_image(seg, photo, stage3_attention="hybrid", window_size=2, scale=(256, 64))
    assert result.global_blocks == (3, 7) and result.to_dict()["global_blocks"] == [3, 7]
    assert segment_image(seg, photo, stage3_attention="window", window_size=2, scale=(256, 64)).global_blocks == ()
    base_like = dataclasses.replace(result, global_blocks=(3, 7, 11, 15, 19))  # UniFormer-B's 20 stage-3 blocks
    assert "blocks 4, 8, 12, 16 and 20 of stage 3 stay global" in sh._windows_caption(base_like)
    assert "blocks 4 and 8 of stage 3 stay global" in sh._windows_caption(result)


def test_pose_box_text_round_trips_through_the_library():
    assert corners_to_box((50, 60), (10, 20)) == (10, 20, 41, 41) == corners_to_box((10, 20), (50, 60))
    boxes = [(10.0, 20.0, 41.0, 41.0), (0.0, 0.0, 5.0, 7.0)]
    assert pose_lib.parse_boxes(format_boxes(boxes), (100, 80)) == boxes
    with pytest.raises(ValueError, match="box 2 of 2: .*lies outside"):
        pose_lib.parse_boxes("1, 2, 3, 4; 500, 0, 5, 5", (100, 80))
