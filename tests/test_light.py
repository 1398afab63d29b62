"""Light-weight UniFormer: token shrinking / recovering semantics, steering, purity, dtype safety."""
from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

import uniformer
from uniformer.models.light import HourglassBlock, ShrinkState


@pytest.fixture(scope="module")
def xxs():
    torch.manual_seed(0)
    return uniformer.create_model("uniformer_xxs_160_in1k")


def _image(seed=0, size=160):
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_keep_ratio_one_fuses_nothing(xxs):
    with torch.no_grad():
        logits, trace = xxs.forward_trace(_image(), keep_ratio=1.0)
    assert len(trace) == 8 + 2
    for t in trace:
        n = t.grid[0] * t.grid[1]
        assert t.fused.numel() == 0 and t.kept.shape == (1, n) and t.tokens_processed == n + 1


def test_default_schedule_matches_the_paper(xxs):
    """Keep ratio 0.5 (§5.1): block 1 of stage 3 sees all tokens, every later block int(N/2) + 2."""
    with torch.no_grad():
        _, trace = xxs.forward_trace(_image())
    counts = [t.tokens_processed for t in trace]
    assert counts == [101] + [52] * 7 + [14] * 2  # 160 px: stage 3 is 10x10, stage 4 5x5
    for t in trace[1:]:
        n = t.grid[0] * t.grid[1]
        both = torch.cat([t.kept[0], t.fused[0]]).sort().values
        assert torch.equal(both, torch.arange(n))  # a partition of the tokens
        torch.testing.assert_close(t.fuse_weights.sum(1), torch.ones(1))
        # kept tokens are the most important ones
        assert t.scores[0, t.kept[0]].min() >= t.scores[0, t.fused[0]].max()


@pytest.mark.parametrize("ratio", [1.0, 0.8, 0.6, 0.5, 0.4, 0.25])
def test_keep_ratio_steering(xxs, ratio):
    with torch.no_grad():
        logits, trace = xxs.forward_trace(_image(), keep_ratio=ratio)
        plain = xxs(_image(), keep_ratio=ratio)
    torch.testing.assert_close(logits, plain)
    for t in trace[1:]:
        n = t.grid[0] * t.grid[1]
        keep = int(n * ratio)
        assert t.tokens_processed == (n + 1 if keep >= n else keep + 2)


def test_steering_changes_predictions_smoothly(xxs):
    with torch.no_grad():
        full, half = xxs(_image(), keep_ratio=1.0), xxs(_image())
    assert not torch.equal(full, half)
    assert torch.isfinite(half).all()


