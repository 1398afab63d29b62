"""What the Segmentation, Pose and Detection tabs' handlers share: reading the uploaded photo (errors
in words), the size of the pictures shown, the folders of the downloads, and the box picked on the
photo. The tabs' own handlers: :mod:`app.segmentation_handlers`, :mod:`app.pose_handlers`,
:mod:`app.detection_handlers`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from uniformer.data import ImageDecodeError, load_image
from uniformer.data.images import load_image_reduced
from uniformer.explain.overlay import display_size

from . import errors
from .cache import result_dir

__all__ = ["MAX_DISPLAY_SIDE", "BoxPick"]

#: Longest side (pixels) of the pictures shown in the browser (downloads keep the full size).
MAX_DISPLAY_SIDE = 1024


def _need_image(image) -> None:
    if image is None:
        raise errors.no_input()


def _decode(image, max_side: int | None = None) -> Image.Image:
    try:
        return load_image(image) if max_side is None else load_image_reduced(image, max_side)
    except ImageDecodeError as e:
        raise errors.unreadable(e) from None


def _display_size(size: tuple[int, int]) -> tuple[int, int]:
    return display_size(size, MAX_DISPLAY_SIDE)


def _out_dir(prefix: str) -> Path:
    """A fresh folder for one result's files, deleted after ``$UNIFORMER_RESULT_TTL_S`` seconds
    (:func:`app.cache.result_dir`)."""
    return result_dir(prefix)


@dataclass(frozen=True)
class BoxPick:
    """Corners clicked so far on the photo: None, or the first corner (x, y) in image pixels."""

    first: tuple[float, float] | None = None

