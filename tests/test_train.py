"""uniformer.train on one process: fit, exact resume, export -> create_model, new heads, inflation,
freezing, gradient checkpointing, push_to_hub up to the network. Tiny models, a few steps."""
from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch

import uniformer
from uniformer import CheckpointMismatchError, InvalidCheckpointError
from uniformer.hub import read_export_config, read_state_dict
from uniformer.models.inflate import inflate_weight
from uniformer.train import TrainConfig, build_model, enable_grad_checkpointing, fit, freeze, push_to_hub
from uniformer.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from uniformer.train.engine import WarmupCosine, seed_everything

DIGITS = "uniformer_xxs_digits"
TINY_LIGHT = {"dims": (16, 32, 64, 128), "head_dim": 16}
TINY = {"depths": (1, 1, 1, 1), "dims": (16, 32, 64, 128), "head_dim": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: the CI machine's cores are shared, and oversubscribed OpenMP threads
    make these tiny models several times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(tmp_path, name="run", **changes) -> TrainConfig:
    """A few steps of a tiny light UniFormer on 16 digits at 32 px (2 steps per epoch)."""
    base = dict(model=DIGITS, data="digits", input_size=32, model_args=dict(TINY_LIGHT), batch_size=8, max_steps=3,
                train_limit=16, val_limit=16, warmup_steps=1, lr=2e-3, progress=False, output_dir=str(tmp_path / name))
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    result = fit(tiny(tmp, max_steps=2, export=True), command="python -m uniformer train --data digits ...")
    return result


def test_fit_trains_logs_and_exports(exported):
    r = exported
    assert r.state.step == 2 and r.steps_per_epoch == 2 and r.total_steps == 2
    assert [h["kind"] for h in r.history] == ["train", "eval"]
    assert r.metrics["val_samples"] == 16 and 0 <= r.metrics["val_top1"] <= 100
    assert sum(map(sum, r.metrics["confusion"])) == 16
    assert sorted(p.name for p in r.export_dir.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (r.export_dir / "README.md").read_text()
    assert "held-out top-1 accuracy" in card and "python -m uniformer train --data digits ..." in card
    lines = (r.export_dir.parent / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["kind"] for x in lines] == ["train", "eval"]


def test_export_loads_with_create_model(exported, tmp_path):
    r = exported
    model = uniformer.create_model(DIGITS, checkpoint_path=r.export_dir)
    assert model.weights_info.source == "project" and "trained by this project" in model.weights_info.describe()
    assert model.cfg.dims == (16, 32, 64, 128) and model.cfg.keep_ratios == ((1.0, 0.5, 0.5), (0.5,))
    assert model.pretrained_cfg.input_size == (3, 32, 32) and model.pretrained_cfg.label_set == "digits"
    assert model.pretrained_cfg.class_names() == tuple("0123456789")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), r.model(x), rtol=0, atol=0)
    # the safetensors file alone carries its config (header metadata)
    alone = tmp_path / "copy.safetensors"
    shutil.copy(r.export_dir / "model.safetensors", alone)
    assert read_export_config(alone)["model_name"] == DIGITS
    assert uniformer.create_model(DIGITS, checkpoint_path=alone).weights_info.source == "project"
    # a new class count re-initializes the head only
    m3 = uniformer.create_model(DIGITS, checkpoint_path=r.export_dir, num_classes=3)
    assert m3.head.out_features == 3 and "re-initialized for 3 classes" in m3.weights_info.note
    torch.testing.assert_close(m3.stages[0].downsample.proj[0].weight, model.stages[0].downsample.proj[0].weight)
    with pytest.raises(CheckpointMismatchError, match="exported from model 'uniformer_xxs_digits'"):
        uniformer.create_model("uniformer_small_in1k", checkpoint_path=r.export_dir)


def test_plain_safetensors_is_a_local_checkpoint(tmp_path):
    from safetensors.torch import save_file

    model = uniformer.create_model("uniformer_small_in1k", **TINY)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    loaded = uniformer.create_model("uniformer_small_in1k", checkpoint_path=tmp_path / "w.safetensors", **TINY)
    assert loaded.weights_info.source == "local" and read_export_config(tmp_path / "w.safetensors") is None
    torch.testing.assert_close(loaded.head.weight, model.head.weight)
    (tmp_path / "bad.safetensors").write_bytes((100).to_bytes(8, "little") + b"{" + b"x" * 120)
    with pytest.raises(InvalidCheckpointError, match="not a readable safetensors file"):
        read_state_dict(tmp_path / "bad.safetensors")


