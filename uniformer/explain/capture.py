"""Capture global-MHRA attention (Eq. 7) without changing the model's forward.

The forward always runs the fused ``scaled_dot_product_attention``, which never materializes the
attention matrix. :func:`capture_attention` reads them with forward-pre-hooks (installed once per model, then
left in place and idle while nobody captures) that receive the exact
normalized tokens a global MHRA attends over and recompute ``softmax(Q K^T / sqrt(d))`` from the
module's own ``qkv`` weights, outside the forward (in float32, autocast off), so the logits are
bit-for-bit those of a plain forward. Hooks record only forwards run by the thread (context) that
opened the capture, so two requests sharing one model never see each other's maps, and no capture
changes a hook dict another thread's forward may be reading.

Every capture is a (B, heads, N, N) matrix over the block's N = prod(grid) tokens, whatever the
attention actually ran over (:attr:`AttentionCapture.kinds`):

* ``'global'`` (§3.2.2): plain self-attention over all N tokens; rows sum to 1.
* ``'window'`` (dense backbones, §4.3, ``GlobalMHRA.window_size``): attention inside each
  ws x ws window of the grid zero-padded right/bottom to multiples of ws (the official rule). The
  matrix holds the real (unpadded) tokens only and is block-sparse: entry (i, j) is 0 unless i and
  j share a window. The padded zero tokens take part in the official softmax (no mask), so in
  windows that reach into the padding a row over the real tokens sums to **less than 1** (the rest
  went to padding); rows of windows without padding sum to 1.
* ``'hourglass'`` (light models' H-UniFormer blocks, §5.1): the MHRA attends over the sequence
  [score token, K kept tokens (by decreasing score), representative] (M = K + 2) or, in blocks
  that do not shrink, [score token, all N tokens] (M = N + 1). That attention, (B, heads, M, M),
  is kept as recorded in :attr:`AttentionCapture.shrunk` together with the kept / fused grid
  indices; ``maps`` holds its projection on the grid (:meth:`ShrunkAttention.to_grid`):
  **rows**: a kept token uses its own row; a fused token uses the representative's row (it receives
  exactly the representative's update, the "fast update"); **columns**: a kept token gets its own
  column; the representative's column is **split** over the fused tokens by their fuse weights
  (the representative is their weighted sum, weights summing to 1), so no mass is invented; the
  score token's column (not a grid token) is left out, so rows sum to 1 minus the attention to the
  score token.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..blocks import GlobalMHRA
from ..models.light import HourglassBlock

__all__ = ["AttentionCapture", "ShrunkAttention", "capture_attention", "global_mhra_modules", "window_attention"]

_ACTIVE: contextvars.ContextVar["_Recorder | None"] = contextvars.ContextVar("uniformer_capture", default=None)


def global_mhra_modules(model: nn.Module) -> dict[str, GlobalMHRA]:
    """Every global MHRA of ``model`` by its module path, in forward order
    (e.g. ``'stages.2.blocks.0.mhra'``)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, GlobalMHRA)}


