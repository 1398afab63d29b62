"""The explain library: capture, query maps, local affinity, distances, rollout, PCA, CAM, threads.

Small inputs throughout (64 x 64 crops, tiny configs): every property checked here holds at any size.
"""
from __future__ import annotations

import dataclasses
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import uniformer
from uniformer import explain as E
from uniformer.models.uniformer import UniFormer, UniFormerConfig

SIZE = 64
CFG = dataclasses.replace(uniformer.get_entry("uniformer_small_in1k").pretrained, input_size=(3, SIZE, SIZE))
CAM_REQUIRED = ("GradCAM", "GradCAM++", "EigenCAM", "LayerCAM")


def _photo(w: int, h: int, seed: int) -> np.ndarray:
    """A smooth random colour image (H, W, 3) uint8: distinct, image-like tokens."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(3, 6, 8, generator=g)
    big = F.interpolate(small[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    return (big.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def _tiny(head_dim: int = 16, **kw) -> UniFormer:
    """A small UniFormer (stages 3-4 global) carrying the S preprocessing at 64 px."""
    torch.manual_seed(0)
    cfg = UniFormerConfig(depths=(1, 2, 2, 1), dims=(16, 32, 64, 64), head_dim=head_dim, num_classes=10, **kw)
    model = UniFormer(cfg).eval()
    model.pretrained_cfg = dataclasses.replace(CFG, num_classes=10)
    model.model_name = "tiny"
    return model


def _self_attending(model: UniFormer, gain: float = 40.0) -> UniFormer:
    """Hand-set q = k = gain * Norm(X) in every global MHRA. With one head per block (head_dim =
    dim) and LayerNorm output of norm sqrt(C) for every token, q_i . k_j is largest at j = i by
    Cauchy-Schwarz, and ``gain`` makes the softmax one-hot: every token attends only to itself."""
    with torch.no_grad():
        for m in E.global_mhra_modules(model).values():
            C = m.qkv.in_features
            assert m.num_heads == 1
            m.qkv.weight[:2 * C] = torch.cat([torch.eye(C), torch.eye(C)]) * gain
            m.qkv.bias[:2 * C] = 0
    return model


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return uniformer.create_model("uniformer_small_in1k")


@pytest.fixture(scope="module")
def small_analysis(small):
    return E.analyze(small, _photo(96, 80, 1), pretrained_cfg=CFG)


def test_capture_leaves_logits_unchanged_and_lists_every_block(small, small_analysis):
    with torch.no_grad():
        plain = small(small_analysis.input)[0]
    assert torch.equal(torch.from_numpy(small_analysis.logits), plain)
    kinds = [i.kind for i in small_analysis.layers]
    assert kinds == ["local"] * 7 + ["global"] * 11  # S: (3, 4, 8, 3) blocks, stages 1-2 local
    assert not small_analysis.skipped
    grids = {i.stage: i.grid for i in small_analysis.layers}
    assert grids == {0: (16, 16), 1: (8, 8), 2: (4, 4), 3: (2, 2)}
    assert [f.shape for f in small_analysis.features] == [(64, 16, 16), (128, 8, 8), (320, 4, 4), (512, 2, 2)]


def test_attention_rows_sum_to_one(small_analysis):
    for info in small_analysis.layers_of(E.GLOBAL):
        A = small_analysis.attention[info.name]
        assert A.shape == (info.heads, 16 if info.stage == 2 else 4, 16 if info.stage == 2 else 4)
        assert (A >= 0).all()
        np.testing.assert_allclose(A.sum(-1), 1, atol=1e-5)
    x, y = 48, 40  # the centre of the 96 x 80 image
    for q in E.query_maps(small_analysis, x, y):
        np.testing.assert_allclose(q.per_head.sum((1, 2)), 1, atol=1e-5)
        np.testing.assert_allclose(q.mean.sum(), 1, atol=1e-5)


@pytest.mark.parametrize("size", [(160, 90), (90, 160), (101, 77)])
def test_pixel_to_token_at_corners_and_centre_of_non_square_images(small, size):
    W, H = size
    a = E.analyze(small, _photo(W, H, 2), pretrained_cfg=CFG)
    x0, y0, x1, y1 = a.geometry.crop_box()
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    for info in (a.layers_of(stage=s)[0] for s in range(4)):
        h, w = info.grid
        e = 0.01
        assert E.query_token(a, x0 + e, y0 + e, info) == 0
        assert E.query_token(a, x1 - e, y0 + e, info) == w - 1
        assert E.query_token(a, x0 + e, y1 - e, info) == (h - 1) * w
        assert E.query_token(a, x1 - e, y1 - e, info) == h * w - 1
        r, c = divmod(E.query_token(a, (x0 + x1) / 2 + e, (y0 + y1) / 2 + e, info), w)
        assert (r, c) == (h // 2, w // 2)  # just below-right of the crop's centre
        centres = a.geometry.token_centers(info.grid)
        assert [E.query_token(a, *centres[i], info) for i in range(h * w)] == list(range(h * w))
    with pytest.raises(E.OutsideCropError, match="outside the centre crop") as info:
        E.query_map(a, a.layers_of(E.GLOBAL)[0], x0 - 1 if x0 >= 1 else W / 2, y0 - 1 if y0 >= 1 else H / 2)
    assert info.value.crop_box == a.geometry.crop_box() and isinstance(info.value, ValueError)


def test_to_image_puts_each_token_where_token_at_says(small_analysis):
    a = small_analysis
    for grid in ((16, 16), (4, 4), (2, 2)):
        ids = np.arange(grid[0] * grid[1], dtype=np.float32).reshape(grid)
        img = E.to_image(ids, a.geometry, fill=-1)
        H, W = img.shape
        assert (W, H) == a.image_size
        for v in range(0, H, 7):
            for u in range(0, W, 5):
                try:
                    expected = a.geometry.token_at(u + 0.5, v + 0.5, grid)
                except ValueError:
                    expected = -1
                assert img[v, u] == expected


@pytest.mark.parametrize("where", [(0.5, 0.5), (0.1, 0.15), (0.9, 0.8), (0.3, 0.95)])
def test_query_map_peaks_at_the_clicked_token_when_tokens_attend_to_themselves(where):
    model = _self_attending(_tiny(head_dim=64))
    a = E.analyze(model, _photo(120, 90, 3))
    x0, y0, x1, y1 = a.geometry.crop_box()
    x, y = x0 + where[0] * (x1 - x0), y0 + where[1] * (y1 - y0)
    layers = a.layers_of(E.GLOBAL)
    assert len(layers) == 3
    for info in layers:
        q = E.query_map(a, info, x, y)
        assert q.token == a.geometry.token_at(x, y, info.grid)
        assert int(q.mean.argmax()) == q.token
        assert q.mean.flat[q.token] > 0.99
        # and the rollout of self-attention is the plain 2x2 downsampling map
    r = E.attention_rollout(a)
    np.testing.assert_allclose(r.matrix, E.downsample_matrix(r.grid3, r.grid4), atol=1e-3)
    d = E.mean_attention_distance(a)
    assert all(dist.max() < 0.1 for info, dist in zip(d.layers, d.per_head) if info.kind == E.GLOBAL)


def test_uniform_attention_distance_is_the_mean_token_distance():
    model = _tiny()
    with torch.no_grad():
        for m in E.global_mhra_modules(model).values():
            C = m.qkv.in_features
            m.qkv.weight[:2 * C] = 0  # q = k = 0: every token attends uniformly to all
            m.qkv.bias[:2 * C] = 0
    a = E.analyze(model, _photo(64, 64, 4))
    d = E.mean_attention_distance(a)
    for info, dist in zip(d.layers, d.per_head):
        if info.kind == E.GLOBAL:
            stride = a.stride(info.grid)
            assert stride == (64 / info.grid[1], 64 / info.grid[0])
            np.testing.assert_allclose(dist, E.token_distances(info.grid, stride).mean(), rtol=1e-4)
    assert d.local_reach == 2 * 8  # 5x5 kernel, stage-2 stride 8 (model-input pixels)
    assert d.units == "model-input pixels"


def test_local_affinity_shown_equals_the_model_kernel_weights(small, small_analysis):
    a = small_analysis
    for info in a.layers_of(E.LOCAL):
        aff = E.local_affinity(a, info)
        weight = small.get_submodule(info.name).affinity.weight[:, 0].detach().numpy()
        np.testing.assert_array_equal(aff.kernels, weight)
        assert aff.head_dim == 64 and info.heads == info.dim // 64  # display groups of head_dim channels
    info = a.layers_of(E.LOCAL, stage=1)[-1]
    aff = E.local_affinity(a, info)
    h, w = info.grid
    token = 3 * w + 4
    shown = aff.neighbourhood(token)  # (C, h, w): row `token` of A_n, Eq. 6
    # the same row from the convolution itself: response at `token` to a one-hot at every j
    weight = small.get_submodule(info.name).affinity.weight.detach()
    one_hot = torch.eye(h * w).view(h * w, 1, h, w).expand(-1, weight.shape[0], -1, -1)
    response = F.conv2d(one_hot, weight, padding=2, groups=weight.shape[0])  # (j, C, h, w)
    row = response[:, :, 3, 4].T.reshape(-1, h, w).numpy()  # A_n[token, j]
    np.testing.assert_allclose(shown, row, atol=1e-6)
    np.testing.assert_array_equal(shown[:, 1:6, 2:7], aff.kernels)  # the kernel, unflipped, centred
    q = E.query_map(a, info, *a.geometry.token_centers(info.grid)[token])
    assert q.token == token and q.per_head.shape == (2, h, w)
    mag = np.abs(aff.kernels) / np.abs(aff.kernels).sum((1, 2), keepdims=True)
    np.testing.assert_allclose(q.per_head[1, 1:6, 2:7], mag[64:].mean(0), rtol=1e-5)
    with pytest.raises(ValueError, match="not a local MHRA"):
        E.local_affinity(a, a.layers_of(E.GLOBAL)[0])


def test_local_vs_global_picks_stage2_next_to_stages_3_and_4(small_analysis):
    a = small_analysis
    lvg = E.local_vs_global(a, 48, 40)
    assert [(m.layer.stage, m.layer.kind) for m in lvg.panels] == [(1, "local"), (2, "global"), (3, "global")]
    assert [m.layer.block for m in lvg.panels] == [3, 7, 2]
    chosen = a.layers_of(E.GLOBAL, stage=2)[1]
    assert E.local_vs_global(a, 48, 40, selected=chosen).global_[0].layer == chosen


def test_effective_receptive_field_stays_inside_the_theoretical_one():
    model = _tiny()
    a = E.analyze(model, _photo(64, 64, 5))
    # stem 4x4/4; stage-1 block: DPE 3x3 + local 5x5 at jump 4; 2x2/2 downsample; 2 stage-2 blocks at jump 8
    assert E.theoretical_receptive_field(model, 0) == (4 + (2 + 4) * 4, 4)
    assert E.theoretical_receptive_field(model, 1) == (4 + (2 + 4) * 4 + 4 + 2 * (2 + 4) * 8, 8)
    for stage, grid in ((0, (16, 16)), (1, (8, 8))):
        rf = E.effective_receptive_field(model, a, 20, 36, stage=stage)
        assert rf.erf.shape == (SIZE, SIZE) and rf.erf.max() == 1 and rf.grid == grid
        assert rf.token == a.geometry.token_at(20, 36, grid)
        x0, y0, x1, y1 = rf.theoretical
        ys, xs = np.nonzero(rf.erf > 0)
        assert xs.min() >= np.floor(x0) and xs.max() < np.ceil(x1)
        assert ys.min() >= np.floor(y0) and ys.max() < np.ceil(y1)
        r, c = divmod(rf.token, grid[1])
        stride = SIZE / grid[1]
        peak_y, peak_x = np.unravel_index(rf.erf.argmax(), rf.erf.shape)
        assert abs(peak_x - (c + 0.5) * stride) <= 2 * stride and abs(peak_y - (r + 0.5) * stride) <= 2 * stride
        assert 0 < rf.radius_90 <= rf.theoretical_size / 2 * 2 ** 0.5
    assert (x1 - x0, y1 - y0) == (64, 64)  # stage 2 already sees the whole 64 px crop
    assert all(p.grad is None for p in model.parameters())


def test_rollout_rows_are_distributions_and_pca_is_rgb(small_analysis):
    r = E.attention_rollout(small_analysis)
    assert r.matrix.shape == (4, 16) and r.grid3 == (4, 4) and r.grid4 == (2, 2)
    np.testing.assert_allclose(r.matrix.sum(1), 1, atol=1e-6)
    assert r.class_map.shape == (4, 4) and r.token_map(3).shape == (4, 4)
    assert len(r.layers) == 11
    for rgb, f in zip(E.stage_pca(small_analysis), small_analysis.features):
        assert rgb.shape == (*f.shape[1:], 3) and rgb.min() >= 0 and rgb.max() <= 1
    rank1 = np.outer(np.arange(4.0), np.linspace(-1, 1, 16)).reshape(4, 4, 4)
    rgb = E.pca_rgb(rank1)
    np.testing.assert_allclose(rgb[..., 0].ravel(), np.linspace(0, 1, 16), atol=1e-9)  # 1st component
    np.testing.assert_allclose(rgb[..., 1:], 0, atol=1e-6)  # nothing else varies


@pytest.mark.parametrize("method", CAM_REQUIRED + ("XGradCAM", "HiResCAM"))
def test_grad_cam_returns_an_image_sized_map_in_0_1(small, small_analysis, method):
    a = small_analysis
    cam = E.class_activation_map(small, a, method, stage=3)
    W, H = a.image_size
    assert cam.map.shape == (H, W) and cam.map.dtype == np.float32
    assert cam.map.min() >= 0 and cam.map.max() <= 1 and cam.map.max() > 0.5
    assert cam.input_map.shape == (SIZE, SIZE)
    assert cam.class_index == int(np.argmax(a.logits))
    x0, y0, x1, y1 = a.geometry.crop_box()
    assert cam.map[:, : int(x0)].max(initial=0) == 0 and cam.map[:, int(np.ceil(x1)):].max(initial=0) == 0
    assert all(p.grad is None and p.requires_grad for p in small.parameters())  # shared model untouched
    assert not any(m._forward_hooks for m in small.modules())


def test_shared_weights_twin_shares_storage_and_carries_no_hooks(small):
    with E.capture_attention(small):  # hooks on the shared model while the twin is made
        twin = E.shared_weights_twin(small)
        assert any(m._forward_pre_hooks for m in small.modules())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in twin.modules())
    pairs = list(zip(small.parameters(), twin.parameters()))
    assert len(pairs) == len(list(small.parameters()))
    assert all(a.data_ptr() == b.data_ptr() and b.requires_grad is False and a.requires_grad for a, b in pairs)


def test_grad_cam_for_a_chosen_class_and_stage_and_bad_arguments(small, small_analysis):
    cam = E.class_activation_map(small, small_analysis, "GradCAM++", stage=2, class_index=7)
    assert cam.class_index == 7 and cam.stage == 2 and cam.label == uniformer.data.get_labels("imagenet-1k")[7]
    with pytest.raises(ValueError, match="unknown CAM method"):
        E.class_activation_map(small, small_analysis, "NoSuchCAM")
    with pytest.raises(ValueError, match="class index"):
        E.class_activation_map(small, small_analysis, "GradCAM", class_index=1000)


def _light(name: str = "uniformer_xxs_160_in1k", **kw):
    torch.manual_seed(0)
    return uniformer.create_model(name, **kw).eval()


def _run_cfg(model, size: int = SIZE):
    return dataclasses.replace(model.pretrained_cfg, input_size=(3, size, size))


def _manual_attention(mhra, tokens: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) written out from the qkv weights: (B, M, C) -> (B, heads, M, M) float64."""
    B, M, C = tokens.shape
    qkv = tokens.double() @ mhra.qkv.weight.double().T + mhra.qkv.bias.double()
    qkv = qkv.view(B, M, 3, mhra.num_heads, C // mhra.num_heads)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)  # (B, heads, M, d)
    return (q @ k.transpose(-1, -2) / (C // mhra.num_heads) ** 0.5).softmax(-1)


def _record_outputs(modules: dict) -> tuple[dict, list]:
    """Forward hooks keeping the output of each named module (the MHRA input for ``norm1``)."""
    seen: dict = {}
    handles = [m.register_forward_hook(lambda mod, args, out, n=n: seen.__setitem__(n, out.detach()))
               for n, m in modules.items()]
    return seen, handles


def test_light_model_hourglass_attention_is_captured_and_every_view_works():
    model = _light()
    a = E.analyze(model, _photo(90, 70, 6), pretrained_cfg=_run_cfg(model))
    with torch.no_grad():
        assert torch.equal(torch.from_numpy(a.logits), model(a.input)[0])  # capture changes nothing
    hourglass = [i for i in a.layers if i.stage >= 2]
    assert len(hourglass) == 10 and not a.skipped
    assert all(i.kind == E.GLOBAL and i.variant == E.HOURGLASS and "hourglass" in i.label for i in hourglass)
    assert [i.grid for i in hourglass] == [(4, 4)] * 8 + [(2, 2)] * 2
    assert a.kept_tokens[hourglass[0].name].shape == (16,) and a.kept_tokens[hourglass[1].name].shape == (8,)
    for info in hourglass:
        A = a.attention[info.name]
        N = info.grid[0] * info.grid[1]
        assert A.shape == (info.heads, N, N) and (A >= 0).all()
        assert (A.sum(-1) < 1).all() and (A.sum(-1) > 0.3).all()  # the rest went to the score token
        q = E.query_map(a, info, 45, 35)
        assert q.per_head.shape == (info.heads, *info.grid) and q.mean.shape == info.grid
        np.testing.assert_allclose(q.per_head.reshape(info.heads, -1), A[:, q.token], rtol=0, atol=0)
    assert [m.layer.kind for m in E.local_vs_global(a, 45, 35).panels] == ["local", "global", "global"]
    r = E.attention_rollout(a)
    assert r.grid3 == (4, 4) and r.grid4 == (2, 2) and len(r.layers) == 10
    np.testing.assert_allclose(r.matrix.sum(1), 1, atol=1e-9)
    d = E.mean_attention_distance(a)
    assert len(d.layers) == len(a.layers) and all(np.isfinite(x).all() and (x > 0).all() for x in d.per_head)
    cam = E.class_activation_map(model, a, "GradCAM", stage=3)  # hourglass block output (map, state)
    assert cam.map.shape == (70, 90) and 0 < cam.map.max() <= 1
    assert E.effective_receptive_field(model, a, 45, 35, stage=1).erf.max() == 1


def test_light_capture_rows_equal_a_direct_recomputation_of_the_shrunk_attention():
    model = _light()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    blocks = {f"stages.{s}.blocks.{b}.mhra": model.stages[s].blocks[b] for s, b in ((2, 0), (2, 1), (2, 5), (3, 0))}
    seen, handles = _record_outputs({n: blk.norm1 for n, blk in blocks.items()})  # the MHRA inputs
    try:
        with torch.no_grad(), E.capture_attention(model) as cap:
            logits, trace = model.forward_trace(x)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        assert torch.equal(logits, model(x))
    traces = {f"stages.{t.stage}.blocks.{t.block}.mhra": t for t in trace}
    for name in blocks:
        t, shrunk, A = traces[name], cap.shrunk[name], cap.maps[name]
        assert cap.kinds[name] == "hourglass" and cap.spatial[name] == t.grid == shrunk.grid
        assert torch.equal(shrunk.kept, t.kept) and torch.equal(shrunk.fused, t.fused)
        P = _manual_attention(blocks[name].mhra, seen[name])  # (B, heads, M, M)
        assert P.shape[-1] == t.tokens_processed
        torch.testing.assert_close(shrunk.probs.double(), P, rtol=1e-4, atol=1e-6)
        M, K, N = P.shape[-1], t.kept.shape[1], A.shape[-1]
        for b in range(2):
            expected = torch.zeros(P.shape[1], M, N, dtype=torch.float64)  # shrunk row -> grid columns
            expected[:, :, t.kept[b]] = P[b, :, :, 1:K + 1]
            if t.fused.shape[1]:
                expected[:, :, t.fused[b]] = P[b, :, :, M - 1:] * t.fuse_weights[b].double()  # split
            for rank, token in enumerate(t.kept[b].tolist()):  # a kept token: its own row
                torch.testing.assert_close(A[b, :, token].double(), expected[:, 1 + rank], rtol=1e-4, atol=1e-6)
            for token in t.fused[b].tolist():  # a fused token: the representative's row
                torch.testing.assert_close(A[b, :, token].double(), expected[:, M - 1], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(A[b].sum(-1).double() + shrunk.score_token_share()[b].double(),
                                       torch.ones(P.shape[1], N, dtype=torch.float64), atol=1e-5, rtol=0)
    assert traces["stages.2.blocks.0.mhra"].fused.shape[1] == 0  # the first block keeps all: M = N + 1
    assert traces["stages.2.blocks.1.mhra"].fused.shape[1] == 8  # then half of the 4 x 4 grid is fused


def test_light_capture_without_shrinking_is_the_plain_attention_over_the_grid():
    model = _light()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(8))
    with torch.no_grad(), E.capture_attention(model) as cap:
        model(x, keep_ratio=1.0)
    for name, A in cap.maps.items():
        P = cap.shrunk[name].probs  # [score token, all N tokens in grid order]
        assert not cap.shrunk[name].shrinks and P.shape[-1] == A.shape[-1] + 1
        torch.testing.assert_close(A, P[:, :, 1:, 1:], rtol=0, atol=0)


def test_light_video_capture_keeps_the_space_time_grid_and_matches_token_attention():
    from uniformer.explain import video as V

    torch.manual_seed(0)
    model = uniformer.create_model("uniformer_xxs4_128_k400", depths=(1, 1, 1, 1), dims=(16, 32, 64, 64), head_dim=16,
                                   keep_ratios=((1.0,), (0.5,)), trade_offs=((1.0,), (0.5,))).eval()
    clip = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        plain = model(clip)
        with E.capture_attention(model) as cap:
            captured = model(clip)
    assert torch.equal(plain, captured)
    assert cap.spatial == {"stages.2.blocks.0.mhra": (2, 4, 4), "stages.3.blocks.0.mhra": (2, 2, 2)}  # stem halves T
    assert cap.shrunk["stages.3.blocks.0.mhra"].shrinks  # keep 2 of 4 tokens in stage 4
    att = V.token_attention(model, clip, frame=1, x=40, y=20, block=(2, 0))  # an independent implementation
    t, r, c = att.query
    row = cap.maps["stages.2.blocks.0.mhra"][0, :, (t * 4 + r) * 4 + c].reshape(-1, 2, 4, 4)
    np.testing.assert_allclose(row.numpy(), att.per_head, atol=1e-6)


def _windowed_backbone(window: int = 4):
    """UniFormer-S dense backbone with a hybrid stage 3 (blocks 1-3 windowed, block 4 global), tiny depths."""
    torch.manual_seed(0)
    return uniformer.create_model("uniformer_small_hybrid14_backbone", window_size=window, depths=(1, 1, 4, 1)).eval()


def _brute_force_windows(mhra, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Per window: the window's tokens (zeros where it pads past the grid), their softmax, written
    back for the real tokens only -> (B, heads, N, N) float64."""
    B, N, C = tokens.shape
    H, W = grid
    ws = mhra.window_size
    out = torch.zeros(B, mhra.num_heads, N, N, dtype=torch.float64)
    for r0 in range(0, H, ws):
        for c0 in range(0, W, ws):
            cells = [(r, c) for r in range(r0, r0 + ws) for c in range(c0, c0 + ws)]
            feats = torch.stack([tokens[:, r * W + c] if r < H and c < W else torch.zeros(B, C) for r, c in cells], 1)
            P = _manual_attention(mhra, feats)
            real = [(k, r * W + c) for k, (r, c) in enumerate(cells) if r < H and c < W]
            for ki, i in real:
                for kj, j in real:
                    out[:, :, i, j] = P[:, :, ki, kj]
    return out


def test_windowed_capture_equals_a_brute_force_per_window_softmax():
    model = _windowed_backbone()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(10))  # stage 3: 6 x 6, windows 4 x 4
    blocks = {f"stages.2.blocks.{b}.mhra": model.stages[2].blocks[b] for b in range(4)}
    seen, handles = _record_outputs({n: blk.norm1 for n, blk in blocks.items()})
    try:
        with torch.no_grad(), E.capture_attention(model) as cap:
            captured = model(x)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        plain = model(x)
    assert len(plain) == 4 and all(torch.equal(p, q) for p, q in zip(plain, captured))  # bit-identical
    assert [cap.kinds[n] for n in blocks] == ["window", "window", "window", "global"]
    assert cap.kinds["stages.3.blocks.0.mhra"] == "global"
    in_full_window = [r * 6 + c for r in range(4) for c in range(4)]  # window (0, 0): no padding
    padded = [i for i in range(36) if i not in in_full_window]
    for name in list(blocks)[:3]:
        A = cap.maps[name]
        assert A.shape == (2, 5, 36, 36) and cap.spatial[name] == (6, 6)
        torch.testing.assert_close(A.double(), _brute_force_windows(blocks[name].mhra, seen[name], (6, 6)),
                                   rtol=1e-4, atol=1e-6)
        sums = A.sum(-1)
        torch.testing.assert_close(sums[..., in_full_window], torch.ones(2, 5, 16), atol=1e-5, rtol=0)
        assert (sums[..., padded] < 1 - 1e-3).all()  # edge windows: the rest went to the zero padding
        assert (A[..., in_full_window, :][..., padded] == 0).all()  # nothing across windows
    torch.testing.assert_close(cap.maps["stages.2.blocks.3.mhra"].sum(-1), torch.ones(2, 5, 36), atol=1e-5, rtol=0)


def test_analyze_a_hybrid_dense_backbone_end_to_end():
    model = _windowed_backbone()
    a = E.analyze(model, _photo(120, 100, 12), pretrained_cfg=_run_cfg(model, 96))
    assert a.logits is None and a.top_classes() == [] and not a.skipped
    stage3 = a.layers_of(stage=2)
    assert [i.variant for i in stage3] == ["window", "window", "window", None]
    assert stage3[0].label == "stage 3 \u00b7 block 1 (global, window)" and stage3[3].label.endswith("(global)")
    assert all(i.grid == (6, 6) for i in stage3)
    x, y = a.geometry.token_centers((6, 6))[5 * 6 + 1]  # token (5, 1): window (1, 0), rows 4-5, cols 0-3
    q = E.query_map(a, stage3[0], x, y)
    assert q.token == 31 and q.per_head.shape == (5, 6, 6)
    outside = np.ones((6, 6), bool)
    outside[4:, :4] = False
    assert (q.per_head[:, outside] == 0).all() and (q.per_head[:, ~outside] > 0).all()
    assert 0.3 < q.mean.sum() < 1  # an edge window
    assert E.query_map(a, stage3[3], x, y).mean.sum() == pytest.approx(1, abs=1e-5)
    r = E.attention_rollout(a)
    assert r.matrix.shape == (9, 36)
    np.testing.assert_allclose(r.matrix.sum(1), 1, atol=1e-9)
    d = E.mean_attention_distance(a)
    assert len(d.layers) == len(a.layers) and all(np.isfinite(v).all() for v in d.per_head)
    assert len(E.local_vs_global(a, x, y).panels) == 3


def test_project_model_uses_its_own_class_names():
    model = uniformer.create_model("uniformer_xxs_digits", pretrained=True).eval()
    assert model.pretrained_cfg.class_names() == tuple("0123456789")
    a = E.analyze(model, _photo(64, 64, 13))
    assert a.class_names == tuple("0123456789") and not a.skipped
    top = a.top_classes(3)
    assert [label for _, label, _ in top] == [str(i) for i, _, _ in top]
    assert [i.variant for i in a.layers if i.kind == E.GLOBAL] == [E.HOURGLASS] * 4  # light: captured too
    cam = E.class_activation_map(model, a, "GradCAM", stage=3, class_index=7)
    assert cam.label == "7"
    unknown = dataclasses.replace(a, class_names=None, label_set="no-such-set")
    assert unknown.class_label(3) == "class 3" and unknown.top_classes(1)[0][1].startswith("class ")
    assert dataclasses.replace(a, class_names=None, label_set="imagenet-1k").class_label(1) == \
        uniformer.data.get_labels("imagenet-1k")[1]


def test_capture_is_thread_safe_each_request_sees_only_its_own_maps(small):
    """Concurrent captures and plain forwards on ONE shared model: each capture sees only its own
    maps, every forward gives the sequential logits, and no forward ever meets a half-registered
    hook. The thread switch interval is cut to 1 us so the threads interleave inside hook
    (de)registration: the old capture, which registered ``with_kwargs`` hooks at every call, fails
    here with ``TypeError: pre_hook() missing ... 'kwargs'`` (or wrong maps) in nearly every run."""
    model = _tiny(head_dim=8)  # its own model: hooks must never have been installed on it before
    images = [torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    with torch.no_grad():
        plain = [model(x) for x in images]
        expected = []
        for x in images:
            with E.capture_attention(model) as cap:
                logits = model(x)
            assert torch.equal(logits, plain[len(expected)])  # capture leaves the logits bit-identical
            expected.append({k: v.clone() for k, v in cap.maps.items()})
    assert len(expected[0]) == 3 and not torch.allclose(expected[0]["stages.2.blocks.0.mhra"],
                                                        expected[1]["stages.2.blocks.0.mhra"])
    errors: list = []
    rounds, n_capture, n_plain = 40, 4, 4
    barrier = threading.Barrier(n_capture + n_plain)

    def capturing(i):
        x = images[i % len(images)]
        barrier.wait()
        for _ in range(rounds):
            with torch.no_grad(), E.capture_attention(model) as cap:
                logits = model(x)
            if not torch.equal(logits, plain[i % len(images)]):
                errors.append(("capture logits", i))
            exp = expected[i % len(images)]
            if cap.maps.keys() != exp.keys() or any(not torch.allclose(cap.maps[k], exp[k], atol=1e-6) for k in exp):
                errors.append(("maps", i))

    def plain_forwards(i):
        x = images[i % len(images)]
        barrier.wait()
        for _ in range(rounds):
            with torch.no_grad():
                logits = model(x)
            if not torch.equal(logits, plain[i % len(images)]):
                errors.append(("plain logits", i))

    def guard(fn, i):
        try:
            fn(i)
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            errors.append((type(exc).__name__, str(exc)))

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=guard, args=(capturing, i)) for i in range(n_capture)]
        threads += [threading.Thread(target=guard, args=(plain_forwards, i)) for i in range(n_plain)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert not errors, errors[:5]


def test_analyze_and_cam_concurrently_on_the_shared_model(small):
    """The app's pattern: analyses of different photos and a Grad-CAM at once on one model."""
    images = [_photo(80, 64, 10), _photo(64, 96, 11)]
    expected = [E.analyze(small, im, pretrained_cfg=CFG) for im in images]
    cam_expected = E.class_activation_map(small, expected[0], "GradCAM", stage=2)
    results: dict = {}
    barrier = threading.Barrier(3)

    def run(key, fn):
        barrier.wait()
        for k in range(2):
            results[key, k] = fn()

    threads = [threading.Thread(target=run, args=(i, lambda im=im: E.analyze(small, im, pretrained_cfg=CFG)))
               for i, im in enumerate(images)]
    threads.append(threading.Thread(target=run, args=("cam", lambda: E.class_activation_map(
        small, expected[0], "GradCAM", stage=2))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, exp in enumerate(expected):
        for k in range(2):
            got = results[i, k]
            assert got.attention.keys() == exp.attention.keys()
            for name in exp.attention:
                np.testing.assert_allclose(got.attention[name], exp.attention[name], atol=1e-5)
            np.testing.assert_allclose(got.logits, exp.logits, atol=1e-4)
    for k in range(2):
        np.testing.assert_allclose(results["cam", k].map, cam_expected.map, atol=1e-4)


def test_overlay_and_contact_sheet_are_images(small_analysis):
    a = small_analysis
    q = E.query_map(a, a.layers_of(E.GLOBAL)[0], 48, 40)
    box = a.geometry.token_box(q.token, q.layer.grid)
    size = E.display_size(a.image_size, 48)
    assert size == (48, 40)
    im = E.overlay(a.image, q.mean, a.geometry, size=size, boxes=[(box, "cyan")])
    assert im.size == size and im.mode == "RGB"
    full = np.asarray(E.overlay(a.image, None, a.geometry))
    x0 = int(np.ceil(a.geometry.crop_box()[0]))
    assert full[:, x0 + 2:x0 + 4].std() > 0  # inside the crop: the photo; outside greyed
    outside = full[:, : int(a.geometry.crop_box()[0])]
    assert outside.size == 0 or np.abs(outside.astype(int) - outside.mean(-1, keepdims=True)).max() <= 1
    sheet = E.contact_sheet([("a", im), ("b", im)], height=50, title="t")
    assert sheet.mode == "RGB" and sheet.height > 50
    lut = E.colorize(np.array([0.0, 1.0]))
    assert lut.shape == (2, 3) and tuple(lut[0]) == (0, 0, 4)  # Inferno from plotly


def test_figures_are_valid_plotly_with_hover_values(small_analysis):
    import plotly.graph_objects as go

    a = small_analysis
    g = a.layers_of(E.GLOBAL)[0]
    local = a.layers_of(E.LOCAL)[-1]
    figures = [E.query_figure(E.query_map(a, g, 48, 40), head=2), E.query_figure(E.query_map(a, local, 48, 40)),
               E.kernels_figure(E.local_affinity(a, local)), E.kernels_figure(E.local_affinity(a, local), head=1),
               E.distance_figure(E.mean_attention_distance(a), selected=g.name),
               E.heatmap_figure(np.eye(3), "t", zmid=0.0)]
    for fig in figures:
        go.Figure(fig.to_dict())  # plotly's validation: raises ValueError on any invalid property
        assert all("hovertemplate" in t for t in fig.to_dict()["data"])
    kernels = figures[3].data[0]
    np.testing.assert_array_equal(np.asarray(kernels.z)[:5, :5], a.kernels[local.name][64])  # group 2: channel 64..
    assert np.asarray(kernels.customdata)[0, 0, 0] == 64
    distance = figures[4].to_dict()
    assert distance["layout"]["shapes"][0]["y0"] == 16.0  # the local reach line


def test_explain_point_resolves_layer_head_and_reports_json(small_analysis):
    """explain_point: the shown map is the clicked layer's query map at that point; out-of-range
    heads mean 'mean over heads'; point_report is plain JSON; display <-> image pixels round-trip."""
    import json

    a = small_analysis
    W, H = a.image_size
    x, y = W / 2, H / 2
    last = len(a.layers)
    view = E.explain_point(a, x, y, layer=last + 5, head=0)  # layer clamped to the last
    assert view.layer is a.layers[-1] and view.head == 0
    ref = E.query_map(a, a.layers[-1], x, y)
    assert np.array_equal(view.shown.to_dict(0)["map"], ref.to_dict(0)["map"])
    assert E.explain_point(a, x, y, layer=1, head=99).head is None
    assert [tuple(t) for t in view.tokens(a)] == [
        divmod(a.geometry.token_at(x, y, a.stage_grid(s)), a.stage_grid(s)[1]) for s in range(len(a.features))]
    report = E.point_report(a, view, image_sha1="abc")
    assert json.loads(json.dumps(report))["click"] == {"x": x, "y": y, "units": "original-image pixels"}
    assert len(report["local_vs_global"]) == len(view.local_vs_global.panels) and report["image"]["sha1"] == "abc"
    with pytest.raises(ValueError, match="outside the centre crop"):
        E.explain_point(a, -1e6, -1e6, layer=1)
    disp = (W // 3, H // 3)
    back = E.display_to_image(E.image_to_display((x, y), (W, H), disp), (W, H), disp)
    assert np.allclose(back, (x, y))


def test_views_of_an_analysis_and_of_a_point(small_analysis):
    """analysis_pictures: rollout class overlay + one PCA picture per stage at the thumbnail size;
    point_pictures: the clicked layer's map on the canvas, every panel listed for the contact sheet,
    the clicked stage-4 token's rollout, and the numbers of point_report."""
    a = small_analysis
    static = E.analysis_pictures(a, thumbnail=64)
    assert static.rollout is not None and static.rollout_note is None
    assert static.class_overlay.size == E.display_size(a.image_size, 64)
    assert [c for _, c in static.features] == [f"stage {s + 1} features, PCA -> RGB" for s in range(4)]
    assert [c for _, c in static.pictures()][0] == "rollout: mean of stage-4 tokens" and len(static.pictures()) == 5
    W, H = a.image_size
    first = E.first_global_layer(a)
    assert a.layers[first - 1].kind == E.GLOBAL and all(i.kind != E.GLOBAL for i in a.layers[:first - 1])
    q = E.explain_point(a, W / 2, H / 2, layer=first, head=0)
    p = E.point_pictures(a, q, static, display=120, thumbnail=64, image_sha1="abc")
    assert p.canvas.size == E.display_size(a.image_size, 120)
    assert np.array_equal(np.asarray(p.canvas), np.asarray(E.query_overlay(a, q.shown, 0, size=p.canvas.size)))
    assert p.panels[0][0] == "clicked layer: " + E.layer_caption(q.shown, 0) and "(head 1)" in p.panels[0][0]
    assert [c for c, _ in p.panels[1:1 + len(p.local_vs_global)]] == [c for _, c in p.local_vs_global]
    assert p.token4 == a.geometry.token_at(W / 2, H / 2, static.rollout.grid4)
    assert [c for _, c in p.rollout] == ["rollout: mean of stage-4 tokens", "rollout: clicked stage-4 token"]
    assert p.payload == E.point_report(a, q, static.distance, static.rollout, None, p.token4, image_sha1="abc")
    assert p.title.startswith(f"{a.model_name} \u00b7 click ({W / 2:.0f}, {H / 2:.0f})")
