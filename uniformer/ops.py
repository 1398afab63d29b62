"""Detection ops of Mask R-CNN with the official (mmcv 1.x compiled-kernel) semantics: box IoU, NMS,
class-aware batched NMS and RoIAlign.

The official UniFormer detectors were evaluated with mmdet 2.x on mmcv 1.x, whose ``nms`` and
``roi_align`` are compiled C++/CUDA kernels (``mmcv/ops/csrc/pytorch/cpu/nms.cpp``,
``mmcv/ops/csrc/pytorch/cpu/roi_align.cpp``, and the CUDA ``roi_align_cuda_kernel.cuh`` with the same
rules). Every function here follows those kernels:

* :func:`nms` / :func:`batched_nms` use torchvision's compiled ``torchvision::nms`` where it loads
  (same algorithm: scores sorted descending, a box is dropped when its IoU with a kept, higher-scored
  box is ``> iou_threshold``, areas ``(x2 - x1) * (y2 - y1)`` without the legacy +1), otherwise an exact,
  vectorised pure-PyTorch greedy NMS (:func:`_nms_torch`).
* :func:`roi_align` uses torchvision's compiled ``torchvision::roi_align`` (``aligned=True`` matches
  mmcv's kernel), otherwise an exact, vectorised pure-PyTorch transcription of mmcv's kernel
  (:func:`_roi_align_torch`). torchvision's own pure-Python fallback ``_roi_align`` is never used: it
  does not zero the samples outside ``[-1, H] x [-1, W]`` and caps the adaptive grid, so it differs
  from mmcv by O(1) for RoIs that leave the feature map (docs/dense.md §8.5).

Both paths are selected by ``impl="auto"`` (torchvision where :func:`torchvision_ops_available` says its
compiled ops run on that device, else PyTorch), or forced with ``impl="torch"`` / ``"torchvision"``.
Coordinates are ``x1, y1, x2, y2`` in pixels; float16/bfloat16 inputs are computed in float32 and
the results cast back.
"""
from __future__ import annotations

import logging
from typing import Sequence, Union

import torch
from torch import Tensor

__all__ = ["box_iou", "nms", "batched_nms", "roi_align", "torchvision_ops_available"]

logger = logging.getLogger(__name__)

_IMPLS = ("auto", "torch", "torchvision")
_PROBED: dict[str, bool] = {}  # device type -> whether torchvision's compiled ops run there

#: Block size of the pure-PyTorch NMS (sorted boxes whose IoU rows are computed at once).
NMS_BLOCK = 128
#: Largest number of RoIs whose sample tables the pure-PyTorch RoIAlign builds at once.
ROI_SUPER_CHUNK = 2048
#: Byte budget of the pure-PyTorch RoIAlign's intermediate per chunk of RoIs (sum over the chunk's
#: RoIs of window rows x output width x C elements); a few MB keeps it in cache (fastest on CPU).
ROI_CHUNK_BYTES = 8 * 2 ** 20


