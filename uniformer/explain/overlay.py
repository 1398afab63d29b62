"""Maps drawn on the user's original image (PIL images out), and a contact sheet for export.

Every explanation map lives on the model's centre crop: a token grid (h, w) or the input pixels
(S_h, S_w). :func:`to_image` resamples such a map onto the original image (or a scaled copy of
it, for display) through :class:`~uniformer.explain.InputGeometry`; :func:`overlay` colours it
and blends it over the photo, greys what the model never sees (outside the crop) and outlines
boxes (the query token, a kernel's reach). Colours come from plotly's colour scales, so overlays
and the interactive figures agree.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .geometry import InputGeometry

__all__ = ["display_size", "to_image", "colorize", "colorbar_image", "overlay", "draw_boxes", "contact_sheet",
           "QUERY_COLOUR", "REACH_COLOUR", "FIELD_COLOUR", "query_boxes", "query_overlay", "receptive_field_overlay",
           "rgb_picture"]

Box = tuple[float, float, float, float]


def display_size(image_size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(W, H) scaled down (never up) so that the long side is at most ``max_side`` pixels."""
    W, H = image_size
    if not max_side or max(W, H) <= max_side:
        return W, H
    f = max_side / max(W, H)
    return max(1, round(W * f)), max(1, round(H * f))


def to_image(values: np.ndarray, geometry: InputGeometry, size: tuple[int, int] | None = None,
             smooth: bool = False, fill: float = 0.0) -> np.ndarray:
    """Resample a crop-aligned map ``values`` (h, w) (token grid or input pixels) onto the
    original image, or a copy of it scaled to ``size`` = (W', H') -> (H', W') float32.

    Each output pixel centre is mapped to model-input coordinates; ``smooth=False`` takes the
    value of the cell it falls in (token maps show their cells), ``smooth=True`` interpolates
    bilinearly between cell centres. Pixels outside the crop get ``fill``.
    """
    W, H = geometry.image_size
    Wd, Hd = size or (W, H)
    h, w = values.shape
    S_h, S_w = geometry.input_size
    sx, sy = geometry.scale
    xi = (np.arange(Wd) + 0.5) * (W / Wd) * sx - geometry.crop_left  # input coords of pixel centres
    yi = (np.arange(Hd) + 0.5) * (H / Hd) * sy - geometry.crop_top
    inside = (yi >= 0) & (yi < S_h), (xi >= 0) & (xi < S_w)
    u, v = xi * w / S_w, yi * h / S_h  # continuous cell coordinates
    vals = values.astype(np.float32)
    if smooth:
        u0 = np.clip(np.floor(u - 0.5), 0, w - 1).astype(int)
        v0 = np.clip(np.floor(v - 0.5), 0, h - 1).astype(int)
        u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
        fu = np.clip(u - 0.5 - u0, 0, 1)[None, :]
        fv = np.clip(v - 0.5 - v0, 0, 1)[:, None]
        top = vals[v0][:, u0] * (1 - fu) + vals[v0][:, u1] * fu
        bottom = vals[v1][:, u0] * (1 - fu) + vals[v1][:, u1] * fu
        out = top * (1 - fv) + bottom * fv
    else:
        cols = np.clip(u.astype(int), 0, w - 1)
        rows = np.clip(v.astype(int), 0, h - 1)
        out = vals[rows][:, cols]
    return np.where(inside[0][:, None] & inside[1][None, :], out, np.float32(fill)).astype(np.float32)


@lru_cache(maxsize=8)
def _lut(colorscale: str) -> np.ndarray:
    import plotly.colors as pc

    scale = pc.get_colorscale(colorscale)  # [[position, 'rgb(...)' or '#hex'], ...]
    positions = np.array([p for p, _ in scale])
    colours = np.array([pc.unlabel_rgb(pc.convert_colors_to_same_type(c, "rgb")[0][0]) for _, c in scale], float)
    t = np.linspace(0, 1, 256)
    lut = np.stack([np.interp(t, positions, colours[:, i]) for i in range(3)], 1)
    lut.setflags(write=False)
    return np.round(lut).astype(np.uint8)