def test_resume_after_interruption_reproduces_the_run(tmp_path):
    """Drop path, mixup (NumPy), augmentation, EMA and an epoch boundary in the way: a run killed
    after step 3 and resumed gives bit-identical weights, EMA and optimizer state."""
    cfg = tiny(tmp_path, max_steps=5, drop_path=0.2, mixup=0.4, ema=True, ema_decay=0.5, save_every_steps=1,
               log_every_steps=1)
    full = fit(cfg)

    class Crash(RuntimeError):
        pass

    def crash(state, info):
        if state.step == 3:
            raise Crash

    cut = cfg.replace(output_dir=str(tmp_path / "cut"))
    with pytest.raises(Crash):
        fit(cut, callbacks=[crash])
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)["state"]["step"] == 3
    resumed = fit(cut.replace(resume="auto"))
    a = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    b = load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)
    assert a["state"] == b["state"] and a["state"]["step"] == 5 and a["state"]["epoch"] == 2
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert all(torch.equal(x["exp_avg"], y["exp_avg"]) for x, y in zip(a["optimizer"]["state"].values(),
                                                                       b["optimizer"]["state"].values()))
    losses = lambda r: [h["loss"] for h in r.history if h["kind"] == "train"]  # noqa: E731
    assert losses(full) == losses(resumed) and len(losses(full)) == 5
    assert any(not torch.equal(a["model"][k], a["ema"][k]) for k in a["model"])  # EMA is a different average


def test_warmup_cosine_schedule():
    s = WarmupCosine(1e-3, total_steps=10, warmup_steps=2, warmup_lr=1e-6, min_lr=1e-5)
    assert s.lr(0) == 1e-6 and s.lr(2) == pytest.approx(1e-3) and s.lr(10) == pytest.approx(1e-5)
    assert s.lr(1) == pytest.approx((1e-6 + 1e-3) / 2) and s.lr(6) == pytest.approx((1e-3 + 1e-5) / 2)


def test_new_head_keeps_every_other_weight(tmp_path):
    source = uniformer.create_model(DIGITS, num_classes=7, **TINY_LIGHT)
    torch.save(source.state_dict(), tmp_path / "seven.pth")
    model = build_model(DIGITS, num_classes=3, checkpoint_path=str(tmp_path / "seven.pth"), **TINY_LIGHT)
    assert model.head.weight.shape == (3, 128) and model.training
    assert "re-initialized for 3 classes" in model.weights_info.note
    new, old = model.state_dict(), source.state_dict()
    assert all(torch.equal(new[k], old[k]) for k in new if not k.startswith(("head.", "head_cls.")))
    assert not model.head_cls.weight.requires_grad  # the light score-token head is not in the loss
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_inflation_of_2d_weights_into_a_video_model(tmp_path):
    image = uniformer.create_model("uniformer_small_in1k", **TINY)
    torch.save(image.state_dict(), tmp_path / "image.pth")
    video = build_model("uniformer_small_in1k", 1000, checkpoint_path=str(tmp_path / "image.pth"), spatial_dims=3,
                        inflate_mode="center", **TINY).eval()
    assert "inflated" in video.weights_info.note
    x = torch.randn(2, 3, 32, 32)
    clip = x.unsqueeze(2).expand(-1, -1, 4, -1, -1)  # a still video: 4 times the image
    with torch.no_grad():  # centre inflation: every frame is seen as by the 2-D model
        torch.testing.assert_close(video(clip), image.eval()(x), rtol=1e-4, atol=1e-4)
    mean = build_model("uniformer_small_in1k", 5, checkpoint_path=str(tmp_path / "image.pth"), spatial_dims=3,
                       **TINY)
    w2, w3 = image.stages[0].downsample.proj.weight, mean.stages[0].downsample.proj.weight
    assert w3.shape == (16, 3, 3, 4, 4) and torch.allclose(w3, inflate_weight(w2, 3)) and torch.allclose(w3.sum(2), w2)
    dpe = mean.stages[1].blocks[0].dpe.proj  # 3x3x3 from 3x3, mean: interior frames of a still clip match 2-D
    feat = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        out3 = dpe(feat.unsqueeze(2).expand(-1, -1, 5, -1, -1))
        out2 = torch.nn.functional.conv2d(feat, image.stages[1].blocks[0].dpe.proj.weight,
                                          image.stages[1].blocks[0].dpe.proj.bias, padding=1, groups=32)
    torch.testing.assert_close(out3[:, :, 2], out2, rtol=1e-5, atol=1e-5)
    assert mean.head.out_features == 5