# ------------------------------------------------------------------------------------------ dispatch
def _probe(device: torch.device) -> bool:
    """Run torchvision's compiled ``nms`` and ``roi_align`` once on tiny tensors of ``device``
    and check the answers; no ``_C`` extension, a stub schema without a kernel or a build
    without this device means "not available" (logged once, at INFO)."""
    try:
        import torchvision  # noqa: F401  (registers torch.ops.torchvision.* where _C loads)

        boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.1], [5.0, 5.0, 6.0, 6.0]], device=device)
        keep = torch.ops.torchvision.nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=device), 0.5)
        feat = torch.arange(16.0, device=device).view(1, 1, 4, 4)
        rois = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]], device=device)
        out = torch.ops.torchvision.roi_align(feat, rois, 1.0, 1, 1, 1, True)
        # aligned: one sample at (0.5, 0.5) = mean of f[0:2, 0:2] = (0 + 1 + 4 + 5) / 4
        return keep.tolist() == [0, 2] and abs(float(out.flatten()[0]) - 2.5) < 1e-6
    except (ImportError, RuntimeError, NotImplementedError, OSError, AttributeError) as e:
        logger.info("torchvision's compiled nms / roi_align are not usable on %s (%s: %s); using the pure-PyTorch "
                    "versions", device.type, type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
        return False


def torchvision_ops_available(device: Union[str, torch.device] = "cpu") -> bool:
    """Whether torchvision's compiled ``nms`` and ``roi_align`` actually run on ``device``'s type
    (probed once per device type, lazily, on tiny tensors; cached)."""
    dev = torch.device(device)
    if dev.type not in _PROBED:
        _PROBED[dev.type] = _probe(dev)
    return _PROBED[dev.type]


def _use_torchvision(impl: str, device: torch.device) -> bool:
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    if impl == "torch":
        return False
    available = torchvision_ops_available(device)
    if impl == "torchvision" and not available:
        raise RuntimeError(f"impl='torchvision' asked for, but torchvision's compiled ops do not run on "
                           f"{device.type} here (no usable torchvision _C extension); use impl='torch' or 'auto'")
    return available


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other dtype (float32, float16, bfloat16, ints) computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ------------------------------------------------------------------------------------------- box IoU
def box_iou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Pairwise IoU of two sets of boxes, mmdet 2.x ``bbox_overlaps(mode='iou')``.

    a: (N, 4), b: (M, 4) as ``x1, y1, x2, y2`` (pixels). Returns (N, M) in the compute dtype of ``a``
    cast back to ``a.dtype`` (float16/bfloat16 computed in float32).
    area = (x2 - x1) * (y2 - y1) (no +1 offset); intersection sides clamped at 0; the union is
    clamped below at ``eps`` (mmdet's 1e-6), so boxes with zero union have IoU 0.
    """
    if a.dim() != 2 or a.shape[-1] != 4 or b.dim() != 2 or b.shape[-1] != 4:
        raise ValueError(f"box_iou expects (N, 4) and (M, 4) boxes, got {tuple(a.shape)} and {tuple(b.shape)}")
    dt = _compute_dtype(a.dtype)
    a32, b32 = a.to(dt), b.to(dt)
    area_a = (a32[:, 2] - a32[:, 0]) * (a32[:, 3] - a32[:, 1])
    area_b = (b32[:, 2] - b32[:, 0]) * (b32[:, 3] - b32[:, 1])
    lt = torch.maximum(a32[:, None, :2], b32[None, :, :2])
    rb = torch.minimum(a32[:, None, 2:], b32[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = (area_a[:, None] + area_b[None, :] - overlap).clamp(min=eps)
    out = overlap / union
    return out.to(a.dtype) if a.dtype.is_floating_point else out


# ----------------------------------------------------------------------------------------------- NMS
def _nms_torch(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Exact greedy NMS of mmcv's ``nms_cpu`` (offset 0), vectorised.

    The boxes are sorted by score (stable, descending). ``S[i, j]`` (i before j in that order) says
    "box i would suppress box j": ``inter / (area_i + area_j - inter) > thr``, evaluated with the same
    float operations as the kernel (so 0/0 = NaN, from two zero-area boxes, never suppresses) and the
    threshold rounded to the boxes' dtype, as the kernel's ``float`` argument is. Greedy NMS keeps
    box j iff no *kept* box before it suppresses it. The sorted boxes are processed in blocks of
    :data:`NMS_BLOCK`: boxes already suppressed by earlier blocks drop out; inside a block the kept
    set is the fixed point of ``keep_j = not any_i<j (keep_i and S[i, j])``, iterated from "all
    kept" (Cluster-NMS, Zheng et al. 2021): after t rounds the first t entries are final, and the
    fixed point is unique, so it is exactly the greedy answer (usually after a few rounds). Each
    block's kept boxes then suppress the later boxes in one reduction.
    """
    n = boxes.shape[0]
    dev = boxes.device
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = (x2 - x1) * (y2 - y1)
    thr = torch.tensor(iou_threshold, dtype=b.dtype, device=dev)
    removed = torch.zeros(n, dtype=torch.bool, device=dev)
    keep = torch.zeros(n, dtype=torch.bool, device=dev)
    for s in range(0, n, NMS_BLOCK):
        e = min(s + NMS_BLOCK, n)
        alive = (~removed[s:]).nonzero().squeeze(1) + s  # sorted positions not yet suppressed, ascending
        nb = int((alive < e).sum())
        if nb == 0:
            continue
        rows = alive[:nb]
        xx1 = torch.maximum(x1[rows, None], x1[None, alive])
        yy1 = torch.maximum(y1[rows, None], y1[None, alive])
        xx2 = torch.minimum(x2[rows, None], x2[None, alive])
        yy2 = torch.minimum(y2[rows, None], y2[None, alive])
        inter = (xx2 - xx1).clamp_(min=0) * (yy2 - yy1).clamp_(min=0)
        ovr = inter / ((area[rows, None] + area[None, alive]) - inter)
        sup = (ovr > thr) & (alive[None, :] > rows[:, None])  # (nb, len(alive)): row suppresses later col
        inner = sup[:, :nb]
        k = torch.ones(nb, dtype=torch.bool, device=dev)
        for _ in range(nb + 1):
            k_new = ~(k[:, None] & inner).any(0)
            if torch.equal(k_new, k):
                break
            k = k_new
        keep[rows[k]] = True
        removed[alive[(k[:, None] & sup).any(0)]] = True
    return order[keep]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, *, impl: str = "auto") -> Tensor:
    """Greedy non-maximum suppression, mmcv 1.x ``nms`` (offset 0) / torchvision ``nms``.

    boxes: (N, 4) ``x1, y1, x2, y2`` (pixels); scores: (N,). Returns the kept indices into ``boxes``,
    (K,) int64, sorted by decreasing score. A box is suppressed when its IoU with an already kept,
    higher-scored box is strictly greater than ``iou_threshold`` (IoU with areas ``(x2-x1)*(y2-y1)``,
    no +1), computed in the boxes' float dtype and compared with the threshold rounded to that dtype
    (mmcv passes it as a C ``float``; torchvision compares with the double, which can differ only
    when an IoU equals the rounded threshold exactly). Equal scores keep their input order (stable
    sort: the earlier index comes first and wins; torchvision's compiled kernel does not promise
    this for ties). Zero-area boxes have IoU 0 (0/0 never suppresses). float16/bfloat16 boxes are
    compared in float32. ``impl``: "auto" (torchvision's compiled op where it runs, else PyTorch),
    "torch", or "torchvision".
    """
    if boxes.dim() != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms expects boxes (N, 4) and scores (N,), got {tuple(boxes.shape)} and "
                         f"{tuple(scores.shape)}")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    dt = _compute_dtype(boxes.dtype)
    boxes = boxes.detach().to(dt)
    scores = scores.detach()
    if _use_torchvision(impl, boxes.device):
        return torch.ops.torchvision.nms(boxes, scores.to(dt), float(iou_threshold))
    return _nms_torch(boxes, scores, float(iou_threshold))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, *,
                class_agnostic: bool = False, split_thr: int = 10000, impl: str = "auto") -> Tensor:
    """Class-aware NMS, mmcv 1.x ``batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=...))``.

    boxes: (N, 4) ``x1, y1, x2, y2``; scores: (N,); idxs: (N,) integer group ids (class or level).
    Returns kept indices (K,) int64 sorted by decreasing score (ties: lower index first). As in mmcv,
    unless ``class_agnostic`` the boxes are shifted by ``idxs * (boxes.max() + 1)`` (the same tensor
    operations, so the shifted coordinates, and hence IoUs, are bit-identical to mmcv's, including
    its behaviour for negative coordinates); with fewer than ``split_thr`` boxes one :func:`nms` runs
    on the shifted boxes, otherwise one per group (on the shifted boxes too) and the union is sorted
    by score. Empty input gives an empty result.
    """
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if class_agnostic:
        boxes_for_nms = boxes
    else:
        max_coordinate = boxes.max()
        offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
        boxes_for_nms = boxes + offsets[:, None]
    if boxes_for_nms.shape[0] < split_thr:
        return nms(boxes_for_nms, scores, iou_threshold, impl=impl)
    total = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for group in torch.unique(idxs):
        members = (idxs == group).nonzero().view(-1)
        total[members[nms(boxes_for_nms[members], scores[members], iou_threshold, impl=impl)]] = True
    keep = total.nonzero().view(-1)
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]


