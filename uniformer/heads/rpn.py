"""Region proposal network (Ren et al., Faster R-CNN) as mmdet 2.x ``RPNHead`` with its module names
(``rpn_conv``, ``rpn_cls``, ``rpn_reg``) and test-time proposal selection (docs/dense.md §2, §5).

The same 3x3 conv + two 1x1 convs run on every FPN level (strides 4-64); objectness is a sigmoid
(one channel per anchor, 3 anchors per location).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import batched_nms
from .boxes import AnchorGenerator, delta2bbox

__all__ = ["RPNTestConfig", "RPNHead"]


@dataclass(frozen=True)
class RPNTestConfig:
    """Test-time proposal settings of every UniFormer detector config: per level the ``nms_pre``
    best anchors, NMS per level at ``iou_threshold``, then the ``max_per_img`` best overall."""

    nms_pre: int = 1000
    iou_threshold: float = 0.7
    max_per_img: int = 1000
    min_bbox_size: float = 0.0


class RPNHead(nn.Module):
    """mmdet 2.x ``RPNHead``: ``rpn_conv`` 3x3 (+ReLU) -> ``rpn_cls`` (A logits) and ``rpn_reg``
    (4A deltas) per location of every level.

    ``forward``: FPN maps [(B, C, H_l, W_l)] -> (scores [(B, A, H_l, W_l)], deltas [(B, 4A, H_l, W_l)]).
    """

    def __init__(self, in_channels: int = 256, feat_channels: int = 256,
                 anchor_generator: AnchorGenerator | None = None):
        super().__init__()
        self.anchor_generator = anchor_generator or AnchorGenerator()
        a = self.anchor_generator.num_base_anchors
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, a, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, 4 * a, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        scores, deltas = [], []
        for x in feats:
            x = F.relu(self.rpn_conv(x))
            scores.append(self.rpn_cls(x))
            deltas.append(self.rpn_reg(x))
        return scores, deltas

    def get_proposals(self, scores: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor],
                      img_shapes: Sequence[tuple[int, int]],
                      cfg: RPNTestConfig = RPNTestConfig()) -> list[torch.Tensor]:
        """mmdet 2.x ``RPNHead._get_bboxes`` for a batch: per image and level, the ``nms_pre``
        anchors of highest sigmoid score, decoded (stds 1) and clipped to the image's (H, W) in
        ``img_shapes``; NMS per level (IoU ``cfg.iou_threshold``); the ``max_per_img`` best kept.

        Returns per image a (K, 5) tensor of proposals ``(x1, y1, x2, y2, score)``, by decreasing score.
        """
        anchors = self.anchor_generator.grid_anchors([s.shape[-2:] for s in scores], scores[0].device)
        out = []
        for b, img_shape in enumerate(img_shapes):
            boxes, probs, levels = [], [], []
            for lvl, (score, delta, anchor) in enumerate(zip(scores, deltas, anchors)):
                s = score[b].permute(1, 2, 0).reshape(-1).sigmoid()  # (H*W*A,) location-major
                d = delta[b].permute(1, 2, 0).reshape(-1, 4)  # (H*W*A, 4)
                if cfg.nms_pre > 0 and s.numel() > cfg.nms_pre:
                    s, order = s.sort(descending=True)
                    s, order = s[:cfg.nms_pre], order[:cfg.nms_pre]
                    d, anchor = d[order], anchor[order]
                boxes.append(delta2bbox(anchor, d, max_shape=img_shape))
                probs.append(s)
                levels.append(torch.full_like(s, lvl, dtype=torch.long))
            boxes, probs, levels = torch.cat(boxes), torch.cat(probs), torch.cat(levels)
            if cfg.min_bbox_size > 0:
                w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
                valid = (w >= cfg.min_bbox_size) & (h >= cfg.min_bbox_size)
                boxes, probs, levels = boxes[valid], probs[valid], levels[valid]
            keep = batched_nms(boxes, probs, levels, cfg.iou_threshold)[:cfg.max_per_img]
            out.append(torch.cat([boxes[keep], probs[keep, None]], dim=1))
        return out
