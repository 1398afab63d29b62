"""RoI heads of Mask R-CNN and Cascade Mask R-CNN (He et al. 2017; Cai & Vasconcelos 2018) with mmdet
2.x module names, so the official UniFormer detection checkpoints load as is (paper §4.3, Tables 5, 7;
docs/dense.md §2, §3, §5).

* :class:`RoIExtractor`: each RoI is pooled (RoIAlign, aligned, adaptive sampling) from the FPN level
  its size selects (:func:`~uniformer.heads.boxes.map_roi_levels`).
* :class:`ConvFCBBoxHead`: ``shared_convs`` (Cascade: 4 conv-BN-ReLU) -> ``shared_fcs`` (1024) ->
  ``fc_cls`` (num_classes + 1, background **last**) and ``fc_reg`` (4 deltas per class).
  Mask R-CNN's ``Shared2FCBBoxHead`` is the 0-conv, 2-fc case.
* :class:`FCNMaskHead`: 4 conv 3x3 (256) -> 2x deconv -> 1x1 ``conv_logits`` (one 28x28 mask per class).
* :class:`RoIHead`: one stage (``StandardRoIHead``, modules ``bbox_head`` / ``mask_head``) or a
  cascade (``bbox_head.{i}`` / ``mask_head.{i}``) and its test procedure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import batched_nms, roi_align
from .boxes import bbox2roi, delta2bbox, map_roi_levels
from .layers import ConvModule

__all__ = ["RCNNTestConfig", "RoIExtractor", "ConvFCBBoxHead", "FCNMaskHead", "RoIHead", "RoIHeadOutput",
           "multiclass_nms", "paste_masks", "CASCADE_STDS", "MASK_RCNN_STDS"]

#: Regression target stds (dx, dy, dw, dh) of Mask R-CNN's box head.
MASK_RCNN_STDS = ((0.1, 0.1, 0.2, 0.2),)
#: Per-stage stds of the three Cascade R-CNN box heads (each stage regresses finer offsets).
CASCADE_STDS = ((0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))


@dataclass(frozen=True)
class RCNNTestConfig:
    """Test-time settings of the second stage (every UniFormer detection config): class scores above
    ``score_thr``, class-wise NMS at ``iou_threshold``, the ``max_per_img`` best detections, masks
    binarized at probability ``mask_threshold``."""

    score_thr: float = 0.05
    iou_threshold: float = 0.5
    max_per_img: int = 100
    mask_threshold: float = 0.5


class RoIExtractor(nn.Module):
    """mmdet ``SingleRoIExtractor`` with RoIAlign (``sampling_ratio`` 0 = adaptive, aligned=True).

    ``forward``: FPN maps [(B, C, H/s, W/s)] for s in ``strides`` and RoIs (K, 5)
    ``(batch_index, x1, y1, x2, y2)`` in input pixels -> (K, C, out, out).
    """

    def __init__(self, output_size: int, strides: Sequence[int] = (4, 8, 16, 32), finest_scale: int = 56,
                 sampling_ratio: int = 0):
        super().__init__()
        self.output_size, self.strides = output_size, tuple(strides)
        self.finest_scale, self.sampling_ratio = finest_scale, sampling_ratio

    def forward(self, feats: Sequence[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        n = len(self.strides)
        out = feats[0].new_zeros(rois.shape[0], feats[0].shape[1], self.output_size, self.output_size)
        levels = map_roi_levels(rois, n, self.finest_scale)
        for lvl in range(n):
            inds = (levels == lvl).nonzero().squeeze(1)
            if inds.numel():
                out[inds] = roi_align(feats[lvl], rois[inds], (self.output_size, self.output_size),
                                      1.0 / self.strides[lvl], self.sampling_ratio, aligned=True).to(out.dtype)
        return out


class ConvFCBBoxHead(nn.Module):
    """mmdet ``ConvFCBBoxHead`` with shared branches only (``Shared2FCBBoxHead``: 0 convs, 2 fcs;
    Cascade's ``Shared4Conv1FCBBoxHead``-like head: 4 conv-BN-ReLU, 1 fc).

    ``forward``: RoI features (K, C, 7, 7) -> (class logits (K, num_classes + 1), background last;
    class-specific deltas (K, 4 * num_classes)).
    """

    def __init__(self, in_channels: int = 256, roi_size: int = 7, num_classes: int = 80, num_shared_convs: int = 0,
                 num_shared_fcs: int = 2, conv_channels: int = 256, fc_channels: int = 1024):
        super().__init__()
        self.num_classes = num_classes
        self.shared_convs = nn.ModuleList(
            ConvModule(in_channels if i == 0 else conv_channels, conv_channels, 3, padding=1)
            for i in range(num_shared_convs))
        flat = (conv_channels if num_shared_convs else in_channels) * roi_size * roi_size
        self.shared_fcs = nn.ModuleList(nn.Linear(flat if i == 0 else fc_channels, fc_channels)
                                        for i in range(num_shared_fcs))
        self.fc_cls = nn.Linear(fc_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_channels, 4 * num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for conv in self.shared_convs:
            x = conv(x)
        x = x.flatten(1)  # (K, C*7*7), channel-major as mmdet's view
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class FCNMaskHead(nn.Module):
    """mmdet ``FCNMaskHead``: ``convs.{0..3}`` (3x3, 256, ReLU) -> ``upsample`` (2x2 deconv, stride 2,
    ReLU) -> ``conv_logits`` (1x1, one map per class).

    ``forward``: RoI features (K, C, 14, 14) -> mask logits (K, num_classes, 28, 28).
    """

    def __init__(self, in_channels: int = 256, num_convs: int = 4, channels: int = 256, num_classes: int = 80):
        super().__init__()
        self.convs = nn.ModuleList(ConvModule(in_channels if i == 0 else channels, channels, 3, padding=1, norm=False)
                                   for i in range(num_convs))
        self.upsample = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.conv_logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        return self.conv_logits(F.relu(self.upsample(x)))


def multiclass_nms(boxes: torch.Tensor, scores: torch.Tensor, score_thr: float, iou_threshold: float,
                   max_num: int = -1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mmdet 2.x ``multiclass_nms``: boxes (N, 4 * C) (or (N, 4)) and softmax scores (N, C + 1)
    (background last) -> every (box, class) pair with score > ``score_thr``, class-wise NMS, the
    ``max_num`` best (-1: all). Returns (boxes (K, 4), scores (K,), labels (K,) int64), by decreasing score.
    """
    num_classes = scores.shape[1] - 1
    boxes = boxes.reshape(scores.shape[0], -1, 4).expand(scores.shape[0], num_classes, 4)  # (N, C, 4)
    scores = scores[:, :-1]
    labels = torch.arange(num_classes, device=scores.device).expand_as(scores)
    boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
    valid = scores > score_thr
    boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
    keep = batched_nms(boxes, scores, labels, iou_threshold)
    if max_num > 0:
        keep = keep[:max_num]
    return boxes[keep], scores[keep], labels[keep]


def paste_masks(probs: torch.Tensor, boxes: torch.Tensor, image_hw: tuple[int, int],
                threshold: float | None = 0.5) -> torch.Tensor:
    """mmdet ``_do_paste_mask``: put each (28 x 28) mask probability map into its box of an image of
    ``image_hw`` = (H, W) pixels by bilinear ``grid_sample`` (pixel centres at +0.5, zero outside
    the map), then binarize with ``prob >= threshold`` (None: keep probabilities).

    probs: (N, h, w) in [0, 1]; boxes: (N, 4) in image pixels. Returns (N, H, W) bool (or float32).
    Each mask is sampled only over its box's pixel range (+1 px), as mmdet does on CPU.
    """
    H, W = image_hw
    out = torch.zeros(len(probs), H, W, dtype=torch.bool if threshold is not None else torch.float32,
                      device=probs.device)
    for i, (mask, box) in enumerate(zip(probs, boxes.float())):
        x0 = max(int(torch.floor(box[0]).item()) - 1, 0)
        y0 = max(int(torch.floor(box[1]).item()) - 1, 0)
        x1 = min(int(torch.ceil(box[2]).item()) + 1, W)
        y1 = min(int(torch.ceil(box[3]).item()) + 1, H)
        if x1 <= x0 or y1 <= y0:
            continue
        ys = torch.arange(y0, y1, device=probs.device, dtype=torch.float32) + 0.5
        xs = torch.arange(x0, x1, device=probs.device, dtype=torch.float32) + 0.5
        gy = (ys - box[1]) / (box[3] - box[1]) * 2 - 1
        gx = (xs - box[0]) / (box[2] - box[0]) * 2 - 1
        gy = torch.where(torch.isinf(gy), torch.zeros_like(gy), gy)
        gx = torch.where(torch.isinf(gx), torch.zeros_like(gx), gx)
        grid = torch.stack([gx[None, :].expand(len(ys), -1), gy[:, None].expand(-1, len(xs))], dim=-1)
        pasted = F.grid_sample(mask[None, None].float(), grid[None], align_corners=False)[0, 0]  # (y1-y0, x1-x0)
        out[i, y0:y1, x0:x1] = pasted >= threshold if threshold is not None else pasted
    return out


@dataclass
class RoIHeadOutput:
    """Detections of one image from :meth:`RoIHead.predict` (boxes in original-image pixels).

    boxes (K, 4), scores (K,), labels (K,) int64 in 0..num_classes-1, mask_probs (K, 28, 28) for
    the predicted class (None without a mask head).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    mask_probs: torch.Tensor | None


class RoIHead(nn.Module):
    """mmdet ``StandardRoIHead`` (one stage) or ``CascadeRoIHead`` (``len(stage_stds)`` stages).

    One stage: modules ``bbox_head`` (Shared2FC) and ``mask_head``; cascade: ``bbox_head.{i}``
    (4 convs + 1 fc each) and ``mask_head.{i}``. At test time a cascade refines the RoIs stage by
    stage with the deltas of each RoI's best non-background class, averages the three stages' class
    logits, decodes the last stage's deltas and averages the three mask heads' probabilities
    (docs/dense.md §5).
    """

    def __init__(self, num_classes: int = 80, in_channels: int = 256,
                 stage_stds: Sequence[Sequence[float]] = MASK_RCNN_STDS, with_mask: bool = True):
        super().__init__()
        self.num_classes, self.stage_stds = num_classes, tuple(tuple(s) for s in stage_stds)
        self.bbox_roi_extractor = RoIExtractor(7)
        self.mask_roi_extractor = RoIExtractor(14) if with_mask else None
        cascade = self.num_stages > 1
        box = dict(in_channels=in_channels, num_classes=num_classes, num_shared_convs=4 if cascade else 0,
                   num_shared_fcs=1 if cascade else 2)
        if cascade:
            self.bbox_head = nn.ModuleList(ConvFCBBoxHead(**box) for _ in self.stage_stds)
            self.mask_head = nn.ModuleList(FCNMaskHead(in_channels, num_classes=num_classes)
                                           for _ in self.stage_stds) if with_mask else None
        else:
            self.bbox_head = ConvFCBBoxHead(**box)
            self.mask_head = FCNMaskHead(in_channels, num_classes=num_classes) if with_mask else None

    @property
    def num_stages(self) -> int:
        return len(self.stage_stds)

    def bbox_heads(self) -> list[ConvFCBBoxHead]:
        """The box head of each stage."""
        return list(self.bbox_head) if isinstance(self.bbox_head, nn.ModuleList) else [self.bbox_head]

    def mask_heads(self) -> list[FCNMaskHead]:
        """The mask head of each stage (empty without masks)."""
        if self.mask_head is None:
            return []
        return list(self.mask_head) if isinstance(self.mask_head, nn.ModuleList) else [self.mask_head]

    def refine_rois(self, feats: Sequence[torch.Tensor], proposals: Sequence[torch.Tensor],
                    img_shapes: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the box stages on ``proposals`` [(N_i, >=4)] -> (rois (N, 5) the last stage scored,
        class logits (N, C + 1) averaged over stages, last stage's deltas (N, 4C))."""
        rois = bbox2roi(proposals)
        stage_logits = []
        for i, head in enumerate(self.bbox_heads()):
            logits, deltas = head(self.bbox_roi_extractor(feats, rois))
            stage_logits.append(logits)
            if i < self.num_stages - 1:  # regress by the best non-background class
                label = logits[:, :-1].argmax(1)
                picked = deltas.view(len(deltas), -1, 4)[torch.arange(len(deltas)), label]  # (N, 4)
                new = []
                for b, shape in enumerate(img_shapes):
                    sel = rois[:, 0] == b
                    boxes = delta2bbox(rois[sel, 1:], picked[sel], stds=self.stage_stds[i], max_shape=shape)
                    new.append(torch.cat([rois[sel, :1], boxes], dim=1))
                rois = torch.cat(new)
        logits = sum(stage_logits) / len(stage_logits) if len(stage_logits) > 1 else stage_logits[0]
        return rois, logits, deltas

    def predict(self, feats: Sequence[torch.Tensor], proposals: Sequence[torch.Tensor],
                img_shapes: Sequence[tuple[int, int]], scale_factors: Sequence[Sequence[float]],
                cfg: RCNNTestConfig = RCNNTestConfig()) -> list[RoIHeadOutput]:
        """Boxes, scores, labels and mask probabilities per image.

        feats: FPN maps (the first 4 levels are pooled from); proposals: per image (N_i, 5) from
        the RPN, in network-input pixels; img_shapes: (H, W) of each resized image before padding;
        scale_factors: (w_scale, h_scale, w_scale, h_scale) of each image's resize. Boxes are
        returned in original-image pixels (divided by the scale factor), as mmdet's ``rescale=True``.
        """
        rois, logits, deltas = self.refine_rois(feats, proposals, img_shapes)
        stds = self.stage_stds[-1]
        outputs = []
        for b, (shape, scale) in enumerate(zip(img_shapes, scale_factors)):
            sel = rois[:, 0] == b
            probs = logits[sel].softmax(1)
            boxes = delta2bbox(rois[sel, 1:], deltas[sel], stds=stds, max_shape=shape)
            scale = boxes.new_tensor(scale)
            boxes = (boxes.view(len(boxes), -1, 4) / scale).view(len(boxes), -1)
            det, score, label = multiclass_nms(boxes, probs, cfg.score_thr, cfg.iou_threshold, cfg.max_per_img)
            outputs.append(RoIHeadOutput(det, score, label, None))
        if self.mask_head is not None:
            scaled = [o.boxes * o.boxes.new_tensor(s) for o, s in zip(outputs, scale_factors)]
            mask_rois = bbox2roi(scaled)
            if len(mask_rois):
                mask_feats = self.mask_roi_extractor(feats, mask_rois)
                labels = torch.cat([o.labels for o in outputs])
                idx = torch.arange(len(labels), device=labels.device)
                probs = sum(head(mask_feats)[idx, labels].sigmoid() for head in self.mask_heads())
                probs = probs / len(self.mask_heads())  # (K, 28, 28)
            else:
                probs = mask_rois.new_zeros(0, 28, 28)
            for o, p in zip(outputs, probs.split([len(o.labels) for o in outputs])):
                o.mask_probs = p
        return outputs