# ------------------------------------------------------------------------------------------ RoIAlign
def _axis_samples(start: Tensor, bin_size: Tensor, grid: Tensor, pooled: int, size: int):
    """Sample points of mmcv's RoIAlign along one axis (y or x), for every RoI, as ragged arrays.

    start, bin_size: (K,) compute dtype, feature-map pixels; grid: (K,) int64 >= 0 samples per bin.
    Sample (p, i) of RoI k (bin p < pooled, i < grid[k]) sits at
    ``start + p * bin + (i + 0.5) * bin / grid`` (the kernel's operation order). Bilinear rules of the
    kernel along the axis: outside ``[-1, size]`` -> weight 0; ``<= 0`` -> 0; ``low = floor``; at or past
    ``size - 1`` -> ``low = high = size - 1`` with fraction 0. Returns (roi, bin, low, high, w_low,
    w_high, valid), each (S,) with S = sum_k pooled * grid[k]; the 2-D sample weight of the kernel
    (``hy * hx`` etc.) is the product of the two axes' weights.
    """
    dev, dt = start.device, start.dtype
    count = grid * pooled
    total = int(count.sum())
    roi = torch.repeat_interleave(torch.arange(start.shape[0], device=dev), count, output_size=total)
    first = torch.cumsum(count, 0) - count
    local = torch.arange(total, device=dev) - first[roi]
    g = grid[roi]
    p = torch.div(local, g, rounding_mode="floor")
    i = local - p * g
    bs = bin_size[roi]
    c = start[roi] + p.to(dt) * bs + ((i.to(dt) + 0.5) * bs) / g.to(dt)
    valid = (c >= -1.0) & (c <= size)
    c = torch.where(c <= 0, torch.zeros_like(c), c).clamp(max=size)  # clamp only guards invalid ones
    low = c.to(torch.int64)  # c >= 0: truncation is floor
    edge = low >= size - 1
    low = torch.where(edge, torch.full_like(low, size - 1), low)
    high = torch.where(edge, low, low + 1)
    c = torch.where(edge, low.to(dt), c)
    frac = c - low.to(dt)
    zero = torch.zeros_like(frac)
    w_low = torch.where(valid, 1.0 - frac, zero)
    w_high = torch.where(valid, frac, zero)
    return roi, p, low, high, w_low, w_high, valid


