"""The learned local token affinity a_n of local MHRA (Eq. 6) and its receptive field on the image.

Local MHRA is PWConv -> DWConv -> PWConv (§3.2.1): the depthwise k x k convolution *is* the local
affinity, A_n(X_i, X_j) = a_n^{i-j} for j in the k x k neighbourhood of i, one kernel per channel
(the paper: "each head is corresponding to an output feature channel"). PyTorch convolutions are
cross-correlations, so token i takes weight ``kernel[j - i + k // 2]`` from token j: the kernel
laid around the query token as it is stored, no flip.

Head grouping for display: a stage of ``dim`` channels is shown as ``dim // head_dim`` groups of
``head_dim`` consecutive channels (head_dim of the model config, 64 for UniFormer-S/B), the head
count a global MHRA of that width would have; a group's map is the mean of its channels'
normalized |a_n|. The exact per-channel kernels stay available (:attr:`LocalAffinity.kernels`).

Effective receptive field (:func:`effective_receptive_field`): gradient-based (Luo et al., 2016),
|d sum_c Y_c[token] / d input| summed over RGB, of a stage's output token with respect to the model
input, next to the theoretical receptive field obtained by composing every convolution's kernel
and stride up to that stage (analytically).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .analysis import LOCAL, Analysis, LayerInfo
from .query import QueryMap

__all__ = ["LocalAffinity", "local_affinity", "ReceptiveField", "theoretical_receptive_field",
           "effective_receptive_field"]


@dataclass(frozen=True)
class LocalAffinity:
    """The local affinity of one local-MHRA layer.

    kernels: (C, k, k) float32, exactly the layer's ``mhra.affinity.weight[:, 0]`` (a_n per channel
    n, Eq. 6); head_dim: channels per display group (``layer.heads`` groups).
    """

    layer: LayerInfo
    kernels: np.ndarray
    head_dim: int

    @property
    def kernel_size(self) -> int:
        return self.kernels.shape[-1]

    def group_channels(self, head: int) -> slice:
        """Channels of display group ``head`` (0-based): ``head_dim`` consecutive channels."""
        if not 0 <= head < self.layer.heads:
            raise IndexError(f"{self.layer.label} has {self.layer.heads} channel groups; {head} does not exist")
        return slice(head * self.head_dim, (head + 1) * self.head_dim)

    def neighbourhood(self, token: int) -> np.ndarray:
        """(C, h, w) float32: row ``token`` of A_n for every channel n on the layer's grid, i.e.
        ``kernels[n]`` placed with its centre on the token (zero padding cuts it at the border,
        zeros outside the neighbourhood): signed, the model's weights themselves."""
        h, w = self.layer.grid
        C, k, _ = self.kernels.shape
        p = k // 2
        r, c = divmod(token, w)
        out = np.zeros((C, h + 2 * p, w + 2 * p), np.float32)
        out[:, r:r + k, c:c + k] = self.kernels  # padded coords: token at (r + p, c + p)
        return out[:, p:p + h, p:p + w]

    def group_kernels(self) -> np.ndarray:
        """(groups, k, k): per display group, the mean over its channels of |a_n| / sum |a_n|
        (each channel's kernel magnitude normalized to sum 1, so every group map sums to 1)."""
        mag = np.abs(self.kernels)
        mag = mag / np.maximum(mag.sum((1, 2), keepdims=True), 1e-12)
        G, k = self.layer.heads, self.kernel_size
        return mag[:G * self.head_dim].reshape(G, self.head_dim, k, k).mean(1)

    def query_map(self, token: int) -> QueryMap:
        """The normalized-magnitude neighbourhood of ``token`` per channel group as a QueryMap."""
        h, w = self.layer.grid
        p = self.kernel_size // 2
        r, c = divmod(token, w)
        groups = self.group_kernels()
        out = np.zeros((groups.shape[0], h + 2 * p, w + 2 * p), np.float32)
        out[:, r:r + self.kernel_size, c:c + self.kernel_size] = groups
        return QueryMap(self.layer, token, out[:, p:p + h, p:p + w])

    def to_dict(self) -> dict:
        """JSON-ready: layer, kernel size, head grouping and the per-channel kernels."""
        return {"layer": self.layer.name, "label": self.layer.label, "kernel_size": self.kernel_size,
                "channels": int(self.kernels.shape[0]), "head_dim": self.head_dim, "groups": self.layer.heads,
                "kernels": np.round(self.kernels, 6).tolist()}


