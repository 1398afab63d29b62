"""Image -> video weight inflation (paper §4.2 and §6.7.2, Table 17; I3D [11]), as the official
video code loads its ImageNet pre-training (``get_pretrained_model``, docs/official.md §3.2).

For every checkpoint tensor whose shape differs from the 3-D model's:

* the model tensor has at most 2 dimensions (the classifier ``head`` of another class count,
  Linear weights) -> the checkpoint tensor is dropped (the model keeps its own initialization);
* otherwise a 2-D kernel (C_out, C_in, kh, kw) becomes (C_out, C_in, T, kh, kw) by repeating it T
  times along the new time axis and dividing by T ("mean" inflation: on a clip that does not
  change over time the inflated convolution gives the 2-D convolution's response; the official
  ``center=True`` branch, the kernel in the middle slice only, exists but is unused).

This touches the stem (``patch_embed1.proj``, T = 3), every DPE (3), every local-MHRA affinity (5)
and the 1x1 convolutions / later patch embeddings (1). The rest loads unchanged, then
``load_state_dict(strict=False)`` as officially: keys of the model the image checkpoint lacks keep
their initialization.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from torch import nn

from ..hub import CheckpointMismatchError, read_state_dict
from .uniformer import checkpoint_filter_fn

__all__ = ["INFLATE_MODES", "InflationReport", "inflate_weight", "inflate_state_dict", "load_inflated", "inflate_model"]

#: Inflation modes: 'mean' (official, the kernel repeated over time / T) or 'center' (the kernel in the
#: middle time slice, zeros elsewhere; the official code's unused branch).
INFLATE_MODES = ("mean", "center")


@dataclass
class InflationReport:
    """What :func:`inflate_state_dict` / :func:`load_inflated` did, key lists in our names.

    inflated: {key: temporal kernel size T} of 2-D kernels turned 3-D; dropped: checkpoint keys
    whose shape cannot fit (e.g. ``head.*`` for another class count); missing: model keys the
    checkpoint does not have (they keep the model's initialization); unexpected: checkpoint keys
    the model does not have (ignored).
    """

    inflated: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def inflate_weight(weight_2d: torch.Tensor, time_size: int, center: bool = False) -> torch.Tensor:
    """(C_out, C_in, kh, kw) -> (C_out, C_in, time_size, kh, kw): repeated along time and divided by
    ``time_size`` (mean inflation), or with ``center=True`` the 2-D kernel in the middle time slice
    and zeros elsewhere. Raises ValueError for a tensor that is not a 2-D convolution kernel."""
    if weight_2d.ndim != 4:
        raise ValueError(f"expected a 2-D convolution kernel (C_out, C_in, kh, kw), got shape {tuple(weight_2d.shape)}")
    if center:
        out = torch.zeros(*weight_2d.shape[:2], time_size, *weight_2d.shape[2:], dtype=weight_2d.dtype)
        out[:, :, time_size // 2] = weight_2d
        return out
    return weight_2d.unsqueeze(2).repeat(1, 1, time_size, 1, 1) / time_size


def inflate_state_dict(state_dict_2d: Mapping[str, torch.Tensor], model_3d: nn.Module,
                       filter_fn: Callable[[dict], dict] | None = checkpoint_filter_fn,
                       center: bool = False) -> tuple[dict[str, torch.Tensor], InflationReport]:
    """An image checkpoint (official or our key names) -> a state dict for the 3-D ``model_3d``
    (a video UniFormer with the same stage layout) and a report. ``filter_fn`` maps official names
    to ours first. Raises CheckpointMismatchError when a kernel cannot be inflated to the model's
    shape (different channels or spatial kernel: not a checkpoint of the same architecture)."""
    sd = filter_fn(dict(state_dict_2d)) if filter_fn else dict(state_dict_2d)
    expected = model_3d.state_dict()
    out, report = {}, InflationReport()
    for key, value in sd.items():
        if key not in expected:
            report.unexpected.append(key)
            continue
        target = expected[key]
        if value.shape == target.shape:
            out[key] = value
        elif target.ndim <= 2:
            report.dropped.append(key)
        elif value.ndim == 4 and target.ndim == 5 and target.shape[:2] == value.shape[:2] \
                and target.shape[3:] == value.shape[2:]:
            out[key] = inflate_weight(value, target.shape[2], center)
            report.inflated[key] = int(target.shape[2])
        else:
            raise CheckpointMismatchError(
                f"{key}: the image checkpoint's {tuple(value.shape)} cannot be inflated to the video model's "
                f"{tuple(target.shape)}; is it the image model of the same architecture?")
    report.missing = [k for k in expected if k not in out]
    return out, report


def load_inflated(model_3d: nn.Module, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
                  filter_fn: Callable[[dict], dict] | None = checkpoint_filter_fn,
                  center: bool = False) -> InflationReport:
    """Initialize the video model ``model_3d`` in place from an image checkpoint (a file path, read
    safely with :func:`uniformer.hub.read_state_dict`, or a state dict) the official way: inflate,
    drop what does not fit, ``load_state_dict(strict=False)``. Returns the report.

    Example: ``load_inflated(create_model('uniformer_small_k400_16x8'), 'uniformer_small_in1k.pth')``.
    Raises the errors of ``read_state_dict`` and CheckpointMismatchError.
    """
    state_dict = checkpoint if isinstance(checkpoint, Mapping) else read_state_dict(checkpoint)
    inflated, report = inflate_state_dict(state_dict, model_3d, filter_fn, center)
    model_3d.load_state_dict(inflated, strict=False)
    return report


def inflate_model(model_2d: nn.Module, model_3d: nn.Module, mode: str = "mean",
                  skip: tuple[str, ...] = ()) -> InflationReport:
    """Copy an image model's weights into the video model ``model_3d`` of the same architecture
    (in place), inflating 2-D kernels over time with ``mode`` ('mean' or 'center', see
    :data:`INFLATE_MODES`); keys starting with one of ``skip`` (e.g. ``('head.',)`` for a new class
    count) are not copied. Both models use our key names. Returns the report. Raises ValueError
    for an unknown mode and CheckpointMismatchError as :func:`inflate_state_dict`."""
    if mode not in INFLATE_MODES:
        raise ValueError(f"inflation mode must be one of {INFLATE_MODES}, got {mode!r}")
    state_dict = {k: v for k, v in model_2d.state_dict().items() if not (skip and k.startswith(tuple(skip)))}
    inflated, report = inflate_state_dict(state_dict, model_3d, None, center=mode == "center")
    model_3d.load_state_dict(inflated, strict=False)
    return report
