"""Which weights the app loads, and a thread-safe cache so each model is built (and looked up on
the Hub) once per process.

Policy (:func:`load_model`), first match wins:

1. ``$UNIFORMER_CHECKPOINT_DIR/<model_name>.pth`` or ``$UNIFORMER_CHECKPOINT_DIR/<hub filename>``
   exists -> that local file;
2. the official Hugging Face Hub checkpoint (``huggingface_hub`` honours ``HF_HUB_OFFLINE`` and
   ``HF_HOME``, so a cached file works offline);
3. the checkpoint cannot be had (:class:`uniformer.CheckpointNotAvailableError`) -> untrained random
   weights, with a warning saying how to get real ones.

Any other checkpoint error (invalid, unsafe or mismatching file) is not hidden: it is kept in
:attr:`LoadedModel.error` and shown to the user.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from torch import nn

import uniformer
from uniformer import CheckpointError, CheckpointNotAvailableError, WeightsInfo

__all__ = ["CHECKPOINT_DIR_ENV", "DEFAULT_MODEL", "LoadedModel", "find_local_checkpoint", "how_to_get_weights",
           "load_model", "get_model", "clear_cache", "image_model_choices"]

#: Environment variable naming a folder of local checkpoint files.
CHECKPOINT_DIR_ENV = "UNIFORMER_CHECKPOINT_DIR"
#: Model selected when the app starts.
DEFAULT_MODEL = "uniformer_small_in1k"


@dataclass(frozen=True)
class LoadedModel:
    """The outcome of loading ``name`` for the UI.

    model: the model in eval mode, or None when loading failed (then ``error`` says why).
    fallback_reason: why the untrained fallback was used (the CheckpointNotAvailableError message),
    else None. error: the message of a checkpoint error that prevented loading, else None.
    """

    name: str
    model: nn.Module | None
    fallback_reason: str | None = None
    error: str | None = None

    @property
    def weights(self) -> WeightsInfo | None:
        """Where the weights came from (None when loading failed)."""
        return getattr(self.model, "weights_info", None)


def find_local_checkpoint(name: str, directory: str | os.PathLike | None = None) -> Path | None:
    """``<name>.pth`` or the entry's Hub filename inside ``directory`` (default: the folder in
    ``$UNIFORMER_CHECKPOINT_DIR``); None when neither exists or no folder is configured."""
    directory = directory if directory is not None else os.environ.get(CHECKPOINT_DIR_ENV)
    if not directory:
        return None
    hub_filename = uniformer.get_entry(name).pretrained.hub_filename
    for filename in dict.fromkeys(f for f in (f"{name}.pth", hub_filename) if f):
        path = Path(directory) / filename
        if path.is_file():
            return path
    return None


def how_to_get_weights(name: str) -> str:
    """One sentence telling users where the real weights of ``name`` come from and where to put them."""
    p = uniformer.get_entry(name).pretrained
    put = f"save it as ${CHECKPOINT_DIR_ENV}/{name}.pth and restart the app"
    if p.hub:
        return (f"allow internet access so the app can download the official Hub checkpoint "
                f"{p.hub_repo_id}/{p.hub_filename} (unset HF_HUB_OFFLINE), or download that file, {put}.")
    hint = f"{p.download_hint} " if p.download_hint else ""
    return f"{hint}Download it, {put}."


def load_model(name: str) -> LoadedModel:
    """Load ``name`` following the module's policy (no caching; see :func:`get_model`).

    Never raises for checkpoint problems: the untrained fallback sets ``fallback_reason``, other
    checkpoint errors set ``error``. Raises KeyError for an unknown model name.
    """
    local = find_local_checkpoint(name)
    try:
        if local is not None:
            return LoadedModel(name, uniformer.create_model(name, checkpoint_path=local))
        try:
            return LoadedModel(name, uniformer.create_model(name, pretrained=True))
        except CheckpointNotAvailableError as e:
            return LoadedModel(name, uniformer.create_model(name), fallback_reason=str(e))
    except CheckpointError as e:
        return LoadedModel(name, None, error=f"{type(e).__name__}: {e}")


_cache: dict[str, LoadedModel] = {}
_cache_lock = threading.Lock()
_name_locks: dict[str, threading.Lock] = {}


def get_model(name: str) -> LoadedModel:
    """:func:`load_model` once per name and process, thread-safe: concurrent first requests for
    one model wait for a single load; other models are not blocked. Failed loads (``error``) are
    not cached, so fixing the file and retrying works without a restart."""
    cached = _cache.get(name)
    if cached is not None:
        return cached
    with _cache_lock:
        lock = _name_locks.setdefault(name, threading.Lock())
    with lock:
        if name not in _cache:
            loaded = load_model(name)
            if loaded.error is not None:
                return loaded
            _cache[name] = loaded
        return _cache[name]


def clear_cache() -> None:
    """Forget every loaded model (tests; changed environment)."""
    with _cache_lock:
        _cache.clear()


def image_model_choices() -> list[tuple[str, str]]:
    """(label shown, model name) for every registered image classifier, for a dropdown."""
    return [(f"{n} \u2014 {uniformer.get_entry(n).description}", n)
            for n in uniformer.list_models(task="image-classification")]
