"""Local vs global for one clicked point: the stage-2 learned neighbourhood (Eq. 6) next to the
stage-3 and stage-4 content-dependent attention (Eq. 7) of the same image position."""
from __future__ import annotations

from dataclasses import dataclass

from .analysis import GLOBAL, LOCAL, Analysis, LayerInfo
from .attention import QueryMap, query_map

__all__ = ["LocalVsGlobal", "comparison_layers", "local_vs_global"]


@dataclass(frozen=True)
class LocalVsGlobal:
    """Query maps of one original-image pixel (x, y): ``local`` from the last local stage
    (stage 2; None if the model has none), ``global_`` one per global stage (stages 3, 4)."""

    x: float
    y: float
    local: QueryMap | None
    global_: list[QueryMap]

    @property
    def panels(self) -> list[QueryMap]:
        """All maps, shallow to deep."""
        return ([self.local] if self.local is not None else []) + self.global_


def comparison_layers(analysis: Analysis, selected: LayerInfo | None = None) -> list[LayerInfo]:
    """The layers compared: per stage whose blocks are local or captured global, ``selected`` if it
    is in that stage, else the stage's last block; only the last local stage is kept."""
    chosen = []
    for stage in sorted({i.stage for i in analysis.layers}):
        layers = [i for i in analysis.layers_of(stage=stage) if i.kind in (LOCAL, GLOBAL)]
        if layers:
            chosen.append(selected if selected is not None and selected in layers else layers[-1])
    local = [i for i in chosen if i.kind == LOCAL]
    return local[-1:] + [i for i in chosen if i.kind == GLOBAL]


def local_vs_global(analysis: Analysis, x: float, y: float, selected: LayerInfo | None = None) -> LocalVsGlobal:
    """:class:`LocalVsGlobal` of original pixel (x, y) over :func:`comparison_layers`.
    Raises ValueError for a pixel outside the crop."""
    maps = [query_map(analysis, info, x, y) for info in comparison_layers(analysis, selected)]
    local = [m for m in maps if m.layer.kind == LOCAL]
    return LocalVsGlobal(x, y, local[0] if local else None, [m for m in maps if m.layer.kind == GLOBAL])
