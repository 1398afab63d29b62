"""The timm methods a fine-tuner expects (get_classifier, no_weight_decay, group_matcher) on real
registered models, and timm's optimizer factory using them: layer-wise learning-rate decay groups
the parameters by depth (stem, then each block, then the head) and weight decay spares the 1-D
parameters and the light models' score token."""
from __future__ import annotations

import pytest
import torch

import uniformer  # before timm: it makes timm's torchvision import work here (uniformer._compat)
import timm.optim  # noqa: E402
from timm.models import group_parameters  # noqa: E402

MODELS = ["uniformer_small_in1k", "uniformer_small_plus_in1k", "uniformer_xxs_160_in1k", "uniformer_small_k400_16x8"]
DECAY = 0.75


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return uniformer.create_model(request.param)


def _layer_of(model) -> dict[str, int]:
    return group_parameters(model, model.group_matcher(coarse=False), reverse=True)


def test_get_classifier_is_the_head_and_follows_reset_classifier():
    model = uniformer.create_model("uniformer_xxs_160_in1k")
    assert model.get_classifier() is model.head and model.head.out_features == 1000
    model.reset_classifier(7)
    assert model.get_classifier() is model.head and model.head.out_features == 7
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_no_weight_decay_names_the_score_token_of_light_models_only():
    assert uniformer.create_model("uniformer_xxs_160_in1k").no_weight_decay() == {"cls_token"}
    assert uniformer.create_model("uniformer_small_in1k").no_weight_decay() == set()


def test_group_matcher_gives_every_block_its_own_layer(model):
    layer = _layer_of(model)
    depths = model.cfg.depths
    assert set(layer) == {n for n, _ in model.named_parameters()}  # every parameter has a layer
    assert max(layer.values()) + 1 == 1 + sum(depths) + 1  # stem, each block, head
    assert {layer[n] for n in layer if n.startswith("stages.0.downsample.")} == {0}
    index = 1
    for s, depth in enumerate(depths):
        for b in range(depth):
            assert {layer[n] for n in layer if n.startswith(f"stages.{s}.blocks.{b}.")} == {index}, (s, b)
            index += 1
        if s > 0:  # a later stage's downsampling goes with its first block
            first = layer[next(n for n in layer if n.startswith(f"stages.{s}.blocks.0."))]
            assert {layer[n] for n in layer if n.startswith(f"stages.{s}.downsample.")} == {first}
    assert layer["norm.weight"] == index - 1  # the final norm with the last block (timm's rule)
    assert layer["head.weight"] == layer["head.bias"] == index  # the head last, not decayed
    coarse = group_parameters(model, model.group_matcher(coarse=True), reverse=True)
    assert max(coarse.values()) + 1 == 6  # stem, 4 stages, head


def test_timm_layer_decay_scales_learning_rates_by_depth(model):
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=DECAY)
    layer = _layer_of(model)
    num_layers = max(layer.values()) + 1
    scale_of, decay_of = {}, {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            scale_of[id(p)], decay_of[id(p)] = group["lr_scale"], group["weight_decay"]
    for name, p in model.named_parameters():
        assert scale_of[id(p)] == pytest.approx(DECAY ** (num_layers - 1 - layer[name])), name
        exempt = p.ndim <= 1 or name in model.no_weight_decay()
        assert decay_of[id(p)] == (0.0 if exempt else 0.05), name
    stem = next(p for n, p in model.named_parameters() if n.startswith("stages.0.downsample."))
    assert scale_of[id(model.head.weight)] == 1.0 and scale_of[id(stem)] == pytest.approx(DECAY ** (num_layers - 1))
