"""Dense prediction (paper §4.3): full UperNet / Semantic FPN / top-down pose models against the official
goldens, exact checkpoint formats, the official test-time pipelines (docs/dense.md §5), Hub loading with
mirrors, label files and pictures.

Weights are ``synthesize(spec["keys"])`` of the FULL official key names, saved as an mmseg/mmpose file
``{'meta': {}, 'state_dict': ...}`` and loaded through ``create_model(name, checkpoint_path=...)``, the
path real checkpoints take. Goldens use 224x320 (seg) / 256x192 (pose) inputs; B-size specs are only
built and key-checked (no forward at full resolution) to keep CPU time modest.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import uniformer
from uniformer import CheckpointNotAvailableError
from uniformer.data import ImageDecodeError, get_labels
from uniformer.data.labels import get_keypoint_info, get_palette
from uniformer.models.dense import (PoseConfig, SegmentorConfig, UniFormerPose, UniFormerSegmentor,
                                    dense_checkpoint_filter_fn, with_stage3_attention)
from uniformer.registry import get_entry
from uniformer.tasks import estimate_pose, segment_image, stage3_window_boxes
from uniformer.tasks import pose as pose_lib
from uniformer.tasks import segmentation as seg_lib
from uniformer.tasks.visualize import colorize_mask, draw_boxes, draw_pose, mask_to_png_image, overlay_segmentation
from goldens import golden_path, load_golden, relative_error
from hubcache import REFERENCE_DIR, add_to_hub_cache, load_synth

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4  # max |ours - ref| / max |ref| (tests/reference/README.md)
SPECS = {p.stem: json.loads(p.read_text()) for p in sorted((REFERENCE_DIR / "specs").glob("*.json"))}
DENSE_FULL = sorted(v for v, s in SPECS.items() if s["kind"] == "dense_full" and s["task"] in ("seg", "pose"))
SMALL_SPEC_ONLY = [v for v in DENSE_FULL if not golden_path(v).is_file()
                   and "base" not in v and not v.startswith(("top_down_384", "top_down_448"))]


@pytest.fixture(scope="module")
def synth():
    return load_synth()


def _mm_file(directory: Path, synth, variant: str) -> Path:
    """The synthetic weights of ``variant`` as an official mmseg/mmpose checkpoint file."""
    path = directory / f"{variant}.pth"
    if not path.is_file():
        state_dict = synth.synthesize(SPECS[variant]["keys"])
        torch.save({"meta": {"mmseg_version": "0.13.0", "CLASSES": None}, "state_dict": state_dict}, path)
    return path


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dense_ckpts")


def _input(synth, golden: dict) -> torch.Tensor:
    x = synth.reference_input(golden["input_shape"])
    assert x.double().sum().item() == pytest.approx(golden["input_sum"], rel=1e-9, abs=1e-6)
    return x


# --- registry, exact formats ---------------------------------------------------------------------

def test_every_seg_and_pose_checkpoint_is_registered_under_its_official_name():
    assert len(DENSE_FULL) == 16, DENSE_FULL
    for variant in DENSE_FULL:
        entry = get_entry(variant)
        task = {"seg": "semantic-segmentation", "pose": "pose-estimation"}[SPECS[variant]["task"]]
        assert entry.task == task
        assert entry.pretrained.reference_variant == variant
        assert entry.pretrained.hub == SPECS[variant]["hub"]
        if entry.pretrained.hub is None:
            assert "Google Drive" in entry.pretrained.download_hint or "released" in entry.pretrained.download_hint
    p = get_entry("upernet_global_small").pretrained
    assert p.hub == "Andy1621/uniformer:upernet_global_small.pth"
    assert list(p.mirrors) == SPECS["upernet_global_small"]["hub_mirrors"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", DENSE_FULL)
def test_exact_keys_and_param_counts(variant):
    spec = SPECS[variant]
    entry = get_entry(variant)
    model = uniformer.create_model(variant)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    empty = {k: torch.empty(s) for k, s in spec["keys"].items()}
    theirs = {k: tuple(v.shape) for k, v in entry.filter_fn(empty).items()}
    assert ours == theirs
    assert len(ours) == len(spec["keys"])
    assert sum(p.numel() for p in model.parameters()) == spec["num_params"]
    for prefix, count in spec["param_count_by_prefix"].items():
        assert sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix + ".")) == count, prefix
    # the heads keep the official names: only `backbone.` keys are renamed
    heads = {k for k in spec["keys"] if not k.startswith("backbone.")}
    assert {k for k in ours if not k.startswith("backbone.")} == heads


@pytest.mark.slow
@pytest.mark.parametrize("variant", SMALL_SPEC_ONLY)
def test_spec_only_checkpoints_load_strictly_and_run(variant, tmp_path, synth):
    model = uniformer.create_model(variant, checkpoint_path=_mm_file(tmp_path, synth, variant))
    assert model.weights_info.source == "local"
    shape = (1, 3, 64, 48) if isinstance(model, UniFormerPose) else (1, 3, 64, 64)
    with torch.no_grad():
        out = model(torch.randn(shape))
    expected = (1, 17, 16, 12) if isinstance(model, UniFormerPose) else (1, 150, 16, 16)
    assert out.shape == expected and torch.isfinite(out).all()


def test_filter_keeps_head_names_and_maps_mmpose1_head_prefix():
    sd = {"backbone.patch_embed1.proj.weight": torch.zeros(1), "backbone.blocks3.0.attn.qkv.weight": torch.zeros(1),
          "backbone.norm4.weight": torch.zeros(1), "decode_head.conv_seg.weight": torch.zeros(1)}
    assert set(dense_checkpoint_filter_fn(sd)) == {
        "backbone.stages.0.downsample.proj.weight", "backbone.stages.2.blocks.0.mhra.qkv.weight",
        "backbone.out_norms.3.weight", "decode_head.conv_seg.weight"}
    mmpose1 = {"head.final_layer.bias": torch.zeros(1)}
    assert set(dense_checkpoint_filter_fn(mmpose1)) == {"keypoint_head.final_layer.bias"}
    ours = {"backbone.stages.0.downsample.proj.weight": torch.zeros(1)}
    assert dense_checkpoint_filter_fn(ours).keys() == ours.keys()  # our own format passes unchanged


def test_config_replace_forwards_backbone_fields():
    cfg = get_entry("upernet_global_small").config
    changed = cfg.replace(stage3_attention="hybrid", window_size=32)
    assert changed.backbone.stage3_attention == "hybrid" and changed.backbone.window_size == 32
    assert cfg.backbone.stage3_attention == "global"
    with pytest.raises(TypeError):
        cfg.replace(no_such_field=1)
    with pytest.raises(ValueError):
        SegmentorConfig(cfg.backbone.replace(out_indices=(3,)))
    pose = get_entry("top_down_256x192_global_small").config
    assert pose.replace(num_classes=5).num_joints == 5
    assert pose.heatmap_size == (48, 64)
    assert isinstance(pose, PoseConfig)


# --- goldens -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def upernet(ckpt_dir, synth):
    path = _mm_file(ckpt_dir, synth, "upernet_global_small")
    return uniformer.create_model("upernet_global_small", checkpoint_path=path)


@pytest.fixture(scope="module")
def upernet_run(upernet, synth):
    golden = load_golden("upernet_global_small")
    with torch.no_grad():
        return golden, upernet.forward_all(_input(synth, golden))


@pytest.mark.slow
def test_upernet_golden_logits_aux_backbone(upernet, upernet_run):
    golden, out = upernet_run
    assert isinstance(upernet, UniFormerSegmentor) and upernet.weights_info.source == "local"
    assert relative_error(out.logits, golden["output"]) <= TOLERANCE
    assert relative_error(out.aux_logits, golden["aux_output"]) <= TOLERANCE
    assert len(out.backbone_outputs) == 4
    for i, (o, r) in enumerate(zip(out.backbone_outputs, golden["backbone_outputs"])):
        assert relative_error(o, r) <= TOLERANCE, i
    assert out.neck_outputs is None


@pytest.mark.slow
def test_upernet_golden_heads_alone(upernet, upernet_run):
    """The heads called on their own, on the backbone maps (which match the golden's), reproduce its
    logits. (The repository keeps only a sample of the golden's backbone maps, tests/reference/README.md,
    so the heads get ours rather than the official maps themselves.)"""
    golden, out = upernet_run
    with torch.no_grad():
        assert relative_error(upernet.decode_head(out.backbone_outputs), golden["output"]) <= TOLERANCE
        assert relative_error(upernet.auxiliary_head(out.backbone_outputs), golden["aux_output"]) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", ["upernet_global_small", "fpn_global_small"])
def test_seg_golden_prediction_map(name, request):
    golden, out = request.getfixturevalue("upernet_run" if name.startswith("upernet") else "fpn_run")
    h, w = golden["input_shape"][2:]
    upsampled = seg_lib.resize_logits(out.logits, (h, w))
    assert upsampled.double().sum().item() == pytest.approx(golden["upsampled_logits_sum"], rel=1e-5)
    mask, conf = seg_lib.logits_to_mask(out.logits, (h, w), (h, w))
    assert mask.shape == (h, w) and conf.shape == (h, w)
    agree = (mask == golden["pred"][0].long()).float().mean().item()
    assert agree >= 0.999, agree


@pytest.fixture(scope="module")
def fpn(ckpt_dir, synth):
    return uniformer.create_model("fpn_global_small", checkpoint_path=_mm_file(ckpt_dir, synth, "fpn_global_small"))


@pytest.fixture(scope="module")
def fpn_run(fpn, synth):
    golden = load_golden("fpn_global_small")
    with torch.no_grad():
        return golden, fpn.forward_all(_input(synth, golden))


@pytest.mark.slow
def test_fpn_golden_logits_neck_backbone(fpn_run):
    golden, out = fpn_run
    assert relative_error(out.logits, golden["output"]) <= TOLERANCE
    assert len(out.neck_outputs) == 4
    for i, (o, r) in enumerate(zip(out.neck_outputs, golden["neck_outputs"])):
        assert relative_error(o, r) <= TOLERANCE, i
    for i, (o, r) in enumerate(zip(out.backbone_outputs, golden["backbone_outputs"])):
        assert relative_error(o, r) <= TOLERANCE, i
    assert out.aux_logits is None


@pytest.fixture(scope="module")
def pose_model(ckpt_dir, synth):
    name = "top_down_256x192_global_small"
    return uniformer.create_model(name, checkpoint_path=_mm_file(ckpt_dir, synth, name))


@pytest.fixture(scope="module")
def pose_run(pose_model, synth):
    golden = load_golden("top_down_256x192_global_small")
    x = _input(synth, golden)
    pairs = get_keypoint_info().flip_pairs
    with torch.no_grad():
        return golden, {"heat": pose_model(x), "flip": pose_lib.flip_test_heatmaps(pose_model, x, pairs),
                        "backbone": pose_model.backbone(x), "backbone_flipped": pose_model.backbone(x.flip(3))}


@pytest.mark.slow
def test_pose_golden_heatmaps_backbone_and_flip_test(pose_run):
    golden, out = pose_run
    assert relative_error(out["heat"], golden["output"]) <= TOLERANCE
    assert relative_error(out["backbone"][-1], golden["backbone_output"]) <= TOLERANCE
    assert relative_error(out["backbone_flipped"][-1], golden["backbone_output_flipped_input"]) <= TOLERANCE
    assert relative_error(out["flip"], golden["flip_test_output"]) <= TOLERANCE
    assert [list(p) for p in get_keypoint_info().flip_pairs] == golden["flip_pairs"]


@pytest.mark.slow
def test_pose_golden_decoding(pose_run):
    golden, out = pose_run
    center, scale = pose_lib.box_to_center_scale((100, 50, 150, 300), (192, 256), 1.25)
    np.testing.assert_allclose(center, golden["decode_center"][0].numpy())
    np.testing.assert_allclose(scale, golden["decode_scale"][0].numpy(), rtol=1e-6)
    # decoding alone, on the golden heatmaps: exact
    kp, mv = pose_lib.keypoints_from_heatmaps(golden["flip_test_output"].numpy(), center[None], scale[None])
    assert np.abs(kp - golden["keypoints"].numpy()).max() <= 1e-3
    # the whole chain from our own flip-test heatmaps
    kp, mv = pose_lib.keypoints_from_heatmaps(out["flip"].numpy(), center[None], scale[None])
    assert np.abs(kp - golden["keypoints"].numpy()).max() <= 1e-3
    assert relative_error(torch.from_numpy(mv), golden["maxvals"]) <= TOLERANCE


# --- stage-3 attention as a run-time choice --------------------------------------------------------

@pytest.mark.slow
def test_stage3_twin_of_a_full_model_shares_weights(upernet):
    twin = with_stage3_attention(upernet, "window", 32)
    assert upernet.cfg.backbone.stage3_attention == "global"  # the loaded model is unchanged
    assert twin.cfg.backbone.stage3_attention == "window" and twin.cfg.backbone.window_size == 32
    assert twin.decode_head is upernet.decode_head and twin.auxiliary_head is upernet.auxiliary_head
    for (n, a), (_, b) in zip(upernet.state_dict().items(), twin.state_dict().items()):
        assert a.data_ptr() == b.data_ptr(), n
    assert twin.model_name == upernet.model_name and twin.weights_info == upernet.weights_info
    assert with_stage3_attention(upernet, "global") is upernet


@pytest.mark.slow
def test_stage3_choice_at_run_time_reproduces_the_w32_golden(synth):
    """The official "w32" row is the global checkpoint run with 32-windows: a global backbone loaded
    with seg_s_w32's weights, switched to windows at run time, gives the seg_s_w32 golden."""
    from uniformer.hub import load_weights

    golden = load_golden("seg_s_w32")
    model = uniformer.create_model("uniformer_small_backbone")
    load_weights(model, synth.synthesize(SPECS["seg_s_w32"]["keys"]), get_entry("uniformer_small_backbone").filter_fn)
    twin = with_stage3_attention(model, "window", 32)
    with torch.no_grad():
        outs = twin(_input(synth, golden))
    for o, r in zip(outs, golden["output"]):
        assert relative_error(o, r) <= TOLERANCE


@pytest.mark.slow
def test_stage3_errors(upernet):
    with pytest.raises(ValueError, match="stage-3 attention"):
        with_stage3_attention(upernet, "diagonal")
    with pytest.raises(ValueError, match="window_size"):
        with_stage3_attention(upernet, "window", 0)
    light = uniformer.create_model("uniformer_xxs_backbone")
    with pytest.raises(ValueError, match="hourglass"):
        with_stage3_attention(light, "window", 14)


# --- the official test-time pipelines ------------------------------------------------------------

def test_seg_resize_rules():
    assert seg_lib.rescale_size((640, 480)) == (683, 512)  # factor min(2048/640, 512/480)
    assert seg_lib.rescale_size((4000, 500)) == (2048, 256)  # long side binds
    assert seg_lib.rescale_size((320, 224)) == (731, 512)  # small images are enlarged
    assert seg_lib.test_input_size((640, 480)) == (683, 512)  # UperNet: no alignment
    assert seg_lib.test_input_size((640, 480), size_divisor=32) == (704, 512)  # FPN: stretch to /32
    with pytest.raises(ValueError):
        seg_lib.rescale_size((0, 10))
    assert get_entry("upernet_global_small").config.test_size_divisor is None
    assert get_entry("fpn_global_small").config.test_size_divisor == 32
    assert get_entry("fpn_xxs").config.test_size_divisor == 32


def test_seg_preprocessing_resizes_like_mmcv_and_normalizes():
    img = Image.new("RGB", (100, 60), (200, 100, 50))
    cfg = get_entry("fpn_global_small").pretrained
    up = seg_lib.preprocess_segmentation(img, cfg, scale=(256, 128))
    assert up.image_size == (100, 60) and up.input_size == (213, 128)
    fpn = seg_lib.preprocess_segmentation(img, cfg, scale=(256, 128), size_divisor=32)
    assert fpn.input_size == (224, 128) and fpn.tensor.shape == (1, 3, 128, 224)
    expected = (torch.tensor([200.0, 100.0, 50.0]) - torch.tensor([123.675, 116.28, 103.53])) / torch.tensor(
        [58.395, 57.12, 57.375])
    torch.testing.assert_close(fpn.tensor[0, :, 5, 7], expected, rtol=1e-5, atol=1e-5)
    # the resize is bilinear with half-pixel centres, rounded to 8 bits (OpenCV INTER_LINEAR on uint8)
    ramp = torch.arange(8.0).repeat(3, 1, 1) * 10  # (3, 1, 8): 0, 10, ..., 70
    out = seg_lib.resize_uint8(ramp, (4, 1))
    torch.testing.assert_close(out[0, 0], torch.tensor([5.0, 25.0, 45.0, 65.0]))


def test_two_logit_resizes_and_strips():
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7, 9)
    mask, conf = seg_lib.logits_to_mask(logits, (28, 36), (45, 61))
    ref = F.interpolate(F.interpolate(logits, (28, 36), mode="bilinear", align_corners=False), (45, 61),
                        mode="bilinear", align_corners=False).softmax(1)[0]
    assert torch.equal(mask, ref.argmax(0))
    torch.testing.assert_close(conf, ref.amax(0))
    # large images: the second resize runs in strips with the same formula
    mask_s, conf_s = seg_lib.logits_to_mask(logits, (28, 36), (45, 61), max_elements=5 * 61 * 4)
    assert (mask_s == mask).float().mean() >= 0.999
    torch.testing.assert_close(conf_s, conf, rtol=1e-5, atol=1e-5)