def test_fused_tokens_receive_representative_update_by_hand():
    """A tiny hourglass block against a hand computation of §5.1 (Evo-ViT fast update)."""
    torch.manual_seed(3)
    C, heads = 8, 2
    block = HourglassBlock(C, keep_ratio=0.5, trade_off=0.5, head_dim=C // heads, mlp_ratio=2.0).eval()
    x = torch.randn(1, C, 2, 2)
    cls = torch.randn(1, 1, C)
    scores = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
    with torch.no_grad():
        out, state = block(x, ShrinkState(cls, scores))

        # --- by hand ---
        y = x + block.dpe(x)
        tok = y.flatten(2).transpose(1, 2)[0]  # (4, C)
        kept_idx, fused_idx = [1, 3], [2, 0]  # by decreasing score
        w = scores[0, fused_idx] / scores[0, fused_idx].sum()
        rep = (w[:, None] * tok[fused_idx]).sum(0, keepdim=True)
        seq = torch.cat([cls[0], tok[kept_idx], rep])  # (4, C): score token, 2 kept, representative

        def attention(z):
            qkv = block.mhra.qkv(z).reshape(len(z), 3, heads, C // heads).permute(1, 2, 0, 3)
            q, k, v = qkv
            a = (q @ k.transpose(-2, -1) * (C // heads) ** -0.5).softmax(-1)  # (heads, M, M)
            return block.mhra.proj((a @ v).transpose(0, 1).reshape(len(z), C)), a

        att, a = attention(F.layer_norm(seq, (C,), block.norm1.weight, block.norm1.bias, 1e-6))
        seq1 = seq + att
        mlp = block.ffn(F.layer_norm(seq1, (C,), block.norm2.weight, block.norm2.bias, 1e-6))
        seq2 = seq1 + mlp
        expected = torch.empty(4, C)
        expected[kept_idx] = seq2[1:3]
        expected[fused_idx] = tok[fused_idx] + att[-1] + mlp[-1]  # the representative's update
        new_scores = scores.clone()
        cls_row = a[:, 0, 1:3].mean(0)
        new_scores[0, kept_idx] = 0.5 * scores[0, kept_idx] + 0.5 * cls_row

    torch.testing.assert_close(out[0].flatten(1).T, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.cls[0], seq2[:1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.scores, new_scores, rtol=1e-5, atol=1e-6)


def test_forward_is_pure_and_thread_safe(xxs):
    """No hidden state: two threads with different images at once == one after the other."""
    images = [_image(seed) for seed in range(4)]
    with torch.no_grad():
        sequential = [xxs(im) for im in images]
    results = [None] * 4
    barrier = threading.Barrier(4)

    def run(i):
        barrier.wait()
        with torch.no_grad():
            for _ in range(2):
                results[i] = xxs(images[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, s in zip(results, sequential):
        torch.testing.assert_close(r, s)
    with torch.no_grad():  # repeatable: the same input twice gives the same output
        torch.testing.assert_close(xxs(images[0]), sequential[0])


def test_bf16_keeps_index_bookkeeping_exact(xxs):
    """At 288 px stage 3 has 324 tokens (> 256, where bf16 floats cannot hold indices): the trace
    is still a permutation and the scores are float32."""
    x = _image(size=288)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits, trace = xxs.forward_trace(x)
    assert trace[1].grid == (18, 18)
    for t in trace[1:]:
        n = t.grid[0] * t.grid[1]
        assert torch.equal(torch.cat([t.kept[0], t.fused[0]]).sort().values, torch.arange(n))
        assert t.scores.dtype == torch.float32 and t.kept.dtype == torch.int64
    with torch.no_grad():
        ref = xxs(x)
    assert torch.isfinite(logits).all()
    assert (logits.float().softmax(-1) - ref.softmax(-1)).abs().max() < 0.05


def test_shrinking_views_on_an_image(xxs):
    """Trace -> token states, scores, overlay in image coordinates, schedule table, keep-ratio sweep."""
    import numpy as np
    from PIL import Image

    from uniformer.data import eval_transform
    from uniformer.explain import input_geometry
    from uniformer.explain.shrinking import (FUSED, KEPT, keep_ratio_sweep, score_map, shrinking_overlay,
                                             token_state_map, tokens_per_layer)

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    x = eval_transform(xxs.pretrained_cfg)(img)[None]
    with torch.no_grad():
        _, trace = xxs.forward_trace(x)
    state = token_state_map(trace[2])
    assert state.shape == (10, 10) and (state == KEPT).sum() == 50 and (state == FUSED).sum() == 50
    assert score_map(trace[0]) is None and score_map(trace[2]).shape == (10, 10)
    geo = input_geometry(img.size, xxs.pretrained_cfg)
    overlay = np.asarray(shrinking_overlay(img, trace[2], geo)).astype(int)
    assert overlay.shape == (300, 400, 3)
    fused_token = int(trace[2].fused[0, 0])
    kept_token = int(trace[2].kept[0, 0])
    def centre_change(token):
        cx, cy = geo.token_centers((10, 10))[token]
        return np.abs(overlay[int(cy), int(cx)] - np.asarray(img)[int(cy), int(cx)]).sum()
    assert centre_change(fused_token) > centre_change(kept_token)  # fused tokens are darkened
    rows = tokens_per_layer(trace)
    assert [r["processed"] for r in rows] == [101] + [52] * 7 + [14] * 2 and rows[0]["stage"] == 3
    sweep = keep_ratio_sweep(xxs, x, ratios=(1.0, 0.5, 0.25), repeats=1)
    assert [p.tokens_processed for p in sweep] == sorted((p.tokens_processed for p in sweep), reverse=True)
    assert all(0 <= p.probability <= 1 and p.latency_ms > 0 for p in sweep)


def test_shrink_image_on_a_photo(xxs, tmp_path):
    """The library's photo-level sweep (what the app's Token shrinking tab shows): one run per keep
    ratio, the photo shown at most max_display_side long with its geometry, top-k named, same
    kept tokens as a direct forward_trace, and the tokens-per-layer chart of the trace."""
    import numpy as np
    from PIL import Image

    from uniformer.data import eval_transform
    from uniformer.data.images import image_digest
    from uniformer.explain.shrinking import scores_tied, shrink_image, tokens_figure

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    runs = shrink_image(xxs, photo, (1.0, 0.5), repeats=1, topk=3, device="cpu", max_display_side=200)
    assert list(runs) == [1.0, 0.5]
    half = runs[0.5]
    assert half.image.size == (200, 150) and half.geometry.image_size == (200, 150)
    assert len(half.topk) == 3 and half.topk[0].label == xxs.pretrained_cfg.class_names()[half.topk[0].index]
    assert half.model_name == "uniformer_xxs_160_in1k" and half.weights.source == "untrained" and half.device == "cpu"
    with torch.no_grad():
        _, trace = xxs.forward_trace(eval_transform(xxs.pretrained_cfg)(photo)[None], keep_ratio=0.5)
    assert all(torch.equal(a.kept, b.kept) for a, b in zip(half.trace, trace))
    assert runs[1.0].tokens_processed > half.tokens_processed
    assert half.overlay(2).size == (200, 150)
    fig = tokens_figure(half.rows, 2, 0.5)
    assert list(fig.data[0].y) == [r["kept"] for r in half.rows] and fig.layout.shapes[0].x0 == 0.5
    import dataclasses

    assert not scores_tied(trace[0])  # the first stage-3 block has no scores yet
    assert scores_tied(dataclasses.replace(trace[1], scores=torch.full_like(trace[1].scores, 0.01)))
    assert not scores_tied(dataclasses.replace(trace[1], scores=torch.arange(trace[1].scores.numel(),
                                                                             dtype=torch.float32)[None]))
    # one digest per content, whatever the path
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    photo.save(a)
    b.write_bytes(a.read_bytes())
    assert image_digest(str(a)) == image_digest(b) != image_digest(photo) == image_digest(photo.copy())