def colorize(values: np.ndarray, colorscale: str = "Inferno") -> np.ndarray:
    """Values in [0, 1] (any shape; NaN -> 0) -> the same shape + (3,) uint8 RGB, via a 256-step
    lookup table of a plotly colour scale (e.g. 'Inferno', 'Viridis', 'RdBu')."""
    v = np.asarray(values, np.float32)
    if np.isnan(v).any():
        v = np.nan_to_num(v)
    idx = (np.clip(v, 0, 1) * 255 + 0.5).astype(np.intp)
    return np.take(_lut(colorscale), idx, axis=0)


def draw_boxes(image: Image.Image, boxes: Sequence[tuple[Box, str]], geometry: InputGeometry,
               width: int | None = None) -> Image.Image:
    """Outline ``boxes`` [((x0, y0, x1, y1) in original-image pixels, colour)] on ``image``, which
    may be a scaled copy of the original (coordinates are scaled to its size). Returns ``image``."""
    draw = ImageDraw.Draw(image)
    fx, fy = image.size[0] / geometry.image_size[0], image.size[1] / geometry.image_size[1]
    width = width or max(2, round(min(image.size) / 200))
    for (x0, y0, x1, y1), colour in boxes:
        left, top = x0 * fx, y0 * fy
        # a box under one pixel of the shown image (a 1x1 photo scaled up by the crop) stays a point
        draw.rectangle((left, top, max(left, x1 * fx - 1), max(top, y1 * fy - 1)), outline=colour, width=width)
    return image


def overlay(image: np.ndarray | Image.Image, values: np.ndarray | None, geometry: InputGeometry,
            size: tuple[int, int] | None = None, smooth: bool = False, colorscale: str = "Inferno",
            alpha: float = 0.75, min_alpha: float = 0.2, normalize: bool = True,
            boxes: Sequence[tuple[Box, str]] = ()) -> Image.Image:
    """The original ``image`` (scaled to ``size`` = (W', H') if given) with the crop-aligned map
    ``values`` (see :func:`to_image`; None: no map) coloured and blended over the crop, the area
    outside the crop greyed, and ``boxes`` outlined. Opacity grows with the value, from
    ``min_alpha`` (0) to ``alpha`` (1), so the photo stays visible under low values.
    ``normalize``: divide by the map's maximum first (else values must be in [0, 1])."""
    base = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
    base = base.convert("RGB")
    size = size or base.size
    if base.size != tuple(size):
        base = base.resize(size, Image.BILINEAR)
    inside = to_image(np.ones((1, 1), np.float32), geometry, size) > 0
    out = base
    if values is not None:
        v = np.asarray(values, np.float32)
        peak = float(np.nanmax(v)) if v.size else 0.0
        if normalize:
            v = v / peak if peak > 0 else np.zeros_like(v)
        heat = np.clip(to_image(v, geometry, size, smooth), 0, 1)
        opacity = (min_alpha + (alpha - min_alpha) * heat) * inside
        out = Image.composite(Image.fromarray(colorize(heat, colorscale)), base,
                              Image.fromarray((opacity * 255 + 0.5).astype(np.uint8), "L"))
    grey = ImageOps.grayscale(base).point(lambda g: g // 2 + 64).convert("RGB")  # not seen by the model
    out = Image.composite(out, grey, Image.fromarray(inside.astype(np.uint8) * 255, "L"))
    return draw_boxes(out, boxes, geometry)


def contact_sheet(panels: Sequence[tuple[str, Image.Image]], height: int = 320, columns: int = 4,
                  pad: int = 8, title: str | None = None) -> Image.Image:
    """Panels [(caption, image)] scaled to ``height`` pixels and laid out in rows of ``columns``
    with captions above, on white (the PNG export of what a view shows)."""
    font = ImageFont.load_default(size=14)
    scaled = [(c, im.convert("RGB").resize((max(1, round(im.width * height / im.height)), height)))
              for c, im in panels]
    rows = [scaled[i:i + columns] for i in range(0, len(scaled), columns)] or [[]]
    cap, top = 20, (26 if title else 0)
    width = max([sum(im.width + pad for _, im in row) + pad for row in rows] + [400])
    sheet = Image.new("RGB", (width, top + len(rows) * (height + cap + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), title, fill="black", font=ImageFont.load_default(size=16))
    y = top + pad
    for row in rows:
        x = pad
        for caption, im in row:
            draw.text((x, y), caption, fill="black", font=font)
            sheet.paste(im, (x, y + cap))
            x += im.width + pad
        y += height + cap + pad
    return sheet


def colorbar_image(colorscale: str = "Inferno", low: str = "0", high: str = "max", caption: str = "",
                   width: int = 360, height: int = 16) -> Image.Image:
    """A horizontal colour bar (the legend of :func:`overlay`'s colouring) as a picture: ``caption``
    above, the ``colorscale`` ramp from 0 to 1 left to right (``width`` x ``height`` pixels), ``low``
    and ``high`` under its ends. Shown under a :func:`contact_sheet` of overlays."""
    font = ImageFont.load_default(size=14)
    ramp = Image.fromarray(colorize(np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1)), colorscale))
    pad, cap = 8, (20 if caption else 0)
    picture = Image.new("RGB", (width + 2 * pad, cap + height + 20 + pad), "white")
    draw = ImageDraw.Draw(picture)
    if caption:
        draw.text((pad, 2), caption, fill="black", font=font)
    picture.paste(ramp, (pad, cap))
    draw.rectangle((pad - 1, cap - 1, pad + width, cap + height), outline="black")
    draw.text((pad, cap + height + 2), low, fill="black", font=font)
    draw.text((pad + width - draw.textlength(high, font=font), cap + height + 2), high, fill="black", font=font)
    return picture


