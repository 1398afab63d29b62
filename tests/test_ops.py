"""Detection ops (uniformer.ops) against scalar transcriptions of mmcv 1.x's compiled CPU kernels
(``nms_cpu`` in ``mmcv/ops/csrc/pytorch/cpu/nms.cpp``, ``ROIAlignForward`` in
``mmcv/ops/csrc/pytorch/cpu/roi_align.cpp``), hand-computed cases, and (where torchvision's compiled
ops load) torchvision's kernels.

The references below use numpy float32 (or float64) *scalars*, one IEEE operation at a time in the
kernels' order, so they round exactly as the C++ ``float`` code does.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uniformer import ops
from uniformer.ops import batched_nms, box_iou, nms, roi_align, torchvision_ops_available

TV = torchvision_ops_available()
needs_tv = pytest.mark.skipif(not TV, reason="torchvision's compiled ops (_C) do not load here; "
                                             "the torchvision-vs-PyTorch comparison needs them")


# ----------------------------------------------------------------------------------- references
def ref_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    """mmcv ``nms_cpu`` with offset 0, line by line, in float32 scalars; ties in score keep input order."""
    f = np.float32
    b = boxes.to(torch.float32).numpy()
    s = scores.tolist()
    n = len(s)
    order = sorted(range(n), key=lambda i: -s[i])  # Python's sort is stable
    x1, y1, x2, y2 = ([f(v) for v in b[:, c]] for c in range(4))
    areas = [(x2[i] - x1[i]) * (y2[i] - y1[i]) for i in range(n)]
    select = [True] * n
    t = f(thr)
    with np.errstate(invalid="ignore", divide="ignore"):
        for _i in range(n):
            if not select[_i]:
                continue
            i = order[_i]
            for _j in range(_i + 1, n):
                if not select[_j]:
                    continue
                j = order[_j]
                w = max(f(0), min(x2[i], x2[j]) - max(x1[i], x1[j]))
                h = max(f(0), min(y2[i], y2[j]) - max(y1[i], y1[j]))
                inter = w * h
                ovr = inter / (areas[i] + areas[j] - inter)
                if ovr > t:
                    select[_j] = False
    return [order[k] for k in range(n) if select[k]]


def ref_roi_align(feat: torch.Tensor, rois: torch.Tensor, ph_n: int, pw_n: int, scale: float, sampling_ratio: int,
                  aligned: bool) -> torch.Tensor:
    """mmcv ``ROIAlignForward`` (avg pool) + ``pre_calc_for_bilinear_interpolate``, scalar loops in the
    kernel's precision T (float32 for float32 input); the channel loop is a vector op in T."""
    T = np.float64 if feat.dtype == torch.float64 else np.float32
    f = feat.numpy()
    r = rois.numpy().astype(T)
    _, C, H, W = f.shape
    out = np.zeros((r.shape[0], C, ph_n, pw_n), dtype=T)
    s = T(np.float32(scale))  # the kernel receives a C float, then static_cast<T>
    for n in range(r.shape[0]):
        bi = int(r[n, 0])
        offset = T(0.5) if aligned else T(0)
        start_w, start_h = r[n, 1] * s - offset, r[n, 2] * s - offset
        end_w, end_h = r[n, 3] * s - offset, r[n, 4] * s - offset
        roi_w, roi_h = end_w - start_w, end_h - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, T(1)), max(roi_h, T(1))
        bin_h, bin_w = roi_h / T(ph_n), roi_w / T(pw_n)
        gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(np.float32(roi_h / T(ph_n))))
        gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(np.float32(roi_w / T(pw_n))))
        count = T(max(gh * gw, 1))
        img = f[bi]
        for ph in range(ph_n):
            for pw in range(pw_n):
                acc = np.zeros(C, dtype=T)
                for iy in range(gh):
                    yy = start_h + T(ph) * bin_h + T(iy + 0.5) * bin_h / T(gh)
                    for ix in range(gw):
                        x = start_w + T(pw) * bin_w + T(ix + 0.5) * bin_w / T(gw)
                        y = yy
                        if y < -1.0 or y > H or x < -1.0 or x > W:
                            continue  # all four weights 0
                        if y <= 0:
                            y = T(0)
                        if x <= 0:
                            x = T(0)
                        y_low, x_low = int(y), int(x)
                        if y_low >= H - 1:
                            y_high = y_low = H - 1
                            y = T(y_low)
                        else:
                            y_high = y_low + 1
                        if x_low >= W - 1:
                            x_high = x_low = W - 1
                            x = T(x_low)
                        else:
                            x_high = x_low + 1
                        ly, lx = y - T(y_low), x - T(x_low)
                        hy, hx = T(1) - ly, T(1) - lx
                        w1, w2, w3, w4 = hy * hx, hy * lx, ly * hx, ly * lx
                        acc = acc + (w1 * img[:, y_low, x_low] + w2 * img[:, y_low, x_high]
                                     + w3 * img[:, y_high, x_low] + w4 * img[:, y_high, x_high])
                out[n, :, ph, pw] = acc / count
    return torch.from_numpy(out)


