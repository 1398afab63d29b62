"""UperNet decode head (UPerHead: PPM + FPN fusion) and the auxiliary FCN head, as mmseg 0.13.

Used with UniFormer for ADE20K semantic segmentation (paper §4.3, Table 9; docs/dense.md §2):
``decode_head`` = UPerHead(in [64, 128, 320, 512], pool scales (1, 2, 3, 6), channels 512),
``auxiliary_head`` = FCNHead(in 320 = stage 3, channels 256, 1 conv). Module names equal mmseg's,
so ``decode_head.*`` / ``auxiliary_head.*`` checkpoint keys load unchanged (docs/dense.md §3).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import ConvModule, resize

__all__ = ["PPM", "UPerHead", "FCNHead"]


class PPM(nn.ModuleList):
    """Pyramid pooling module (PSPNet): for each pool scale s, AdaptiveAvgPool2d(s) -> 1x1
    ConvModule, upsampled back (bilinear). Keys ``{i}.1.conv/bn`` (index 0 is the pool).

    ``forward``: (B, C_in, H, W) -> list of (B, channels, H, W), one per scale.
    """

    def __init__(self, pool_scales: Sequence[int], in_channels: int, channels: int, align_corners: bool = False):
        super().__init__(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModule(in_channels, channels, 1))
                         for s in pool_scales)
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [resize(ppm(x), x.shape[2:], align_corners=self.align_corners) for ppm in self]


class UPerHead(nn.Module):
    """UperNet head (Xiao et al. 2018; mmseg ``UPerHead``).

    PPM on the last map, lateral 1x1 convs on the others, top-down bilinear addition, 3x3
    ``fpn_convs``, all levels resized to the finest and concatenated, 3x3 ``fpn_bottleneck``,
    dropout, 1x1 ``conv_seg``. ``forward``: the backbone maps [(B, in_channels[i], H/s_i, W/s_i)]
    (strides 4, 8, 16, 32) -> logits (B, num_classes, H/4, W/4), before any resize.
    """

    def __init__(self, in_channels: Sequence[int] = (64, 128, 320, 512), channels: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), num_classes: int = 150, dropout_ratio: float = 0.1,
                 align_corners: bool = False):
        super().__init__()
        self.in_channels, self.channels, self.num_classes = tuple(in_channels), channels, num_classes
        self.align_corners = align_corners
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.psp_modules = PPM(pool_scales, in_channels[-1], channels, align_corners)
        self.bottleneck = ConvModule(in_channels[-1] + len(pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvModule(channels, channels, 3, padding=1) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvModule(len(in_channels) * channels, channels, 3, padding=1)

    def psp_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Last map (B, C4, h, w) -> (B, channels, h, w): concat(x, PPM(x)) -> 3x3 bottleneck."""
        return self.bottleneck(torch.cat([x, *self.psp_modules(x)], dim=1))

    def cls_seg(self, feat: torch.Tensor) -> torch.Tensor:
        """Features (B, channels, h, w) -> logits (B, num_classes, h, w) (dropout, 1x1 conv)."""
        return self.conv_seg(self.dropout(feat))

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self.psp_forward(inputs[len(self.lateral_convs)]))
        for i in range(len(laterals) - 1, 0, -1):  # top-down path
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[2:],
                                                       align_corners=self.align_corners)
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)] + [laterals[-1]]
        size = outs[0].shape[2:]
        outs = [outs[0]] + [resize(o, size, align_corners=self.align_corners) for o in outs[1:]]
        return self.cls_seg(self.fpn_bottleneck(torch.cat(outs, dim=1)))


class FCNHead(nn.Module):
    """FCN head (mmseg ``FCNHead``, concat_input False): ``num_convs`` 3x3 ConvModules, dropout,
    1x1 ``conv_seg``. Picks ``inputs[in_index]`` from the backbone maps (UperNet's auxiliary head:
    stage 3, stride 16). ``forward``: maps -> logits (B, num_classes, H/16, W/16).
    """

    def __init__(self, in_channels: int = 320, channels: int = 256, num_convs: int = 1, in_index: int = 2,
                 num_classes: int = 150, dropout_ratio: float = 0.1):
        super().__init__()
        self.in_index, self.num_classes = in_index, num_classes
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.convs = nn.Sequential(*[ConvModule(in_channels if i == 0 else channels, channels, 3, padding=1)
                                     for i in range(num_convs)])

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.convs(inputs[self.in_index])))
