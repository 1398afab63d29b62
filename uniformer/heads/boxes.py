"""Box geometry of the two-stage detectors (mmdet 2.x conventions, docs/dense.md §2, §5, §8.6).

Boxes are ``(x1, y1, x2, y2)`` in pixels of the network input, widths ``x2 - x1`` with no ``+1``.
Anchors (:class:`AnchorGenerator`) are centred on ``stride * (i, j)`` (centre offset 0); the
``DeltaXYWH`` coder (:func:`delta2bbox`) turns regression deltas into boxes; :func:`map_roi_levels`
picks the FPN level a RoI is pooled from (Lin et al., FPN, Eq. 1 with mmdet's ``finest_scale`` 56).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["AnchorGenerator", "delta2bbox", "bbox2roi", "map_roi_levels", "box_area"]


class AnchorGenerator:
    """mmdet 2.x ``AnchorGenerator`` (scale-major, centre offset 0), used by the RPN.

    Per level with stride s, the base anchors have width ``s * scale / sqrt(ratio)`` and height
    ``s * scale * sqrt(ratio)`` centred on (0, 0), in the order of ``ratios`` (for each scale);
    :meth:`grid_anchors` shifts them to every feature-map location ``(x, y) = s * (j, i)``,
    location-major: anchor ``k`` of location ``(i, j)`` is row ``(i * W + j) * A + k``.
    """

    def __init__(self, strides: Sequence[int] = (4, 8, 16, 32, 64), ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 scales: Sequence[float] = (8,)):
        self.strides = tuple(strides)
        self.ratios = torch.tensor(ratios, dtype=torch.float32)
        self.scales = torch.tensor(scales, dtype=torch.float32)

    @property
    def num_base_anchors(self) -> int:
        """Anchors per location (A = len(ratios) * len(scales))."""
        return len(self.ratios) * len(self.scales)

    def base_anchors(self, stride: int) -> torch.Tensor:
        """(A, 4) anchors of one level centred on the origin."""
        h_ratios = self.ratios.sqrt()
        w_ratios = 1 / h_ratios
        ws = (stride * w_ratios[:, None] * self.scales[None, :]).reshape(-1)  # (A,) ratio-major
        hs = (stride * h_ratios[:, None] * self.scales[None, :]).reshape(-1)
        return torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)

    def grid_anchors(self, featmap_sizes: Sequence[tuple[int, int]],
                     device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Anchors of every level: sizes [(H_l, W_l)] -> [(H_l * W_l * A, 4)] in input pixels."""
        out = []
        for (h, w), stride in zip(featmap_sizes, self.strides):
            base = self.base_anchors(stride).to(device)
            xs = torch.arange(w, device=device, dtype=torch.float32) * stride
            ys = torch.arange(h, device=device, dtype=torch.float32) * stride
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
            shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
            out.append((shifts + base[None]).reshape(-1, 4))  # (H*W*A, 4)
        return out


def delta2bbox(rois: torch.Tensor, deltas: torch.Tensor, means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
               stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0), max_shape: tuple[int, int] | None = None,
               wh_ratio_clip: float = 16 / 1000) -> torch.Tensor:
    """mmdet 2.x ``DeltaXYWHBBoxCoder.decode``: apply deltas (dx, dy, dw, dh) to boxes.

    rois: (N, 4) boxes; deltas: (N, 4 * k) (k = 1, or one set per class); ``means`` / ``stds``
    de-normalize the deltas; dw, dh are clamped to ``|log(wh_ratio_clip)|``; the centre moves by
    (dx * w, dy * h), the size scales by exp(dw), exp(dh). ``max_shape`` = (H, W) clips x to [0, W]
    and y to [0, H]. Returns (N, 4 * k) boxes.
    """
    means = deltas.new_tensor(means).repeat(deltas.shape[1] // 4)
    stds = deltas.new_tensor(stds).repeat(deltas.shape[1] // 4)
    d = deltas * stds + means
    dx, dy, dw, dh = d[:, 0::4], d[:, 1::4], d[:, 2::4], d[:, 3::4]  # (N, k) each
    max_ratio = abs(math.log(wh_ratio_clip))
    dw, dh = dw.clamp(-max_ratio, max_ratio), dh.clamp(-max_ratio, max_ratio)
    px = ((rois[:, 0] + rois[:, 2]) * 0.5)[:, None]
    py = ((rois[:, 1] + rois[:, 3]) * 0.5)[:, None]
    pw = (rois[:, 2] - rois[:, 0])[:, None]
    ph = (rois[:, 3] - rois[:, 1])[:, None]
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * dx, py + ph * dy
    x1, y1, x2, y2 = gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5
    if max_shape is not None:
        H, W = max_shape
        x1, x2 = x1.clamp(0, W), x2.clamp(0, W)
        y1, y2 = y1.clamp(0, H), y2.clamp(0, H)
    return torch.stack([x1, y1, x2, y2], dim=-1).reshape(deltas.shape)  # (N, k, 4) -> (N, 4k)


def bbox2roi(boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image boxes [(N_i, >=4)] -> RoIs (sum N_i, 5) as ``(batch_index, x1, y1, x2, y2)``."""
    rois = [torch.cat([b.new_full((len(b), 1), i), b[:, :4]], dim=1) for i, b in enumerate(boxes)]
    return torch.cat(rois) if rois else torch.zeros(0, 5)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) -> (N,) areas ``(x2 - x1) * (y2 - y1)`` in square pixels."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def map_roi_levels(rois: torch.Tensor, num_levels: int, finest_scale: int = 56) -> torch.Tensor:
    """mmdet ``SingleRoIExtractor.map_roi_levels``: RoIs (N, 5) -> level (N,) int64 =
    floor(log2(sqrt(w * h) / finest_scale + 1e-6)) clamped to [0, num_levels - 1]
    (scale < 112 px -> level 0 (stride 4), < 224 -> 1, < 448 -> 2, else 3)."""
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    return torch.floor(torch.log2(scale / finest_scale + 1e-6)).clamp(0, num_levels - 1).long()
