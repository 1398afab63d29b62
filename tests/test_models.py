"""Model behaviour beyond parity: sizes, registry, configs, heads, inference API."""
from __future__ import annotations

import threading

import pytest
import torch

import uniformer
from uniformer.blocks import GlobalMHRA, LocalMHRA, UniFormerBlock
from uniformer.inference import autocast, predict_image, predict_images, select_device
from uniformer.models.uniformer import UniFormer, UniFormerConfig, official_to_ours

TINY = UniFormerConfig(depths=(1, 1, 1, 1), dims=(16, 32, 64, 64), head_dim=16, num_classes=7)


@pytest.mark.parametrize("size, stages", [
    ((224, 224), [(56, 56), (28, 28), (14, 14), (7, 7)]),
    ((480, 640), [(120, 160), (60, 80), (30, 40), (15, 20)]),
    ((97, 130), [(24, 32), (12, 16), (6, 8), (3, 4)]),  # floored like the official kernel=stride convs
])
def test_any_input_size_the_stride_allows(size, stages):
    model = UniFormer(TINY).eval()
    with torch.no_grad():
        outs = model.forward_stages(torch.randn(2, 3, *size))
        logits = model(torch.randn(2, 3, *size))
    assert [tuple(o.shape[-2:]) for o in outs] == stages
    assert [o.shape[1] for o in outs] == list(TINY.dims)
    assert logits.shape == (2, 7)


def test_conv_stem_ceil_divides():
    model = UniFormer(TINY.replace(stem="conv", downsample="conv")).eval()
    with torch.no_grad():
        outs = model.forward_stages(torch.randn(1, 3, 97, 130))
    assert [tuple(o.shape[-2:]) for o in outs] == [(25, 33), (13, 17), (7, 9), (4, 5)]


def test_video_layout():
    model = UniFormer(TINY.replace(spatial_dims=3)).eval()
    with torch.no_grad():
        outs = model.forward_stages(torch.randn(1, 3, 8, 64, 64))
    assert [tuple(o.shape[-3:]) for o in outs] == [(4, 16, 16), (4, 8, 8), (4, 4, 4), (4, 2, 2)]


def test_local_mhra_is_pwconv_dwconv_pwconv():
    m = LocalMHRA(8, kernel_size=5)
    x = torch.randn(1, 8, 9, 9)
    v = torch.nn.functional.conv2d(x, m.value.weight, m.value.bias)
    a = torch.nn.functional.conv2d(v, m.affinity.weight, m.affinity.bias, padding=2, groups=8)
    torch.testing.assert_close(m(x), torch.nn.functional.conv2d(a, m.proj.weight, m.proj.bias))


def test_global_mhra_equals_explicit_softmax_attention():
    m = GlobalMHRA(32, head_dim=8).eval()
    x = torch.randn(2, 10, 32)
    q, k, v = m.qkv_heads(x)
    attn = (q @ k.transpose(-2, -1) * 8 ** -0.5).softmax(-1)  # Eq. 7
    expected = m.proj((attn @ v).transpose(1, 2).reshape(2, 10, 32))
    torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="block type"):
        UniFormerConfig(block_types=("local", "local", "window?", "global"))
    with pytest.raises(ValueError, match="spatial_dims"):
        UniFormerConfig(spatial_dims=4)
    with pytest.raises(ValueError, match="multiple of head_dim"):
        GlobalMHRA(30, head_dim=8)
    with pytest.raises(ValueError, match="block_type"):
        UniFormerBlock(8, block_type="nope")