#: Outline colours: the query token, a local kernel's reach, a theoretical receptive field.
QUERY_COLOUR, REACH_COLOUR, FIELD_COLOUR = "#00e5ff", "#76ff03", "#ffffff"


def query_boxes(analysis, query) -> list[tuple[Box, str]]:
    """Outlines for a :class:`~uniformer.explain.QueryMap` of ``analysis``: the query token's cell
    and, for a local layer, the k x k neighbourhood its kernel reaches (clipped to the grid)."""
    geo, grid = analysis.geometry, query.layer.grid
    boxes = [(geo.token_box(query.token, grid), QUERY_COLOUR)]
    kernels = analysis.kernels.get(query.layer.name)
    if kernels is not None:
        p, (h, w), (r, c) = kernels.shape[-1] // 2, grid, query.token_rc
        first = max(r - p, 0) * w + max(c - p, 0)
        last = min(r + p, h - 1) * w + min(c + p, w - 1)
        boxes.insert(0, ((*geo.token_box(first, grid)[:2], *geo.token_box(last, grid)[2:]), REACH_COLOUR))
    return boxes


def query_overlay(analysis, query, head: int | None = None, size: tuple[int, int] | None = None) -> Image.Image:
    """A query map (one head, or the mean for None) on the original image with :func:`query_boxes`."""
    return overlay(analysis.image, query.head(head), analysis.geometry, size=size, boxes=query_boxes(analysis, query))


def receptive_field_overlay(analysis, field, size: tuple[int, int] | None = None) -> Image.Image:
    """A :class:`~uniformer.explain.ReceptiveField`: sqrt of the gradient ERF (Viridis) with the
    theoretical receptive field (white) and the token (cyan) outlined, on the original image."""
    geo = analysis.geometry
    x0, y0, x1, y1 = field.theoretical
    boxes = [((*geo.input_to_image(x0, y0), *geo.input_to_image(x1, y1)), FIELD_COLOUR),
             (geo.token_box(field.token, field.grid), QUERY_COLOUR)]
    return overlay(analysis.image, np.sqrt(field.erf), geo, size=size, smooth=True, colorscale="Viridis", boxes=boxes)


def rgb_picture(rgb: np.ndarray, side: int = 224) -> Image.Image:
    """An (h, w, 3) float map in [0, 1] (e.g. :func:`~uniformer.explain.pca_rgb`) as a ``side`` x
    ``side`` picture with visible cells (nearest-neighbour upscaling)."""
    return Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((side, side), Image.NEAREST)
