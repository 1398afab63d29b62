"""Per-stage feature maps as pictures: the top three principal components of the channels -> RGB.

Each stage's output map (C, h, w) is read as h * w samples of C features; the three directions of
largest variance (PCA: eigenvectors of the centred samples' scatter matrix) become red, green and blue, each scaled to
[0, 1] over the map. Signs are fixed (largest-magnitude loading positive) so the colours are
deterministic. Similar colours = similar features: stage 1 tracks edges and colour, stage 4
groups object parts.
"""
from __future__ import annotations

import numpy as np
import torch

from .analysis import Analysis

__all__ = ["pca_rgb", "stage_pca"]


def pca_rgb(feature: np.ndarray, components: int = 3) -> np.ndarray:
    """(C, h, w) feature map -> (h, w, 3) float32 in [0, 1]: the first ``components`` (<= 3)
    principal components as colour channels (missing ones, e.g. for C < 3 or rank < 3, are 0)."""
    C, h, w = feature.shape
    X = feature.reshape(C, -1).T.astype(np.float64)  # (h*w, C)
    X = X - X.mean(0, keepdims=True)
    if X.shape[0] >= 16 * C:
        # many samples, few channels (stage 1: 3136 x 64): the principal directions from the C x C
        # scatter matrix (eigh, float64), ~6x faster there than an SVD of the samples
        evals, evecs = torch.linalg.eigh(torch.from_numpy(X.T @ X))
        sv = evals.clamp_min(0).sqrt().flip(0).numpy()  # singular values, descending
        Vt = evecs.flip(1).T.numpy()  # (C, C) rows = directions, by decreasing variance
    else:
        # torch's SVD (it follows torch's thread setting; numpy's BLAS threads can thrash on a busy CPU)
        _, sv, Vt = (t.numpy() for t in torch.linalg.svd(torch.from_numpy(X), full_matrices=False))
    k = int(min(components, 3, (sv > 1e-6 * max(sv[0], 1e-30)).sum()))  # drop numerically-zero directions
    V = Vt[:k]
    V = V * np.sign(V[np.arange(k), np.abs(V).argmax(1)])[:, None]
    proj = X @ V.T  # (h*w, k)
    lo, hi = proj.min(0), proj.max(0)
    proj = (proj - lo) / np.where(hi > lo, hi - lo, 1.0)
    rgb = np.zeros((h * w, 3), np.float32)
    rgb[:, :k] = proj
    return rgb.reshape(h, w, 3)


def stage_pca(analysis: Analysis) -> list[np.ndarray]:
    """:func:`pca_rgb` of each of the four stage outputs of ``analysis`` [(h_s, w_s, 3)]."""
    return [pca_rgb(f) for f in analysis.features]