def test_stage3_window_boxes():
    # 320x224 input -> stage-3 grid 20x14 -> 14-windows: 2 columns (the second padded), 1 row
    assert seg_lib.stage3_grid((320, 224)) == (20, 14)
    assert stage3_window_boxes((320, 224), window_size=14) == [(0, 0, 224, 224), (224, 0, 320, 224)]
    boxes = stage3_window_boxes((320, 224), (640, 448), window_size=14)
    assert boxes == [(0, 0, 448, 448), (448, 0, 640, 448)]
    assert len(stage3_window_boxes((2048, 512), window_size=32)) == 4  # 128x32 tokens
    with pytest.raises(ValueError):
        stage3_window_boxes((320, 224), window_size=0)


@pytest.mark.slow
def test_segment_image_end_to_end(fpn, tmp_path):
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))
    res = segment_image(fpn, photo, scale=(128, 64))
    assert res.mask.shape == (50, 70) and res.mask.dtype == np.uint8 and res.confidence.shape == (50, 70)
    assert res.input_size == (96, 64)  # rescale to (90, 64), then stretched to multiples of 32
    assert res.stage3_attention == "global" and res.window_boxes() == []
    areas = res.class_areas()
    assert sum(a.pixels for a in areas) == 50 * 70 and areas == sorted(areas, key=lambda a: -a.pixels)
    assert areas[0].name == get_labels("ade20k-150")[areas[0].index]
    assert res.weights.source == "local" and res.inference_ms > 0
    json.dumps(res.to_dict())
    win = segment_image(fpn, photo, stage3_attention="window", window_size=2, scale=(128, 64))
    assert win.stage3_attention == "window" and win.window_size == 2 and len(win.window_boxes()) == 6
    assert fpn.cfg.backbone.stage3_attention == "global"
    path = tmp_path / "photo.png"
    photo.save(path)
    assert np.array_equal(segment_image(fpn, str(path), scale=(128, 64)).mask, res.mask)


