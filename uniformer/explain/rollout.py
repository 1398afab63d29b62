"""Attention rollout (Abnar & Zuidema, 2020) adapted to UniFormer's hierarchy.

A ViT has one token grid, so rollout multiplies the per-layer attention (plus identity for the
residual) through all layers. UniFormer has four grids and attention only in stages 3-4. Here:

* **Stages 1-2 (local, convolutional) are not rolled out.** Their mixing is local,
  content-independent and within the receptive field of a stage-3 token; the rollout is
  expressed over the **stage-3 input tokens** (stride 16: a 14 x 14 grid at 224) and drawn on
  the crop at that resolution.
* **Stage 3:** R3 = prod over its blocks (last on the left) of (r I + (1 - r) A_l), A_l the
  head-fused (mean by default) attention of block l, r = ``residual`` (0.5 as in the original);
  rows stay distributions.
* **Stage 3 -> 4 downsampling** (2x2 patch embedding, stride 2): stage-4 token (r, c) is made of
  stage-3 tokens (2r..2r+1, 2c..2c+1); the mapping D (N4 x N3) gives each of them 1/4 (its
  learned linear mixing of channels is ignored, as rollout ignores the value/projection
  weights everywhere). Conv-stem models (3x3 stride-2 downsampling) use the same 2x2 cells.
* **Stage 4:** R4 likewise; the rollout is R = R4 D R3 (N4 x N3): row t = how stage-4 token t
  draws on the stage-3 input tokens.
* DPE (Eq. 1) and the FFNs are ignored (per token or local), as in ViT rollout.
* **Windowed and hourglass layers** (dense backbones §4.3, light models §5.1) enter with their
  attention on the grid as captured (:mod:`uniformer.explain.capture`: block-sparse windows;
  the shrunk set's rows and columns mapped back onto the tokens they stand for). Their rows may
  sum to < 1 (mass on the zero padding or on the score token, neither a grid token): every fused
  row is renormalized over the grid tokens, so the rollout stays a distribution over them.

The classifier averages all stage-4 tokens, so :attr:`Rollout.class_map` is the mean of R's rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .analysis import GLOBAL, Analysis

__all__ = ["Rollout", "HEAD_FUSIONS", "rollout_matrix", "downsample_matrix", "attention_rollout"]

HEAD_FUSIONS = ("mean", "max", "min")


@dataclass(frozen=True)
class Rollout:
    """UniFormer attention rollout (see module doc).

    matrix: (N4, N3) float64, rows sum to 1; grid3 / grid4: the stage-3 and stage-4 token grids
    (h, w); layers: names of the rolled-out blocks; residual, head_fusion: the settings used.
    """

    matrix: np.ndarray
    grid3: tuple[int, int]
    grid4: tuple[int, int]
    layers: list[str]
    residual: float
    head_fusion: str

    @property
    def class_map(self) -> np.ndarray:
        """(h3, w3): the mean over all stage-4 tokens (what global average pooling feeds the head)."""
        return self.matrix.mean(0).reshape(self.grid3)

    def token_map(self, token: int) -> np.ndarray:
        """(h3, w3): row ``token`` (row-major index in the stage-4 grid)."""
        return self.matrix[token].reshape(self.grid3)


def rollout_matrix(attentions: list[np.ndarray], residual: float = 0.5, head_fusion: str = "mean") -> np.ndarray:
    """prod_l (r I + (1 - r) fuse(A_l)) over ``attentions`` [(heads, N, N)] in forward order
    (the last layer on the left) -> (N, N) float64; each fuse(A_l) has its rows renormalized to
    sum to 1 (they must not be all zero), so the result's rows sum to 1."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    n = attentions[0].shape[-1]
    eye = torch.eye(n, dtype=torch.float64)
    out = eye
    for A in attentions:  # torch matmuls: they follow torch's thread setting
        a = torch.from_numpy(A).double()
        fused = a.mean(0) if head_fusion == "mean" else getattr(a, head_fusion)(0).values
        fused = fused / fused.sum(-1, keepdim=True).clamp_min(1e-300)  # renormalize: max/min fusion, off-grid mass
        out = (residual * eye + (1 - residual) * fused) @ out
    return out.numpy()


def downsample_matrix(grid_in: tuple[int, int], grid_out: tuple[int, int]) -> np.ndarray:
    """(N_out, N_in) map of a stride-2 downsampling: output token (r, c) averages the input tokens
    (2r + dr, 2c + dc), dr, dc in {0, 1}, that exist in ``grid_in``."""
    (hi, wi), (ho, wo) = grid_in, grid_out
    D = np.zeros((ho * wo, hi * wi))
    for r in range(ho):
        for c in range(wo):
            cells = [(rr, cc) for rr in (2 * r, 2 * r + 1) for cc in (2 * c, 2 * c + 1) if rr < hi and cc < wi]
            for rr, cc in cells:
                D[r * wo + c, rr * wi + cc] = 1 / len(cells)
    return D


def attention_rollout(analysis: Analysis, residual: float = 0.5, head_fusion: str = "mean") -> Rollout:
    """Rollout of stages 3-4 of ``analysis`` (see module doc), plain, windowed / hybrid and light
    (hourglass) models alike. Raises ValueError when a block of stage 3 or 4 has no captured
    attention (``analysis.skipped`` says why) or the model has no such stage."""
    stages = {}
    for s in (2, 3):
        layers = analysis.layers_of(stage=s)
        missing = [i for i in layers if i.kind != GLOBAL]
        if not layers or missing:
            why = analysis.skipped.get(missing[0].name, "not a global MHRA") if missing else "no blocks"
            raise ValueError(f"attention rollout needs the global attention of every stage-{s + 1} block; "
                             f"{missing[0].label if missing else f'stage {s + 1}'}: {why}")
        stages[s] = layers
    R3 = rollout_matrix([analysis.attention[i.name] for i in stages[2]], residual, head_fusion)
    R4 = rollout_matrix([analysis.attention[i.name] for i in stages[3]], residual, head_fusion)
    grid3, grid4 = stages[2][0].grid, stages[3][0].grid
    matrix = (torch.from_numpy(R4) @ torch.from_numpy(downsample_matrix(grid3, grid4)) @ torch.from_numpy(R3)).numpy()
    return Rollout(matrix, grid3, grid4, [i.name for i in stages[2] + stages[3]], residual, head_fusion)