@dataclass
class ShrunkAttention:
    """The attention of one hourglass block (light models, §5.1) over the tokens it really ran on.

    probs: (B, heads, M, M) float32 softmax over the sequence [score token, kept tokens, representative]
    (M = K + 2), or [score token, all N tokens in grid order] (M = N + 1) when the block does not
    shrink; rows sum to 1. kept: (B, K) int64, grid index (row-major) of sequence position 1 + k;
    fused: (B, N - K) int64, the grid tokens fused into the representative (position M - 1);
    fuse_weights: (B, N - K) float32, their weights in it (sum to 1); grid: (H, W) or (T, H, W).
    """

    probs: torch.Tensor
    kept: torch.Tensor
    fused: torch.Tensor
    fuse_weights: torch.Tensor
    grid: tuple[int, ...]

    @property
    def num_tokens(self) -> int:
        """N, the tokens of the grid."""
        n = 1
        for g in self.grid:
            n *= g
        return n

    @property
    def shrinks(self) -> bool:
        """True when some tokens were fused into a representative."""
        return self.fused.shape[1] > 0

    def source_position(self) -> torch.Tensor:
        """(B, N) int64: for each grid token, the sequence position whose attention row it takes:
        1 + rank for a kept token, M - 1 (the representative) for a fused one."""
        B, K = self.kept.shape
        M = self.probs.shape[-1]
        pos = torch.full((B, self.num_tokens), M - 1, dtype=torch.long, device=self.kept.device)
        ranks = torch.arange(1, K + 1, device=self.kept.device).expand(B, K)
        return pos.scatter(1, self.kept, ranks)

    def column_map(self) -> torch.Tensor:
        """(B, M, N) float32 S with S[b, p, j] = how much of sequence position p's column goes to grid
        token j: 1 from a kept token's position to itself, fuse weight w_j from the representative to
        each fused token j, nothing from the score token (position 0)."""
        B, K = self.kept.shape
        M, N = self.probs.shape[-1], self.num_tokens
        S = torch.zeros(B, M, N, dtype=torch.float32, device=self.probs.device)
        rows = torch.arange(1, K + 1, device=S.device).expand(B, K)
        S[torch.arange(B, device=S.device)[:, None], rows, self.kept] = 1.0
        if self.shrinks:
            S[:, M - 1].scatter_(1, self.fused, self.fuse_weights.float())
        return S

    def to_grid(self) -> torch.Tensor:
        """(B, heads, N, N) float32 on the token grid (see the module doc): row i = the row of
        :meth:`source_position` i, columns through :meth:`column_map`. Rows sum to 1 minus the
        attention to the score token."""
        pos = self.source_position()  # (B, N)
        heads, M = self.probs.shape[1], self.probs.shape[-1]
        rows = self.probs.gather(2, pos[:, None, :, None].expand(-1, heads, -1, M))  # (B, heads, N, M)
        return rows @ self.column_map()[:, None]  # (B, heads, N, N)

    def score_token_share(self) -> torch.Tensor:
        """(B, heads, N): each grid token's attention to the score token (what its grid row lacks)."""
        pos = self.source_position()
        heads = self.probs.shape[1]
        return self.probs[..., 0].gather(2, pos[:, None].expand(-1, heads, -1))


@dataclass
class AttentionCapture:
    """Attention probabilities recorded during forwards inside :func:`capture_attention`.

    ``maps[name]``: (B, heads, N, N) float32 per global MHRA module path, on the block's token grid
    (row i = how token i aggregates the N tokens; rows sum to 1 for ``'global'``, to at most 1 for
    ``'window'`` and ``'hourglass'``, see the module doc); ``spatial[name]``: the token grid (H, W)
    or (T, H, W) of that block, N = prod(grid); ``kinds[name]``: ``'global'``, ``'window'`` or
    ``'hourglass'``; ``shrunk[name]``: for hourglass blocks, the attention over the tokens the block
    really attended (:class:`ShrunkAttention`).
    """

    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    spatial: dict[str, tuple[int, ...]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    shrunk: dict[str, ShrunkAttention] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.maps)


