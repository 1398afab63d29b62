"""The Detection tab's handlers and the Pose tab's person finder (app/detection_handlers.py), without a
browser.

One test runs the registered light detector (mask_rcnn_1x_xxs, untrained: its checkpoint is on
Google Drive only) on an example photo at the smallest resolution; one runs a tiny hybrid detector
through the stage-3 twins. The others replace ``detect_objects`` by a counter that returns known
detections (two people, a dog, a cup, a weak person), so what is drawn, listed, filtered and
exported can be checked exactly, and re-drawing can be shown to never run the network.
"""
from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from app import dense_models, errors
from app import detection_handlers as xd
from app.dense_models import DEFAULT_DET_MODEL, Stage3Twins, det_model_choices
from app.examples import write_examples
from app.models import LoadedModel
from uniformer.heads.roi import ConvFCBBoxHead, FCNMaskHead
from uniformer.hub import WeightsInfo
from uniformer.models.detection import DetectorConfig, UniFormerDetector
from uniformer.models.uniformer import UniFormerConfig
from uniformer.registry import get_entry
from uniformer.tasks.detection import DetectionResult, coco_category_ids
from uniformer.tasks.pose import format_boxes

CLASS_NAMES = get_entry("mask_rcnn_1x_xxs").pretrained.class_names()
PERSON, DOG, CUP = 0, 16, 41
#: (label, score, box as fractions of the image (x1, y1, x2, y2)) of the known detections, best first.
KNOWN = [(PERSON, 0.9, (0.1, 0.1, 0.4, 0.9)), (PERSON, 0.6, (0.5, 0.2, 0.7, 0.8)), (DOG, 0.4, (0.6, 0.6, 0.9, 0.95)),
         (CUP, 0.2, (0.05, 0.7, 0.2, 0.9)), (PERSON, 0.1, (0.3, 0.3, 0.5, 0.5))]
TRAINED = WeightsInfo("local", path="/checkpoints/detector.pth")


def known_result(size: tuple[int, int], weights: WeightsInfo = TRAINED) -> DetectionResult:
    """The KNOWN detections on an image of ``size`` (W, H); each mask fills the middle of its box."""
    w, h = size
    boxes = np.asarray([[x1 * w, y1 * h, x2 * w, y2 * h] for _, _, (x1, y1, x2, y2) in KNOWN], dtype=np.float32)
    masks = np.zeros((len(KNOWN), h, w), dtype=bool)
    for m, (x1, y1, x2, y2) in zip(masks, boxes):
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4, (y2 - y1) / 4
        m[int(cy - hh):int(cy + hh), int(cx - hw):int(cx + hw)] = True
    return DetectionResult(
        boxes=boxes, scores=np.asarray([s for _, s, _ in KNOWN], dtype=np.float32),
        labels=np.asarray([c for c, _, _ in KNOWN], dtype=np.int64), masks=masks, class_names=CLASS_NAMES,
        image_size=(w, h), input_size=(w, h), model_name="mask_rcnn_1x_xxs", weights=weights, device="cpu",
        precision="fp32", stage3_attention="global",
        times={"preprocess": 1.0, "backbone": 20.0, "neck": 3.0, "rpn": 4.0, "roi_heads": 10.0, "paste": 2.0},
        num_proposals=1000)


class FakeDetector:
    """Stands in for ``get_model`` and ``detect_objects``: counts network runs, records their arguments."""

    def __init__(self, trained: bool = True):
        self.trained, self.calls, self.images = trained, [], []

    def get_model(self, name):
        if name == "mask_rcnn_1x_hybrid_base":
            return LoadedModel(name, None, error="InvalidCheckpointError: broken file")
        model = torch.nn.Identity()
        if self.trained:
            model.weights_info = TRAINED
            return LoadedModel(name, model)
        model.weights_info = WeightsInfo("untrained")
        return LoadedModel(name, model, fallback_reason="offline: the checkpoint is on Google Drive only")

    def detect_objects(self, model, image, score_thr=None, scale=None, device=None, **kwargs):
        self.calls.append({"score_thr": score_thr, "scale": scale})
        self.images.append(image.size)
        return known_result(image.size, TRAINED if self.trained else WeightsInfo("untrained"))


@pytest.fixture
def fake(monkeypatch):
    detector = FakeDetector()
    monkeypatch.setattr(xd, "get_model", detector.get_model)
    monkeypatch.setattr(errors, "get_model", detector.get_model)
    monkeypatch.setattr(xd, "detect_objects", detector.detect_objects)
    return detector


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return str(path)


