"""Query-token maps: where one token of the image takes its information from, layer by layer.

A click at pixel (x, y) of the original image selects, in every layer, the token whose cell
covers that pixel (through the resize + centre crop of the eval transform, see
:mod:`uniformer.explain.geometry`). Its row of the token affinity is a map over the layer's token
grid:

* global MHRA (Eq. 7): row i of A_n = softmax_j(Q_n(X_i)^T K_n(X_j) / sqrt(d)), per head n, a
  probability distribution over all N tokens, different for every image. Windowed layers (dense
  backbones, §4.3) give a map that is zero outside the query's window (and sums to < 1 where the
  window reaches into the zero padding); hourglass layers (light models, §5.1) give the row of the
  token that represents the query in the shrunk set (itself if kept, else the fused
  representative), the representative's weight split over the fused tokens by their fuse weights,
  summing to 1 minus the attention to the score token (:mod:`uniformer.explain.capture`);
* local MHRA (Eq. 6): A_n(X_i, X_j) = a_n^{i-j} inside the k x k neighbourhood, the learned
  depthwise kernel placed around token i, the same for every image (see
  :mod:`uniformer.explain.affinity`; shown as normalized |a_n| per channel group).
"""
from __future__ import annotations

from .affinity import local_affinity
from .analysis import GLOBAL, LOCAL, Analysis, LayerInfo
from .query import QueryMap

__all__ = ["QueryMap", "query_token", "query_map", "query_maps"]


def query_token(analysis: Analysis, x: float, y: float, layer: LayerInfo | int | str) -> int:
    """Token index (row-major) of ``layer``'s grid under original-image pixel (x, y).
    Raises OutsideCropError (a ValueError) when the pixel lies outside the centre crop the model sees."""
    info = layer if isinstance(layer, LayerInfo) else analysis.layer(layer)
    return analysis.geometry.token_at(x, y, info.grid)


def query_map(analysis: Analysis, layer: LayerInfo | int | str, x: float, y: float) -> QueryMap:
    """The affinity row of the token under original pixel (x, y) in ``layer`` (see module doc).

    Raises ValueError for a pixel outside the crop or a layer whose attention was not captured
    (``analysis.skipped`` says why)."""
    info = layer if isinstance(layer, LayerInfo) else analysis.layer(layer)
    token = query_token(analysis, x, y, info)
    if info.kind == GLOBAL:
        h, w = info.grid
        return QueryMap(info, token, analysis.attention[info.name][:, token].reshape(-1, h, w))
    if info.kind == LOCAL:
        return local_affinity(analysis, info).query_map(token)
    raise ValueError(f"{info.label}: {analysis.skipped.get(info.name, 'attention was not captured')}")


def query_maps(analysis: Analysis, x: float, y: float, kind: str | None = None) -> list[QueryMap]:
    """:func:`query_map` for every layer of ``kind`` ('local', 'global' or None for both) that has
    one, in forward order."""
    kinds = (LOCAL, GLOBAL) if kind is None else (kind,)
    return [query_map(analysis, info, x, y) for info in analysis.layers if info.kind in kinds]
