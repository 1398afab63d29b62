"""Evaluation preprocessing per checkpoint, built with timm's transforms (docs/official.md §6)."""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

__all__ = ["eval_transform"]


def eval_transform(pretrained_cfg) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalized (3, S, S) float tensor, as the checkpoint was evaluated:
    resize the short side to floor(S / crop_pct) with the checkpoint's filter (PIL bicubic for
    every official image model), centre crop S, scale to [0, 1], normalize by mean/std."""
    from timm.data import create_transform

    return create_transform(input_size=tuple(pretrained_cfg.input_size[-3:]), is_training=False,
                            interpolation=pretrained_cfg.interpolation, mean=pretrained_cfg.mean,
                            std=pretrained_cfg.std, crop_pct=pretrained_cfg.crop_pct)