def _detect(image, model="mask_rcnn_1x_xxs", mode="hybrid", short_side=320, thr=0.5, opacity=0.5,
            show_masks=True, show_labels=True, twins=None):
    return xd.detect(image, model, mode, short_side, thr, opacity, show_masks, show_labels,
                     twins=twins or Stage3Twins())


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_model_choices_modes_and_scales():
    names = [v for _, v in det_model_choices()]
    assert names[0] == DEFAULT_DET_MODEL == "mask_rcnn_1x_hybrid_small" and len(names) == 8
    assert set(names[-2:]) == {"mask_rcnn_1x_xxs", "mask_rcnn_1x_xs"}  # the light ones last
    light, hybrid = xd.mode_update("mask_rcnn_1x_xxs"), xd.mode_update("cascade_mask_rcnn_3x_ms_hybrid_base")
    assert light["interactive"] is False and light["value"] == "global" and "no windows" in light["info"]
    assert hybrid["interactive"] is True and hybrid["value"] == "hybrid"
    assert xd.scale_for(800) == (1333, 800) and xd.scale_for(512) == (853, 512) and xd.scale_for(320) == (533, 320)


def test_light_model_on_an_example_photo():
    """The registered XXS detector (untrained offline) on the coffee photo at the fastest resolution."""
    coffee = str(write_examples()["coffee"])  # 600 x 400
    out = _detect(coffee, "mask_rcnn_1x_xxs", thr=0.3)
    assert isinstance(out.overlay, Image.Image) and out.overlay.size == (600, 400)
    assert "Untrained weights: these predictions are meaningless" in out.note
    assert "Nothing is shown: no detection scores \u2265 0.30" in out.note and "lower the threshold" in out.note
    assert out.table.empty and out.classes == [] and xd.class_filter(out.state, 0.3)["choices"] == []
    assert "network 480\u00d7320" in out.details and "Proposals:** 1000" in out.details
    assert "hourglass" in out.details and "score \u2265 0," in out.details
    for label in ("backbone (UniFormer)", "neck (FPN)", "RPN", "RoI heads", "mask pasting", "Total:"):
        assert label in out.timing
    view = out.state
    assert view.network_thr == 0.0 and not view.trained and len(view.result) == 100
    drawing, coco = out.files
    assert Image.open(drawing).size == (600, 400) and json.loads(open(coco).read()) == []

    shown = xd.rerender(view, 0.0, [], 0.5, True, True)  # everything the network kept
    assert len(shown.table) == 100 and shown.classes["choices"]
    assert shown.classes["value"] == [c for _, c in shown.classes["choices"]]
    items = json.loads(open(shown.files[1]).read())
    assert len(items) == 100 and all(i["segmentation"]["size"] == [400, 600] for i in items)
    assert {i["category_id"] for i in items} <= set(coco_category_ids())
    assert not np.array_equal(_pixels(shown.overlay), _pixels(out.overlay))


