"""Setup shared by the dense task pipelines (segmentation, detection): checking the model's kind,
the test-resize bound, the stage-3 attention twin and the device."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..inference import select_device

__all__ = ["require_model", "test_scale", "scale_for_short_side", "stage3_run"]


def require_model(model: nn.Module, cls: type, function: str, example: str) -> None:
    """Raise ValueError naming ``function`` and an ``example`` model unless ``model`` is a ``cls``."""
    if not isinstance(model, cls):
        raise ValueError(f"{function} needs a {_kind(cls)} model "
                         f"(e.g. '{example}'), got {type(model).__name__}")


def _kind(cls: type) -> str:
    return {"UniFormerSegmentor": "segmentation", "UniFormerDetector": "detection"}.get(cls.__name__, cls.__name__)


def test_scale(scale: Sequence[int] | None, default: Sequence[int]) -> tuple[int, int]:
    """The (long, short) keep-ratio resize bound in pixels: ``scale`` or the model's ``default``.
    Raises ValueError unless it has two sides of at least 32 pixels."""
    scale = tuple(int(s) for s in (scale or default))
    if len(scale) != 2 or min(scale) < 32:
        raise ValueError(f"scale must be (long, short) with both sides >= 32 pixels, got {scale}")
    return scale


def scale_for_short_side(short_side: int, long_per_short: float) -> tuple[int, int]:
    """(long, short) keep-ratio resize bound for a short side of ``short_side`` pixels, the long
    side ``long_per_short`` times it, rounded. Raises ValueError for a short side that is not a
    positive number of pixels."""
    try:
        s = int(short_side)
    except (TypeError, ValueError):
        raise ValueError(f"the short side must be a whole number of pixels, got {short_side!r}") from None
    if s <= 0:
        raise ValueError(f"the short side must be a positive number of pixels, got {short_side!r}")
    return round(long_per_short * s), s


def stage3_run(model: nn.Module, stage3_attention: str | None, window_size: int | None,
               device: str | torch.device | None) -> tuple[nn.Module, torch.device]:
    """The twin of ``model`` running stage 3 as asked (default: its own setting; shares the weights,
    ``with_stage3_attention``), moved to ``device`` (default: where ``model`` is), and that device.
    Raises ValueError for a bad mode, window or device."""
    from ..models.dense import with_stage3_attention

    run = with_stage3_attention(model, stage3_attention or model.cfg.backbone.stage3_attention, window_size)
    dev = select_device(device) if device is not None else next(model.parameters()).device
    return run.to(dev), dev
