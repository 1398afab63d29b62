"""Decoding user images with Pillow into 8-bit RGB, robust to what people actually upload.

Handles EXIF orientation, grayscale / bilevel / palette, transparency (composited on white),
16-bit and 32-bit integer and float images (rescaled, not clipped), CMYK and other colour spaces.
Refuses empty, truncated, non-image and oversized files (decompression bombs) with a clear
``ImageDecodeError`` whose message can be shown to users as is.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageDecodeError", "load_image", "load_image_reduced", "to_rgb", "image_digest", "DEFAULT_MAX_PIXELS"]

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image, np.ndarray]

#: Largest image accepted by default, in pixels (width x height): 100 megapixels.
DEFAULT_MAX_PIXELS = 100_000_000


logger = logging.getLogger(__name__)

class ImageDecodeError(ValueError):
    """The input cannot be used as an image; the message says why, in words for users."""


def _rescale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """High-bit-depth or float pixel values -> uint8, by the dtype's range (not by clipping)."""
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float64))
        hi = 1.0 if arr.size and arr.max() <= 1.0 else 255.0
        return np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if arr.dtype == np.uint16 or (arr.size and arr.max() > 255):
        # 16-bit data ('I;16' or 16-bit values in a 32-bit 'I' image): 65535 -> 255
        return np.clip(arr.astype(np.float64) / 257.0 + 0.5, 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow mode -> 'RGB' (8 bits per channel). Transparent pixels are composited on
    ``background``; 16/32-bit and float images are rescaled to 0-255."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        gray = Image.fromarray(_rescale_to_uint8(np.asarray(img)), mode="L")
        return gray.convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def _from_array(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageDecodeError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}")
    if arr.size == 0:
        raise ImageDecodeError("the image array is empty")
    return Image.fromarray(_rescale_to_uint8(arr))


def load_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``source`` (path, bytes, binary file, PIL image or HxW[xC] array) to an RGB PIL image,
    upright according to its EXIF orientation.

    Raises ImageDecodeError for: a missing or empty file, data Pillow cannot identify (e.g. a text
    file named .jpg), truncated or corrupt data, an image above ``max_pixels`` pixels (checked from
    the header, before decoding), and unsupported input types.
    """
    if isinstance(source, np.ndarray):
        img = _from_array(source)
    elif isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (bytes, bytearray)):
            if not source:
                raise ImageDecodeError("the file is empty (0 bytes)")
            fp, name = io.BytesIO(source), "the uploaded data"
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise ImageDecodeError(f"no such image file: {path}")
            if path.stat().st_size == 0:
                raise ImageDecodeError(f"{path.name} is empty (0 bytes)")
            fp, name = path, path.name
        elif hasattr(source, "read"):
            fp, name = source, getattr(source, "name", "the uploaded file")
        else:
            raise ImageDecodeError(f"cannot read an image from a {type(source).__name__}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp)
        except UnidentifiedImageError:
            raise ImageDecodeError(f"{name} is not an image file Pillow can read "
                                   "(JPEG, PNG, WebP, GIF, BMP, TIFF...)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageDecodeError(f"{name} is far too large (a decompression bomb?); the limit is "
                                   f"{max_pixels / 1e6:.0f} megapixels") from None
        except (OSError, ValueError, SyntaxError) as e:
            raise ImageDecodeError(f"{name} is truncated or corrupt: "
                                   f"it could not be opened as an image ({e})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageDecodeError(f"the image is {w}x{h} = {w * h / 1e6:.0f} megapixels; the limit is "
                               f"{max_pixels / 1e6:.0f} megapixels. Downscale it first.")
    if w == 0 or h == 0:
        raise ImageDecodeError(f"the image has no pixels ({w}x{h})")
    try:
        img.load()  # truncated data raises (Pillow's global LOAD_TRUNCATED_IMAGES is read, never set)
        try:
            img = ImageOps.exif_transpose(img)
        except (OSError, ValueError, TypeError, KeyError, SyntaxError) as e:  # malformed EXIF
            logger.warning("%s: malformed EXIF orientation ignored, the stored orientation is kept (%s)",
                           getattr(img, "filename", None) or "image", e)
        return to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"the image data is truncated or corrupt ({e})") from None


def load_image_reduced(source: ImageSource, max_side: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """:func:`load_image`, then shrunk (keep-ratio) so that its longer side is at most ``max_side``
    pixels; smaller images are returned as decoded. For JPEG files the decoder itself works at a
    reduced scale first (Pillow's ``draft``: libjpeg's DCT scaling by 1/2, 1/4 or 1/8, chosen to stay
    at or above the target), so a 24-megapixel photo is never expanded in full; one resize
    (Pillow's antialiased BICUBIC) then brings it to the bound. EXIF orientation is applied.
    Raises ImageDecodeError as :func:`load_image` (the pixel limit is checked on the header size).
    """
    if max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side}")
    if isinstance(source, (str, os.PathLike, bytes, bytearray)) and (
            not isinstance(source, (bytes, bytearray)) or source):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                probe = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
            w, h = probe.size
            if probe.format == "JPEG" and max(w, h) > max_side and w * h <= max_pixels:
                scale = max_side / max(w, h)
                probe.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))  # decoder-side reduction
                source = probe
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            pass  # load_image reports the problem in words
    img = load_image(source, max_pixels)
    w, h = img.size
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC, reducing_gap=2.0)
    return img


def image_digest(source: ImageSource) -> str:
    """SHA-256 (hex, with a kind prefix) identifying an image input, e.g. as a cache key: of the
    file's bytes for a path (no decoding; the same photo under two paths has one digest), of mode,
    size and pixels for a PIL image, of dtype, shape and data for an array, of the bytes for bytes.
    Raises ImageDecodeError when a path cannot be read or the input is of another type."""
    h = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            load_image(source)  # raises ImageDecodeError with the reason in words
            raise
        return "file:" + h.hexdigest()
    if isinstance(source, Image.Image):
        h.update(f"{source.mode}{source.size}".encode())
        h.update(source.tobytes())
        return "pil:" + h.hexdigest()
    if isinstance(source, np.ndarray):
        h.update(f"{source.dtype}{source.shape}".encode())
        h.update(np.ascontiguousarray(source).tobytes())
        return "array:" + h.hexdigest()
    if isinstance(source, (bytes, bytearray)):
        h.update(source)
        return "bytes:" + h.hexdigest()
    raise ImageDecodeError(f"unsupported image input of type {type(source).__name__}")