def test_threshold_and_class_filter_redraw_without_the_network(fake, photo):
    out = _detect(photo, thr=0.5)
    assert len(fake.calls) == 1
    assert list(out.table["class"]) == ["person", "person"] and list(out.table["score"]) == [0.9, 0.6]
    assert out.classes == [PERSON]  # the API's value; the filter's choices come from a private event
    assert xd.class_filter(out.state, 0.5) == gr.update(choices=[("person (2)", PERSON)], value=[PERSON])
    assert "Showing **2** of 5 detections (score \u2265 0.50)" in out.note and "Untrained" not in out.note

    lower = xd.rerender(out.state, 0.3, [PERSON], 0.5, True, True)
    assert list(lower.table["class"]) == ["person", "person", "dog"]
    assert lower.classes["choices"] == [("person (2)", PERSON), ("dog (1)", DOG)]

    no_people = xd.rerender(lower.state, 0.3, [DOG], 0.5, True, True)  # untick person
    assert list(no_people.table["class"]) == ["dog"] and "1 class unticked" in no_people.note
    assert no_people.classes["value"] == [DOG]
    assert not np.array_equal(_pixels(no_people.overlay), _pixels(lower.overlay))

    # lower still: the cup and a weak person appear; person stays unticked
    all_but_people = xd.rerender(no_people.state, 0.05, [DOG], 0.5, True, True)
    assert list(all_but_people.table["class"]) == ["dog", "cup"]
    assert all_but_people.classes["choices"] == [("person (3)", PERSON), ("dog (1)", DOG), ("cup (1)", CUP)]
    assert all_but_people.classes["value"] == [DOG, CUP]
    # a threshold that hides the dog and the cup keeps person unticked ...
    high = xd.rerender(all_but_people.state, 0.5, [DOG, CUP], 0.5, True, True)
    assert high.table.empty and high.classes["value"] == [] and "1 class unticked" in high.note
    assert "Nothing is shown" not in high.note  # detections exist: the user hid them
    # ... until it is ticked again
    back = xd.rerender(high.state, 0.5, [PERSON], 0.5, True, True)
    assert len(back.table) == 2
    # a class hidden, then out of reach of the threshold, is still hidden when the threshold comes back down
    with_dog = xd.rerender(back.state, 0.3, [PERSON], 0.5, True, True)  # new in reach: shown
    assert list(with_dog.table["class"]) == ["person", "person", "dog"] and with_dog.classes["value"] == [PERSON, DOG]
    no_dog = xd.rerender(with_dog.state, 0.3, [PERSON], 0.5, True, True)  # untick dog
    assert list(no_dog.table["class"]) == ["person", "person"] and no_dog.classes["value"] == [PERSON]
    up = xd.rerender(no_dog.state, 0.5, [PERSON], 0.5, True, True)
    assert up.classes["choices"] == [("person (2)", PERSON)]
    down = xd.rerender(up.state, 0.3, [PERSON], 0.5, True, True)
    assert list(down.table["class"]) == ["person", "person"] and down.classes["value"] == [PERSON]
    assert len(fake.calls) == 1  # never re-ran the network

    plain = xd.rerender(down.state, 0.5, [PERSON], 0.5, False, False)  # no masks, no labels
    assert not np.array_equal(_pixels(plain.overlay), _pixels(back.overlay))
    assert xd.rerender(down.state, 0.5, [PERSON], 0.0, True, False).overlay.size == (120, 90)
    assert len(fake.calls) == 1


def test_nothing_above_the_threshold_says_why(fake, photo):
    out = _detect(photo, thr=0.95)
    assert out.table.empty
    assert "Nothing is shown: no detection scores \u2265 0.95" in out.note and "person 0.900" in out.note
    assert "lower the threshold to see weaker detections" in out.note


def test_downloads_are_valid_png_and_coco_json(fake, photo):
    out = _detect(photo, thr=0.3)
    drawing, coco = out.files
    assert drawing.endswith(".png") and Image.open(drawing).size == (120, 90)
    assert np.array_equal(_pixels(Image.open(drawing)), _pixels(out.overlay))
    items = json.loads(open(coco).read())
    assert [i["category_id"] for i in items] == [1, 1, 18]
    assert [i["category_name"] for i in items] == ["person", "person", "dog"]
    assert items[0]["bbox"] == pytest.approx([12, 9, 36, 72], abs=0.01) and items[0]["score"] == 0.9
    expected = known_result((120, 90)).masks
    for item, mask in zip(items, expected):
        counts = item["segmentation"]["counts"]
        assert item["segmentation"]["size"] == [90, 120] and sum(counts) == 90 * 120
        assert sum(counts[1::2]) == mask.sum() > 0  # odd runs are the mask's pixels
    assert list(out.table["mask (px)"]) == [int(m.sum()) for m in expected[:3]]


def test_large_photos_are_downscaled_and_exported_in_photo_pixels(fake, photo, monkeypatch):
    monkeypatch.setattr(xd, "MAX_DETECT_SIDE", 60)
    out = _detect(photo, thr=0.5)
    assert fake.images == [(60, 45)] and "photo 120\u00d790 (downscaled to 60\u00d745 for detection)" in out.details
    assert out.overlay.size == (60, 45)
    assert list(out.table["x1"]) == [12.0, 60.0] and list(out.table["y2"]) == [81.0, 72.0]  # photo pixels
    items = json.loads(open(out.files[1]).read())
    assert items[0]["bbox"] == pytest.approx([12, 9, 36, 72], abs=0.01)
    assert items[0]["segmentation"]["size"] == [90, 120] and sum(items[0]["segmentation"]["counts"]) == 90 * 120


def test_network_threshold_follows_the_weights(monkeypatch, photo):
    for trained, thr in ((True, 0.05), (False, 0.0)):
        detector = FakeDetector(trained)
        monkeypatch.setattr(xd, "get_model", detector.get_model)
        monkeypatch.setattr(errors, "get_model", detector.get_model)
        monkeypatch.setattr(xd, "detect_objects", detector.detect_objects)
        out = _detect(photo, short_side=512, thr=0.3)
        assert detector.calls == [{"score_thr": thr, "scale": (853, 512)}]
        assert out.state.trained is trained and out.state.network_thr == thr
        assert ("Untrained weights: these predictions are meaningless" in out.note) is not trained


