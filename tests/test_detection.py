"""Object detection and instance segmentation (Mask R-CNN, Cascade Mask R-CNN): exact official
checkpoint formats, the mask_rcnn_1x_hybrid_small golden (neck, RPN maps, unit heads to 1e-4;
proposals and detections as sets; masks), the cascade's test procedure, box geometry by hand, the
official test pipeline and bad input."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import uniformer
from uniformer.data import ImageDecodeError
from uniformer.heads.boxes import AnchorGenerator, delta2bbox, map_roi_levels
from uniformer.heads.roi import RCNNTestConfig, paste_masks
from uniformer.heads.rpn import RPNTestConfig
from uniformer.models.detection import DetectorConfig, UniFormerDetector
from uniformer.registry import get_entry
from uniformer.tasks.detection import (DetectionResult, coco_category_ids, detect_objects, draw_detections,
                                       mask_to_rle, preprocess_detection)
from goldens import load_golden, relative_error
from hubcache import REFERENCE_DIR, load_synth

TOLERANCE = 1e-4
SPECS = {p.stem: json.loads(p.read_text()) for p in sorted((REFERENCE_DIR / "specs").glob("*.json"))}
DET_FULL = sorted(v for v, s in SPECS.items() if s["kind"] == "dense_full" and s["task"] == "det")


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4), (M, 4) -> (N, M) IoU without +1, written independently of uniformer.ops."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-9)


@pytest.fixture(scope="module")
def synth():
    return load_synth()


def _mm_file(directory, synth, variant: str):
    """Synthetic weights of ``variant`` saved as an official mmdet 2.x checkpoint (with meta and optimizer)."""
    path = directory / f"{variant}.pth"
    if not path.is_file():
        state_dict = synth.synthesize(SPECS[variant]["keys"])
        torch.save({"meta": {"mmdet_version": "2.11.0", "CLASSES": ("person",) * 80, "epoch": 12},
                    "state_dict": state_dict, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


# --- registry, exact formats ---------------------------------------------------------------------

def test_every_det_checkpoint_is_registered_under_its_official_name():
    assert len(DET_FULL) == 8, DET_FULL
    for variant in DET_FULL:
        entry = get_entry(variant)
        assert entry.task == "object-detection"
        assert entry.pretrained.reference_variant == variant
        assert entry.pretrained.hub is None and "Google Drive" in entry.pretrained.download_hint
        assert entry.pretrained.class_names() == tuple(json.loads(
            (REFERENCE_DIR / "labels" / "coco_80.json").read_text())["classes"])
        assert entry.config.cascade == variant.startswith("cascade")
    assert set(uniformer.list_models(task="object-detection")) == set(DET_FULL)


@pytest.mark.slow
@pytest.mark.parametrize("variant", DET_FULL)
def test_exact_keys_and_param_counts(variant):
    spec = SPECS[variant]
    entry = get_entry(variant)
    model = uniformer.create_model(variant)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    empty = {k: torch.empty(s) for k, s in spec["keys"].items()}
    theirs = {k: tuple(v.shape) for k, v in entry.filter_fn(empty).items()}
    assert ours == theirs
    assert sum(p.numel() for p in model.parameters()) == spec["num_params"]
    for prefix, count in spec["param_count_by_prefix"].items():
        assert sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix + ".")) == count, prefix
    assert ({k for k in ours if not k.startswith("backbone.")}
            == {k for k in spec["keys"] if not k.startswith("backbone.")})


@pytest.mark.slow
def test_missing_checkpoint_says_where_to_get_it():
    with pytest.raises(uniformer.CheckpointNotAvailableError, match="Google Drive"):
        uniformer.create_model("mask_rcnn_1x_hybrid_small", pretrained=True)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["mask_rcnn_1x_xxs", "cascade_mask_rcnn_3x_ms_hybrid_small"])
def test_official_format_loads_strictly_and_runs(variant, tmp_path, synth):
    # fewer proposals keep the cascade's 4-conv box heads cheap on CPU (the official test keeps 1000)
    model = uniformer.create_model(variant, checkpoint_path=_mm_file(tmp_path, synth, variant),
                                   rpn=RPNTestConfig(nms_pre=200, max_per_img=100),
                                   rcnn=RCNNTestConfig(max_per_img=20))
    assert model.weights_info.source == "local"
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 96, 128), rcnn=RCNNTestConfig(score_thr=0.0, max_per_img=20))
    det = out.detections[0]
    assert len(out.neck_outputs) == 5 and [f.shape[-1] for f in out.neck_outputs] == [32, 16, 8, 4, 2]
    assert 0 < len(det.scores) <= 20 and det.masks.shape == (len(det.scores), 96, 128)
    assert torch.all(det.scores[:-1] >= det.scores[1:])


# --- the Mask R-CNN golden -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def golden():
    return load_golden("mask_rcnn_1x_hybrid_small")


@pytest.fixture(scope="module")
def mask_rcnn(tmp_path_factory, synth):
    path = _mm_file(tmp_path_factory.mktemp("det"), synth, "mask_rcnn_1x_hybrid_small")
    return uniformer.create_model("mask_rcnn_1x_hybrid_small", checkpoint_path=path)


@pytest.fixture(scope="module")
def golden_run(mask_rcnn, golden, synth):
    x = synth.reference_input(golden["input_shape"])
    assert x.double().sum().item() == pytest.approx(golden["input_sum"], rel=1e-9, abs=1e-6)
    rcnn = RCNNTestConfig(score_thr=golden["score_thr_used"])
    with torch.no_grad():
        return mask_rcnn.predict(x, [tuple(golden["img_meta"]["img_shape"][:2])],
                                 [golden["img_meta"]["scale_factor"]], rcnn=rcnn)


@pytest.mark.slow
def test_golden_backbone_neck_and_rpn_maps(golden_run, golden):
    for name, ours, ref in (("backbone", golden_run.backbone_outputs, golden["backbone_outputs"]),
                            ("neck", golden_run.neck_outputs, golden["neck_outputs"]),
                            ("rpn_cls", golden_run.rpn_scores, golden["rpn_cls_scores"]),
                            ("rpn_reg", golden_run.rpn_deltas, golden["rpn_bbox_preds"])):
        assert len(ours) == len(ref)
        for i, (o, r) in enumerate(zip(ours, ref)):
            assert relative_error(o, r) <= TOLERANCE, (name, i)


@pytest.mark.slow
def test_golden_unit_heads(mask_rcnn, golden, synth):
    with torch.no_grad():
        cls, reg = mask_rcnn.roi_head.bbox_head(synth.reference_input((8, 256, 7, 7), seed=2))
        masks = mask_rcnn.roi_head.mask_head(synth.reference_input((8, 256, 14, 14), seed=3))
    ref_cls, ref_reg = golden["unit_bbox_head_outputs"][0]
    assert relative_error(cls, ref_cls) <= TOLERANCE and relative_error(reg, ref_reg) <= TOLERANCE
    assert relative_error(masks, golden["unit_mask_head_outputs"][0]) <= TOLERANCE


def _match(ours: torch.Tensor, ref: torch.Tensor, thresholds: list[float], same_label: bool) -> None:
    """Every row of ``ref`` (x1, y1, x2, y2, score[, label]) has a row of ``ours`` with IoU >= 0.99,
    the same label and a score within 1e-4 relative, unless its score lies within 1e-4 of a threshold."""
    iou = _iou(ref[:, :4], ours[:, :4])
    for i, row in enumerate(ref):
        if any(abs(row[4].item() - t) <= 1e-4 * max(t, 1e-12) for t in thresholds):
            continue
        ok = (iou[i] >= 0.99) & ((ours[:, 4] - row[4]).abs() <= 1e-4 * row[4].abs())
        if same_label:
            ok &= ours[:, 5] == row[5]
        assert ok.any(), f"row {i} {row.tolist()} has no match"


@pytest.mark.slow
def test_golden_proposals_as_sets(golden_run, golden):
    ours, ref = golden_run.proposals[0], golden["proposals"]
    assert ours.shape == ref.shape == (1000, 5)
    cut = [ref[:, 4].min().item()]  # the 1000th score: a top-k boundary
    _match(ours, ref, cut, same_label=False)
    _match(ref, ours, cut, same_label=False)


@pytest.mark.slow
def test_golden_detections_and_masks(golden_run, golden):
    det = golden_run.detections[0]
    ours = torch.cat([det.boxes, det.scores[:, None], det.labels[:, None].float()], dim=1)
    ref = golden["detections"]
    assert len(ours) == len(ref) == 20
    thr = [golden["score_thr_used"]]
    _match(ours, ref, thr, same_label=True)
    _match(ref, ours, thr, same_label=True)
    iou = _iou(ref[:, :4], ours[:, :4])
    for i in range(len(ref)):
        j = int(torch.where(ours[:, 5] == ref[i, 5], iou[i], torch.zeros_like(iou[i])).argmax())
        agree = (det.masks[j] == golden["masks"][i].bool()).float().mean().item()
        assert agree >= 0.995, (i, agree)
    assert golden["masks"].bool().any(), "the golden's masks are not all empty"


@pytest.mark.slow
def test_official_threshold_gives_no_detection_on_synthetic_weights(mask_rcnn, golden, synth):
    """Synthetic weights give near-uniform class scores (max 0.041 < 0.05): the golden has 0 detections."""
    with torch.no_grad():
        out = mask_rcnn.predict(synth.reference_input(golden["input_shape"]))
    assert len(out.detections[0].scores) == golden["detections_official_thr"] == 0


# --- the cascade ---------------------------------------------------------------------------------

def _tiny_cascade(num_classes: int = 3) -> UniFormerDetector:
    backbone = uniformer.create_model("mask_rcnn_1x_xxs").cfg.backbone
    torch.manual_seed(0)
    return UniFormerDetector(DetectorConfig(backbone, cascade=True, num_classes=num_classes)).eval()


@pytest.mark.slow
def test_cascade_averages_stage_logits_and_mask_probabilities():
    model = _tiny_cascade()
    heads = model.roi_head.bbox_heads()
    for head in heads[:2]:  # stages 1-2 do not move the RoIs
        torch.nn.init.zeros_(head.fc_reg.weight)
        torch.nn.init.zeros_(head.fc_reg.bias)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        feats = model(x)
        proposals = model.rpn_head.get_proposals(*model.rpn_head(feats), [(96, 128)])
        rois, logits, deltas = model.roi_head.refine_rois(feats, proposals, [(96, 128)])
        roi_feats = model.roi_head.bbox_roi_extractor(feats, rois)
        outs = [h(roi_feats) for h in heads]
        assert torch.allclose(rois[:, 1:], proposals[0][:, :4], atol=1e-4)
        assert torch.allclose(logits, sum(o[0] for o in outs) / 3, atol=1e-6)
        assert torch.equal(deltas, outs[2][1])
        res = model.roi_head.predict(feats, proposals, [(96, 128)], [(1.0,) * 4],
                                     RCNNTestConfig(score_thr=0.0, max_per_img=8))[0]
        mask_feats = model.roi_head.mask_roi_extractor(feats, torch.cat([torch.zeros(len(res.boxes), 1), res.boxes], 1))
        idx = torch.arange(len(res.labels))
        expected = sum(h(mask_feats)[idx, res.labels].sigmoid() for h in model.roi_head.mask_heads()) / 3
    assert torch.allclose(res.mask_probs, expected, atol=1e-6)


@pytest.mark.slow
def test_cascade_regresses_rois_with_each_stages_stds():
    model = _tiny_cascade()
    stage0 = model.roi_head.bbox_heads()[0]
    torch.nn.init.zeros_(stage0.fc_reg.weight)
    with torch.no_grad():
        stage0.fc_reg.bias.fill_(1.0)  # every class's deltas (1, 1, 1, 1) * stds (0.1, 0.1, 0.2, 0.2)
        for h in model.roi_head.bbox_heads()[1:]:
            torch.nn.init.zeros_(h.fc_reg.weight)
            torch.nn.init.zeros_(h.fc_reg.bias)
        feats = model(torch.randn(1, 3, 256, 256))
        box = torch.tensor([[60.0, 80.0, 100.0, 140.0, 0.9]])
        rois, _, _ = model.roi_head.refine_rois(feats, [box], [(256, 256)])
    w, h = 40.0, 60.0
    cx, cy = 80.0 + 0.1 * w, 110.0 + 0.1 * h
    gw, gh = w * math.exp(0.2), h * math.exp(0.2)
    expected = torch.tensor([cx - gw / 2, cy - gh / 2, cx + gw / 2, cy + gh / 2])
    assert torch.allclose(rois[0, 1:], expected, atol=1e-4)


# --- box geometry by hand ------------------------------------------------------------------------

def test_anchors_follow_mmdet_2x_conventions():
    gen = AnchorGenerator()
    base = gen.base_anchors(4)
    s = math.sqrt(0.5)
    expected = torch.tensor([[-16 / s, -16 * s, 16 / s, 16 * s], [-16, -16, 16, 16],
                             [-16 * s, -16 / s, 16 * s, 16 / s]])
    assert torch.allclose(base, expected, atol=1e-4)
    anchors = gen.grid_anchors([(2, 3)])[0]
    assert anchors.shape == (2 * 3 * 3, 4)
    # location (i=1, j=2) -> centre (8, 4); its 2nd anchor (ratio 1) is a 32x32 box there
    assert torch.allclose(anchors[(1 * 3 + 2) * 3 + 1], torch.tensor([8 - 16, 4 - 16, 8 + 16, 4 + 16.0]))


def test_delta2bbox_by_hand():
    rois = torch.tensor([[10.0, 20.0, 50.0, 40.0]])
    assert torch.allclose(delta2bbox(rois, torch.zeros(1, 4)), rois)
    out = delta2bbox(rois, torch.tensor([[0.5, -0.5, math.log(2), 0.0]]), stds=(1, 1, 1, 1))
    assert torch.allclose(out, torch.tensor([[10.0, 10.0, 90.0, 30.0]]))  # centre (30 + 20, 30 - 10), 80 x 20
    clipped = delta2bbox(rois, torch.tensor([[0.5, -0.5, math.log(2), 0.0]]), max_shape=(24, 60))
    assert torch.allclose(clipped, torch.tensor([[10.0, 10.0, 60.0, 24.0]]))
    huge = delta2bbox(rois, torch.tensor([[0.0, 0.0, 100.0, 0.0]]))
    assert huge[0, 2] - huge[0, 0] == pytest.approx(40 * 1000 / 16, rel=1e-5)  # dw clipped at |log(16/1000)|


def test_roi_levels_by_size():
    rois = torch.tensor([[0, 0, 0, 50, 50], [0, 0, 0, 112, 112], [0, 0, 0, 300, 300], [0, 0, 0, 1000, 1000.]])
    assert map_roi_levels(rois, 4).tolist() == [0, 1, 2, 3]


def test_paste_masks_by_hand():
    probs = torch.ones(2, 28, 28)
    probs[1, :, 14:] = 0.0  # right half empty
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 40.0, 10.0]])
    masks = paste_masks(probs, boxes, (50, 60))
    assert masks.shape == (2, 50, 60) and masks.dtype == torch.bool
    inside = torch.zeros(50, 60, dtype=torch.bool)
    inside[20:40, 10:30] = True
    assert torch.equal(masks[0], inside)
    assert masks[1, :10, :19].all() and not masks[1, :10, 21:].any() and not masks[1, 10:].any()


# --- the official test pipeline --------------------------------------------------------------------

def test_preprocess_resizes_keep_ratio_and_pads_to_32():
    cfg = get_entry("mask_rcnn_1x_xxs").pretrained
    inp = preprocess_detection(Image.new("RGB", (640, 480), (123, 116, 103)), cfg)
    assert inp.input_size == (1067, 800) and inp.image_size == (640, 480)
    assert inp.tensor.shape == (1, 3, 800, 1088)
    assert inp.scale_factor[0] == pytest.approx(1067 / 640) and inp.scale_factor[1] == pytest.approx(800 / 480)
    assert inp.tensor[..., 1067:].abs().max() == 0  # zero padding after normalization
    assert inp.tensor[..., :1067].abs().max() < 0.02  # the mean colour normalizes to ~0
    wide = preprocess_detection(Image.new("RGB", (3000, 1000)), cfg)
    assert wide.input_size == (1333, 444) and wide.tensor.shape[-2:] == (448, 1344)


@pytest.fixture(scope="module")
def small_result(tmp_path_factory, synth):
    model = uniformer.create_model("mask_rcnn_1x_xxs", checkpoint_path=_mm_file(
        tmp_path_factory.mktemp("xxs"), synth, "mask_rcnn_1x_xxs"), rcnn=RCNNTestConfig(max_per_img=30))
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    return model, image, detect_objects(model, image, score_thr=0.0, scale=(256, 192))


@pytest.mark.slow
def test_detect_objects_result(small_result):
    _, image, res = small_result
    assert isinstance(res, DetectionResult) and res.image_size == (160, 120) and res.input_size == (256, 192)
    assert 0 < len(res) <= 30 and res.masks.shape == (len(res), 120, 160)
    assert (res.boxes[:, 0] >= 0).all() and (res.boxes[:, 2] <= 160 + 1e-3).all()
    assert (res.boxes[:, 3] <= 120 + 1e-3).all()
    assert set(res.times) == {"preprocess", "backbone", "neck", "rpn", "roi_heads", "paste"}
    assert res.weights.source == "local" and res.num_proposals > 0
    mid = float(np.median(res.scores))
    sel = res.select(mid)
    assert len(sel) == int((res.scores >= mid).sum())
    name = res.class_names[res.labels[0]]
    assert all(res.labels[i] == res.labels[0] for i in res.select(0.0, [name]))
    with pytest.raises(ValueError, match="unknown class"):
        res.select(0.0, ["unicorn"])
    assert draw_detections(image, res, 0.0).size == image.size


@pytest.mark.slow
def test_coco_export_round_trips_masks(small_result):
    _, _, res = small_result
    items = res.to_coco(image_id=7)
    assert len(items) == len(res)
    ids = coco_category_ids()
    for item, i in zip(items, range(len(res))):
        assert item["image_id"] == 7 and item["category_id"] == ids[res.labels[i]]
        x, y, w, h = item["bbox"]
        assert [x, y, x + w, y + h] == pytest.approx(res.boxes[i].tolist(), abs=0.02)
        rle = item["segmentation"]
        flat = np.repeat(np.arange(len(rle["counts"])) % 2, rle["counts"]).astype(bool)
        assert np.array_equal(flat.reshape(rle["size"][::-1]).T, res.masks[i])
    json.dumps(res.to_dict())


def test_mask_to_rle_by_hand():
    m = np.array([[0, 1], [1, 1]], dtype=bool)  # column-major: 0, 1, 1, 1
    assert mask_to_rle(m) == {"size": [2, 2], "counts": [1, 3]}
    assert mask_to_rle(np.ones((1, 2), bool))["counts"] == [0, 2]


@pytest.mark.slow
def test_person_boxes_feed_the_pose_model(small_result):
    _, _, res = small_result
    person = res.class_names.index("person")
    res.labels[:] = person
    boxes = res.person_boxes(0.0)
    assert len(boxes) == len(res)
    x, y, w, h = boxes[0]
    assert (x, y, x + w, y + h) == pytest.approx(tuple(res.boxes[0].tolist()))


@pytest.mark.slow
def test_bad_input_gets_clear_errors(small_result):
    model, _, _ = small_result
    with pytest.raises(ImageDecodeError):
        detect_objects(model, b"not an image")
    with pytest.raises(ValueError, match="score_thr"):
        detect_objects(model, Image.new("RGB", (64, 64)), score_thr=2.0)
    with pytest.raises(ValueError, match="detection model"):
        detect_objects(uniformer.create_model("uniformer_small_backbone"), Image.new("RGB", (64, 64)))
    with pytest.raises(ValueError, match="light-weight"):
        detect_objects(model, Image.new("RGB", (64, 64)), stage3_attention="window")


def test_filtering_counting_and_table_rows_by_hand():
    """select(exclude=), class_counts and rows (the Detection tab's filter and table) on a hand-made result."""
    import numpy as np

    from uniformer.hub import WeightsInfo
    from uniformer.tasks.detection import DetectionResult

    masks = np.zeros((3, 40, 60), dtype=bool)
    masks[0, :10, :10] = True  # 100 px
    masks[2, :4, :5] = True  # 20 px
    r = DetectionResult(boxes=np.array([[0, 0, 10, 10], [20, 5, 30, 25], [40, 0, 45, 4]], dtype=np.float32),
                        scores=np.array([0.9, 0.6, 0.2], dtype=np.float32), labels=np.array([1, 0, 1]), masks=masks,
                        class_names=("person", "cat"), image_size=(60, 40), input_size=(60, 40), model_name="m",
                        weights=WeightsInfo("untrained"), device="cpu", precision="fp32", stage3_attention="global",
                        times={}, num_proposals=3)
    assert r.select(0.1).tolist() == [0, 1, 2] and r.select(0.1, exclude=["cat"]).tolist() == [1]
    assert r.select(0.5, exclude=[0]).tolist() == [0] and r.select(0.0, ["person"], exclude=[1]).tolist() == [1]
    assert r.class_counts(0.1) == {1: 2, 0: 1} and list(r.class_counts(0.1)) == [1, 0]  # best class first
    assert r.class_counts(0.95) == {}
    rows = r.rows((120, 80))  # the photo at twice the size: boxes x2, areas x4
    assert rows[0] == {"class": "cat", "score": pytest.approx(0.9), "x1": 0.0, "y1": 0.0, "x2": 20.0, "y2": 20.0,
                       "mask_px": 400}
    assert [row["mask_px"] for row in rows] == [400, 0, 80] and r.rows()[2]["mask_px"] == 20
    r.masks = None  # no mask head
    assert r.rows()[0]["mask_px"] is None
    # kept between redraws: masks bit-packed (1/8 of the bytes), unpacked only for the shown detections
    r.masks = masks
    bare, packed = r.compact()
    assert bare.masks is None and packed.bits.shape == (3, 40, 8)
    assert packed.bits.nbytes * 8 <= masks.nbytes + 3 * 40 * 8
    shown = bare.subset(np.array([2, 0]), packed)
    assert shown.labels.tolist() == [1, 1] and shown.scores.tolist() == pytest.approx([0.2, 0.9])
    assert np.array_equal(shown.masks, masks[[2, 0]]) and np.array_equal(r.subset([1]).masks, masks[[1]])
    bare, packed = dataclasses.replace(r, masks=None).compact()
    assert packed is None and bare.subset([0], packed).masks is None


def test_detection_scale_is_the_official_bound_scaled_by_the_short_side():
    from uniformer.tasks.detection import detection_scale

    assert detection_scale(800) == (1333, 800) and detection_scale(512) == (853, 512)
    assert detection_scale("320") == (533, 320)
    for bad in (0, -8, "big", None):
        with pytest.raises(ValueError, match="short side"):
            detection_scale(bad)
