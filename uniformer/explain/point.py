"""Everything the explain views say about one point of the image, as values: the clicked layer's
query map, the local-vs-global panels, the stage-2 receptive field, and the numbers behind them.

:func:`explain_point` resolves a point (original-image pixels) against an :class:`Analysis`;
:func:`point_report` gathers the numbers (JSON-ready) that an app download, a notebook or the CLI
shows next to the pictures. Display-pixel <-> image-pixel mapping for pictures shown at a reduced
size: :func:`display_to_image`, :func:`image_to_display`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .affinity import ReceptiveField
from .analysis import NOT_CAPTURED, Analysis, LayerInfo
from .attention import QueryMap, query_map
from .compare import LocalVsGlobal, local_vs_global
from .distance import AttentionDistance
from .rollout import Rollout

__all__ = ["PointView", "explain_point", "point_report", "display_to_image", "image_to_display"]


def display_to_image(point: tuple[float, float], image_size: tuple[int, int],
                     display_size: tuple[int, int]) -> tuple[float, float]:
    """Pixel (x, y) of a picture shown at ``display_size`` (W, H) -> the centre of that pixel in
    original-image pixels (``image_size`` (W, H))."""
    (Wd, Hd), (W, H) = display_size, image_size
    return (point[0] + 0.5) * W / Wd, (point[1] + 0.5) * H / Hd


def image_to_display(point: tuple[float, float], image_size: tuple[int, int],
                     display_size: tuple[int, int]) -> tuple[float, float]:
    """The inverse of :func:`display_to_image`: original-image pixel (x, y) -> display pixel."""
    (Wd, Hd), (W, H) = display_size, image_size
    return point[0] * Wd / W - 0.5, point[1] * Hd / H - 0.5


@dataclass(frozen=True)
class PointView:
    """The views of one point: (x, y) in original-image pixels, the selected ``layer`` and ``head``
    (0-based; None = mean over heads), ``shown`` = that layer's query map (None when its attention
    was not captured: ``analysis.skipped`` says why), the local-vs-global panels (Fig. 1) and the
    stage-2 effective receptive field when one was computed."""

    x: float
    y: float
    layer: LayerInfo
    head: int | None
    shown: QueryMap | None
    local_vs_global: LocalVsGlobal
    receptive_field: ReceptiveField | None = None

    def tokens(self, analysis: Analysis) -> list[tuple[int, int]]:
        """(row, col) of the token under the point in every stage's grid."""
        out = []
        for s in range(len(analysis.features)):
            grid = analysis.stage_grid(s)
            out.append(divmod(analysis.geometry.token_at(self.x, self.y, grid), grid[1]))
        return out


def explain_point(analysis: Analysis, x: float, y: float, layer: int, head: int | None = None,
                  receptive_field: ReceptiveField | None = None) -> PointView:
    """Resolve original-image pixel (x, y) for ``layer`` (1-based index into ``analysis.layers``,
    clamped to the valid range) and ``head`` (0-based; None or out of range = mean over heads).
    No network runs (``receptive_field`` is passed in: it needs the model).
    Raises OutsideCropError (a ValueError) when the point lies outside the centre crop the model sees."""
    info = analysis.layers[min(max(int(layer), 1), len(analysis.layers)) - 1]
    head = None if head is None or not 0 <= head < info.heads else int(head)
    shown = None if info.kind == NOT_CAPTURED else query_map(analysis, info, x, y)
    lvg = local_vs_global(analysis, x, y, selected=info if shown is not None else None)
    return PointView(x, y, info, head, shown, lvg, receptive_field)


def point_report(analysis: Analysis, view: PointView, distance: AttentionDistance | None = None,
                 rollout: Rollout | None = None, rollout_note: str | None = None,
                 rollout_token: int | None = None, image_sha1: str | None = None) -> dict:
    """The numbers behind the views of ``view`` as plain JSON types: the clicked point, the shown
    layer's map, the local-vs-global panels, the mean attention distances, the stage-2 receptive field
    (model-input pixels), the rollout maps (or why there is none) and the top-5 classes."""
    rf = view.receptive_field
    return {
        "model": analysis.model_name, "image": {"size": list(analysis.image_size), "sha1": image_sha1},
        "click": {"x": view.x, "y": view.y, "units": "original-image pixels"},
        "crop_box": [round(v, 2) for v in analysis.geometry.crop_box()],
        "shown": (view.shown.to_dict(view.head) if view.shown is not None
                  else {"layer": view.layer.name, "unavailable": analysis.skipped[view.layer.name]}),
        "local_vs_global": [m.to_dict() for m in view.local_vs_global.panels],
        "attention_distance": None if distance is None else distance.to_dict(),
        "effective_receptive_field": None if rf is None else {
            "stage": rf.stage + 1, "token": rf.token, "theoretical_size_px": rf.theoretical_size,
            "theoretical_box_input_px": [round(v, 2) for v in rf.theoretical], "radius_90_px": round(rf.radius_90, 2)},
        "rollout": {"unavailable": rollout_note} if rollout is None else {
            "grid": list(rollout.grid3), "layers": rollout.layers, "class_map": np.round(rollout.class_map, 6).tolist(),
            "token_map": np.round(rollout.token_map(rollout_token), 6).tolist()},
        "top5": [{"index": i, "label": label, "probability": p} for i, label, p in analysis.top_classes(5)],
    }
