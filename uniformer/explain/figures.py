"""Interactive plotly figures of the explanation values (hover shows the numbers).

Pure functions: values in, ``plotly.graph_objects.Figure`` out; the app shows them in ``gr.Plot``,
notebooks with ``fig.show()``. Figures are built from plain dict specs without plotly's property
validation (``_validate=False``), which is ~15x faster and keeps slider moves in the app fast;
the specs are covered by tests that serialize them.
"""
from __future__ import annotations

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go

from .affinity import LocalAffinity
from .attention import QueryMap
from .distance import AttentionDistance

__all__ = ["READABLE_RC", "heatmap_figure", "query_figure", "kernels_figure", "distance_figure"]

#: matplotlib settings of the notebooks' figures: titles and labels readable at 11-13 pt on screen
#: (``plt.rcParams.update(READABLE_RC)``; no title is set smaller than ``axes.titlesize``).
READABLE_RC = {"axes.titlesize": 12, "figure.titlesize": 13, "axes.labelsize": 11, "xtick.labelsize": 10,
               "ytick.labelsize": 10, "legend.fontsize": 10, "font.size": 11}

_MARGIN = dict(l=10, r=10, t=40, b=10)
_HEAT_MARGIN = dict(l=50, r=10, t=40, b=40)   # room for the axis titles
_KIND_COLOURS = {"local": "#1f77b4", "global": "#d62728"}


def _scale(name: str) -> list:
    """A named plotly colour scale as an explicit list (plotly.js knows only a few names)."""
    return pc.get_colorscale(name)


def _figure(data: list[dict], layout: dict) -> go.Figure:
    return go.Figure(dict(data=data, layout=layout), _validate=False)


def _title(text: str) -> dict:
    return dict(text=text, font=dict(size=13))


def heatmap_figure(values: np.ndarray, title: str, value_name: str = "value", colorscale: str = "Inferno",
                   mark: tuple[int, int] | None = None, zmid: float | None = None, height: int = 360) -> go.Figure:
    """(h, w) map as a heat map, row 0 at the top, square cells; hover: row, column, value.
    ``mark`` = (row, col) outlines one cell (the query token); ``zmid`` centres a diverging scale."""
    z = np.asarray(values, float)
    trace = dict(type="heatmap", z=z, colorscale=_scale(colorscale),
                 colorbar=dict(thickness=12, title=dict(text=value_name, side="right")),
                 hovertemplate=f"row %{{y}}, col %{{x}}<br>{value_name} %{{z:.4g}}<extra></extra>")
    if zmid is not None:
        trace["zmid"] = zmid
    shapes = []
    if mark is not None:
        r, c = mark
        shapes.append(dict(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5,
                           line=dict(color="cyan", width=3)))
    return _figure([trace], dict(
        title=_title(title), height=height, margin=_HEAT_MARGIN, shapes=shapes,
        xaxis=dict(constrain="domain", showgrid=False, zeroline=False, **_token_ticks(z.shape[1], "column (token)")),
        yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain", showgrid=False, zeroline=False,
                   **_token_ticks(z.shape[0], "row (token)"))))