def test_freezing_for_a_linear_probe(tmp_path):
    cfg = tiny(tmp_path, freeze="backbone", max_steps=2, drop_path=0.1)
    seed_everything(cfg.seed)  # fit builds its model right after this seeding
    start = build_model(DIGITS, 10, drop_path=cfg.drop_path, **TINY_LIGHT).state_dict()
    start = {k: v.clone() for k, v in start.items()}
    end = fit(cfg).model.state_dict()
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    assert changed == {"head.weight", "head.bias"}  # BatchNorm statistics of the frozen backbone included
    model = freeze(build_model(DIGITS, 10, **TINY_LIGHT), "backbone")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    model = freeze(build_model(DIGITS, 10, **TINY_LIGHT), "none", stages=2)
    assert not any(p.requires_grad for p in model.stages[1].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    with pytest.raises(ValueError):
        freeze(model, "everything")


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = uniformer.create_model(DIGITS, drop_path_rate=0.3, **TINY_LIGHT).train()
    twin = copy.deepcopy(model)
    assert enable_grad_checkpointing(twin) == 7
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    grads = []
    for m in (model, twin):
        torch.manual_seed(1)  # the same drop-path masks
        torch.nn.functional.cross_entropy(m(x), y).backward()
        grads.append({n: p.grad for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-6)
    a, b = model.state_dict(), twin.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a if "running" in k or "num_batches" in k)  # stats updated once
    assert isinstance(twin.stages[2].blocks[0], type(model.stages[2].blocks[0]))


def test_training_with_grad_checkpointing_switches_it_on_and_trains_the_same(tmp_path):
    plain = fit(tiny(tmp_path, "plain", max_steps=2, drop_path=0.1))
    checkpointed = fit(tiny(tmp_path, "ckpt", max_steps=2, drop_path=0.1, grad_checkpointing=True))
    assert checkpointed.model.grad_checkpointing and not plain.model.grad_checkpointing
    a, b = plain.model.state_dict(), checkpointed.model.state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
    twin = copy.deepcopy(checkpointed.model)
    assert enable_grad_checkpointing(twin, False) == 0 and not twin.grad_checkpointing


class FakeHfApi:
    """Records what push_to_hub asks of huggingface_hub.HfApi (no network)."""

    def __init__(self, token=None):
        self.token, self.calls = token, []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder",
                           sorted(p.name for p in __import__("pathlib").Path(kw["folder_path"]).iterdir()), kw))

        class Info:
            commit_url = f"https://huggingface.co/{kw['repo_id']}/commit/abc"
        return Info()


def test_push_to_hub_up_to_the_network(exported, monkeypatch, tmp_path):
    import huggingface_hub

    made = []
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: made.append(FakeHfApi(token)) or made[-1])
    url = push_to_hub(exported.export_dir, "me/digits", token="hf_x", private=True)
    assert url == "https://huggingface.co/me/digits/commit/abc"
    (api,) = made
    assert api.token == "hf_x"
    assert api.calls[0] == ("create_repo", "me/digits", {"private": True, "repo_type": "model", "exist_ok": True})
    assert api.calls[1][1] == ["README.md", "config.json", "model.safetensors"]
    assert api.calls[1][2]["repo_id"] == "me/digits" and api.calls[1][2]["repo_type"] == "model"
    with pytest.raises(ValueError, match="not an export folder"):
        push_to_hub(tmp_path, "me/digits", api=FakeHfApi())
    with pytest.raises(ValueError, match="user/name"):
        push_to_hub(exported.export_dir, "digits", api=FakeHfApi())


def test_configuration_errors(tmp_path):
    with pytest.raises(ValueError, match="smaller than one global batch"):
        fit(tiny(tmp_path, batch_size=32))
    with pytest.raises(ValueError, match="not a multiple of grad_accum"):
        TrainConfig(batch_size=10, grad_accum=4)
    with pytest.raises(ValueError, match="freeze must be"):
        TrainConfig(freeze="all")
    with pytest.raises(ValueError, match="cannot be split over 3 processes"):
        TrainConfig(batch_size=8).per_process_batch(3)


def _write_video(path, shift: int, frames: int = 10):
    """A tiny MPEG-4 video of a white square moving ``shift`` pixels per frame."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 48, "yuv420p"
        for t in range(frames):
            frame = np.zeros((48, 48, 3), np.uint8)
            frame[18:30, 18 + shift * t:30 + shift * t] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_video_list_trains_a_3d_model_end_to_end(tmp_path):
    rows = []
    for i, (label, shift) in enumerate([("left", -1), ("right", 1)] * 2):
        _write_video(tmp_path / f"v{i}.mp4", shift)
        rows.append(f"v{i}.mp4,{label}")
    (tmp_path / "train.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    cfg = TrainConfig(model="uniformer_small_in1k", model_args={**TINY, "spatial_dims": 3},
                      data=str(tmp_path / "train.csv"),
                      val_data=str(tmp_path / "train.csv"), input_size=32, num_frames=4, batch_size=2, max_steps=2,
                      warmup_steps=0, progress=False, output_dir=str(tmp_path / "run"), export=True)
    result = fit(cfg)
    assert result.classes == ["left", "right"] and result.metrics["val_samples"] == 4
    model = uniformer.create_model("uniformer_small_in1k", checkpoint_path=result.export_dir)
    assert model.cfg.spatial_dims == 3 and model.pretrained_cfg.input_size == (3, 4, 32, 32)
    assert model.pretrained_cfg.class_names() == ("left", "right")


def test_cli_train_reports_bad_data(tmp_path, capsys):
    from uniformer.__main__ import main

    (tmp_path / "only_class").mkdir()
    Image = __import__("PIL.Image", fromlist=["Image"])
    Image.new("RGB", (8, 8)).save(tmp_path / "only_class" / "a.png")
    assert main(["train", "--data", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "DatasetError" in err and "only 1 class" in err
    assert main(["train", "--data", "digits", "--push-to-hub", "me/x"]) == 2
    assert "--push-to-hub needs --export" in capsys.readouterr().err