def random_boxes(gen: torch.Generator, n: int, clusters: int = 6, span: float = 100.0) -> torch.Tensor:
    """Boxes around a few centres (so many overlap), sizes 2..40 px, on a 1/8-pixel grid."""
    centres = torch.rand(clusters, 2, generator=gen) * span
    c = centres[torch.randint(clusters, (n,), generator=gen)] + torch.randn(n, 2, generator=gen) * 4
    wh = 2 + torch.rand(n, 2, generator=gen) * 38
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1)
    return torch.round(boxes * 8) / 8


def random_rois(gen: torch.Generator, k: int, batch: int, height: int, width: int, scale: float) -> torch.Tensor:
    """RoIs in image pixels for a (height, width) map at ``scale``: inside, partly and fully outside,
    tiny (down to zero size) and large."""
    img_h, img_w = height / scale, width / scale
    x1 = (torch.rand(k, generator=gen) * 1.2 - 0.3) * img_w
    y1 = (torch.rand(k, generator=gen) * 1.2 - 0.3) * img_h
    size = torch.rand(k, 2, generator=gen) ** 2 * torch.tensor([img_w, img_h]) * 0.9
    size[: k // 6] *= 0.02  # tiny
    size[k // 6: k // 6 + 2] = 0.0  # empty
    b = torch.randint(batch, (k,), generator=gen).float()
    rois = torch.stack([b, x1, y1, x1 + size[:, 0], y1 + size[:, 1]], 1)
    rois[-1, 1:] = torch.tensor([img_w * 2, img_h * 2, img_w * 3, img_h * 3])  # fully beyond the map
    rois[-2, 1:] = torch.tensor([-img_w, -img_h, -img_w / 2, -img_h / 2])  # fully before it
    return rois


# ------------------------------------------------------------------------------------------- box_iou
def test_box_iou_hand_cases():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 5.0], [10.0, 10.0, 12.0, 14.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 0.0, 5.0]])
    iou = box_iou(a, b)
    assert iou.shape == (3, 4)
    expected = torch.tensor([[1.0, 1 / 3, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(iou, expected)
    assert box_iou(a, b[:0]).shape == (3, 0) and box_iou(a[:0], b).shape == (0, 4)
    assert box_iou(a.half(), b.half()).dtype == torch.float16


def test_box_iou_matches_scalar_formula():
    gen = torch.Generator().manual_seed(0)
    a, b = random_boxes(gen, 30), random_boxes(gen, 20)
    iou = box_iou(a, b)
    for i in range(30):
        for j in range(20):
            w = max(0.0, min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]))
            h = max(0.0, min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]))
            area = lambda t: float((t[2] - t[0]) * (t[3] - t[1]))  # noqa: E731
            union = area(a[i]) + area(b[j]) - w * h
            assert abs(float(iou[i, j]) - w * h / max(union, 1e-6)) < 1e-6