def _axis_matrix(samples, n_roi: int, pooled: int, size: int):
    """Per-RoI interpolation matrices along one axis, on each RoI's window of touched pixels.

    Returns (A (K, pooled, E), lo (K,), extent (K,)): ``A[k, p, r]`` = sum of the axis weights of bin
    p's samples on pixel ``lo[k] + r``; ``lo`` / ``lo + extent - 1`` are the first / last pixel any
    valid sample touches (0 / 0 for a RoI without valid samples); E = max extent.
    """
    roi, p, low, high, w_low, w_high, valid = samples
    dev, dt = w_low.device, w_low.dtype
    lo = torch.full((n_roi,), size, dtype=torch.int64, device=dev)
    hi = torch.zeros(n_roi, dtype=torch.int64, device=dev)
    lo = lo.scatter_reduce(0, roi[valid], low[valid], "amin", include_self=True)
    hi = hi.scatter_reduce(0, roi[valid], high[valid], "amax", include_self=True)
    lo = torch.where(lo == size, torch.zeros_like(lo), lo)  # no valid sample
    extent = hi - lo + 1
    e_max = int(extent.max()) if n_roi else 1
    a = torch.zeros(n_roi * pooled * e_max, dtype=dt, device=dev)
    base = (roi * pooled + p) * e_max
    # invalid samples (weight 0) may lie outside the window: clamp only their positions
    a.index_add_(0, base + (low - lo[roi]).clamp(0, e_max - 1), w_low)
    a.index_add_(0, base + (high - lo[roi]).clamp(0, e_max - 1), w_high)
    return a.view(n_roi, pooled, e_max), lo, extent