def test_bad_input(fake, photo, tmp_path):
    with pytest.raises(gr.Error, match="No image"):
        _detect(None)
    photo_jpeg = tmp_path / "photo.jpg"
    Image.open(photo).save(photo_jpeg, quality=90)
    data = photo_jpeg.read_bytes()
    bad = {"empty.jpg": b"", "notes.jpg": b"these are my notes, not a photo\n" * 20,
           "truncated.jpg": data[: len(data) // 2]}
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(gr.Error, match="This file cannot be used as an image"):
            _detect(str(path))
    with pytest.raises(gr.Error, match="could not be loaded: InvalidCheckpointError"):
        _detect(photo, "mask_rcnn_1x_hybrid_base")
    assert fake.calls == []
    redraw = xd.rerender(None, 0.3, [], 0.5, True, True)
    assert redraw.overlay is None and redraw.table.empty and redraw.state is None
    empty = xd.empty_detection()
    assert empty.overlay is None and empty.files is None and empty.state is None and empty.classes["choices"] == []


def _tiny_detector() -> UniFormerDetector:
    torch.manual_seed(0)
    backbone = UniFormerConfig(depths=(1, 1, 4, 1), dims=(16, 32, 64, 128), head_dim=16, out_indices=(0, 1, 2, 3),
                               stage3_attention="hybrid", window_size=14)
    model = UniFormerDetector(DetectorConfig(backbone, neck_channels=16))
    model.roi_head.bbox_head = ConvFCBBoxHead(16, fc_channels=32)
    model.roi_head.mask_head = FCNMaskHead(16, channels=8)
    model.pretrained_cfg = get_entry("mask_rcnn_1x_hybrid_small").pretrained
    model.model_name = "mask_rcnn_1x_hybrid_small"
    model.weights_info = WeightsInfo("untrained")
    return model.eval()


def test_stage3_modes_run_on_twins(monkeypatch, photo):
    tiny = _tiny_detector()

    def get_model(name):
        return LoadedModel(name, tiny, fallback_reason="offline")

    monkeypatch.setattr(errors, "get_model", get_model)
    monkeypatch.setattr(dense_models, "get_model", get_model)
    twins = Stage3Twins()
    for mode, text in (("window", "window (14\u00d714-token windows)"),
                       ("hybrid", "hybrid (14\u00d714-token windows, every 4th block global)"),
                       ("global", "global (every stage-3 token")):
        out = _detect(photo, "mask_rcnn_1x_hybrid_small", mode, 320, 0.0, twins=twins)
        assert out.state.result.stage3_attention == mode and text in out.details
        assert len(out.table) == len(out.state.result) > 0  # untrained: run at threshold 0
    assert tiny.backbone.cfg.stage3_attention == "hybrid"  # the loaded model is unchanged


# --- the Pose tab's person finder ------------------------------------------------------------------

def test_find_people_fills_the_person_boxes(fake, photo):
    boxes, note = xd.find_people(photo, "mask_rcnn_1x_hybrid_small")
    assert format_boxes(boxes) == "12, 9, 36, 72; 60, 18, 24, 54"  # the two people >= 0.5, best first (x, y, w, h)
    assert "found 2 people" in note
    assert fake.calls == [{"score_thr": 0.05, "scale": None}]  # the official resize


def test_find_people_scales_boxes_back_to_the_photo(fake, photo, monkeypatch):
    monkeypatch.setattr(xd, "MAX_DETECT_SIDE", 60)
    boxes, _ = xd.find_people(photo, "mask_rcnn_1x_hybrid_small")
    assert fake.images == [(60, 45)] and format_boxes(boxes) == "12, 9, 36, 72; 60, 18, 24, 54"


def test_find_people_ignores_untrained_detectors(monkeypatch, photo):
    detector = FakeDetector(trained=False)
    monkeypatch.setattr(xd, "get_model", detector.get_model)
    monkeypatch.setattr(errors, "get_model", detector.get_model)
    monkeypatch.setattr(xd, "detect_objects", detector.detect_objects)
    boxes, note = xd.find_people(photo, "mask_rcnn_1x_hybrid_small")
    assert boxes is None and detector.calls == []  # the box is left as it is
    assert note.startswith("**The detector was not run.**") and "no trained weights here" in note
    assert "not used" in note and "UNIFORMER_CHECKPOINT_DIR" in note
    assert xd.detector_note("mask_rcnn_1x_hybrid_small") in note


def test_find_people_without_people(fake, photo, monkeypatch):
    monkeypatch.setattr(xd, "PERSON_SCORE_THR", 0.95)
    boxes, note = xd.find_people(photo, "mask_rcnn_1x_hybrid_small")
    assert boxes is None and "found no person scoring \u2265 0.95 (the best person scores 0.90)" in note


def test_detector_note_and_errors(fake, photo):
    note = xd.detector_note("mask_rcnn_1x_xxs")
    assert "local checkpoint file detector.pth" in note and "/checkpoints" not in note  # no server path
    assert "could not be loaded" in xd.detector_note("mask_rcnn_1x_hybrid_base")
    with pytest.raises(gr.Error, match="No image"):
        xd.find_people(None, "mask_rcnn_1x_xxs")
    with pytest.raises(gr.Error, match="could not be loaded"):
        xd.find_people(photo, "mask_rcnn_1x_hybrid_base")


def test_detection_result_in_the_uploads_pixels():
    """Boxes scaled and masks resized (nearest) to another size of the same photo: the library's
    rescale that the tab uses for its table, COCO download and the Pose tab's person boxes."""
    import dataclasses as dc

    from uniformer.tasks.detection import DetectionResult, mask_to_rle

    masks = np.zeros((1, 40, 60), dtype=bool)
    masks[0, 10:20, 30:45] = True
    r = DetectionResult(boxes=np.array([[30, 10, 45, 20]], dtype=np.float32), scores=np.array([0.9], dtype=np.float32),
                        labels=np.array([0]), masks=masks, class_names=("person",), image_size=(60, 40),
                        input_size=(60, 40), model_name="m", weights=None, device="cpu", precision="fp32",
                        stage3_attention="global", times={}, num_proposals=1)
    big = r.rescaled((120, 80))
    assert big.image_size == (120, 80) and big.boxes.tolist() == [[60, 20, 90, 40]]
    assert big.masks.shape == (1, 80, 120) and int(big.masks.sum()) == 4 * int(masks.sum())
    assert big.to_coco()[0]["segmentation"] == mask_to_rle(big.masks[0])
    assert r.rescaled((120, 80), with_masks=False).masks is None
    assert r.rescaled((60, 40)) is r
    assert r.rescaled((120, 80)).person_boxes(0.5) == [(60.0, 20.0, 30.0, 20.0)]
    assert dc.replace(r, masks=None).rescaled((30, 20)).boxes.tolist() == [[15, 5, 22.5, 10]]


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "no-bf16"])
def test_detection_defaults_to_the_devices_precision(monkeypatch, photo, native):
    """bf16 where the CPU computes it natively (probe mocked both ways), labelled; fp32 one click away."""
    import uniformer.precision as precision
    from app.detection_tab import build_detection_tab

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: ("avx512_bf16",) if native else ())
    expected = "bf16" if native else "fp32"
    with gr.Blocks() as demo:
        build_detection_tab(demo)
    config = demo.get_config_file()
    radio = next(c for c in config["components"] if c["props"].get("elem_id") == "det-precision")["props"]
    assert radio["value"] == expected and radio["info"].startswith(f"{expected} by default")
    assert [v for _, v in radio["choices"]] == ["fp32", "bf16"]
    detect = next(d for d in config["dependencies"] if d.get("api_name") == "detect")
    # session, image, model, mode, resolution, thr, opacity, masks, labels, precision
    assert len(detect["inputs"]) == 10

    tiny = _tiny_detector()
    monkeypatch.setattr(errors, "get_model", lambda name: LoadedModel(name, tiny, fallback_reason="offline"))
    monkeypatch.setattr(dense_models, "get_model", lambda name: LoadedModel(name, tiny, fallback_reason="offline"))
    twins = Stage3Twins()
    auto = xd.detect(photo, "mask_rcnn_1x_hybrid_small", "global", 320, 0.0, 0.5, True, True, twins=twins)
    assert auto.state.result.precision == expected and f"**Precision:** {expected}" in auto.details
    exact = xd.detect(photo, "mask_rcnn_1x_hybrid_small", "global", 320, 0.0, 0.5, True, True, "fp32", twins=twins)
    assert exact.state.result.precision == "fp32" and "**Precision:** fp32" in exact.details
