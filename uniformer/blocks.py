"""The UniFormer building blocks (paper §3, Eq. 1-8), each written once for 2-D and 3-D inputs.

A UniFormer block (Eq. 1-3) is

    X = DPE(X_in) + X_in                 (Eq. 1, dynamic position embedding)
    Y = MHRA(Norm(X)) + X                (Eq. 2, multi-head relation aggregator)
    Z = FFN(Norm(Y)) + Y                 (Eq. 3, feed-forward network)

with a *local* MHRA (Eq. 5-6: a learnable, fixed neighbourhood affinity, implemented as
PWConv -> DWConv -> PWConv, §3.2.1) in the shallow stages and a *global* MHRA (Eq. 7:
content-dependent self-attention over all tokens) in the deep ones.

Every module takes ``spatial_dims`` = 2 for images, (B, C, H, W), or 3 for video, (B, C, T, H, W).
Layouts: local blocks work channels-first on maps; global blocks work on tokens (B, N, C) with
N = prod(spatial size). Norms follow the official checkpoints: BatchNorm in local blocks, LayerNorm
(eps 1e-6) in global blocks, LayerNorm (eps 1e-5) in patch embeddings.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, to_ntuple
from torch import nn

__all__ = [
    "BLOCK_TYPES",
    "DPE",
    "FFN",
    "ConvStem",
    "GlobalMHRA",
    "LayerScale",
    "LocalMHRA",
    "PatchEmbed",
    "UniFormerBlock",
    "conv_nd",
    "batch_norm_nd",
]

BLOCK_TYPES = ("local", "global")


def conv_nd(spatial_dims: int) -> type[nn.Module]:
    """``nn.Conv2d`` for ``spatial_dims=2``, ``nn.Conv3d`` for 3. Raises ValueError otherwise."""
    if spatial_dims == 2:
        return nn.Conv2d
    if spatial_dims == 3:
        return nn.Conv3d
    raise ValueError(f"spatial_dims must be 2 (images) or 3 (video), got {spatial_dims}")


def batch_norm_nd(spatial_dims: int) -> type[nn.Module]:
    """``nn.BatchNorm2d`` / ``nn.BatchNorm3d`` for ``spatial_dims`` 2 / 3."""
    conv_nd(spatial_dims)  # validates
    return nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d


def _channels_last_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the channel dim of a channels-first map (B, C, *S) -> (B, C, *S)."""
    return norm(x.movedim(1, -1)).movedim(-1, 1)


