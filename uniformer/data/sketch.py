"""A drawing -> scikit-learn's 8x8 digit format, and synthetic sketchpad drawings in block and
seven-segment styles (the digits model's training augmentation).

The digits model (``uniformer_xxs_digits``) was trained on scikit-learn's digits: 8x8 images
whose values 0..16 count the ink pixels of 4x4 blocks of a 32x32 binary bitmap, the digit scaled
to fill the bitmap's height and centred (UCI optdigits preprocessing). :func:`sketch_to_digit`
maps a drawing to exactly that representation, so the model sees a drawing the way it saw its
training data:

1. ink map in [0, 1]: for a drawing with a transparent background, the alpha channel; else the
   contrast to the background colour (the median of the border pixels), so dark-on-light and
   light-on-dark drawings both work;
2. binarize at half ink, crop to the ink's bounding box;
3. scale to 32 px high keeping the aspect ratio (width at most 32), centre in a 32x32 bitmap;
   thicken thin strokes (3x3 dilations, each +2 px, at most 4) until the estimated stroke width
   (2 x area / perimeter) is at least 5 px, about the pen width of the training data at that
   scale (a thin-pen drawing scaled down would otherwise be 1-2 px thin);
4. count the ink of each 4x4 block -> (8, 8) values 0..16.

Seven-segment shapes (a "2" whose lower half is a vertical stroke on the left, a closed "4", a "7"
with a vertical stem) are not in scikit-learn's digits, and no normalisation (width box, stroke
thinning or thickening, shear, corner rounding) made a model trained on them alone read these
right (the seven-segment "2": 2 / 5 / 7 at 20-30 % each). The shipped model is therefore trained
with synthetic drawings too: :func:`styled_digit_counts` draws digits in block
(:data:`BLOCK_DIGITS`) and seven-segment (:data:`SEVEN_SEGMENT_DIGITS`) styles with
:func:`draw_sketch` as the sketchpad would, and reads them with :func:`sketch_to_digit`, the same
path a drawing in the app takes.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .images import load_image

__all__ = ["EmptySketchError", "sketch_ink", "stroke_width", "sketch_to_digit", "SKETCH_CANVAS", "BLOCK_DIGITS",
           "SEVEN_SEGMENT_DIGITS", "draw_sketch", "styled_digit_counts"]

_STROKE_WIDTH = 5.0  # pixels of the 32x32 bitmap
_MAX_DILATIONS = 4


class EmptySketchError(ValueError):
    """The drawing holds no ink (nothing drawn yet, or an empty canvas)."""


def _as_array(sketch: Any) -> np.ndarray:
    """Gradio sketchpad value (dict with 'composite' / 'layers' / 'background'), PIL image, path or
    array -> (H, W, C) uint8 array with C = 1, 3 or 4 (alpha kept)."""
    if isinstance(sketch, dict):
        for key in ("composite", "image"):
            if sketch.get(key) is not None:
                return _as_array(sketch[key])
        layers = [layer for layer in (sketch.get("layers") or []) if layer is not None]
        if layers:
            return _as_array(layers[-1])
        if sketch.get("background") is not None:
            return _as_array(sketch["background"])
        raise EmptySketchError("the sketch holds no image; draw a digit first")
    if sketch is None:
        raise EmptySketchError("no sketch given; draw a digit first")
    if isinstance(sketch, Image.Image):
        img = sketch
        if img.mode not in ("RGBA", "LA", "RGB", "L"):
            img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
        arr = np.asarray(img)
    elif isinstance(sketch, np.ndarray):
        arr = sketch
    else:
        arr = np.asarray(load_image(sketch))
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.size == 0:
        raise ValueError(f"a sketch must be an (H, W), (H, W, 1-4) image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return arr


def sketch_ink(sketch: Any) -> np.ndarray:
    """Ink map (H, W) float in [0, 1] of a drawing (see the module doc, step 1)."""
    arr = _as_array(sketch).astype(np.float64)
    channels = arr.shape[2]
    if channels in (2, 4):
        alpha = arr[..., -1] / 255.0
        if (alpha < 0.5).mean() > 0.05:  # a transparent canvas: strokes are where it is opaque
            return alpha
        arr = arr[..., :-1]
    gray = arr.mean(2) if arr.shape[2] == 3 else arr[..., 0]
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    bg = float(np.median(border))
    if bg >= 128:
        return np.clip((bg - gray) / max(bg, 1.0), 0, 1)
    return np.clip((gray - bg) / max(255.0 - bg, 1.0), 0, 1)


def _neighbourhood(mask: np.ndarray, combine) -> np.ndarray:
    """3x3 dilation (``combine`` = np.logical_or) or erosion (np.logical_and) of a boolean mask."""
    padded = np.pad(mask, 1, constant_values=combine is np.logical_or and False)
    out = mask.copy()
    for dy in range(3):
        for dx in range(3):
            out = combine(out, padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]])
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    return _neighbourhood(mask, np.logical_or)


def stroke_width(mask: np.ndarray) -> float:
    """Estimated stroke width (pixels) of a boolean ink mask: 2 x area / perimeter, the perimeter
    counted as ink pixels with a background pixel among their 8 neighbours. About w for long
    strokes w >= 2 px wide; 2 for 1-px lines; 0 for an empty mask."""
    area = int(mask.sum())
    if area == 0:
        return 0.0
    boundary = int((mask & ~_neighbourhood(mask, np.logical_and)).sum())
    return 2.0 * area / max(boundary, 1)


def sketch_to_digit(sketch: Any) -> np.ndarray:
    """A drawing (Gradio sketchpad value, PIL image, path or array; any size and colours) ->
    (8, 8) float64 ink counts 0..16, the representation of scikit-learn's digits (module doc).
    Raises EmptySketchError when nothing is drawn."""
    ink = sketch_ink(sketch) >= 0.5
    ys, xs = np.nonzero(ink)
    if ys.size == 0:
        raise EmptySketchError("the sketch is empty; draw a digit")
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    new_w = int(np.clip(round(w * 32 / h), 1, 32))
    scaled = Image.fromarray((crop * 255).astype(np.uint8)).resize((new_w, 32), Image.BILINEAR)
    bitmap = np.zeros((32, 32), dtype=bool)
    left = (32 - new_w) // 2
    bitmap[:, left:left + new_w] = np.asarray(scaled) >= 128
    for _ in range(_MAX_DILATIONS):
        if stroke_width(bitmap) >= _STROKE_WIDTH:
            break
        bitmap = _dilate(bitmap)
    return bitmap.reshape(8, 4, 8, 4).sum((1, 3)).astype(np.float64)


#: Side (pixels) of the app's Digits sketchpad, the canvas the styled drawings are made on.
SKETCH_CANVAS = 320
#: Angular ("block style") digits as polylines in a unit box (x right, y down), written the usual way.
BLOCK_DIGITS = {
    "0": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
    "1": [[(0.25, 0.2), (0.6, 0), (0.6, 1)]],
    "2": [[(0, 0), (1, 0), (1, 0.45), (0, 1), (1, 1)]],
    "3": [[(0, 0), (1, 0), (0.4, 0.45), (1, 0.45), (1, 1), (0, 1)]],
    "4": [[(0.7, 1), (0.7, 0), (0, 0.65), (1, 0.65)]],
    "5": [[(1, 0), (0, 0), (0, 0.45), (1, 0.45), (1, 1), (0, 1)]],
    "6": [[(1, 0), (0, 0.5), (0, 1), (1, 1), (1, 0.5), (0, 0.5)]],
    "7": [[(0, 0), (1, 0), (0.35, 1)]],
    "8": [[(0, 0), (1, 0), (1, 0.45), (0, 0.45), (0, 0)], [(0, 0.45), (1, 0.45), (1, 1), (0, 1), (0, 0.45)]],
    "9": [[(1, 0.5), (0, 0.5), (0, 0), (1, 0), (1, 0.5), (0.6, 1)]],
}
#: Seven-segment digits (square corners, segments of a 1 x 1 box split at mid-height) as polylines.
SEVEN_SEGMENT_DIGITS = {
    "0": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
    "1": [[(1, 0), (1, 1)]],
    "2": [[(0, 0), (1, 0), (1, 0.5), (0, 0.5), (0, 1), (1, 1)]],
    "3": [[(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0.5), (1, 0.5)]],
    "4": [[(0, 0), (0, 0.5), (1, 0.5)], [(1, 0), (1, 1)]],
    "5": [[(1, 0), (0, 0), (0, 0.5), (1, 0.5), (1, 1), (0, 1)]],
    "6": [[(1, 0), (0, 0), (0, 1), (1, 1), (1, 0.5), (0, 0.5)]],
    "7": [[(0, 0), (1, 0), (1, 1)]],
    "8": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)], [(0, 0.5), (1, 0.5)]],
    "9": [[(1, 0.5), (0, 0.5), (0, 0), (1, 0), (1, 1), (0, 1)]],
}


def draw_sketch(lines, cx: float, cy: float, height: float, brush: int, aspect: float = 0.6,
                canvas: int = SKETCH_CANVAS) -> dict:
    """A sketchpad value as the Digits tab sends it (Gradio ``type='numpy'``: black strokes on a
    transparent (canvas, canvas, 4) RGBA layer) of ``lines`` (polylines in a unit box, x right, y
    down) drawn with a ``brush``-pixel brush in a box of ``height`` x ``aspect * height`` pixels
    centred at (cx, cy) pixels."""
    image = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    width = aspect * height
    for line in lines:
        draw.line([(cx + (x - 0.5) * width, cy + (y - 0.5) * height) for x, y in line], fill=(0, 0, 0, 255),
                  width=int(brush), joint="curve")
    layer = np.asarray(image)  # (canvas, canvas, 4)
    return {"background": None, "layers": [layer], "composite": layer.copy()}


def styled_digit_counts(per_digit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic drawings of digits 0-9 in block (:data:`BLOCK_DIGITS`) and seven-segment
    (:data:`SEVEN_SEGMENT_DIGITS`) styles, as a user draws them on the app's sketchpad, read through
    :func:`sketch_to_digit` (the app's path) -> (counts (N, 8, 8) uint8 0..16, labels (N,) int64),
    N = 10 x ``per_digit``, alternating the two styles. Each drawing gets its own corner jitter
    (+-0.06 of the box), aspect (0.45-0.8), height (90-280 px), brush (12-44 px) and centre anywhere
    the box fits on the 320-px canvas; deterministic for a ``seed``. The training augmentation of
    the digits model (``build_datasets``) and the held-out check of sketch reading (other seed)."""
    rng = np.random.default_rng(seed)
    counts, labels = [], []
    for digit in range(10):
        for k in range(per_digit):
            glyph = (BLOCK_DIGITS if k % 2 == 0 else SEVEN_SEGMENT_DIGITS)[str(digit)]
            lines = [[(x + rng.uniform(-0.06, 0.06), y + rng.uniform(-0.06, 0.06)) for x, y in line] for line in glyph]
            height = rng.uniform(90, 280)
            aspect = rng.uniform(0.45, 0.8)
            brush = int(rng.integers(12, 45))
            half_w, half_h = (aspect * height + brush) / 2, (height + brush) / 2
            cx = rng.uniform(min(half_w, SKETCH_CANVAS / 2), max(SKETCH_CANVAS - half_w, SKETCH_CANVAS / 2))
            cy = rng.uniform(min(half_h, SKETCH_CANVAS / 2), max(SKETCH_CANVAS - half_h, SKETCH_CANVAS / 2))
            counts.append(sketch_to_digit(draw_sketch(lines, cx, cy, height, brush, aspect)))
            labels.append(digit)
    return np.stack(counts).astype(np.uint8), np.asarray(labels, dtype=np.int64)