@pytest.mark.slow
def test_segment_image_errors(fpn, pose_model, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    with pytest.raises(ImageDecodeError):
        segment_image(fpn, str(bad), scale=(128, 64))
    with pytest.raises(ValueError, match="segmentation model"):
        segment_image(pose_model, Image.new("RGB", (32, 32)))
    with pytest.raises(ValueError, match="scale"):
        segment_image(fpn, Image.new("RGB", (32, 32)), scale=(16, 8))


def test_affine_crop_matches_mmpose_geometry():
    center, scale = pose_lib.box_to_center_scale((10, 20, 300, 100), (192, 256), 1.25)  # wide box: height grows
    np.testing.assert_allclose(center, [160, 70])
    np.testing.assert_allclose(scale, [300 / 200 * 1.25, 400 / 200 * 1.25])
    m = pose_lib.get_affine_transform(center, scale, (192, 256))
    # the centre goes to the crop centre; a box of scale*200 px spans the whole crop
    np.testing.assert_allclose(m @ [160, 70, 1], [96, 128], atol=1e-4)
    np.testing.assert_allclose(m @ [160 - 187.5, 70 - 250, 1], [0, 0], atol=1e-4)
    np.testing.assert_allclose(pose_lib.get_affine_transform(center, scale, (192, 256), inv=True) @ [96, 128, 1],
                               [160, 70], atol=1e-4)
    # bilinear warp is exact on a linear ramp; zeros outside the image (cv2 BORDER_CONSTANT)
    H, W = 40, 60
    ramp = torch.arange(W, dtype=torch.float64).repeat(H, 1)[None] * 2 + 3  # value = 2x + 3
    m = np.array([[0.5, 0.0, 2.0], [0.0, 0.5, 1.0]])  # out = 0.5 * src + (2, 1)
    out = pose_lib.warp_affine(ramp, m, (20, 12))
    xs = (torch.arange(20, dtype=torch.float64) - 2) / 0.5  # source x of each output column
    inside = (xs >= 0) & (xs <= W - 1)
    torch.testing.assert_close(out[0, 5][inside], 2 * xs[inside] + 3)
    assert (out[0, 5][xs < -1] == 0).all()


def test_flip_back_and_shift():
    heat = torch.arange(2 * 3 * 1 * 4, dtype=torch.float32).reshape(2, 3, 1, 4)
    back = pose_lib.flip_back(heat, [(1, 2)])
    assert torch.equal(back[:, 0], heat[:, 0].flip(-1)) and torch.equal(back[:, 1], heat[:, 2].flip(-1))
    shifted = pose_lib.shift_heatmaps(heat)
    assert torch.equal(shifted[..., 1:], heat[..., :-1]) and torch.equal(shifted[..., 0], heat[..., 0])


def test_default_decoding_quarter_pixel_rule():
    hm = np.zeros((1, 2, 8, 8), dtype=np.float32)
    hm[0, 0, 4, 3], hm[0, 0, 4, 4], hm[0, 0, 5, 3] = 1.0, 0.5, 0.2  # right and lower neighbours higher
    hm[0, 1, 0, 1] = 1.0  # on the border: no shift
    kp, mv = pose_lib.keypoints_from_heatmaps(hm, np.array([[4.0, 4.0]]), np.array([[8 / 200, 8 / 200]]))
    np.testing.assert_allclose(kp[0, 0], [3.25, 4.25])  # heatmap px == image px for this centre/scale
    np.testing.assert_allclose(kp[0, 1], [1.0, 0.0])
    neg = -np.ones((1, 1, 4, 4), dtype=np.float32)
    kp, mv = pose_lib.keypoints_from_heatmaps(neg, np.array([[2.0, 2.0]]), np.array([[4 / 200, 4 / 200]]))
    np.testing.assert_allclose(mv, -1)
    np.testing.assert_allclose(kp[0, 0], [2 - 4 / 4 - 2, 2 - 4 / 4 - 2])  # coords -1 mapped back: -1 * 1 + 2 - 2


@pytest.mark.slow
def test_estimate_pose_end_to_end(pose_model):
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8))
    res = estimate_pose(pose_model, photo, boxes=[(4, 2, 30, 50)], flip_test=False)
    person = res.persons[0]
    assert person.keypoints.shape == (17, 2) and person.scores.shape == (17,)
    assert res.heatmaps.shape == (1, 17, 64, 48) and res.flip_test is False
    c, s = pose_lib.box_to_center_scale((4, 2, 30, 50))
    half = s * 200 / 2
    found = person.scores > 0  # inside the padded box; a joint whose maximum is <= 0 decodes heatmap (-1, -1)
    assert (person.keypoints[found] >= c - half - 1e-3).all() and (person.keypoints[found] <= c + half + 1e-3).all()
    lost = pose_lib.transform_preds(np.array([[-1.0, -1.0]]), c, s, (48, 64))[0]
    np.testing.assert_allclose(person.keypoints[~found], np.broadcast_to(lost, person.keypoints[~found].shape),
                               atol=1e-4)
    data = json.loads(res.to_json())
    assert len(data["persons"][0]["keypoints"]) == 51 and data["persons"][0]["joints"][0]["name"] == "nose"
    whole = estimate_pose(pose_model, photo)
    assert whole.persons[0].box == (0.0, 0.0, 48.0, 64.0) and whole.flip_test is True
    for box in [(0, 0, 0, 10), (100, 100, 10, 10), ("a", 1, 2, 3), (1, 2, 3)]:
        with pytest.raises(ValueError):
            estimate_pose(pose_model, photo, boxes=[box])


