"""Layers shared by the dense heads, named as OpenMMLab names them so official checkpoints load as is.

``ConvModule`` mirrors mmcv's ``ConvModule`` (conv -> norm -> activation) with its state-dict names:
``conv.weight`` (+ ``conv.bias`` only without a norm) and ``bn.{weight, bias, running_mean,
running_var, num_batches_tracked}``. The official configs use SyncBN, which is plain BatchNorm in
eval mode with the same names (docs/dense.md §2-3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvModule", "resize"]


class ConvModule(nn.Module):
    """Conv2d (+ BatchNorm2d) (+ ReLU), as mmcv's ``ConvModule`` with ``norm_cfg=BN/SyncBN`` or None.

    The conv has a bias only when there is no norm (mmcv's ``bias='auto'``). ``forward``:
    (B, in_channels, H, W) -> (B, out_channels, H', W') with the usual conv arithmetic.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 norm: bool = True, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=not norm)
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.act = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear",
           align_corners: bool | None = False) -> torch.Tensor:
    """``F.interpolate`` to an explicit ``size`` (H, W), as mmseg's ``resize`` (bilinear,
    align_corners False in every UniFormer config). (B, C, h, w) -> (B, C, H, W)."""
    if mode == "nearest":
        return F.interpolate(x, size=tuple(size), mode="nearest")
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=align_corners)
