"""Input decoding, preprocessing and label sets."""
from .images import ImageDecodeError, load_image
from .labels import get_labels
from .transforms import eval_transform

__all__ = ["ImageDecodeError", "load_image", "get_labels", "eval_transform"]