# --- Hub: offline cache and mirrors ----------------------------------------------------------------

def _run_offline(code: str, hf_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


_HUB_CODE = (
    "import json, torch, uniformer\n"
    "try:\n"
    "    m = uniformer.create_model('upernet_global_small', pretrained=True)\n"
    "except uniformer.CheckpointNotAvailableError as e:\n"
    "    print(json.dumps({'error': str(e)})); raise SystemExit\n"
    "x = torch.linspace(-1, 1, 3 * 64 * 64).reshape(1, 3, 64, 64)\n"
    "with torch.no_grad(): y = m(x)\n"
    "print(json.dumps({'describe': m.weights_info.describe(), 'repo': m.weights_info.repo_id,"
    " 'logits': y[0, :3, 0, 0].tolist()}))\n")


@pytest.fixture(scope="module")
def upernet_sd(synth):
    return synth.synthesize(SPECS["upernet_global_small"]["keys"])


@pytest.mark.slow
def test_pretrained_upernet_from_offline_hub_cache(tmp_path, upernet_sd, upernet):
    add_to_hub_cache(tmp_path, "Andy1621/uniformer", "upernet_global_small.pth", {"meta": {}, "state_dict": upernet_sd})
    proc = _run_offline(_HUB_CODE, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["describe"] == "official Hub checkpoint Andy1621/uniformer/upernet_global_small.pth"
    with torch.no_grad():  # the same weights as the golden fixture, loaded from a local file
        expected = upernet(torch.linspace(-1, 1, 3 * 64 * 64).reshape(1, 3, 64, 64))[0, :3, 0, 0]
    torch.testing.assert_close(torch.tensor(out["logits"]), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_pretrained_upernet_from_a_mirror(tmp_path, upernet_sd):
    add_to_hub_cache(tmp_path / "mirror", "lllyasviel/Annotators", "upernet_global_small.pth",
                     {"meta": {}, "state_dict": upernet_sd})
    proc = _run_offline(_HUB_CODE, tmp_path / "mirror")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["repo"] == "lllyasviel/Annotators"
    assert "byte-identical mirror of Andy1621/uniformer/upernet_global_small.pth" in out["describe"]


def test_mirror_order(monkeypatch):
    """The primary file first, then the mirrors in order; the first that can be had wins; when none
    can, the error is the primary's and names the mirrors."""
    from uniformer.downloads import hub as downloads_hub
    from uniformer.downloads import weights_source

    asked = []

    def fake_download(repo_id, filename, revision=None):
        asked.append(repo_id)
        if repo_id != "lllyasviel/Annotators":
            raise CheckpointNotAvailableError(f"{repo_id} missing")
        return Path("/nonexistent/file.pth")

    monkeypatch.setattr(downloads_hub, "hub_download", fake_download)
    src = weights_source("upernet_global_small")
    path, repo, _ = downloads_hub.download_with_mirrors(src)
    assert asked == ["Andy1621/uniformer", "lllyasviel/ControlNet", "lllyasviel/Annotators"]
    assert repo == "lllyasviel/Annotators" and path == Path("/nonexistent/file.pth")

    def nowhere(repo_id, filename, revision=None):
        raise CheckpointNotAvailableError(f"{repo_id}/{filename} is not in the local Hugging Face cache")

    monkeypatch.setattr(downloads_hub, "hub_download", nowhere)
    with pytest.raises(CheckpointNotAvailableError) as info:
        downloads_hub.download_with_mirrors(src)
    message = str(info.value)  # the primary file's error, naming the mirrors tried
    assert message.startswith("Andy1621/uniformer/upernet_global_small.pth is not in the local Hugging Face cache")
    assert "lllyasviel/ControlNet/annotator/ckpts/upernet_global_small.pth" in message


@pytest.mark.slow
def test_drive_only_checkpoint_says_where_to_get_it():
    with pytest.raises(CheckpointNotAvailableError, match="pose_estimation/README.md"):
        uniformer.create_model("top_down_256x192_global_small", pretrained=True)
    with pytest.raises(CheckpointNotAvailableError, match="released"):
        uniformer.create_model("upernet_hybrid_small", pretrained=True)


@pytest.mark.slow
def test_new_class_count_reinitializes_only_conv_seg(ckpt_dir, synth, upernet):
    model = uniformer.create_model("upernet_global_small", num_classes=19,
                                   checkpoint_path=_mm_file(ckpt_dir, synth, "upernet_global_small"))
    assert model.decode_head.conv_seg.weight.shape == (19, 512, 1, 1)
    assert model.auxiliary_head.conv_seg.weight.shape == (19, 256, 1, 1)
    assert torch.equal(model.decode_head.fpn_bottleneck.conv.weight, upernet.decode_head.fpn_bottleneck.conv.weight)


# --- labels and pictures -------------------------------------------------------------------------

def test_label_files_are_the_official_ones():
    official = REFERENCE_DIR / "labels"
    ade = json.loads((official / "ade20k_150.json").read_text())
    assert list(get_labels("ade20k-150")) == ade["classes"] and len(ade["classes"]) == 150
    assert get_labels("ade20k-150")[7] == "bed "  # mmseg's name, trailing space included
    assert [list(c) for c in get_palette("ade20k-150")] == ade["palette"]
    kp = json.loads((official / "coco_keypoints_17.json").read_text())
    info = get_keypoint_info()
    assert list(info.names) == kp["keypoints"] == list(get_labels("coco-keypoints-17"))
    assert [[a + 1, b + 1] for a, b in info.skeleton] == kp["skeleton_1based"]
    assert len(get_labels("imagenet-1k")) == 1000
    with pytest.raises(KeyError):
        get_palette("imagenet-1k")


def test_overlay_and_mask_png():
    img = Image.new("RGB", (4, 3), (100, 100, 100))
    mask = np.array([[0, 0, 1, 1], [2, 2, 2, 2], [0, 1, 2, 0]], dtype=np.uint8)
    palette = get_palette("ade20k-150")
    assert np.array_equal(np.asarray(overlay_segmentation(img, mask, palette, 0.0)), np.asarray(img))
    full = np.asarray(overlay_segmentation(img, mask, palette, 1.0))
    assert np.array_equal(full, colorize_mask(mask, palette))
    hidden = np.asarray(overlay_segmentation(img, mask, palette, 1.0, visible=[1]))
    assert (hidden[mask == 1] == palette[1]).all() and (hidden[mask != 1] == 100).all()
    with pytest.raises(ValueError):
        overlay_segmentation(img, mask[:2], palette)
    buf = io.BytesIO()
    mask_to_png_image(mask, palette).save(buf, "PNG")
    back = Image.open(io.BytesIO(buf.getvalue()))
    assert back.mode == "P" and np.array_equal(np.asarray(back), mask)
    assert np.array_equal(np.asarray(back.convert("RGB")), colorize_mask(mask, palette))


def test_draw_pose_and_boxes():
    img = Image.new("RGB", (100, 80), (0, 0, 0))
    person = pose_lib.PersonPose((10, 10, 60, 60), np.zeros(2), np.ones(2), np.full((17, 2), 40.0),
                                 np.linspace(0, 1, 17))
    info = get_keypoint_info()
    drawn = np.asarray(draw_pose(img, [person], info.names, info.skeleton, score_threshold=0.5))
    assert drawn.shape == (80, 100, 3) and drawn[40, 40].any()  # joints drawn at (40, 40)
    assert drawn[10, 30].any()  # box outline
    assert not np.asarray(img).any()  # input untouched
    boxed = np.asarray(draw_boxes(img, [(0, 0, 50, 40)], color=(255, 0, 0)))
    assert (boxed[0, 10] == (255, 0, 0)).all()