def test_token_labeling_eval_rule():
    model = UniFormer(TINY.replace(aux_head=True)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        tokens = feats.flatten(2).transpose(1, 2)
        expected = model.head(tokens.mean(1)) + 0.5 * model.aux_head(tokens).amax(1)
        torch.testing.assert_close(model(x), expected)


def test_layer_scale_placement():
    b_ls = uniformer.create_model("uniformer_base_ls_in1k")
    l_ls = uniformer.create_model("uniformer_large_ls_tl_224")
    assert isinstance(b_ls.stages[0].blocks[0].ls1, torch.nn.Identity)  # global blocks only
    assert b_ls.stages[2].blocks[0].ls1.gamma.shape == (320,)
    assert l_ls.stages[0].blocks[0].ls1.gamma.shape == (128,)  # every block


def test_official_key_mapping():
    assert official_to_ours("patch_embed1.proj.weight") == "stages.0.downsample.proj.weight"
    assert official_to_ours("blocks1.2.attn.weight") == "stages.0.blocks.2.mhra.affinity.weight"
    assert official_to_ours("blocks3.0.attn.qkv.bias") == "stages.2.blocks.0.mhra.qkv.bias"
    assert official_to_ours("blocks2.0.conv1.weight") == "stages.1.blocks.0.mhra.value.weight"
    assert official_to_ours("blocks4.1.pos_embed.weight") == "stages.3.blocks.1.dpe.proj.weight"
    assert official_to_ours("blocks1.0.gamma_2") == "stages.0.blocks.0.ls2.gamma"
    assert official_to_ours("head.weight") == "head.weight"


def test_registry():
    names = uniformer.list_models()
    assert {"uniformer_small_in1k", "uniformer_small_plus_in1k", "uniformer_base_in1k"} <= set(names)
    assert uniformer.list_models("*_tl_384") == ["uniformer_base_tl_384", "uniformer_large_ls_tl_384",
                                                 "uniformer_small_plus_tl_384", "uniformer_small_tl_384"]
    assert set(uniformer.list_models(task="image-classification", pretrained_on_hub=True)) == {
        "uniformer_small_in1k", "uniformer_small_plus_in1k", "uniformer_base_in1k", "uniformer_xxs_160_in1k"}
    with pytest.raises(KeyError, match="did you mean"):
        uniformer.create_model("uniformer_smal_in1k")
    # head_dim is fixed by the name (official factories reuse names with different head_dim)
    assert uniformer.get_entry("uniformer_small_in1k").config.head_dim == 64
    assert uniformer.get_entry("uniformer_small_tl_224").config.head_dim == 32
    assert uniformer.get_entry("uniformer_small_plus_in1k").config.head_dim == 32
    p = uniformer.get_entry("uniformer_small_tl_384").pretrained
    assert p.input_size == (3, 384, 384) and p.crop_pct == 0.9 and p.interpolation == "bicubic"


def test_create_model_overrides_and_reset_classifier():
    m = uniformer.create_model("uniformer_small_in1k", num_classes=3, drop_path_rate=0.1)
    assert m.head.out_features == 3 and m.cfg.drop_path_rate == 0.1
    assert not m.training
    m.reset_classifier(0)
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 64)).shape == (1, 512)


@pytest.fixture(scope="module")
def small():
    return uniformer.create_model("uniformer_small_in1k")


def test_predict_image(small):
    from skimage import data

    pred = predict_image(small, data.chelsea(), topk=5)
    assert len(pred.topk) == 5
    probs = [c.probability for c in pred.topk]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert pred.input_size == (3, 224, 224) and pred.inference_ms > 0
    assert pred.weights.source == "untrained"
    assert pred.to_dict()["weights"]["description"].startswith("untrained")
    with pytest.raises(ValueError, match="topk"):
        predict_image(small, data.chelsea(), topk=0)


def test_predict_images_batch_matches_single(small):
    from skimage import data

    imgs = [data.chelsea(), data.astronaut()]
    batch = predict_images(small, imgs, topk=3)
    single = [predict_image(small, im, topk=3) for im in imgs]
    for b, s in zip(batch, single):
        assert [c.index for c in b.topk] == [c.index for c in s.topk]
        for cb, cs in zip(b.topk, s.topk):
            assert cb.probability == pytest.approx(cs.probability, rel=1e-4, abs=1e-6)


def test_bf16_autocast_on_cpu_close_to_fp32(small):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fp32 = small(x).softmax(-1)
        with autocast(torch.device("cpu"), "bf16"):
            bf16 = small(x)
    assert bf16.dtype == torch.bfloat16
    assert (bf16.float().softmax(-1) - fp32).abs().max() < 0.05
    with pytest.raises(ValueError, match="CUDA"):
        autocast(torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match="precision"):
        autocast(torch.device("cpu"), "fp64")


def test_device_selection():
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            select_device("cuda")


def test_forward_is_thread_safe(small):
    """Two threads running different inputs get the same results as running them one after the other."""
    xs = [torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    with torch.no_grad():
        expected = [small(x) for x in xs]
    results = [None] * 4

    def run(i):
        with torch.no_grad():
            results[i] = small(xs[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        torch.testing.assert_close(r, e)