# ----------------------------------------------------------------------------------------------- NMS
@pytest.mark.parametrize("block", [7, 256])
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_mmcv_kernel(monkeypatch, block, thr):
    """Many seeds of clustered random boxes; small blocks exercise the cross-block suppression."""
    monkeypatch.setattr(ops, "NMS_BLOCK", block)
    for seed in range(8):
        gen = torch.Generator().manual_seed(seed)
        n = 40 + 12 * seed
        boxes, scores = random_boxes(gen, n), torch.rand(n, generator=gen)
        keep = nms(boxes, scores, thr, impl="torch")
        assert keep.dtype == torch.int64
        assert keep.tolist() == ref_nms(boxes, scores, thr), (seed, thr)
        assert bool((scores[keep][1:] <= scores[keep][:-1]).all())


def test_nms_large_input_matches_greedy():
    """1500 boxes with the default block size against a sequential greedy pass over the IoU matrix."""
    gen = torch.Generator().manual_seed(42)
    boxes, scores = random_boxes(gen, 1500, clusters=30, span=400), torch.rand(1500, generator=gen)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = (torch.minimum(b[:, None, 2], b[None, :, 2]) - torch.maximum(b[:, None, 0], b[None, :, 0])).clamp(min=0)
    h = (torch.minimum(b[:, None, 3], b[None, :, 3]) - torch.maximum(b[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = w * h
    sup = (inter / (area[:, None] + area[None, :] - inter) > 0.7).tolist()
    removed, expected = [False] * 1500, []
    for i in range(1500):
        if not removed[i]:
            expected.append(int(order[i]))
            removed = [r or s for r, s in zip(removed, sup[i])]
    assert nms(boxes, scores, 0.7, impl="torch").tolist() == expected


def test_nms_ties_empty_degenerate():
    # equal scores: the earlier index comes first and suppresses the later duplicate
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3 + [[50.0, 50.0, 60.0, 60.0]] * 2)
    scores = torch.tensor([0.5, 0.5, 0.9, 0.5, 0.5])
    assert nms(boxes, scores, 0.5, impl="torch").tolist() == [2, 3]
    assert nms(boxes, torch.full((5,), 0.3), 0.5, impl="torch").tolist() == [0, 3]
    # empty input
    keep = nms(torch.zeros(0, 4), torch.zeros(0), 0.5, impl="torch")
    assert keep.shape == (0,) and keep.dtype == torch.int64
    # zero-area boxes: IoU 0 with everything (0/0 for two identical points never suppresses)
    pts = torch.tensor([[5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 3.0, 9.0]])
    assert nms(pts, torch.tensor([0.9, 0.8, 0.7, 0.6]), 0.1, impl="torch").tolist() == [0, 1, 2, 3]
    # strictly greater: IoU exactly 0.5 is kept at threshold 0.5, dropped at 0.49
    two = torch.tensor([[0.0, 0.0, 3.0, 1.0], [1.0, 0.0, 4.0, 1.0]])  # inter 2, union 4
    assert nms(two, torch.tensor([0.9, 0.8]), 0.5, impl="torch").tolist() == [0, 1]
    assert nms(two, torch.tensor([0.9, 0.8]), 0.49, impl="torch").tolist() == [0]


def test_nms_low_precision_and_ties_against_reference():
    gen = torch.Generator().manual_seed(3)
    boxes = random_boxes(gen, 150)
    scores = torch.round(torch.rand(150, generator=gen) * 5) / 5  # many ties
    assert nms(boxes, scores, 0.5, impl="torch").tolist() == ref_nms(boxes, scores, 0.5)
    assert nms(boxes.half(), scores.half(), 0.5, impl="torch").tolist() == ref_nms(boxes.half(), scores.half(), 0.5)


def per_class_reference(boxes, scores, idxs, thr):
    kept = []
    for c in sorted(set(idxs.tolist())):
        members = (idxs == c).nonzero().squeeze(1)
        kept += [int(members[k]) for k in ref_nms(boxes[members], scores[members], thr)]
    return sorted(kept, key=lambda i: (-float(scores[i]), i))


@pytest.mark.parametrize("split_thr", [10000, 1])
def test_batched_nms_matches_per_class_loop(split_thr):
    for seed in range(6):
        gen = torch.Generator().manual_seed(100 + seed)
        n = 60 + 20 * seed
        boxes, scores = random_boxes(gen, n, clusters=3, span=60), torch.rand(n, generator=gen)
        idxs = torch.randint(4, (n,), generator=gen)
        for thr in (0.3, 0.5, 0.7):
            keep = batched_nms(boxes, scores, idxs, thr, split_thr=split_thr, impl="torch")
            assert keep.tolist() == per_class_reference(boxes, scores, idxs, thr)
    agnostic = batched_nms(boxes, scores, idxs, 0.5, class_agnostic=True, impl="torch")
    assert agnostic.tolist() == ref_nms(boxes, scores, 0.5)
    empty = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.int64


def test_batched_nms_offset_trick_as_mmcv_with_negative_coordinates():
    """With negative coordinates mmcv's shift idxs * (max + 1) can let groups overlap; we do the same."""
    boxes = torch.tensor([[-20.0, -20.0, -10.0, -10.0], [-20.0, -20.0, -10.0, -10.0]])
    scores, idxs = torch.tensor([0.9, 0.8]), torch.tensor([0, 1])
    # max = -10: offsets 0 and -9 -> the class-1 box moves to (-29, -29, -19, -19): IoU 1/199 with box 0
    shifted = boxes + (idxs.float() * (boxes.max() + 1))[:, None]
    assert batched_nms(boxes, scores, idxs, 0.5, impl="torch").tolist() == ref_nms(shifted, scores, 0.5) == [0, 1]
    boxes2 = torch.tensor([[-20.0, -20.0, -1.5, -1.5], [-20.0, -20.0, -1.5, -1.5]])  # max + 1 = -0.5
    shifted2 = boxes2 + (idxs.float() * (boxes2.max() + 1))[:, None]
    assert batched_nms(boxes2, scores, idxs, 0.5, impl="torch").tolist() == ref_nms(shifted2, scores, 0.5) == [0]


# ------------------------------------------------------------------------------------------ RoIAlign
CASES = [  # (output size, spatial scale, sampling ratio, aligned)
    ((7, 7), 1.0, 0, True), ((3, 5), 0.5, 0, True), ((3, 5), 0.25, 2, True), ((7, 7), 1 / 3, 2, False),
    ((2, 3), 1.0, 0, False), ((4, 4), 0.125, 0, True), ((4, 2), 0.5, 2, False), ((1, 1), 0.25, 0, False),
]


@pytest.mark.parametrize("size,scale,sr,aligned", CASES)
def test_roi_align_matches_mmcv_kernel(size, scale, sr, aligned):
    gen = torch.Generator().manual_seed(7)
    feat = torch.randn(2, 3, 19, 23, generator=gen)
    rois = random_rois(gen, 80, 2, 19, 23, scale)
    out = roi_align(feat, rois, size, scale, sr, aligned, impl="torch")
    ref = ref_roi_align(feat, rois, *size, scale, sr, aligned)
    assert out.shape == (80, 3, *size) and out.dtype == torch.float32
    assert (out - ref).abs().max().item() <= 1e-5


def test_roi_align_float64_and_low_precision():
    gen = torch.Generator().manual_seed(8)
    feat = torch.randn(1, 4, 9, 12, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 16, 1, 9, 12, 0.5).double()
    out = roi_align(feat, rois, (3, 3), 0.5, 0, True, impl="torch")
    assert out.dtype == torch.float64
    assert (out - ref_roi_align(feat, rois, 3, 3, 0.5, 0, True)).abs().max().item() <= 1e-12
    ref32 = roi_align(feat.float(), rois.float(), (3, 3), 0.5, 0, True, impl="torch")
    for dt, tol in ((torch.float16, 2e-2), (torch.bfloat16, 1e-1)):
        low = roi_align(feat.to(dt), rois.to(dt), (3, 3), 0.5, 0, True, impl="torch")
        assert low.dtype == dt
        ref_low = roi_align(feat.to(dt).float(), rois.to(dt).float(), (3, 3), 0.5, 0, True, impl="torch")
        torch.testing.assert_close(low, ref_low.to(dt))  # computed in float32, then cast
        assert (low.float() - ref32).abs().max().item() < tol * 10


def test_roi_align_chunking_is_invisible(monkeypatch):
    gen = torch.Generator().manual_seed(9)
    feat = torch.randn(2, 5, 20, 24, generator=gen)
    rois = random_rois(gen, 60, 2, 20, 24, 0.5)
    full = roi_align(feat, rois, 7, 0.5, 0, True, impl="torch")
    monkeypatch.setattr(ops, "ROI_SUPER_CHUNK", 7)
    monkeypatch.setattr(ops, "ROI_CHUNK_BYTES", 4096)
    torch.testing.assert_close(roi_align(feat, rois, 7, 0.5, 0, True, impl="torch"), full, rtol=0, atol=1e-6)


def test_roi_align_hand_cases():
    ramp_x = torch.arange(16.0).expand(1, 2, 12, 16).contiguous()  # f(y, x) = x
    # well inside, aligned: bin centres x = x1 * s - 0.5 + (pw + 0.5) * bin = 1.5 + (pw + 0.5) * 1
    out = roi_align(ramp_x, torch.tensor([[0.0, 4.0, 4.0, 18.0, 18.0]]), 7, 0.5, 0, True, impl="torch")
    centres = 1.5 + (torch.arange(7.0) + 0.5)
    torch.testing.assert_close(out[0, 0], centres.expand(7, 7))
    torch.testing.assert_close(out[0, 1], centres.expand(7, 7))
    # sampling_ratio changes nothing for a linear map
    torch.testing.assert_close(roi_align(ramp_x, torch.tensor([[0.0, 4.0, 4.0, 18.0, 18.0]]), 7, 0.5, 3,
                                         impl="torch"), out)
    # constant map -> the constant, for RoIs inside (any size, scale, alignment)
    const = torch.full((2, 3, 10, 10), 2.5)
    rois = torch.tensor([[0.0, 1.0, 1.0, 8.0, 8.0], [1.0, 2.0, 3.0, 2.5, 3.1], [1.0, 0.0, 0.0, 9.0, 9.0]])
    for aligned in (True, False):
        res = roi_align(const, rois, (2, 3), 1.0, 0, aligned, impl="torch")
        torch.testing.assert_close(res, torch.full_like(res, 2.5))
    # completely beyond the map -> zeros; an empty RoI (x2 == x1) -> zeros
    far = torch.tensor([[0.0, 30.0, 30.0, 40.0, 40.0], [0.0, -40.0, 2.0, -20.0, 5.0], [0.0, 3.0, 3.0, 3.0, 7.0]])
    assert roi_align(const, far, 3, 1.0, 0, True, impl="torch").abs().max().item() == 0.0
    # half outside on the left: x samples at -8, -7, ..., 7; those >= -1 (9 of 16) count, x in [-1, 0] -> 0
    ones = torch.ones(1, 1, 8, 8)
    half = roi_align(ones, torch.tensor([[0.0, -7.5, 0.5, 8.5, 8.5]]), 1, 1.0, 0, True, impl="torch")
    assert half.item() == pytest.approx(9 / 16)
    # bottom edge (aligned=False, one sample at y1 + h / 2): y = 8 = H is valid (clamped to row 7), 8.1 is not
    ramp_y = torch.arange(8.0)[:, None].expand(1, 1, 8, 8).contiguous()
    at_h = roi_align(ramp_y, torch.tensor([[0.0, 2.0, 7.0, 4.0, 9.0]]), 1, 1.0, 1, False, impl="torch")
    past_h = roi_align(ramp_y, torch.tensor([[0.0, 2.0, 7.0, 4.0, 9.2]]), 1, 1.0, 1, False, impl="torch")
    assert at_h.item() == 7.0 and past_h.item() == 0.0
    # legacy mode: sizes below 1 are raised to 1 (RoI 0.2 wide -> one sample at x1 + 0.5)
    tiny = roi_align(ramp_x[:, :1], torch.tensor([[0.0, 3.0, 3.0, 3.2, 3.2]]), 1, 1.0, 0, False, impl="torch")
    assert tiny.item() == pytest.approx(3.5)
    # no RoIs
    assert roi_align(const, torch.zeros(0, 5), (2, 3), impl="torch").shape == (0, 3, 2, 3)


def test_roi_align_rejects_bad_input():
    feat = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="x2 >= x1"):
        roi_align(feat, torch.tensor([[0.0, 3.0, 0.0, 1.0, 2.0]]), 2, impl="torch")
    with pytest.raises(ValueError, match="batch"):
        roi_align(feat, torch.tensor([[1.0, 0.0, 0.0, 1.0, 2.0]]), 2, impl="torch")
    with pytest.raises(ValueError):
        roi_align(feat, torch.zeros(2, 4), 2, impl="torch")
    with pytest.raises(ValueError, match="finite"):
        roi_align(feat, torch.tensor([[0.0, 0.0, 0.0, float("inf"), 2.0]]), 2, impl="torch")


def test_roi_align_gradient():
    gen = torch.Generator().manual_seed(11)
    feat = torch.randn(2, 2, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(gen, 8, 2, 6, 7, 1.0).double()
    assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, 2, 1.0, 0, True, impl="torch"), (feat,))


