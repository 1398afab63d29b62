"""uniformer: one clean PyTorch implementation of every UniFormer variant (Li et al., TPAMI 2023).

    >>> import uniformer
    >>> model = uniformer.create_model("uniformer_small_in1k", pretrained=True)
    >>> uniformer.list_models("uniformer_*_in1k")

Importing the package registers every model (each module of :mod:`uniformer.models` registers its
entries in :mod:`uniformer.registry`); it changes no global state of torch or Pillow.
"""
from ._compat import torchvision_importable

with torchvision_importable():  # timm imports torchvision; the shim is undone on exit
    import timm  # noqa: F401

from . import models  # noqa: E402,F401  (registers every model)
from .hub import (CheckpointError, CheckpointMismatchError, CheckpointNotAvailableError,  # noqa: E402
                  InvalidCheckpointError, UnsafeCheckpointError, WeightsInfo)
from .factory import create_model  # noqa: E402
from .registry import get_entry, list_models  # noqa: E402
from .downloads import WeightsDownloadError, download_weights, weights_source  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "create_model", "list_models", "get_entry", "WeightsInfo", "CheckpointError", "CheckpointNotAvailableError",
    "InvalidCheckpointError", "UnsafeCheckpointError", "CheckpointMismatchError", "WeightsDownloadError",
    "download_weights", "weights_source", "__version__",
]
