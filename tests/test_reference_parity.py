"""Faithfulness: our models reproduce the official implementation's outputs (goldens) and key sets.

Reads the reference folder from $UNIFORMER_REFERENCE_DIR (default ../shared/reference), iterates over
whatever specs and goldens it holds, and fails when a golden or spec variant of an implemented kind
has no registered model. Weights are ``synthesize(spec["keys"])`` saved as an official-format file and
loaded through the same ``create_model(checkpoint_path=...)`` path that loads real checkpoints.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

import uniformer
from uniformer.registry import get_entry
from hubcache import REFERENCE_DIR, load_synth

TOLERANCE = 1e-4  # max |ours - ref| / max |ref|, reference/README.md

# Families of reference variants this package implements so far. Video, light video and dense
# prediction arrive with their own issues and join this set then.
IMPLEMENTED_FAMILIES = {"image", "light_image", "light_dense"}


def family(spec: dict) -> str:
    """'light_image' / 'light_video' / 'light_dense' for the light-weight variants, else the spec's kind."""
    light = spec["variant"].startswith("light_") or (spec["kind"] == "dense" and spec["variant"].endswith(("_xxs", "_xs")))
    kind = spec["kind"]
    return f"light_{kind}" if light else kind


def _specs() -> dict[str, dict]:
    folder = REFERENCE_DIR / "specs"
    assert folder.is_dir(), f"reference folder not found: {folder} (set UNIFORMER_REFERENCE_DIR)"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


SPECS = _specs()
GOLDENS = sorted(p.stem for p in (REFERENCE_DIR / "golden").glob("*.pt"))
IMPLEMENTED = sorted(v for v, s in SPECS.items() if family(s) in IMPLEMENTED_FAMILIES)
IMPLEMENTED_GOLDENS = [v for v in GOLDENS if v in IMPLEMENTED]


def _model_for_variant() -> dict[str, str]:
    mapping = {}
    for name in uniformer.list_models():
        variants = get_entry(name).pretrained.reference_variant or ()
        for variant in (variants,) if isinstance(variants, str) else variants:
            mapping.setdefault(variant, name)
    return mapping


MODEL_FOR = _model_for_variant()


def test_reference_folder_has_image_goldens():
    assert IMPLEMENTED_GOLDENS, f"no golden of an implemented kind in {REFERENCE_DIR}"


def test_every_implemented_variant_has_a_model():
    missing = [v for v in IMPLEMENTED if v not in MODEL_FOR]
    assert not missing, f"reference variants without a registered model: {missing}"


@pytest.fixture(scope="module")
def synth():
    return load_synth()


def _checkpoint_file(tmp_path, synth, variant: str):
    path = tmp_path / f"{variant}.pth"
    torch.save(synth.synthesize(SPECS[variant]["keys"]), path)  # official format: raw flat state dict
    return path


@pytest.mark.parametrize("variant", IMPLEMENTED_GOLDENS)
def test_golden_parity(variant, tmp_path, synth):
    golden = torch.load(REFERENCE_DIR / "golden" / f"{variant}.pt", weights_only=True)
    model = uniformer.create_model(MODEL_FOR[variant], checkpoint_path=_checkpoint_file(tmp_path, synth, variant))
    assert model.weights_info.source == "local"
    x = synth.reference_input(golden["input_shape"])
    assert x.double().sum().item() == pytest.approx(golden["input_sum"], rel=1e-9, abs=1e-6)
    with torch.no_grad():
        out = model(x)
    outs, refs = _as_list(out), _as_list(golden["output"])
    assert [o.shape for o in outs] == [r.shape for r in refs]
    for i, (o, r) in enumerate(zip(outs, refs)):
        rel = ((o - r).abs().max() / r.abs().max()).item()
        assert rel <= TOLERANCE, f"{variant} output {i}: relative max error {rel:.2e}"


def _as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize("variant", IMPLEMENTED)
def test_exact_keys_and_param_count(variant):
    spec = SPECS[variant]
    entry = get_entry(MODEL_FOR[variant])
    model = uniformer.create_model(MODEL_FOR[variant])
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in entry.filter_fn(
        {k: torch.empty(s) for k, s in spec["keys"].items()}).items()}
    assert ours == theirs
    assert sum(p.numel() for p in model.parameters()) == spec["num_params"]
    assert len(ours) == len(spec["keys"])


@pytest.mark.parametrize("variant", [v for v in IMPLEMENTED if v not in GOLDENS])
def test_spec_only_variants_load_and_run(variant, tmp_path, synth):
    """Variants without a golden are still real checkpoint formats: they load strictly and run."""
    model = uniformer.create_model(MODEL_FOR[variant], checkpoint_path=_checkpoint_file(tmp_path, synth, variant))
    with torch.no_grad():
        outs = _as_list(model(torch.randn(1, 3, 64, 64)))
    if "head.weight" in SPECS[variant]["keys"]:
        assert outs[0].shape == (1, SPECS[variant]["keys"]["head.weight"][0])
    else:  # backbone: stage maps at strides 4..32
        assert [o.shape[-1] for o in outs] == [16, 8, 4, 2][-len(outs):]
    assert all(torch.isfinite(o).all() for o in outs)


def test_hub_entries_match_reference_hub_files():
    """Each registered Hub file is the one the reference lists for that variant."""
    for variant, name in MODEL_FOR.items():
        if get_entry(name).task != "backbone":
            assert get_entry(name).pretrained.hub == SPECS[variant].get("hub"), name


def test_three_d_blocks_reproduce_video_golden(synth):
    """The same blocks in 3-D (spatial_dims=3) reproduce the official video model (video_s16)."""
    from uniformer.models.uniformer import UniFormer, UniFormerConfig, checkpoint_filter_fn
    from uniformer.hub import load_weights

    variant = "video_s16"
    golden_path = REFERENCE_DIR / "golden" / f"{variant}.pt"
    assert golden_path.is_file(), golden_path
    golden = torch.load(golden_path, weights_only=True)
    model = UniFormer(UniFormerConfig(spatial_dims=3, num_classes=400)).eval()
    load_weights(model, synth.synthesize(SPECS[variant]["keys"]), checkpoint_filter_fn)
    assert sum(p.numel() for p in model.parameters()) == SPECS[variant]["num_params"]
    with torch.no_grad():
        out = model(synth.reference_input(golden["input_shape"]))
    rel = ((out - golden["output"]).abs().max() / golden["output"].abs().max()).item()
    assert rel <= TOLERANCE
    assert math.isfinite(rel)