def _token_ticks(cells: int, title: str) -> dict:
    """Axis settings for a grid of ``cells`` tokens: integer ticks (at most ~10) and a title."""
    return dict(tickmode="linear", tick0=0, dtick=max(1, -(-cells // 10)), title=dict(text=title))


def query_figure(query: QueryMap, head: int | None = None) -> go.Figure:
    """Heat map of a :class:`QueryMap` (one head or the mean) with the query token outlined."""
    if query.layer.kind == "local":
        who = "mean over channel groups" if head is None else f"channel group {head + 1}"
        name = "normalized |a_n|"
    else:
        who = "mean over heads" if head is None else f"head {head + 1}"
        name = "attention"
    r, c = query.token_rc
    return heatmap_figure(query.head(head), f"{query.layer.label}, {who}: query token ({r}, {c})", name,
                          mark=(r, c))


def kernels_figure(affinity: LocalAffinity, head: int | None = None, columns: int = 32) -> go.Figure:
    """The exact depthwise kernels a_n (Eq. 6) of a local layer, one k x k tile per channel (all
    channels, or those of channel group ``head``), on a diverging scale centred at 0; hover:
    channel, offset (dy, dx) from the query token, weight."""
    ks = affinity.kernels if head is None else affinity.kernels[affinity.group_channels(head)]
    first = 0 if head is None else head * affinity.head_dim
    C, k, _ = ks.shape
    cols = min(columns, C)
    rows = -(-C // cols)
    cell = k + 1
    z = np.full((rows * cell - 1, cols * cell - 1), np.nan)
    channel = np.full(z.shape, -1)
    for n in range(C):
        r0, c0 = (n // cols) * cell, (n % cols) * cell
        z[r0:r0 + k, c0:c0 + k] = ks[n]
        channel[r0:r0 + k, c0:c0 + k] = first + n
    yy, xx = np.mgrid[0:z.shape[0], 0:z.shape[1]]
    custom = np.stack([channel, yy % cell - k // 2, xx % cell - k // 2], -1)
    lim = float(np.nanmax(np.abs(z))) or 1.0
    who = "all channels" if head is None else f"channel group {head + 1} (channels {first}-{first + C - 1})"
    trace = dict(type="heatmap", z=z, customdata=custom, colorscale=_scale("RdBu_r"), zmin=-lim, zmax=lim,
                 colorbar=dict(thickness=12), hoverongaps=False,
                 hovertemplate="channel %{customdata[0]}, offset (%{customdata[1]:+d}, %{customdata[2]:+d})"
                               "<br>a_n = %{z:.4g}<extra></extra>")
    return _figure([trace], dict(
        title=_title(f"{affinity.layer.label}: {k}x{k} kernels a_n, {who}"),
        height=max(200, 90 + 7 * rows * cell), margin=_MARGIN, plot_bgcolor="white",
        xaxis=dict(showticklabels=False, showgrid=False, zeroline=False),
        yaxis=dict(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)))


def distance_figure(distance: AttentionDistance, selected: str | None = None) -> go.Figure:
    """Mean attention distance per head (dots) and layer mean (line) against depth, local layers
    in blue, global in red, with the local kernel's reach as a dashed reference line; the layer
    named ``selected`` is highlighted."""
    labels = [f"S{i.stage + 1}.B{i.block + 1}" for i in distance.layers]
    data = []
    for kind, colour in _KIND_COLOURS.items():
        xs, ys, hover = [], [], []
        unit = "channel group" if kind == "local" else "head"
        for label, info, d in zip(labels, distance.layers, distance.per_head):
            if info.kind == kind:
                xs += [label] * len(d)
                ys += [float(v) for v in d]
                hover += [f"{info.label}, {unit} {n + 1}" for n in range(len(d))]
        if xs:
            data.append(dict(type="scatter", x=xs, y=ys, mode="markers", name=f"{kind} (per {unit})", text=hover,
                             marker=dict(color=colour, size=7, opacity=0.6),
                             hovertemplate="%{text}<br>%{y:.1f} px<extra></extra>"))
    data.append(dict(type="scatter", x=labels, y=distance.mean.tolist(), mode="lines", name="mean over heads",
                     line=dict(color="black", width=1.5), hovertemplate="%{x}: %{y:.1f} px<extra></extra>"))
    shapes, notes = [], []
    if distance.local_reach is not None:
        shapes.append(dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=distance.local_reach,
                           y1=distance.local_reach, line=dict(color="#1f77b4", dash="dash")))
        notes.append(dict(xref="paper", x=0, yref="y", y=distance.local_reach, xanchor="left", yanchor="bottom",
                          showarrow=False, text=f"stage-2 local kernel reach ({distance.local_reach:.0f} px)"))
    names = [i.name for i in distance.layers]
    if selected in names:
        idx = names.index(selected)
        shapes.append(dict(type="line", xref="x", x0=idx, x1=idx, yref="paper", y0=0, y1=1,
                           line=dict(color="orange", width=2), opacity=0.6))
    return _figure(data, dict(
        title=_title(f"Mean attention distance per head ({distance.units})"), height=360,
        margin=dict(l=50, r=10, t=40, b=40), shapes=shapes, annotations=notes,
        xaxis=dict(title=dict(text="layer (stage.block)"), type="category"), yaxis=dict(title=dict(text="pixels")),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right")))
