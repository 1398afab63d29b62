"""Pictures of dense predictions, shared by the app and the notebooks: segmentation overlays in a
label set's palette, the stage-3 attention windows, and pose skeletons with keypoint scores.

Pure functions: arrays / PIL images in, a new PIL image out (inputs are never modified).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["colorize_mask", "mask_to_png_image", "overlay_segmentation", "draw_boxes", "draw_person_boxes", "draw_pose",
           "KEYPOINT_SIDE_COLORS", "load_font"]

#: Colours of left-side, right-side and central joints / limbs (RGB).
KEYPOINT_SIDE_COLORS = {"left": (0, 200, 255), "right": (255, 128, 0), "center": (80, 255, 80)}


def colorize_mask(mask: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Class map (H, W) of indices -> RGB image (H, W, 3) uint8 in ``palette`` colours.
    Raises ValueError when an index has no colour."""
    lut = np.asarray(palette, dtype=np.uint8)
    if mask.size and int(mask.max()) >= len(lut):
        raise ValueError(f"class index {int(mask.max())} has no colour in a palette of {len(lut)}")
    return lut[mask]


def mask_to_png_image(mask: np.ndarray, palette: Sequence[Sequence[int]]) -> Image.Image:
    """The raw class map as a palette ('P' mode) PIL image: pixel value = class index (for up to
    256 classes), shown in ``palette`` colours by any viewer. Raises ValueError for > 256 classes."""
    if len(palette) > 256 or (mask.size and int(mask.max()) > 255):
        raise ValueError("a palette PNG holds at most 256 classes")
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    flat = [int(c) for rgb in palette for c in rgb]
    img.putpalette(flat + [0] * (768 - len(flat)))
    return img


def overlay_segmentation(image: Image.Image, mask: np.ndarray, palette: Sequence[Sequence[int]],
                         opacity: float = 0.5, visible: Iterable[int] | None = None) -> Image.Image:
    """Blend the class colours over ``image``: out = (1 - opacity) * image + opacity * colour on the
    pixels of ``visible`` classes (default: all); other pixels keep the photo. mask (H, W) must
    match the image size. Raises ValueError for a size mismatch or an opacity outside [0, 1]."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"mask {mask.shape} and image {rgb.shape[:2]} differ in size")
    colors = colorize_mask(mask, palette).astype(np.float32)
    alpha = np.full(mask.shape, opacity, dtype=np.float32)
    if visible is not None:
        keep = np.zeros(len(palette), dtype=bool)
        keep[[int(i) for i in visible]] = True
        alpha = np.where(keep[mask], alpha, 0.0)
    out = rgb * (1 - alpha[..., None]) + colors * alpha[..., None]
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def load_font(size: int):
    """Pillow's default font at ``size`` pixels (the bitmap default where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def draw_boxes(image: Image.Image, boxes: Iterable[Sequence[float]], color=(255, 255, 255), width: int = 2,
               shadow: bool = True) -> Image.Image:
    """``image`` with rectangle outlines at ``boxes`` (x0, y0, x1, y1) in pixels; a dark shadow
    line keeps them visible on light areas."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    for x0, y0, x1, y1 in boxes:
        x1, y1 = max(x0, x1 - 1), max(y0, y1 - 1)
        if shadow:
            draw.rectangle((x0 + 1, y0 + 1, x1 + 1, y1 + 1), outline=(0, 0, 0), width=width)
        draw.rectangle((x0, y0, x1, y1), outline=tuple(color), width=width)
    return out


def draw_person_boxes(image: Image.Image, boxes: Iterable[Sequence[float]] = (),
                      corner: Sequence[float] | None = None, color=(255, 64, 64)) -> Image.Image:
    """``image`` with person boxes (x, y, w, h; pixels) outlined and, if given, the first clicked
    ``corner`` (x, y) marked with a small square: what a user picking boxes on the photo sees.
    Line widths grow with the image (about 1/128 of its longer side, at least 2 px), so the box stays
    visible on a photo shown smaller than its size."""
    side = max(image.size)
    out = draw_boxes(image, [(x, y, x + w, y + h) for x, y, w, h in boxes], color=color,
                     width=max(2, round(side / 128)))
    if corner is not None:
        x, y = (float(v) for v in corner[:2])
        r = max(3, round(side / 100))
        out = draw_boxes(out, [(x - r, y - r, x + r + 1, y + r + 1)], color=color, width=max(2, r // 2))
    return out


def _side(name: str) -> str:
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "center"


def draw_pose(image: Image.Image, persons: Sequence, names: Sequence[str], skeleton: Sequence[Sequence[int]],
              score_threshold: float = 0.0, show_scores: bool = True, show_boxes: bool = True) -> Image.Image:
    """``image`` with each person's box (white), limbs and joints; joints (and limbs) with a
    score below ``score_threshold`` are left out; ``show_scores`` writes each joint's score next to it.

    persons: objects with ``box`` (x, y, w, h), ``keypoints`` (K, 2) and ``scores`` (K,) (e.g.
    :class:`uniformer.tasks.pose.PersonPose`). Left joints are blue, right ones orange, central green.
    """
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    side = max(out.size)
    r = max(2, round(side / 160))
    lw = max(2, round(side / 220))
    font = load_font(max(10, round(side / 55)))
    for person in persons:
        kps, scores = np.asarray(person.keypoints, dtype=float), np.asarray(person.scores, dtype=float)
        if show_boxes:
            x, y, w, h = person.box
            draw.rectangle((x, y, x + w - 1, y + h - 1), outline=(0, 0, 0), width=lw + 2)
            draw.rectangle((x, y, x + w - 1, y + h - 1), outline=(255, 255, 255), width=lw)
        for a, b in skeleton:
            if scores[a] < score_threshold or scores[b] < score_threshold:
                continue
            sides = {_side(names[a]), _side(names[b])}
            color = KEYPOINT_SIDE_COLORS[sides.pop() if len(sides) == 1 else "center"]
            draw.line([tuple(kps[a]), tuple(kps[b])], fill=(0, 0, 0), width=lw + 2)
            draw.line([tuple(kps[a]), tuple(kps[b])], fill=color, width=lw)
        for (x, y), s, name in zip(kps, scores, names):
            if s < score_threshold:
                continue
            draw.ellipse((x - r, y - r, x + r, y + r), fill=KEYPOINT_SIDE_COLORS[_side(name)], outline=(0, 0, 0))
            if show_scores:
                draw.text((x + r + 1, y - r - 1), f"{s:.2f}", fill=(255, 255, 255), font=font,
                          stroke_width=2, stroke_fill=(0, 0, 0))
    return out
