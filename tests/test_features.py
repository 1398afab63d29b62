"""timm's feature-extraction interface: features_only / out_indices / feature_info,
forward_intermediates, prune_intermediate_layers, set_grad_checkpointing (issue 14)."""
from __future__ import annotations

import pickle

import pytest
import torch

import uniformer

# name -> input (small: the strides allow it) for S, B, light XXS-160 and video S-16
CASES = {
    "uniformer_small_in1k": (1, 3, 64, 64),
    "uniformer_base_in1k": (1, 3, 64, 64),
    "uniformer_xxs_160_in1k": (1, 3, 64, 64),
    "uniformer_small_k400_16x4": (1, 3, 4, 64, 64),
}


@pytest.fixture(scope="module")
def classifiers():
    torch.manual_seed(0)
    return {name: uniformer.create_model(name) for name in CASES}


@pytest.fixture(scope="module")
def classifier_files(classifiers, tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifiers")
    paths = {}
    for name, model in classifiers.items():
        paths[name] = folder / f"{name}.pth"
        torch.save(model.state_dict(), paths[name])
    return paths


@pytest.fixture(scope="module")
def extractors(classifier_files):
    """name -> features_only model with the classifier's weights (loaded through create_model)."""
    return {name: uniformer.create_model(name, features_only=True, checkpoint_path=path)
            for name, path in classifier_files.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_features_only_maps_have_the_stated_strides_and_channels(name, classifiers, extractors):
    shape = CASES[name]
    model = classifiers[name]
    features = extractors[name]
    assert not hasattr(features, "head") and not hasattr(features, "norm")
    x = torch.randn(*shape)
    with torch.no_grad():
        maps = features(x)
        stage_maps = model.forward_stages(x)
        intermediates = model.forward_intermediates(x, intermediates_only=True)
    info = features.feature_info
    assert len(maps) == len(info.channels()) == 4
    assert info.module_name() == [f"stages.{i}" for i in range(4)]
    for m, chs, red, ref, inter in zip(maps, info.channels(), info.reduction(), stage_maps, intermediates):
        assert m.shape[:2] == (shape[0], chs)
        assert m.shape[-2:] == (shape[-2] // red, shape[-1] // red)
        torch.testing.assert_close(m, ref, rtol=0, atol=0)
        torch.testing.assert_close(m, inter, rtol=0, atol=0)
    if len(shape) == 5:  # video: 3-D maps, time halved by the stem
        assert info.get("temporal_reduction") == [2, 2, 2, 2]
        assert all(m.shape[2] == shape[2] // 2 for m in maps)
    # the classifier's own feature_info says the same
    assert [d["num_chs"] for d in model.feature_info] == info.channels()
    assert [d["reduction"] for d in model.feature_info] == info.reduction()
    assert "features_only: " in features.weights_info.note and "head.*" in features.weights_info.note


def test_out_indices_choose_the_maps():
    x = torch.randn(1, 3, 64, 64)
    model = uniformer.create_model("uniformer_xxs_digits", pretrained=True)
    features = uniformer.create_model("uniformer_xxs_digits", pretrained=True, features_only=True, out_indices=(1, -1))
    assert features.feature_info.channels() == [48, 192]
    assert features.feature_info.reduction() == [8, 32]
    with torch.no_grad():
        maps, ref = features(x), model.forward_stages(x)
    assert len(maps) == 2
    torch.testing.assert_close(maps[0], ref[1], rtol=0, atol=0)
    torch.testing.assert_close(maps[1], ref[3], rtol=0, atol=0)
    last2 = uniformer.create_model("uniformer_xxs_digits", features_only=True, out_indices=2)
    assert last2.feature_info.channels() == [96, 192] and last2.cfg.out_indices == (2, 3)
    with pytest.raises(ValueError, match="out_indices"):
        uniformer.create_model("uniformer_small_in1k", features_only=True, out_indices=(4,))
    with pytest.raises(ValueError, match="features_only"):
        uniformer.create_model("uniformer_small_in1k", out_indices=(0,))
    with pytest.raises(ValueError, match="semantic-segmentation"):
        uniformer.create_model("upernet_global_small", features_only=True)


def test_classifier_checkpoint_loads_strictly_and_reports_the_dropped_keys(classifier_files, extractors):
    features = extractors["uniformer_small_in1k"]
    note = features.weights_info.note
    # BatchNorm norm.* (weight, bias, running mean/var, count) + head.weight/bias
    assert note == "features_only: 7 classifier entries not loaded (head.*, norm.*)"
    sd = torch.load(classifier_files["uniformer_small_in1k"], weights_only=True)
    for k, v in features.state_dict().items():
        assert torch.equal(v, sd[k])
    light = extractors["uniformer_xxs_160_in1k"].weights_info.note  # + the score-token classifier
    assert light == "features_only: 11 classifier entries not loaded (head.*, head_cls.*, norm.*, norm_cls.*)"
    bad = {k: v for k, v in sd.items() if not k.startswith("stages.3.blocks.2.")}
    path = classifier_files["uniformer_small_in1k"].with_name("broken.pth")
    torch.save(bad, path)
    with pytest.raises(uniformer.CheckpointMismatchError, match="stages.3.blocks.2"):
        uniformer.create_model("uniformer_small_in1k", features_only=True, checkpoint_path=path)


def test_forward_intermediates_semantics(classifiers):
    model = classifiers["uniformer_small_in1k"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, indices=2, norm=True)
        stages = model.forward_stages(x)
        torch.testing.assert_close(final, model.forward_features(x))
        assert len(inter) == 2
        torch.testing.assert_close(inter[0], stages[2])
        torch.testing.assert_close(inter[1], model.norm(stages[3]))  # timm: the final norm on the last map only
        nhwc = model.forward_intermediates(x, indices=[0], output_fmt="NHWC", intermediates_only=True)
        torch.testing.assert_close(nhwc[0], stages[0].permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NLC")


def test_stop_early_runs_fewer_blocks(classifiers):
    for name in ("uniformer_small_in1k", "uniformer_xxs_160_in1k"):
        model = classifiers[name]
        calls = []
        handles = [b.register_forward_hook(lambda *_: calls.append(1)) for s in model.stages for b in s.blocks]
        try:
            with torch.no_grad():
                model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[1], intermediates_only=True)
                full = len(calls)
                calls.clear()
                final, inter = model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[1], stop_early=True)
        finally:
            for h in handles:
                h.remove()
        depths = model.cfg.depths
        assert full == sum(depths) and len(calls) == depths[0] + depths[1]
        assert final.shape == inter[0].shape  # stopped: the last map run, no final norm


def test_dense_backbone_is_the_same_mechanism():
    torch.manual_seed(0)
    backbone = uniformer.create_model("uniformer_small_backbone", depths=(1, 1, 1, 1))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = backbone(x)
        inter = backbone.forward_intermediates(x, norm=True, intermediates_only=True)
        raw = backbone.forward_stages(x)
        for i, (m, n, r) in enumerate(zip(maps, inter, raw)):
            torch.testing.assert_close(m, n, rtol=0, atol=0)
            ln = torch.nn.functional.layer_norm(r.movedim(1, -1), (r.shape[1],), backbone.out_norms[i].weight,
                                                backbone.out_norms[i].bias, 1e-6).movedim(-1, 1)
            torch.testing.assert_close(m, ln)
        torch.testing.assert_close(backbone.forward_features(x), maps[-1])  # no AttributeError
    assert backbone.feature_info.channels() == [64, 128, 320, 512]
    pose = uniformer.create_model("uniformer_small_pose_backbone", depths=(1, 1, 1, 1))
    assert pose.feature_info.channels() == [512] and len(pose(x)) == 1
    assert len(pose.out_norms) == 4  # the official pose checkpoints hold norm1..norm4
    light = uniformer.create_model("uniformer_xxs_backbone", out_indices=(2, 3), depths=(1, 1, 2, 1),
                                   keep_ratios=((1.0, 0.5), (0.5,)), trade_offs=((1.0, 0.5), (0.5,)))
    assert [m.shape[1] for m in light(x)] == [224, 448]


def test_prune_intermediate_layers():
    model = uniformer.create_model("uniformer_xxs_digits", pretrained=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model.forward_stages(x)
        assert model.prune_intermediate_layers([0, 2]) == [0, 2]
        assert len(model.stages) == 3 and isinstance(model.head, torch.nn.Identity)
        inter = model.forward_intermediates(x, [0, 2], intermediates_only=True)
    torch.testing.assert_close(inter[1], ref[2], rtol=0, atol=0)


def _grads(model, x, y):
    torch.manual_seed(1)  # the same drop-path masks
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name,shape", [("uniformer_small_in1k", (2, 3, 32, 32)),
                                        ("uniformer_xxs_moving_digits", (2, 3, 4, 32, 32))])
def test_grad_checkpointing_is_a_switch_with_equal_gradients(name, shape):
    torch.manual_seed(0)
    cfg = dict(depths=(1, 1, 2, 1), drop_path_rate=0.2)
    if "small" in name:
        cfg.update(dims=(16, 32, 64, 128), head_dim=16)
    else:
        cfg.update(keep_ratios=((1.0, 0.5), (0.5,)), trade_offs=((1.0, 0.5), (0.5,)))
    model = uniformer.create_model(name, **cfg).train()
    x, y = torch.randn(*shape), torch.tensor([0, 1])
    plain = _grads(model, x, y)
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing and all(s.grad_checkpointing for s in model.stages)
    checkpointed = _grads(model, x, y)
    model.set_grad_checkpointing(False)
    assert not model.grad_checkpointing
    again = _grads(model, x, y)
    assert plain.keys() == checkpointed.keys() == again.keys()
    for n in plain:
        torch.testing.assert_close(checkpointed[n], plain[n], rtol=0, atol=1e-6)
        torch.testing.assert_close(again[n], plain[n], rtol=0, atol=1e-6)


def test_a_checkpointing_model_pickled_whole_loads_back():
    torch.manual_seed(0)
    model = uniformer.create_model("uniformer_xxs_digits", depths=(1, 1, 2, 1),
                                   keep_ratios=((1.0, 0.5), (0.5,)), trade_offs=((1.0, 0.5), (0.5,)))
    model.set_grad_checkpointing(True)
    back = pickle.loads(pickle.dumps(model))
    assert type(back) is type(model) and back.grad_checkpointing
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)
