"""Checkpoint loading: official formats, offline Hub cache, our own format, and every error path."""
from __future__ import annotations

import argparse
import fractions
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import uniformer
from uniformer import (CheckpointMismatchError, CheckpointNotAvailableError, InvalidCheckpointError,
                       UnsafeCheckpointError)
from uniformer.hub import read_state_dict, unwrap_state_dict
from uniformer.models.uniformer import checkpoint_filter_fn
from hubcache import add_to_hub_cache, official_state_dict

ROOT = Path(__file__).resolve().parents[1]
NAME, VARIANT = "uniformer_small_in1k", "image_s"


@pytest.fixture(scope="module")
def official():
    return official_state_dict(VARIANT)


def _run_offline(code: str, hf_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_pretrained_from_offline_hub_cache(tmp_path, official, legacy):
    """create_model(pretrained=True) finds an official-format .pth in an offline HF cache (a fresh process,
    HF_HOME and HF_HUB_OFFLINE set as users do) and computes what the same weights loaded directly give."""
    add_to_hub_cache(tmp_path, "Sense-X/uniformer_image", "uniformer_small_in1k.pth", official, legacy_format=legacy)
    code = (
        "import json, torch, uniformer\n"
        f"m = uniformer.create_model({NAME!r}, pretrained=True)\n"
        "x = torch.linspace(-1, 1, 3 * 64 * 64).reshape(1, 3, 64, 64)\n"
        "with torch.no_grad(): y = m(x)\n"
        "print(json.dumps({'source': m.weights_info.source, 'describe': m.weights_info.describe(),"
        " 'logits': y[0, :5].tolist()}))\n")
    proc = _run_offline(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["source"] == "hub"
    assert out["describe"] == "official Hub checkpoint Sense-X/uniformer_image/uniformer_small_in1k.pth"
    direct = uniformer.create_model(NAME)
    direct.load_state_dict(checkpoint_filter_fn(official))
    with torch.no_grad():
        expected = direct(torch.linspace(-1, 1, 3 * 64 * 64).reshape(1, 3, 64, 64))[0, :5]
    torch.testing.assert_close(torch.tensor(out["logits"]), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_offline_without_cache_raises_clear_error(tmp_path):
    proc = _run_offline(
        "import uniformer\n"
        "try:\n"
        f"    uniformer.create_model({NAME!r}, pretrained=True)\n"
        "except uniformer.CheckpointNotAvailableError as e:\n"
        "    print('RAISED', e)\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "RAISED" in proc.stdout
    assert "Sense-X/uniformer_image/uniformer_small_in1k.pth" in proc.stdout
    assert "checkpoint_path" in proc.stdout


def test_no_hub_file_names_where_to_get_it():
    with pytest.raises(CheckpointNotAvailableError, match="Google Drive"):
        uniformer.create_model("uniformer_small_tl_224", pretrained=True)


def test_state_dict_round_trip(tmp_path):
    """A state dict saved by our model (our key names) reloads into a fresh model, strictly."""
    a = uniformer.create_model(NAME)
    path = tmp_path / "ours.pth"
    torch.save(a.state_dict(), path)
    b = uniformer.create_model(NAME, checkpoint_path=path)
    assert b.weights_info.source == "local" and b.weights_info.path == str(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("container", ["model", "state_dict", "model_state", "module."])
def test_official_training_containers_unwrap(tmp_path, official, container):
    if container == "module.":
        obj = {f"module.{k}": v for k, v in official.items()}
    else:
        obj = {container: official, "epoch": 300, "args": argparse.Namespace(lr=1e-3)}
    path = tmp_path / "train.pth"
    torch.save(obj, path)
    sd = read_state_dict(path)
    assert sd.keys() == official.keys()
    uniformer.create_model(NAME, checkpoint_path=path)


def test_new_num_classes_reinitializes_only_the_head(tmp_path, official):
    path = tmp_path / "s.pth"
    torch.save(official, path)
    m = uniformer.create_model(NAME, checkpoint_path=path, num_classes=10)
    assert m.head.weight.shape == (10, 512)
    assert "re-initialized for 10 classes" in m.weights_info.describe()
    torch.testing.assert_close(m.stages[0].downsample.proj.weight, official["patch_embed1.proj.weight"])


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotAvailableError, match="does not exist"):
        uniformer.create_model(NAME, checkpoint_path=tmp_path / "nope.pth")


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"hello, this is not a checkpoint", "not a"),
    ("truncated", "not a readable PyTorch checkpoint"),
])
def test_not_a_checkpoint(tmp_path, content, match):
    path = tmp_path / "bad.pth"
    if content == "truncated":
        torch.save({"a": torch.ones(100)}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(InvalidCheckpointError, match=match):
        uniformer.create_model(NAME, checkpoint_path=path)


def test_checkpoint_without_tensors(tmp_path):
    path = tmp_path / "nums.pth"
    torch.save({"epoch": 3, "acc": 0.5}, path)
    with pytest.raises(InvalidCheckpointError, match="not tensors"):
        read_state_dict(path)


def test_unsafe_pickle_is_refused_with_instructions(tmp_path, official):
    path = tmp_path / "unsafe.pth"
    torch.save({"model": official, "extra": fractions.Fraction(1, 3)}, path)
    with pytest.raises(UnsafeCheckpointError, match="--trust-source"):
        uniformer.create_model(NAME, checkpoint_path=path)


def test_convert_extracts_weights_of_a_trusted_unsafe_file(tmp_path, official):
    src, dst = tmp_path / "unsafe.pth", tmp_path / "weights.pth"
    torch.save({"model": official, "extra": fractions.Fraction(1, 3)}, src)
    from uniformer.__main__ import main
    assert main(["convert", str(src), str(dst), "--trust-source"]) == 0
    uniformer.create_model(NAME, checkpoint_path=dst)


def test_wrong_variant_names_offending_keys(tmp_path, official):
    path = tmp_path / "s.pth"
    torch.save(official, path)
    with pytest.raises(CheckpointMismatchError) as err:  # S weights into B
        uniformer.create_model("uniformer_base_in1k", checkpoint_path=path)
    assert "missing keys" in str(err.value) and "stages.0.blocks.3" in str(err.value)


def test_shape_mismatch_named(tmp_path, official):
    path = tmp_path / "s.pth"
    torch.save(official, path)
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatches .*stages\.0\.downsample\.proj\.weight"):
        uniformer.create_model("uniformer_large_ls_tl_224", checkpoint_path=path)


def test_unwrap_rejects_non_dict():
    with pytest.raises(InvalidCheckpointError):
        unwrap_state_dict([torch.ones(1)])


def test_describe_names_local_files_without_their_paths_on_request():
    """describe() names the full path (CLI, notebooks); describe(full_paths=False) only the file name
    (what a UI served to others shows): no absolute path reaches its text."""
    from uniformer.hub import WeightsInfo

    local = WeightsInfo("local", path="/srv/private/ckpts/my.pth", note="from $UNIFORMER_CHECKPOINT_DIR")
    project = WeightsInfo("project", path="/opt/site-packages/uniformer/weights/digits/model.safetensors")
    assert local.describe() == "local checkpoint file /srv/private/ckpts/my.pth (from $UNIFORMER_CHECKPOINT_DIR)"
    assert local.describe(full_paths=False) == "local checkpoint file my.pth (from $UNIFORMER_CHECKPOINT_DIR)"
    assert project.describe(full_paths=False) == "checkpoint trained by this project (model.safetensors)"
    assert "/opt" in project.describe()
    hub = WeightsInfo("hub", "Sense-X/uniformer_image", "uniformer_small_in1k.pth", path="/cache/hub/x.pth")
    assert hub.describe(full_paths=False) == hub.describe() == ("official Hub checkpoint "
                                                                "Sense-X/uniformer_image/uniformer_small_in1k.pth")
    assert WeightsInfo("untrained").describe(full_paths=False) == WeightsInfo("untrained").describe()