class DPE(nn.Module):
    """Dynamic position embedding (§3.4, Eq. 1 without the residual): a depthwise convolution.

    ``forward``: (B, C, *S) -> (B, C, *S), the same size ("same" padding).
    """

    def __init__(self, dim: int, kernel_size: int = 3, spatial_dims: int = 2):
        super().__init__()
        self.proj = conv_nd(spatial_dims)(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class LocalMHRA(nn.Module):
    """Local multi-head relation aggregator (§3.2.1, Eq. 5-6).

    The local token affinity A_n(X_i, X_j) = a_n^{i-j} is a learned, content-independent
    function of the relative position inside a ``kernel_size`` neighbourhood, one per channel
    (so per head): a depthwise convolution. With V = PWConv(X) and the output projection U a
    PWConv, local MHRA is PWConv -> DWConv -> PWConv.

    ``forward``: channels-first map (B, C, *S) -> (B, C, *S).
    """

    channels_last = False

    def __init__(self, dim: int, kernel_size: int = 5, spatial_dims: int = 2):
        super().__init__()
        conv = conv_nd(spatial_dims)
        self.value = conv(dim, dim, 1)  # V_n(X) for all heads at once
        self.affinity = conv(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)  # a_n
        self.proj = conv(dim, dim, 1)  # U: fuses the heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.affinity(self.value(x)))


class GlobalMHRA(nn.Module):
    """Global multi-head relation aggregator (§3.2.2, Eq. 7): self-attention over all N tokens.

    A_n(X_i, X_j) = softmax_j(Q_n(X_i)^T K_n(X_j) / sqrt(d)), heads = dim // head_dim, d = dim //
    heads. Runs ``F.scaled_dot_product_attention`` (fused kernels where available).

    ``window_size`` (dense backbones, §4.3): attention inside non-overlapping windows of the 2-D
    token grid instead; the grid is zero-padded right/bottom to a multiple of the window (the
    official rule: padding after the norm, no mask), same parameters as the global form.

    ``forward(x, grid=None)``: tokens (B, N, C) -> (B, N, C); ``grid`` = (H, W) is needed only
    for windows. Raises ValueError when a windowed MHRA gets no 2-D grid.
    """

    channels_last = True

    def __init__(self, dim: int, head_dim: int = 64, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, window_size: int | None = None):
        super().__init__()
        if head_dim <= 0 or dim % head_dim:
            raise ValueError(f"dim {dim} is not a multiple of head_dim {head_dim}")
        if window_size is not None and window_size <= 0:
            raise ValueError(f"window_size must be positive, got {window_size}")
        self.window_size = window_size
        self.num_heads = dim // head_dim
        self.head_dim = dim // self.num_heads
        self.scale = self.head_dim ** -0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens (B, N, C) -> q, k, v, each (B, heads, N, head_dim)."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim)  # (B, N, 3, heads, d)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, heads, N, d)

    def _aggregate(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, _, N, _ = q.shape
        drop = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, scale=self.scale)  # (B, heads, N, d)
        x = x.transpose(1, 2).reshape(B, N, -1)  # heads concatenated: (B, N, C)
        return self.proj_drop(self.proj(x))

    def window_partition(self, x: torch.Tensor, grid: Sequence[int] | None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Windowed layout (§4.3): tokens (B, N, C) on the 2-D grid (H, W) -> (windows, (Hp, Wp)).

        windows: (B * nH * nW, ws * ws, C), the grid zero-padded right/bottom to (Hp, Wp) = multiples
        of ``window_size`` (nH = Hp / ws, nW = Wp / ws); window (b, wh, ww) is row
        ``(b * nH + wh) * nW + ww``, its token (r, c) is slot ``r * ws + c``. The one place this
        layout is defined: ``forward`` and :func:`uniformer.explain.capture_attention` both use it.
        Raises ValueError when ``grid`` is not 2-D or the MHRA is not windowed.
        """
        if self.window_size is None:
            raise ValueError("this MHRA is global (window_size None): it has no windows")
        if grid is None or len(grid) != 2:
            raise ValueError(f"windowed MHRA needs the 2-D token grid (H, W), got {grid}")
        B, N, C = x.shape
        H, W = grid
        ws = self.window_size
        x = F.pad(x.view(B, H, W, C), (0, 0, 0, (-W) % ws, 0, (-H) % ws))  # zeros right/bottom
        Hp, Wp = x.shape[1:3]
        windows = x.view(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5)  # (B, nH, nW, ws, ws, C)
        return windows.reshape(-1, ws * ws, C), (Hp, Wp)

    def forward(self, x: torch.Tensor, grid: Sequence[int] | None = None) -> torch.Tensor:
        if self.window_size is None:
            return self._aggregate(*self.qkv_heads(x))
        windows, (Hp, Wp) = self.window_partition(x, grid)  # (B * nH * nW, ws*ws, C); checks grid
        B, N, C = x.shape
        H, W = grid
        ws = self.window_size
        out = self._aggregate(*self.qkv_heads(windows))  # (B * nH * nW, ws*ws, C)
        out = out.view(B, Hp // ws, Wp // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
        return out[:, :H, :W].reshape(B, N, C)  # crop the padding away

    def forward_with_query0_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``forward``, and also the attention of token 0 (the score token) to the others,
        averaged over heads, computed in float32: tokens (B, N, C) -> ((B, N, C), (B, N - 1)).
        Used by token shrinking (§5.1, Eq. 9)."""
        q, k, v = self.qkv_heads(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = q[:, :, :1].float() @ k.float().transpose(-2, -1) * self.scale  # (B, heads, 1, N)
            row = logits.softmax(-1)[:, :, 0, 1:].mean(1)  # (B, N - 1)
        return self._aggregate(q, k, v), row


class FFN(nn.Module):
    """Feed-forward network (Eq. 3): fc1 -> GELU -> fc2, hidden = ``mlp_ratio`` x dim.

    ``channels_last=True``: Linear layers on tokens (B, N, C) (global blocks);
    ``channels_last=False``: 1x1 convolutions on maps (B, C, *S) (local blocks).
    """

    def __init__(self, dim: int, hidden_dim: int, channels_last: bool = True, spatial_dims: int = 2,
                 drop: float = 0.0):
        super().__init__()
        if channels_last:
            self.fc1, self.fc2 = nn.Linear(dim, hidden_dim), nn.Linear(hidden_dim, dim)
        else:
            conv = conv_nd(spatial_dims)
            self.fc1, self.fc2 = conv(dim, hidden_dim, 1), conv(hidden_dim, dim, 1)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LayerScale(nn.Module):
    """Per-channel learnable scale (CaiT layer scale): ``x * gamma``, gamma of shape (C,).

    ``channel_dim`` says where C sits: -1 for tokens (B, N, C), 1 for maps (B, C, *S). (timm's
    ``LayerScale`` is channels-last only and its ``LayerScale2d`` 4-D only; video maps are 5-D.)
    """

    def __init__(self, dim: int, init_value: float = 1e-6, channel_dim: int = -1):
        super().__init__()
        self.channel_dim = channel_dim
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim == -1:
            return x * self.gamma
        return x * self.gamma.view(-1, *([1] * (x.ndim - 2)))  # (C, 1, ..., 1)


class UniFormerBlock(nn.Module):
    """One UniFormer block (Eq. 1-3): DPE, then MHRA and FFN, each pre-norm with a residual.

    ``block_type`` 'local' (Eq. 5-6, BatchNorm, conv FFN) or 'global' (Eq. 7, LayerNorm eps 1e-6,
    linear FFN; ``window_size`` makes its MHRA windowed, §4.3). ``forward``: (B, C, *S) -> (B, C, *S)
    with S = (H, W) or (T, H, W).
    Raises ValueError for an unknown ``block_type``.
    """

    def __init__(self, dim: int, block_type: str = "global", spatial_dims: int = 2, head_dim: int = 64,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, layer_scale_init: float | None = None, local_kernel_size: int = 5,
                 dpe_kernel_size: int = 3, window_size: int | None = None):
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {block_type!r}")
        self.block_type = block_type
        self.dpe = DPE(dim, dpe_kernel_size, spatial_dims)
        hidden = int(dim * mlp_ratio)
        if block_type == "local":
            norm = batch_norm_nd(spatial_dims)
            self.norm1 = norm(dim)
            self.mhra = LocalMHRA(dim, local_kernel_size, spatial_dims)
            self.norm2 = norm(dim)
        else:
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.mhra = GlobalMHRA(dim, head_dim, qkv_bias, attn_drop, drop, window_size)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        channels_last = self.mhra.channels_last
        self.ffn = FFN(dim, hidden, channels_last, spatial_dims, drop)
        channel_dim = -1 if channels_last else 1
        self.ls1 = LayerScale(dim, layer_scale_init, channel_dim) if layer_scale_init is not None else nn.Identity()
        self.ls2 = LayerScale(dim, layer_scale_init, channel_dim) if layer_scale_init is not None else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _mhra_ffn(self, x: torch.Tensor, *mhra_args) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.mhra(self.norm1(x), *mhra_args)))  # Eq. 2
        return x + self.drop_path(self.ls2(self.ffn(self.norm2(x))))  # Eq. 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dpe(x)  # Eq. 1
        if not self.mhra.channels_last:
            return self._mhra_ffn(x)
        B, C, *grid = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, C, *S) -> (B, N, C)
        x = self._mhra_ffn(x, grid)
        return x.transpose(1, 2).reshape(B, C, *grid)  # (B, N, C) -> (B, C, *S)


