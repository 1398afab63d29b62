"""The affinity row of one query token in one layer (:class:`QueryMap`): what
:mod:`uniformer.explain.attention` (global layers) and :mod:`uniformer.explain.affinity` (local
layers) both return."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import LayerInfo

__all__ = ["QueryMap"]


@dataclass(frozen=True)
class QueryMap:
    """The affinity row of one query token in one layer.

    layer: the layer; token: row-major index of the query in ``layer.grid``; per_head: (heads, h, w)
    float32, each head's row on the token grid; for a global layer row i of A_n (Eq. 7, sums to 1
    per head; at most 1 for ``layer.variant`` 'window' / 'hourglass', see the module doc), for a
    local layer the normalized magnitude |a_n| of each channel group placed
    around the token (sums to 1 per group, zero outside the k x k neighbourhood).
    """

    layer: LayerInfo
    token: int
    per_head: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """(h, w) average over heads (sums to what each head's row sums to on average: 1 for full
        global and local layers)."""
        return self.per_head.mean(0)

    def head(self, head: int | None = None) -> np.ndarray:
        """(h, w) map of ``head`` (0-based), or the mean over heads for None.
        Raises IndexError for a head the layer does not have."""
        if head is None:
            return self.mean
        if not 0 <= head < self.per_head.shape[0]:
            raise IndexError(f"{self.layer.label} has {self.per_head.shape[0]} heads; head {head} does not exist")
        return self.per_head[head]

    @property
    def token_rc(self) -> tuple[int, int]:
        """(row, col) of the query token in the grid."""
        return divmod(self.token, self.layer.grid[1])

    def to_dict(self, head: int | None = None) -> dict:
        """JSON-ready: layer, query token (index, row, col), grid and the shown map (head or mean)."""
        row, col = self.token_rc
        return {"layer": self.layer.name, "label": self.layer.label, "kind": self.layer.kind,
                "grid": list(self.layer.grid), "token": self.token, "token_row": row, "token_col": col,
                "head": "mean" if head is None else head,
                "map": np.round(self.head(head), 6).tolist()}
