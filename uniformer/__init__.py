"""uniformer: one clean PyTorch implementation of every UniFormer variant (Li et al., TPAMI 2023).

    >>> import uniformer
    >>> model = uniformer.create_model("uniformer_small_in1k", pretrained=True)
    >>> uniformer.list_models("uniformer_*_in1k")
"""
from ._compat import ensure_torchvision_importable as _ensure_torchvision_importable

_ensure_torchvision_importable()  # before anything imports torchvision (timm does)

from .hub import (CheckpointError, CheckpointMismatchError, CheckpointNotAvailableError,  # noqa: E402
                  InvalidCheckpointError, UnsafeCheckpointError, WeightsInfo)
from .registry import create_model, get_entry, list_models  # noqa: E402
from .downloads import WeightsDownloadError, download_weights, weights_source  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "create_model", "list_models", "get_entry", "WeightsInfo", "CheckpointError", "CheckpointNotAvailableError",
    "InvalidCheckpointError", "UnsafeCheckpointError", "CheckpointMismatchError", "WeightsDownloadError",
    "download_weights", "weights_source", "__version__",
]
