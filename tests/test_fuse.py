"""Eval-mode fusion (issue 13): fused == unfused to 1e-5 relative in fp32, after loading official weights."""
import pytest
import torch
from hubcache import REFERENCE_DIR, load_spec, load_synth

import uniformer
from uniformer.fuse import fold_bn_into_following, fuse_for_inference

TINY = dict(depths=(1, 1, 1, 1), dims=(32, 64, 128, 256))


def _rel(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _perturb_norms(model):
    """Untrained norms are identities; give them real statistics and affines so folding shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm)) and m.weight is not None:
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("name,kwargs,shape", [
    ("uniformer_small_in1k", TINY, (3, 64, 64)),
    ("uniformer_small_k400_16x8", TINY, (3, 4, 32, 32)),
    ("uniformer_small_hybrid14_backbone", dict(TINY, depths=(1, 1, 2, 1), window_size=2), (3, 64, 64)),
])
def test_fused_matches_unfused(name, kwargs, shape):
    model = _perturb_norms(uniformer.create_model(name, **kwargs))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model)
    n_bn = lambda m: sum(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in m.modules())  # noqa: E731
    assert n_bn(fused) < n_bn(model)  # the local blocks' norms are gone
    x = torch.randn(2, *shape)
    with torch.no_grad():
        ref, out = model(x), fused(x)
    for r, o in zip(ref if isinstance(ref, list) else [ref], out if isinstance(out, list) else [out]):
        assert _rel(o, r) < 1e-5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    assert fused.model_name == name and not fused.training


def test_official_checkpoint_loads_unchanged_then_fuses(tmp_path):
    """Light XXS (conv stem, local BN blocks, hourglass blocks) from an official-format file: the
    fused model still reproduces the official code's golden output."""
    synth = load_synth()
    path = tmp_path / "light_xxs.pth"
    torch.save(synth.synthesize(load_spec("light_xxs")["keys"]), path)
    model = uniformer.create_model("uniformer_xxs_224_in1k", checkpoint_path=path)
    golden = torch.load(REFERENCE_DIR / "golden" / "light_xxs.pt", weights_only=True)
    x = synth.reference_input(golden["input_shape"])
    fused = fuse_for_inference(model)
    with torch.no_grad():
        ref, out = model(x), fused(x)
    assert _rel(out, ref) < 1e-5 and _rel(out, golden["output"]) < 1e-4


def test_bn_does_not_fold_into_a_wider_kernel():
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    with pytest.raises(ValueError, match="1x1"):
        fold_bn_into_following(torch.nn.BatchNorm2d(4).eval(), conv)
