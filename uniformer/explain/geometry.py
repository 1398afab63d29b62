"""Where tokens are on the user's image: the resize + centre-crop geometry of the eval transform.

The eval transform (``uniformer.data.eval_transform``) resizes the short side to
R = floor(S / crop_pct) and centre-crops S x S (torchvision's rounding rules). A stage with a
token grid (h, w) tiles that crop with cells of S/w x S/h input pixels. :class:`InputGeometry`
converts between original-image pixels and model-input pixels and finds the token under a pixel,
for any image aspect ratio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["OutsideCropError", "InputGeometry", "input_geometry"]


class OutsideCropError(ValueError):
    """A pixel asked about lies outside the centre crop the model sees (the eval transform's crop
    drops the image's borders): no token covers it. ``crop_box``: the region the model sees,
    (x0, y0, x1, y1) in original-image pixels."""

    def __init__(self, message: str, crop_box: tuple[float, float, float, float]):
        super().__init__(message)
        self.crop_box = crop_box


@dataclass(frozen=True)
class InputGeometry:
    """Mapping between an original image (W x H pixels) and the model input (S_w x S_h pixels).

    resized: (W', H') after the short-side resize; crop_left / crop_top: offset of the crop in the
    resized image (pixels); input_size: (S_h, S_w). Coordinates are continuous pixel coordinates
    (0 = left/top edge of the first pixel, x to the right, y down).
    """

    image_size: tuple[int, int]
    resized: tuple[int, int]
    crop_left: int
    crop_top: int
    input_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """Resize factors (x, y): resized pixels per original pixel."""
        return self.resized[0] / self.image_size[0], self.resized[1] / self.image_size[1]

    def image_to_input(self, x: float, y: float) -> tuple[float, float]:
        """Original-image pixel coords -> model-input pixel coords (may fall outside the crop)."""
        sx, sy = self.scale
        return x * sx - self.crop_left, y * sy - self.crop_top

    def input_to_image(self, xi: float, yi: float) -> tuple[float, float]:
        """Model-input pixel coords -> original-image pixel coords."""
        sx, sy = self.scale
        return (xi + self.crop_left) / sx, (yi + self.crop_top) / sy

    def crop_box(self) -> tuple[float, float, float, float]:
        """The region of the original image the model sees: (x0, y0, x1, y1) in image pixels."""
        x0, y0 = self.input_to_image(0, 0)
        x1, y1 = self.input_to_image(self.input_size[1], self.input_size[0])
        return x0, y0, x1, y1

    def token_at(self, x: float, y: float, grid: tuple[int, int]) -> int:
        """Index (row-major) of the token of a (h, w) grid covering original pixel (x, y).

        Raises OutsideCropError (a ValueError) when the pixel lies outside the centre crop the model sees.
        """
        h, w = grid
        xi, yi = self.image_to_input(x, y)
        S_h, S_w = self.input_size
        if not (0 <= xi < S_w and 0 <= yi < S_h):
            box = self.crop_box()
            raise OutsideCropError(f"pixel ({x:.0f}, {y:.0f}) is outside the centre crop the model sees "
                                   f"(image box {tuple(round(v) for v in box)})", box)
        row = min(int(yi * h / S_h), h - 1)
        col = min(int(xi * w / S_w), w - 1)
        return row * w + col

    def token_box(self, index: int, grid: tuple[int, int]) -> tuple[float, float, float, float]:
        """Original-image box (x0, y0, x1, y1) of token ``index`` of a (h, w) grid."""
        h, w = grid
        row, col = divmod(index, w)
        S_h, S_w = self.input_size
        x0, y0 = self.input_to_image(col * S_w / w, row * S_h / h)
        x1, y1 = self.input_to_image((col + 1) * S_w / w, (row + 1) * S_h / h)
        return x0, y0, x1, y1

    def token_centers(self, grid: tuple[int, int]) -> np.ndarray:
        """(h * w, 2) array of token centres (x, y) in original-image pixels, row-major."""
        h, w = grid
        S_h, S_w = self.input_size
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        xi, yi = (cols.ravel() + 0.5) * S_w / w, (rows.ravel() + 0.5) * S_h / h
        sx, sy = self.scale
        return np.stack([(xi + self.crop_left) / sx, (yi + self.crop_top) / sy], 1)


def input_geometry(image_size: tuple[int, int], pretrained_cfg) -> InputGeometry:
    """Geometry of ``pretrained_cfg``'s eval transform on an image of ``image_size`` = (W, H) pixels.

    Follows torchvision: short side -> R = floor(S / crop_pct), long side int(R * long / short);
    crop offsets int(round((size - S) / 2)). Raises ValueError for an empty image.
    """
    W, H = image_size
    if W <= 0 or H <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    S_h, S_w = pretrained_cfg.input_size[-2:]
    R = math.floor(S_h / pretrained_cfg.crop_pct)
    if W <= H:
        new_w, new_h = R, int(R * H / W)
    else:
        new_w, new_h = int(R * W / H), R
    left, top = int(round((new_w - S_w) / 2.0)), int(round((new_h - S_h) / 2.0))
    return InputGeometry((W, H), (new_w, new_h), left, top, (S_h, S_w))
