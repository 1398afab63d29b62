"""Semantic FPN (Kirillov et al. 2019) as used with UniFormer for ADE20K (paper §4.3, Table 8):
the FPN neck and mmseg's ``FPNHead``, with mmseg's module names (docs/dense.md §2-3).

Neck: ``lateral_convs.{i}.conv`` 1x1 and ``fpn_convs.{i}.conv`` 3x3, both plain convs with bias
(no norm, no activation), 4 outputs of 256 channels, nearest top-down upsampling. Head:
``scale_heads.{i}`` = ConvModules (3x3, 128) interleaved with parameter-free bilinear x2
upsamples (odd indices), summed at stride 4, dropout, 1x1 ``conv_seg``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .layers import ConvModule, resize

__all__ = ["FPN", "Upsample2x", "FPNHead"]


class FPN(nn.Module):
    """Feature pyramid neck (mmseg/mmdet ``FPN``, no extra levels when ``num_outs`` equals the inputs;
    mmdet's 5th level is a stride-2 subsample of the last, docs/dense.md §8.6).

    ``forward``: maps [(B, in_channels[i], H_i, W_i)] -> [(B, out_channels, H_i, W_i)] (+ extra).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, num_outs: int = 4):
        super().__init__()
        if num_outs < len(in_channels):
            raise ValueError(f"num_outs ({num_outs}) must be at least the number of inputs ({len(in_channels)})")
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1, norm=False, act=False) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3, padding=1, norm=False, act=False)
                                       for _ in in_channels)

    def forward(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down, nearest upsampling to the finer size
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[2:], mode="nearest")
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)]
        while len(outs) < self.num_outs:  # extra levels: max_pool(kernel 1, stride 2)
            outs.append(outs[-1][:, :, ::2, ::2])
        return outs


class Upsample2x(nn.Module):
    """mmseg's ``Upsample(scale_factor=2, mode='bilinear')``: resize to exactly 2x the input size."""

    def __init__(self, align_corners: bool = False):
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, (2 * x.shape[-2], 2 * x.shape[-1]), align_corners=self.align_corners)


class FPNHead(nn.Module):
    """Semantic FPN head (mmseg ``FPNHead``): level i (stride s_i) gets max(1, log2(s_i / s_0))
    3x3 ConvModules, each followed by a bilinear x2 upsample when s_i > s_0; the levels are summed
    (each resized to level 0's size), then dropout and the 1x1 ``conv_seg``.

    ``forward``: neck maps [(B, in_channels[i], H/s_i, W/s_i)] -> logits (B, num_classes, H/4, W/4).
    """

    def __init__(self, in_channels: Sequence[int] = (256, 256, 256, 256),
                 feature_strides: Sequence[int] = (4, 8, 16, 32), channels: int = 128, num_classes: int = 150,
                 dropout_ratio: float = 0.1, align_corners: bool = False):
        super().__init__()
        self.num_classes, self.align_corners = num_classes, align_corners
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.scale_heads = nn.ModuleList()
        for i, stride in enumerate(feature_strides):
            length = max(1, int(math.log2(stride) - math.log2(feature_strides[0])))
            layers: list[nn.Module] = []
            for k in range(length):
                layers.append(ConvModule(in_channels[i] if k == 0 else channels, channels, 3, padding=1))
                if stride != feature_strides[0]:
                    layers.append(Upsample2x(align_corners))
            self.scale_heads.append(nn.Sequential(*layers))

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.scale_heads[0](inputs[0])
        for i in range(1, len(self.scale_heads)):
            out = out + resize(self.scale_heads[i](inputs[i]), out.shape[2:], align_corners=self.align_corners)
        return self.conv_seg(self.dropout(out))