# ------------------------------------------------------------------------------------------ dispatch
def test_dispatch():
    assert torchvision_ops_available() is TV and torchvision_ops_available("cpu") is TV  # cached, bool
    boxes, scores = torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0])
    with pytest.raises(ValueError, match="impl"):
        nms(boxes, scores, 0.5, impl="cuda")
    assert nms(boxes, scores, 0.5, impl="auto").tolist() == [0]
    if not TV:
        with pytest.raises(RuntimeError, match="torchvision"):
            nms(boxes, scores, 0.5, impl="torchvision")
        with pytest.raises(RuntimeError, match="torchvision"):
            roi_align(torch.zeros(1, 1, 2, 2), torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]]), 1, impl="torchvision")


@needs_tv
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_torch_equals_torchvision(thr):
    for seed in range(10):
        gen = torch.Generator().manual_seed(seed)
        n = 300 + 100 * seed
        boxes, scores = random_boxes(gen, n, clusters=20, span=300), torch.rand(n, generator=gen)
        # off the 1/8 grid: no IoU lands exactly on float32(thr), where mmcv (float) and torchvision
        # (double threshold) may legitimately differ
        boxes = boxes + torch.rand(n, 4, generator=gen) * 0.1
        assert nms(boxes, scores, thr, impl="torch").tolist() == nms(boxes, scores, thr, impl="torchvision").tolist()
        idxs = torch.randint(5, (n,), generator=gen)
        assert (batched_nms(boxes, scores, idxs, thr, impl="torch").tolist()
                == batched_nms(boxes, scores, idxs, thr, impl="torchvision").tolist())


@needs_tv
@pytest.mark.parametrize("size,scale,sr,aligned", CASES)
def test_roi_align_torch_equals_torchvision(size, scale, sr, aligned):
    gen = torch.Generator().manual_seed(12)
    feat = torch.randn(2, 8, 23, 31, generator=gen)
    rois = random_rois(gen, 200, 2, 23, 31, scale)
    a = roi_align(feat, rois, size, scale, sr, aligned, impl="torch")
    b = roi_align(feat, rois, size, scale, sr, aligned, impl="torchvision")
    assert (a - b).abs().max().item() <= 1e-5
