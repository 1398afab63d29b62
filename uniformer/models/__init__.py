"""Model definitions; importing this package registers every model entry."""
from . import image  # noqa: F401
from .uniformer import UniFormer, UniFormerConfig, checkpoint_filter_fn

__all__ = ["UniFormer", "UniFormerConfig", "checkpoint_filter_fn"]
