"""Model definitions; importing this package registers every model entry."""
from . import dense, detection, digits, image, light, video  # noqa: F401  (registers the entries)
from .uniformer import UniFormer, UniFormerConfig, checkpoint_filter_fn

__all__ = ["UniFormer", "UniFormerConfig", "checkpoint_filter_fn"]
