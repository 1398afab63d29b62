"""Mean attention distance per head and layer: the paper's Fig. 2 argument, measured.

§1 / Fig. 2: in shallow layers, ViT attention mostly looks at a token's immediate neighbours,
which a local operator gets for far less computation. UniFormer therefore uses a learned 5x5
local affinity (Eq. 6) in stages 1-2 and global attention (Eq. 7) in stages 3-4. This module
measures how far each head looks, in pixels of the **model input** (the S x S centre crop;
divide by ``analysis.geometry.scale`` to get original-image pixels):

* global layer, head n: mean over query tokens i of sum_j A_n[i, j] * |c_i - c_j|, with c the
  token centres (Dosovitskiy et al.'s "mean attention distance"). Windowed and hourglass layers
  (§4.3, §5.1), whose rows on the grid may sum to < 1 (the rest went to zero padding or to the
  score token, which have no position), use each row renormalized over the grid tokens: the
  expected distance to the grid tokens a query attends to;
* local layer, channel group: the same expectation under the kernel's normalized magnitude
  |a_n| / sum |a_n| over its k x k offsets (border truncation by zero padding ignored);
* ``local_reach``: the farthest a stage-2 local kernel reaches, (k // 2) x stride pixels
  (16 px for a 5x5 kernel at stride 8), drawn as the reference line.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .affinity import local_affinity
from .analysis import GLOBAL, LOCAL, Analysis, LayerInfo

__all__ = ["AttentionDistance", "token_distances", "mean_attention_distance"]

UNITS = "model-input pixels"


@dataclass(frozen=True)
class AttentionDistance:
    """Mean attention distance per layer and head, in model-input pixels.

    layers: the measured layers (local and global, forward order); per_head: one (heads,) float
    array per layer; local_reach: (k // 2) x stride of the last local stage's kernel (pixels), or
    None when the model has no local layer.
    """

    layers: list[LayerInfo]
    per_head: list[np.ndarray]
    local_reach: float | None
    units: str = UNITS

    @property
    def mean(self) -> np.ndarray:
        """(layers,) distance averaged over heads."""
        return np.array([d.mean() for d in self.per_head], np.float32)

    def to_dict(self) -> dict:
        """JSON-ready values with units."""
        return {"units": self.units, "local_reach": self.local_reach,
                "layers": [{"layer": i.name, "label": i.label, "kind": i.kind,
                            "per_head": np.round(d, 3).tolist(), "mean": round(float(d.mean()), 3)}
                           for i, d in zip(self.layers, self.per_head)]}


def token_distances(grid: tuple[int, int], stride: tuple[float, float]) -> np.ndarray:
    """(N, N) Euclidean distances between the centres of a (h, w) token grid whose cells are
    ``stride`` = (sx, sy) pixels, row-major."""
    h, w = grid
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    centres = np.stack([cols.ravel() * stride[0], rows.ravel() * stride[1]], 1)
    return np.linalg.norm(centres[:, None] - centres[None], axis=-1).astype(np.float32)


def _local_distances(analysis: Analysis, info: LayerInfo) -> np.ndarray:
    groups = local_affinity(analysis, info).group_kernels()  # (G, k, k), each sums to 1
    k = groups.shape[-1]
    sx, sy = analysis.stride(info.grid)
    off = np.arange(k) - k // 2
    dist = np.hypot(off[None, :] * sx, off[:, None] * sy)  # (k, k): offset (row, col) -> pixels
    return (groups * dist).sum((1, 2))


def mean_attention_distance(analysis: Analysis) -> AttentionDistance:
    """:class:`AttentionDistance` of every local and global layer of ``analysis``, windowed and
    hourglass layers included (see the module doc); layers whose attention was not captured are
    left out."""
    layers, per_head = [], []
    cache: dict[tuple[int, int], np.ndarray] = {}
    for info in analysis.layers:
        if info.kind == GLOBAL:
            if info.grid not in cache:
                cache[info.grid] = token_distances(info.grid, analysis.stride(info.grid))
            A = analysis.attention[info.name]  # (heads, N, N)
            rows = np.maximum(A.sum(-1), 1e-30)  # (heads, N): 1 for full global attention
            per_head.append(((A * cache[info.grid]).sum(-1) / rows).mean(-1))
        elif info.kind == LOCAL:
            per_head.append(_local_distances(analysis, info))
        else:
            continue
        layers.append(info)
    local = analysis.layers_of(LOCAL)
    reach = None
    if local:
        last = local[-1]
        reach = float(analysis.kernels[last.name].shape[-1] // 2 * max(analysis.stride(last.grid)))
    return AttentionDistance(layers, [np.asarray(d, np.float32) for d in per_head], reach)
