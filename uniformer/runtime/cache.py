"""The uniformer cache folder: ``$UNIFORMER_CACHE``, else ``~/.cache/uniformer``."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The folder for files uniformer derives and keeps (ONNX exports, downloads): the
    ``UNIFORMER_CACHE`` environment variable when set, else ``~/.cache/uniformer``. Not created here."""
    env = os.environ.get("UNIFORMER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "uniformer"
