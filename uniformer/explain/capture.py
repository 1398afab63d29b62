"""Capture global-MHRA attention (Eq. 7) without changing the model's forward.

The forward always runs the fused ``scaled_dot_product_attention``, which never materializes the
attention matrix. :func:`capture_attention` registers forward-pre-hooks on every ``GlobalMHRA``: a
hook receives the block's normalized tokens and recomputes ``softmax(Q K^T / sqrt(d))`` from the
module's own ``qkv`` weights, outside the forward, so the logits are bit-for-bit those of a plain
forward. Hooks record only forwards run by the thread (context) that opened the capture, so two
requests sharing one model never see each other's maps.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field

import torch
from torch import nn

from ..blocks import GlobalMHRA

__all__ = ["AttentionCapture", "capture_attention", "global_mhra_modules"]

_ACTIVE: contextvars.ContextVar["AttentionCapture | None"] = contextvars.ContextVar("uniformer_capture", default=None)


def global_mhra_modules(model: nn.Module) -> dict[str, GlobalMHRA]:
    """Every global MHRA of ``model`` by its module path, in forward order
    (e.g. ``'stages.2.blocks.0.mhra'``)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, GlobalMHRA)}


@dataclass
class AttentionCapture:
    """Attention probabilities recorded during forwards inside :func:`capture_attention`.

    ``maps[name]``: (B, heads, N, N) float32 tensor per global MHRA module path (rows sum to 1;
    row i = how token i aggregates all N tokens); ``spatial[name]``: the token grid (H, W) or
    (T, H, W) of that block, N = prod(grid).
    """

    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    spatial: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.maps)


def _attention_probs(module: GlobalMHRA, tokens: torch.Tensor) -> torch.Tensor:
    q, k, _ = module.qkv_heads(tokens.float() if tokens.dtype != torch.float32 else tokens)
    return (q @ k.transpose(-2, -1) * module.scale).softmax(-1)  # (B, heads, N, N)


@contextlib.contextmanager
def capture_attention(model: nn.Module):
    """Record every global MHRA's attention probabilities for forwards run in this context.

    Yields an :class:`AttentionCapture` filled as forwards run (one forward per capture is the usual
    use; a second forward overwrites). Thread-safe: other threads' forwards are not recorded.
    The token grid of each block is taken from the enclosing ``UniFormerBlock``'s input.
    Windowed MHRAs (dense backbones run with windows) are not recorded.
    """
    capture = AttentionCapture()
    handles = []

    def make_pre_hook(name: str):
        def pre_hook(module, args):
            if _ACTIVE.get() is not capture:
                return None
            with torch.no_grad():
                capture.maps[name] = _attention_probs(module, args[0]).detach()
            return None
        return pre_hook

    def make_grid_hook(name: str):
        def block_hook(module, args):
            if _ACTIVE.get() is capture:
                capture.spatial[name] = tuple(args[0].shape[2:])
            return None
        return block_hook

    for name, module in model.named_modules():
        mhra = getattr(module, "mhra", None)
        if isinstance(mhra, GlobalMHRA) and mhra.window_size is None:
            handles.append(module.register_forward_pre_hook(make_grid_hook(f"{name}.mhra")))
            handles.append(mhra.register_forward_pre_hook(make_pre_hook(f"{name}.mhra")))
    token = _ACTIVE.set(capture)
    try:
        yield capture
    finally:
        _ACTIVE.reset(token)
        for h in handles:
            h.remove()
