"""How the large golden files in ``golden/`` were made from the official ones (run once; kept for provenance).

    python tests/reference/trim_goldens.py SOURCE_GOLDEN_DIR tests/reference/golden

The official implementation's outputs for the dense checkpoints are big (a 1 x 150 x 56 x 80 logit map
is 2.7 MB; the Mask R-CNN golden is 12 MB). Every tensor with more than :data:`MAX_WHOLE` elements is
replaced by a :func:`trim` record: a deterministic strided sample of its elements plus statistics of
the whole tensor (per-channel mean and standard deviation, max |x|, float64 sum, SHA-256 of its
bytes). Nothing is recomputed: the records come from the official outputs only. 0/1 uint8 masks are
stored bit-packed (exact). Everything else (shapes, scalars, small tensors, argmax maps) is kept as is.
``tests/goldens.py`` reads the records back and compares a model's full output against them.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

#: Tensors up to this many elements are kept whole.
MAX_WHOLE = 16384
#: About this many elements are sampled from a larger tensor.
SAMPLE = 4096
#: Goldens that are rewritten; the others are copied unchanged.
LARGE = ("fpn_global_small", "mask_rcnn_1x_hybrid_small", "upernet_global_small", "pose_s",
         "seg_s", "seg_s_h14", "seg_s_w32", "seg_xxs")


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def sample_step(numel: int) -> int:
    """The stride of the sample: the smallest prime >= numel / SAMPLE, so the sampled elements walk
    across channels, rows and columns instead of repeating one column."""
    step = max(2, -(-numel // SAMPLE))
    while not _is_prime(step):
        step += 1
    return step


def trim(t: torch.Tensor) -> dict:
    """A float tensor (B, C, ...) -> a record of its strided sample and whole-tensor statistics."""
    t = t.detach().float().contiguous()
    step = sample_step(t.numel())
    per_channel = t.double().transpose(0, 1).reshape(t.shape[1], -1)  # (C, B*H*W)
    return {"trimmed": "strided-v1", "shape": list(t.shape), "step": step,
            "sample": t.flatten()[::step].clone(),
            "channel_mean": per_channel.mean(1), "channel_std": per_channel.std(1, unbiased=False),
            "abs_max": t.abs().max().item(), "sum": t.double().sum().item(),
            "sha256": hashlib.sha256(t.numpy().tobytes()).hexdigest()}


def pack_mask(m: torch.Tensor) -> dict:
    """A 0/1 uint8 tensor -> its bits packed 8 per byte (exact)."""
    assert m.dtype == torch.uint8 and int(m.max()) <= 1
    return {"packed_bits": "v1", "shape": list(m.shape),
            "bits": torch.from_numpy(np.packbits(m.numpy().reshape(-1)))}


def convert(value, key: str = ""):
    """Recursively trim big float tensors and bit-pack the masks of one golden's values."""
    if isinstance(value, torch.Tensor):
        if key == "masks":
            return pack_mask(value)
        if value.is_floating_point() and value.numel() > MAX_WHOLE:
            return trim(value)
        return value
    if isinstance(value, (list, tuple)):
        return [convert(v, key) for v in value]
    if isinstance(value, dict):
        return {k: convert(v, k) for k, v in value.items()}
    return value


def main(source: Path, target: Path) -> None:
    for name in LARGE:
        golden = torch.load(source / f"{name}.pt", weights_only=True)
        out = convert(golden)
        out["trimmed_by"] = "tests/reference/trim_goldens.py"
        torch.save(out, target / f"{name}.pt")
        print(f"{name}: {(source / f'{name}.pt').stat().st_size} -> {(target / f'{name}.pt').stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
