"""The official implementation's outputs (``tests/reference/golden/*.pt``) and how to compare with them.

Small goldens hold whole tensors. In the large dense ones every tensor of more than 16384 elements is a
:class:`GoldenSlice` (see ``tests/reference/trim_goldens.py``): a strided sample of the official
tensor plus its per-channel mean / standard deviation and max |x|. :func:`relative_error` compares a
full output of ours with either kind, at the same scale: errors are divided by max |reference| of the
whole official tensor. For a sliced golden, every quantity it checks (sampled elements, channel means,
channel standard deviations, max |x|) moves by at most max |ours - ref|, so a model within tolerance
everywhere passes, and a model wrong in any channel (or in the sampled positions) fails.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hubcache import REFERENCE_DIR

__all__ = ["GoldenSlice", "load_golden", "relative_error", "golden_path"]


@dataclass(frozen=True)
class GoldenSlice:
    """What is kept of a large official output (B, C, ...): ``sample`` = its flattened elements
    ``[::step]``; ``channel_mean`` / ``channel_std`` (C,) float64 over all other dims; ``abs_max`` =
    max |x|; ``sha256`` of its float32 bytes (provenance only: outputs of ours differ in the last bits)."""

    shape: tuple[int, ...]
    step: int
    sample: torch.Tensor
    channel_mean: torch.Tensor
    channel_std: torch.Tensor
    abs_max: float
    sha256: str


def _restore(value):
    if isinstance(value, dict) and value.get("trimmed") == "strided-v1":
        return GoldenSlice(tuple(value["shape"]), value["step"], value["sample"], value["channel_mean"],
                           value["channel_std"], value["abs_max"], value["sha256"])
    if isinstance(value, dict) and value.get("packed_bits") == "v1":
        bits = np.unpackbits(value["bits"].numpy())[:int(np.prod(value["shape"]))]
        return torch.from_numpy(bits.reshape(value["shape"]).copy())
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def golden_path(name: str):
    """``tests/reference/golden/<name>.pt`` (may not exist: not every variant has a golden)."""
    return REFERENCE_DIR / "golden" / f"{name}.pt"


def load_golden(name: str) -> dict:
    """The golden of ``name`` as a dict (``input_shape``, ``input_sum``, ``output``, ...); trimmed
    tensors come back as :class:`GoldenSlice`, bit-packed masks as uint8 0/1 tensors.
    Raises FileNotFoundError when there is no such golden."""
    return _restore(torch.load(golden_path(name), weights_only=True))


def relative_error(ours: torch.Tensor, ref: torch.Tensor | GoldenSlice) -> float:
    """max |ours - ref| / max |ref| for a whole reference tensor; for a :class:`GoldenSlice`, the
    largest deviation of the sampled elements, channel means, channel standard deviations and max |x|,
    over the official max |x|. Shapes must agree (AssertionError otherwise)."""
    ours = ours.detach().float()
    if isinstance(ref, torch.Tensor):
        assert ours.shape == ref.shape, (ours.shape, ref.shape)
        return ((ours - ref.float()).abs().max() / ref.float().abs().max()).item()
    assert tuple(ours.shape) == ref.shape, (tuple(ours.shape), ref.shape)
    per_channel = ours.double().transpose(0, 1).reshape(ref.shape[1], -1)  # (C, everything else)
    deviations = [
        (ours.flatten()[::ref.step] - ref.sample).abs().max().item(),
        (per_channel.mean(1) - ref.channel_mean).abs().max().item(),
        (per_channel.std(1, unbiased=False) - ref.channel_std).abs().max().item(),
        abs(ours.abs().max().item() - ref.abs_max),
    ]
    return max(deviations) / ref.abs_max