def _repeat_blocks(n: Tensor, reps: Tensor):
    """Segment s owns ``n[s]`` consecutive entries (starting at ``cumsum(n) - n``); list every
    (segment, repetition, entry) with its block of entries repeated ``reps[s]`` times, in the order
    segment, repetition, entry. Returns (seg, rep, entry), each of length ``sum(n * reps)``."""
    length = n * reps
    total = int(length.sum())
    seg = torch.repeat_interleave(torch.arange(n.shape[0], device=n.device), length, output_size=total)
    j = torch.arange(total, device=n.device) - (torch.cumsum(length, 0) - length)[seg]
    nn = n[seg]
    rep = torch.div(j, nn, rounding_mode="floor")
    entry = (torch.cumsum(n, 0) - n)[seg] + (j - rep * nn)
    return seg, rep, entry


def _sparse_rows(rows: Tensor, cols: Tensor, vals: Tensor, shape: tuple[int, int]) -> Tensor:
    """COO matrix from entries already sorted by (row, col) without duplicates."""
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, shape, is_coalesced=True,
                                   check_invariants=False)


def _roi_align_torch(features: Tensor, rois: Tensor, pooled_h: int, pooled_w: int, spatial_scale: float,
                     sampling_ratio: int, aligned: bool) -> Tensor:
    """mmcv 1.x RoIAlign forward (average pooling) in PyTorch, vectorised over RoIs, bins and samples.

    features: (B, C, H, W) float32/float64; rois: (K, 5) same dtype. Per RoI, as in the kernel (all in
    the compute dtype, ``spatial_scale`` first rounded to float32 as the kernel's ``float`` argument):
    ``start = x1 * scale - offset`` (offset 0.5 if aligned), ``w = (x2 * scale - offset) - start``
    (legacy: ``max(w, 1)``), ``bin = w / pooled``, ``grid = sampling_ratio`` if > 0 else
    ``ceil(w / pooled)``, output = sum of the bilinear samples / ``max(grid_h * grid_w, 1)``.

    Bilinear sampling is separable: bin (ph, pw) of RoI k is ``Ay[k, ph] @ F_k @ Ax[k, pw]^T / count``
    with per-axis interpolation matrices (:func:`_axis_matrix`) on the RoI's window ``F_k`` of touched
    pixels. Both contractions are sparse-dense matmuls that read the (channels-last) map directly:
    (1) for every window row r of RoI k and output column pw, ``T[k, r, pw] = sum_w Ax[k, pw, w] *
    F[b_k, lo_y + r, lo_x + w]``; (2) ``out[k, ph, pw] = sum_r Ay[k, ph, r] * T[k, r, pw]``. Only the
    non-zero weights become matrix entries, so the work is proportional to the kernel's, without
    padding RoIs to a common window. RoIs are processed in chunks whose ``T`` stays under
    :data:`ROI_CHUNK_BYTES`. Equal to the kernel up to float summation order. Differentiable w.r.t.
    ``features`` (not ``rois``, as mmcv).
    """
    bsz, ch, height, width = features.shape
    dev, dt = features.device, features.dtype
    k_all = rois.shape[0]
    rois = rois.detach()
    scale = torch.tensor(spatial_scale, dtype=torch.float32).to(dt)
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * scale - offset
    start_h = rois[:, 2] * scale - offset
    roi_w = (rois[:, 3] * scale - offset) - start_w
    roi_h = (rois[:, 4] * scale - offset) - start_h
    if aligned:
        if bool(((roi_w < 0) | (roi_h < 0)).any()):
            raise ValueError("roi_align(aligned=True): RoIs must have x2 >= x1 and y2 >= y1 (mmcv asserts this)")
    else:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_w, bin_h = roi_w / pooled_w, roi_h / pooled_h
    if sampling_ratio > 0:
        grid_w = torch.full((k_all,), sampling_ratio, dtype=torch.int64, device=dev)
        grid_h = grid_w
    else:  # the kernel's ceilf(roi_w / pooled_w) (float ceil, then int)
        grid_w = torch.ceil(bin_w.float()).to(torch.int64).clamp(min=0)
        grid_h = torch.ceil(bin_h.float()).to(torch.int64).clamp(min=0)
    count = (grid_h * grid_w).clamp(min=1).to(dt)
    batch = rois[:, 0].to(torch.int64)
    if bool(((batch < 0) | (batch >= bsz)).any()):
        raise ValueError(f"roi_align: RoI batch indices must lie in [0, {bsz - 1}]")
    flat = features.permute(0, 2, 3, 1).reshape(bsz * height * width, ch)  # channels-last pixel rows
    row_bytes = pooled_w * ch * flat.element_size()

    outs = []
    for s in range(0, k_all, ROI_SUPER_CHUNK):
        e = min(s + ROI_SUPER_CHUNK, k_all)
        ay, lo_y, ext_y = _axis_matrix(_axis_samples(start_h[s:e], bin_h[s:e], grid_h[s:e], pooled_h, height),
                                       e - s, pooled_h, height)
        ax, lo_x, _ = _axis_matrix(_axis_samples(start_w[s:e], bin_w[s:e], grid_w[s:e], pooled_w, width),
                                   e - s, pooled_w, width)
        # contiguous sub-chunks whose T (sum of window rows x pooled_w x C) fits the budget
        ends = torch.cumsum(ext_y, 0).tolist()
        j = 0
        while j < e - s:
            done = ends[j - 1] if j else 0
            m = 1
            while j + m < e - s and (ends[j + m] - done) * row_bytes <= ROI_CHUNK_BYTES:
                m += 1
            sl = slice(j, j + m)
            outs.append(_roi_align_chunk(flat, ay[sl], lo_y[sl], ext_y[sl], ax[sl], lo_x[sl], batch[s + j:s + j + m],
                                         count[s + j:s + j + m], height, width, pooled_h, pooled_w))
            j += m
    if not outs:
        return features.new_zeros(0, ch, pooled_h, pooled_w)
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def _roi_align_chunk(flat: Tensor, ay: Tensor, lo_y: Tensor, ext_y: Tensor, ax: Tensor, lo_x: Tensor, batch: Tensor,
                     count: Tensor, height: int, width: int, pooled_h: int, pooled_w: int) -> Tensor:
    """The two sparse contractions of :func:`_roi_align_torch` for one chunk of m RoIs: returns the
    (m, C, pooled_h, pooled_w) bin averages (the y weights are divided by the RoI's sample count; a
    channels-last strided view)."""
    m = ay.shape[0]
    dev = flat.device
    ybase = torch.cumsum(ext_y, 0) - ext_y  # first T row block of each RoI
    n_t = int(ext_y.sum())
    # (1) x contraction straight from the map: rows (k, r, pw) of T, columns = pixels
    kk, qq, ww = ax.nonzero().unbind(1)  # row-major: sorted by (k, pw, w)
    wx = ax[kk, qq, ww]
    seg, r, ent = _repeat_blocks(torch.bincount(kk, minlength=m), ext_y)
    rows = (ybase[seg] + r) * pooled_w + qq[ent]
    cols = (batch[seg] * height + lo_y[seg] + r) * width + lo_x[seg] + ww[ent]
    t = torch.sparse.mm(_sparse_rows(rows, cols, wx[ent], (n_t * pooled_w, flat.shape[0])), flat)
    # (2) y contraction: rows (k, ph, pw) of the output, columns = rows (k, r, pw) of T
    ky, py, ry = ay.nonzero().unbind(1)  # sorted by (k, ph, r)
    wy = ay[ky, py, ry] / count[ky]
    seg, q, ent = _repeat_blocks(torch.bincount(ky * pooled_h + py, minlength=m * pooled_h),
                                 torch.full((m * pooled_h,), pooled_w, dtype=torch.int64, device=dev))
    rows = seg * pooled_w + q
    cols = (ybase[ky[ent]] + ry[ent]) * pooled_w + q
    out = torch.sparse.mm(_sparse_rows(rows, cols, wy[ent], (m * pooled_h * pooled_w, n_t * pooled_w)), t)
    return out.view(m, pooled_h, pooled_w, -1).permute(0, 3, 1, 2)


