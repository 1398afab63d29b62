"""The explain views of one image as pictures, ready to show: what depends on the analysis alone
(:func:`analysis_pictures`: attention distances, attention rollout, PCA of the stage features) and
what one clicked point adds (:func:`point_pictures`: the clicked layer's query map, the
local-vs-global panels, the local kernels, the stage-2 receptive field, the rollout of the clicked
stage-4 token, and the numbers behind them). The app's Explain tab, a notebook and the CLI show
the same views from these values."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from .affinity import local_affinity
from .analysis import GLOBAL, LOCAL, Analysis
from .attention import QueryMap
from .distance import AttentionDistance, mean_attention_distance
from .features import stage_pca
from .figures import distance_figure, heatmap_figure, kernels_figure, query_figure
from .overlay import QUERY_COLOUR, display_size, overlay, query_overlay, receptive_field_overlay, rgb_picture
from .point import PointView, point_report
from .rollout import Rollout, attention_rollout

__all__ = ["AnalysisPictures", "analysis_pictures", "PointPictures", "point_pictures", "layer_caption",
           "first_global_layer"]


def layer_caption(q: QueryMap, head: int | None = None) -> str:
    """'S3.B2 attention, Eq. 7 (mean)': where a query map comes from (stage, block, kind, head)."""
    kind = "learned affinity, Eq. 6" if q.layer.kind == LOCAL else "attention, Eq. 7"
    who = "mean" if head is None else f"head {head + 1}"
    return f"S{q.layer.stage + 1}.B{q.layer.block + 1} {kind} ({who})"


def first_global_layer(analysis: Analysis) -> int:
    """1-based index of the first global MHRA layer (the first layer when none is global)."""
    first_global = analysis.layers_of(GLOBAL) or analysis.layers
    return analysis.layers.index(first_global[0]) + 1


@dataclass(frozen=True)
class AnalysisPictures:
    """What depends on the analysis only (not on a click), computed once per analysis.

    distance: mean attention distance per layer; rollout: the attention rollout (None when a stage-3
    or 4 block has no captured global attention, ``rollout_note`` says why); class_overlay: the
    rollout of the mean of the stage-4 tokens on the image (``thumbnail`` long side), or None;
    features: (picture, caption) of each stage's features projected to RGB by PCA.
    """

    distance: AttentionDistance
    rollout: Rollout | None
    rollout_note: str | None
    class_overlay: Image.Image | None
    features: list[tuple[Image.Image, str]]

    def pictures(self) -> list[tuple[Image.Image, str]]:
        """(picture, caption) of the rollout class overlay (when there is one), then the features."""
        head = [] if self.class_overlay is None else [(self.class_overlay, "rollout: mean of stage-4 tokens")]
        return head + self.features


def analysis_pictures(analysis: Analysis, thumbnail: int = 300) -> AnalysisPictures:
    """The click-independent views of ``analysis`` with pictures of long side ``thumbnail`` pixels."""
    try:
        ro, note = attention_rollout(analysis), None
    except ValueError as e:  # no captured global attention in stage 3 or 4 (e.g. windowed blocks)
        ro, note = None, str(e)
    thumb = display_size(analysis.image_size, thumbnail)
    class_overlay = None if ro is None else overlay(analysis.image, ro.class_map, analysis.geometry, size=thumb)
    features = [(rgb_picture(rgb, thumbnail), f"stage {s + 1} features, PCA -> RGB")
                for s, rgb in enumerate(stage_pca(analysis))]
    return AnalysisPictures(mean_attention_distance(analysis), ro, note, class_overlay, features)


@dataclass(frozen=True)
class PointPictures:
    """The views of one clicked point.

    canvas: the image with the clicked layer's query map (plain when that layer was not captured);
    query_plot: that map as a heatmap figure; local_vs_global: (picture, caption) of the
    local-vs-global panels; kernels_plot: the local kernels (None without a local layer); erf: the
    stage-2 effective receptive field picture (None without one); rollout: (picture, caption) of the
    rollout class overlay and of the clicked stage-4 token (empty without a rollout); distance_plot;
    token4: the clicked stage-4 token (None without a rollout); panels: (caption, picture) of every
    picture, for a contact sheet; title: one line naming model, point and layer; payload: the
    numbers (JSON-ready, :func:`point_report`).
    """

    canvas: Image.Image
    query_plot: go.Figure
    local_vs_global: list[tuple[Image.Image, str]]
    kernels_plot: go.Figure | None
    erf: Image.Image | None
    rollout: list[tuple[Image.Image, str]]
    distance_plot: go.Figure
    token4: int | None
    panels: list[tuple[str, Image.Image]]
    title: str
    payload: dict


def point_pictures(analysis: Analysis, q: PointView, static: AnalysisPictures, display: int = 560,
                   thumbnail: int = 300, image_sha1: str | None = None) -> PointPictures:
    """Draw every view of the resolved point ``q`` (:func:`explain_point`) at long sides ``display``
    (main pictures) and ``thumbnail`` (galleries) pixels, from the analysis and its ``static``
    pictures; no network runs. ``image_sha1`` goes into the payload."""
    geo = analysis.geometry
    size, thumb = display_size(analysis.image_size, display), display_size(analysis.image_size, thumbnail)
    if q.shown is not None:
        canvas, query_plot = query_overlay(analysis, q.shown, q.head, size=size), query_figure(q.shown, q.head)
    else:
        canvas = overlay(analysis.image, None, geo, size=size)
        query_plot = heatmap_figure(np.zeros(q.layer.grid), f"{q.layer.label}: {analysis.skipped[q.layer.name]}")
    gallery = [(query_overlay(analysis, m, None, size=thumb), layer_caption(m)) for m in q.local_vs_global.panels]
    local = q.layer if q.layer.kind == LOCAL else (analysis.layers_of(LOCAL) or [None])[-1]
    kernels_plot = None if local is None else kernels_figure(local_affinity(analysis, local),
                                                             q.head if q.layer.kind == LOCAL else None)
    rollout, t4 = [], None
    if static.rollout is not None:
        t4 = geo.token_at(q.x, q.y, static.rollout.grid4)
        rollout = [(static.class_overlay, "rollout: mean of stage-4 tokens"),
                   (overlay(analysis.image, static.rollout.token_map(t4), geo, size=thumb,
                            boxes=[(geo.token_box(t4, static.rollout.grid4), QUERY_COLOUR)]),
                    "rollout: clicked stage-4 token")]
    rf = q.receptive_field
    erf = receptive_field_overlay(analysis, rf, size) if rf is not None else None
    panels = [(("clicked layer: " + layer_caption(q.shown, q.head)) if q.shown is not None else q.layer.label, canvas)]
    panels += [(caption, im) for im, caption in gallery]
    panels += [("stage-2 effective receptive field", erf)] if erf is not None else []
    panels += [(caption, im) for im, caption in rollout]
    title = f"{analysis.model_name} \u00b7 click ({q.x:.0f}, {q.y:.0f}) \u00b7 {q.layer.label}"
    payload = point_report(analysis, q, static.distance, static.rollout, static.rollout_note, t4,
                           image_sha1=image_sha1)
    return PointPictures(canvas, query_plot, gallery, kernels_plot, erf, rollout,
                         distance_figure(static.distance, selected=q.layer.name), t4, panels, title, payload)
