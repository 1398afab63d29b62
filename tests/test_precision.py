"""bf16 by default where the hardware has it (issue 13): the capability probe, mocked both ways."""
import gradio as gr
import pytest
import torch

import uniformer
import uniformer.precision as precision
from uniformer.inference import predict_image, resolve_precision


@pytest.fixture(params=[True, False], ids=["native-bf16", "no-bf16"])
def native(request, monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: ("avx512_bf16",) if request.param else ())
    return request.param


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    with_bf16 = tmp_path / "with"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n\n"
                         "processor\t: 1\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    without = tmp_path / "without"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert precision.cpu_bf16_flags(str(with_bf16)) == ("avx512_bf16", "amx_bf16")
    assert precision.cpu_bf16_flags(str(without)) == ()


def test_default_precision_follows_the_probe(native):
    expected = "bf16" if native else "fp32"
    assert precision.has_native_bf16("cpu") is native
    assert precision.default_precision("cpu") == expected
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"  # an explicit choice wins
    assert precision.precision_label("cpu").startswith(expected)


@pytest.mark.parametrize("supported", [True, False])
def test_cuda_probe(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert precision.default_precision("cuda") == ("bf16" if supported else "fp32")


def test_predict_auto_runs_the_probed_precision(native):
    model = uniformer.create_model("uniformer_xxs_digits", pretrained=True)
    image = torch.rand(64, 64, 3).mul(255).to(torch.uint8).numpy()
    pred = predict_image(model, image, topk=3, device="cpu", precision="auto")
    ref = predict_image(model, image, topk=3, device="cpu", precision="fp32")
    assert pred.precision == ("bf16" if native else "fp32")
    assert pred.topk[0].index == ref.topk[0].index
    assert abs(pred.topk[0].probability - ref.topk[0].probability) < 0.02  # bf16: ~3 significant digits


def test_image_tab_defaults_to_the_probed_precision(native):
    from app.image_tab import build_image_tab

    with gr.Blocks() as demo:
        build_image_tab(demo)
    radio = next(c for c in demo.config["components"] if c["props"].get("elem_id") == "precision")
    assert radio["props"]["value"] == ("bf16" if native else "fp32")
    assert "fp32" in [v for _, v in radio["props"]["choices"]]  # fp32 stays one click away
    assert ("natively" in radio["props"]["info"]) is native


def test_token_shrinking_bookkeeping_stays_exact_under_bf16():
    torch.manual_seed(0)
    model = uniformer.create_model("uniformer_xxs_128_in1k", depths=(1, 1, 2, 1),
                                   keep_ratios=((1.0, 0.5), (0.5,)), trade_offs=((1.0, 0.5), (0.5,)))
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits, trace = model.forward_trace(x)
    assert logits.shape == (2, 1000) and torch.isfinite(logits.float()).all()
    shrunk = [t for t in trace if t.fused.shape[1]]
    assert shrunk
    for t in shrunk:
        assert t.scores.dtype == torch.float32  # scores ranked in fp32, not bf16
        n = t.kept.shape[1] + t.fused.shape[1]
        assert torch.equal(torch.cat([t.kept, t.fused], 1).sort(1).values, torch.arange(n).expand(2, n))
        assert t.fuse_weights.dtype == torch.float32 and torch.allclose(t.fuse_weights.sum(1), torch.ones(2))


@pytest.mark.parametrize("name,shape,kw", [
    ("uniformer_small_in1k", (2, 3, 64, 64), dict(depths=(1, 1, 2, 1))),
    ("uniformer_xxs_128_in1k", (2, 3, 64, 64), dict(depths=(1, 1, 2, 1), keep_ratios=((1.0, 0.5), (0.5,)),
                                                    trade_offs=((1.0, 0.5), (0.5,))))])
def test_autocast_weights_copy_gives_the_autocast_outputs_and_leaves_the_model_alone(name, shape, kw):
    from uniformer.precision import autocast_weights

    torch.manual_seed(0)
    model = uniformer.create_model(name, **kw).eval()
    with torch.no_grad():  # trained-like norm affine parameters (not exactly representable in bf16)
        for m in model.modules():
            if isinstance(m, (torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    x = torch.randn(*shape)
    fast = autocast_weights(model)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref, got = model(x), fast(x)
    assert torch.allclose(got.float(), ref.float(), rtol=0, atol=1e-6)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the original is untouched
    linear = next(m for m in fast.modules() if isinstance(m, torch.nn.Linear))
    norm = next(m for m in fast.modules() if isinstance(m, torch.nn.LayerNorm))
    assert linear.weight.dtype == torch.bfloat16 and norm.weight.dtype == torch.float32
    with pytest.raises(RuntimeError), torch.inference_mode():
        fast(x)  # outside autocast the bf16 layers refuse fp32 inputs