def roi_align(features: Tensor, rois: Tensor, output_size: Union[int, Sequence[int]], spatial_scale: float = 1.0,
              sampling_ratio: int = 0, aligned: bool = True, *, impl: str = "auto") -> Tensor:
    """RoIAlign (average pooling) with mmcv 1.x's compiled-kernel semantics.

    features: (B, C, H, W) feature map; rois: (K, 5) ``batch_index, x1, y1, x2, y2`` in input-image
    pixels; ``spatial_scale`` maps them to feature pixels (1 / stride); output_size: ``h`` or
    ``(h, w)`` bins. Returns (K, C, h, w) in ``features.dtype`` (float16/bfloat16 computed in float32).

    Per RoI: ``start = x1 * scale - 0.5`` (``aligned``; 0 offset otherwise), size ``(x2 - x1) * scale``
    (``aligned=False``: at least 1; ``aligned=True``: negative sizes raise, as mmcv asserts), bins of
    size / output size, ``sampling_ratio`` (> 0) or ``ceil(bin size)`` sample points per bin and axis
    (0 for an empty RoI -> output 0), each bilinearly interpolated with mmcv's rules: a sample with
    y < -1, y > H, x < -1 or x > W contributes 0, coordinates in [-1, 0] are clamped to 0 and those
    past H - 1 (W - 1) to the last row (column). The bin value is the sum over its samples divided by
    ``max(grid_h * grid_w, 1)``. Non-finite RoIs and batch indices outside ``[0, B)`` raise ValueError.
    ``impl``: "auto" (torchvision's compiled ``roi_align`` where it runs, else PyTorch), "torch", or
    "torchvision". The PyTorch path returns a channels-last strided tensor (values are the same).
    """
    if features.dim() != 4:
        raise ValueError(f"roi_align expects features (B, C, H, W), got {tuple(features.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"roi_align expects rois (K, 5) [batch_index, x1, y1, x2, y2], got {tuple(rois.shape)}")
    if isinstance(output_size, int):
        pooled_h = pooled_w = output_size
    else:
        pooled_h, pooled_w = (int(v) for v in output_size)
    dt = _compute_dtype(features.dtype)
    feats, boxes = features.to(dt), rois.to(device=features.device, dtype=dt)
    if rois.shape[0] == 0:
        return features.new_zeros(0, features.shape[1], pooled_h, pooled_w)
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError("roi_align: RoIs must be finite (the kernels' sample grid is undefined for inf/NaN)")
    if _use_torchvision(impl, features.device):
        if aligned:  # mmcv asserts non-negative sizes; torchvision would silently return zeros
            scale = torch.tensor(spatial_scale, dtype=torch.float32).to(dt)
            size = (boxes[:, 3:5] * scale - 0.5) - (boxes[:, 1:3] * scale - 0.5)
            if bool((size < 0).any()):
                raise ValueError("roi_align(aligned=True): RoIs must have x2 >= x1 and y2 >= y1 (mmcv asserts this)")
        out = torch.ops.torchvision.roi_align(feats, boxes, float(spatial_scale), pooled_h, pooled_w,
                                              int(sampling_ratio), bool(aligned))
    else:
        out = _roi_align_torch(feats, boxes, pooled_h, pooled_w, float(spatial_scale), int(sampling_ratio),
                               bool(aligned))
    return out.to(features.dtype)