class PatchEmbed(nn.Module):
    """Patch embedding / downsampling: a convolution with kernel = stride, then LayerNorm (eps 1e-5).

    Sizes that the stride does not divide are floored (the official behaviour). ``norm=False``
    leaves the LayerNorm out. ``forward``: (B, C_in, *S) -> (B, C_out, *S // stride).
    """

    def __init__(self, in_dim: int, out_dim: int, patch_size: int | Sequence[int] = 4,
                 stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
                 spatial_dims: int = 2, norm: bool = True):
        super().__init__()
        stride = patch_size if stride is None else stride
        per_dim = to_ntuple(spatial_dims)  # timm's: an int repeated, a sequence as a tuple
        self.proj = conv_nd(spatial_dims)(in_dim, out_dim, per_dim(patch_size), per_dim(stride), per_dim(padding))
        self.norm = nn.LayerNorm(out_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return x if self.norm is None else _channels_last_norm(self.norm, x)


class ConvStem(nn.Module):
    """Overlapping convolutional downsampling (the S-dagger / light models' "conv stem", Table 1).

    ``stem=True`` (first stage, stride 4): Conv3x3 s2 (-> C/2) · BN · GELU · Conv3x3 s2 (-> C) · BN;
    in 3-D (light video) the kernels are 3x3x3 with strides (1, 2, 2) then (2, 2, 2), halving T.
    ``stem=False`` (later stages, stride 2): Conv3x3 s2 · BN. Padding 1, so sizes are ceil-divided.
    Keys follow the official ``proj.{0,1,3,4}`` / ``proj.{0,1}``. ``forward``: (B, C_in, *S) -> (B, C_out, *S').
    """

    def __init__(self, in_dim: int, out_dim: int, stem: bool = True, spatial_dims: int = 2):
        super().__init__()
        conv, bn = conv_nd(spatial_dims), batch_norm_nd(spatial_dims)
        if stem:
            mid = out_dim // 2
            first_stride = 2 if spatial_dims == 2 else (1, 2, 2)
            self.proj = nn.Sequential(conv(in_dim, mid, 3, first_stride, 1), bn(mid), nn.GELU(),
                                      conv(mid, out_dim, 3, 2, 1), bn(out_dim))
        else:
            self.proj = nn.Sequential(conv(in_dim, out_dim, 3, 2, 1), bn(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