def local_affinity(analysis: Analysis, layer: LayerInfo | int | str) -> LocalAffinity:
    """The :class:`LocalAffinity` of a local layer of ``analysis`` (no model needed: the kernels
    were copied at :func:`~uniformer.explain.analyze` time). Raises ValueError for a global layer."""
    info = layer if isinstance(layer, LayerInfo) else analysis.layer(layer)
    if info.kind != LOCAL:
        raise ValueError(f"{info.label} is not a local MHRA: its affinity is content-dependent attention (Eq. 7)")
    return LocalAffinity(info, analysis.kernels[info.name], max(1, info.dim // info.heads))


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output token of a stage, in model-input pixels.

    stage, token, grid: the token (row-major in the stage's (h, w) grid); erf: (S_h, S_w) float32
    gradient magnitude, normalized to max 1 (the effective receptive field); theoretical: (x0, y0,
    x1, y1) box of input pixels that can influence the token at all (clipped to the input);
    theoretical_size: its side in pixels before clipping; radius_90: radius (pixels) around the
    token centre holding 90% of the gradient mass.
    """

    stage: int
    token: int
    grid: tuple[int, int]
    erf: np.ndarray
    theoretical: tuple[float, float, float, float]
    theoretical_size: int
    radius_90: float


def theoretical_receptive_field(model: nn.Module, stage: int) -> tuple[int, int]:
    """(size, jump) in input pixels of a stage-``stage`` (0-based) output token: every Conv2d of
    ``model.stages[:stage + 1]`` composed in module order (size += (k - 1) * jump, jump *= stride).
    Pointwise convs add nothing; each local block's 3x3 DPE and 5x5 affinity grow it. UniFormer-S
    stage 2: 4 + 3 x 24 + 4 + 4 x 48 = 272 pixels, more than the 224 crop."""
    size, jump = 1, 1
    for module in model.stages[:stage + 1].modules():
        if isinstance(module, nn.Conv2d):
            size += (module.kernel_size[0] - 1) * jump
            jump *= module.stride[0]
    return size, jump


def effective_receptive_field(model: nn.Module, analysis: Analysis, x: float, y: float,
                              stage: int = 1) -> ReceptiveField:
    """Gradient-based ERF of the ``stage`` (0-based; default 1 = stage 2, the last local stage)
    output token under original pixel (x, y): runs stages 0..stage on ``analysis.input`` with
    autograd on the input only (``torch.autograd.grad``: no parameter ``.grad`` is touched, so it
    is safe on a model other requests share). Only the local stages (stage <= 1) are supported for
    the light models (their later stages need the token-shrinking state). Raises ValueError for a
    pixel outside the crop."""
    grid = analysis.stage_grid(stage)
    token = analysis.geometry.token_at(x, y, grid)
    device = next(model.parameters()).device
    inp = analysis.input.to(device).clone().requires_grad_(True)
    with torch.enable_grad():
        out = inp
        for s in range(stage + 1):
            block_stage = model.stages[s]
            out = block_stage.blocks(block_stage.downsample(out))
        r, c = divmod(token, grid[1])
        (grad,) = torch.autograd.grad(out[0, :, r, c].sum(), inp)
    erf = grad[0].abs().sum(0).float().cpu().numpy()  # (S_h, S_w)
    erf = erf / max(float(erf.max()), 1e-30)
    size, _ = theoretical_receptive_field(model, stage)
    S_h, S_w = analysis.geometry.input_size
    sx, sy = analysis.stride(grid)
    cx, cy = (c + 0.5) * sx, (r + 0.5) * sy
    half = size / 2
    box = (max(0.0, cx - half), max(0.0, cy - half), min(float(S_w), cx + half), min(float(S_h), cy + half))
    yy, xx = np.mgrid[0:S_h, 0:S_w]
    dist = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy).ravel()
    order = np.argsort(dist)
    mass = np.cumsum(erf.ravel()[order])
    radius = float(dist[order][np.searchsorted(mass, 0.9 * mass[-1])])
    return ReceptiveField(stage, token, tuple(grid), erf.astype(np.float32), box, int(size), radius)