def _attention_probs(module: GlobalMHRA, tokens: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) of tokens (B', M, C) with ``module``'s weights -> (B', heads, M, M)
    float32 (autocast off, so the same numbers whatever precision the forward runs in)."""
    with torch.autocast(device_type=tokens.device.type, enabled=False):
        q, k, _ = module.qkv_heads(tokens.float())
        return (q @ k.transpose(-2, -1) * module.scale).softmax(-1)


def window_attention(module: GlobalMHRA, tokens: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """The attention of a windowed MHRA (§4.3) on the real tokens: tokens (B, N, C) normalized as
    the block feeds them, grid (H, W) -> (B, heads, N, N) float32, block-sparse (0 between tokens of
    different windows). Windows and zero padding are ``module.window_partition``'s, i.e. the
    forward's; padded tokens take part in the softmax, so rows of edge windows sum to < 1."""
    B, N, _ = tokens.shape
    windows, _ = module.window_partition(tokens, grid)  # (B * nWin, L, C), L = ws * ws
    P = _attention_probs(module, windows)  # (B * nWin, heads, L, L)
    heads, L = P.shape[1], P.shape[-1]
    # the same partition of the token ids 1..N (0 = padding) says which slot holds which token
    ids = torch.arange(1, N + 1, dtype=torch.float64, device=tokens.device).view(1, N, 1)
    ids = module.window_partition(ids, grid)[0][..., 0].round().long()  # (nWin, L)
    n_win = ids.shape[0]
    real = ids > 0
    pair = real[:, :, None] & real[:, None, :]  # (nWin, L, L)
    w, si, sj = pair.nonzero(as_tuple=True)
    src = (w * L + si) * L + sj
    dst = (ids[w, si] - 1) * N + (ids[w, sj] - 1)
    P = P.view(B, n_win, heads, L, L).permute(0, 2, 1, 3, 4).reshape(B, heads, n_win * L * L)
    out = torch.zeros(B, heads, N * N, dtype=torch.float32, device=tokens.device)
    out[..., dst] = P[..., src]
    return out.view(B, heads, N, N)


class _Recorder:
    """What the permanent taps write into while a :func:`capture_attention` is open in this context:
    the capture and the module path of each global MHRA / shrink tap of the captured model."""

    def __init__(self, capture: AttentionCapture, names: dict[int, str]):
        self.capture = capture
        self.names = names


class _MHRATap:
    """Permanent forward-pre-hook of a global MHRA (args only: the block calls ``mhra(tokens, grid)``).
    Does nothing unless a capture is open in the calling context and covers this module."""

    def __call__(self, module: GlobalMHRA, args):
        rec = _ACTIVE.get()
        name = None if rec is None else rec.names.get(id(module))
        if name is None:
            return None
        tokens = args[0]  # (B, N, C) normalized tokens
        grid = tuple(args[1]) if len(args) > 1 and args[1] is not None else None
        capture = rec.capture
        with torch.no_grad():
            if module.window_size is None:
                capture.maps[name] = _attention_probs(module, tokens).detach()
                capture.kinds[name] = "global"
            else:
                capture.maps[name] = window_attention(module, tokens, grid).detach()
                capture.kinds[name] = "window"
        if grid is not None:
            capture.spatial[name] = grid
        return None


class _ShrinkTapHook:
    """Permanent forward-pre-hook of an hourglass block's ``shrink_tap`` (light models, §5.1)."""

    def __init__(self, mhra: GlobalMHRA):
        self.mhra = mhra

    def __call__(self, module: nn.Module, args):
        rec = _ACTIVE.get()
        name = None if rec is None else rec.names.get(id(module))
        if name is None:
            return None
        tokens, trace = args  # (B, M, C), BlockTrace
        capture = rec.capture
        with torch.no_grad():
            shrunk = ShrunkAttention(_attention_probs(self.mhra, tokens).detach(), trace.kept, trace.fused,
                                     trace.fuse_weights.float(), tuple(trace.grid))
            capture.shrunk[name] = shrunk
            capture.maps[name] = shrunk.to_grid()
            capture.spatial[name] = shrunk.grid
            capture.kinds[name] = "hourglass"
        return None


_INSTALL_LOCK = threading.Lock()


def _tap_points(model: nn.Module) -> dict[nn.Module, tuple[str, object]]:
    """The module each capture hook sits on -> (capture name, hook class to install there)."""
    points = {}
    for name, module in model.named_modules():
        mhra = getattr(module, "mhra", None)
        if not isinstance(mhra, GlobalMHRA):
            continue
        if isinstance(module, HourglassBlock):
            points[module.shrink_tap] = (f"{name}.mhra", _ShrinkTapHook(mhra))
        else:
            points[mhra] = (f"{name}.mhra", _MHRATap())
    return points


def _install_taps(points: dict[nn.Module, tuple[str, object]]) -> None:
    """Install each tap once and for good (idempotent). A hook is added to a module's hook dict by
    one dict insertion (no ``with_kwargs``: nothing is half-registered), never removed, and is a
    no-op while nobody captures, so forwards running in other threads meanwhile are unaffected."""
    with _INSTALL_LOCK:
        for module, (_, hook) in points.items():
            if not any(isinstance(h, (_MHRATap, _ShrinkTapHook)) for h in module._forward_pre_hooks.values()):
                module.register_forward_pre_hook(hook)


@contextlib.contextmanager
def capture_attention(model: nn.Module):
    """Record every global MHRA's attention probabilities for forwards run in this context.

    Yields an :class:`AttentionCapture` filled as forwards run (one forward per capture is the usual
    use; a second forward overwrites). Covers plain global blocks, windowed blocks of dense
    backbones and the hourglass blocks of the light models (image, video and dense), each as a
    (B, heads, N, N) matrix on the block's token grid (see the module doc for what rows and columns
    mean in each case).

    Race-free by design: the first capture on a model installs parameter-free forward-pre-hooks
    (one per global MHRA / shrink tap) permanently; they read a context variable that holds the
    open capture of the calling thread (or task) and return at once when it is None. No capture
    registers or removes hooks on the shared model afterwards, so concurrent forwards (captured or
    not) never see a hook dict being changed, and each capture sees only its own context's
    forwards. The hooks never change the forward: logits are bit-identical with or without them.
    """
    capture = AttentionCapture()
    points = _tap_points(model)
    _install_taps(points)
    token = _ACTIVE.set(_Recorder(capture, {id(m): name for m, (name, _) in points.items()}))
    try:
        yield capture
    finally:
        _ACTIVE.reset(token)
