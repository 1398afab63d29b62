"""Top-down heatmap head for human pose estimation (SimpleBaseline; mmpose 0.16 ``TopDownSimpleHead``,
later ``TopdownHeatmapSimpleHead``), as used with UniFormer on COCO keypoints (paper §4.3, Table 10;
docs/dense.md §2-3).

Keys: ``deconv_layers.{0,3,6}`` ConvTranspose2d(k4, s2, p1, no bias; weight (in, out, 4, 4)),
``deconv_layers.{1,4,7}`` BatchNorm2d, ReLUs at 2, 5, 8; ``final_layer`` 1x1 conv with bias.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["TopdownHeatmapSimpleHead"]


class TopdownHeatmapSimpleHead(nn.Module):
    """``num_deconv`` x (ConvTranspose2d 4x4 stride 2 -> BN -> ReLU) then a 1x1 conv to one
    heatmap per joint.

    ``forward``: the backbone output (B, in_channels, h, w) (or a one-element list of it, as the
    pose backbone returns) -> heatmaps (B, num_joints, h * 2**num_deconv, w * 2**num_deconv);
    256x192 input -> 8x6 map -> 64x48 heatmaps.
    """

    def __init__(self, in_channels: int = 512, num_joints: int = 17, num_deconv: int = 3,
                 deconv_channels: int = 256, final_kernel: int = 1):
        super().__init__()
        self.num_joints = num_joints
        layers: list[nn.Module] = []
        for i in range(num_deconv):
            layers += [nn.ConvTranspose2d(in_channels if i == 0 else deconv_channels, deconv_channels, 4, stride=2,
                                          padding=1, output_padding=0, bias=False),
                       nn.BatchNorm2d(deconv_channels), nn.ReLU(inplace=True)]
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(deconv_channels if num_deconv else in_channels, num_joints, final_kernel,
                                     padding=(final_kernel - 1) // 2)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(x, (list, tuple)):
            x = x[-1]
        return self.final_layer(self.deconv_layers(x))
