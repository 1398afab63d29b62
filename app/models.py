"""Which weights the app loads, and the one byte-bounded model cache of the process.

Policy (:func:`load_model`), first match wins:

1. ``$UNIFORMER_CHECKPOINT_DIR/<model_name>.pth`` or ``$UNIFORMER_CHECKPOINT_DIR/<hub filename>``
   exists -> that local file;
2. the official checkpoint (``uniformer.create_model(name, pretrained=True)``: Hugging Face Hub,
   which honours ``HF_HUB_OFFLINE`` and ``HF_HOME``, or the library's other official sources);
3. the checkpoint cannot be had (:class:`uniformer.CheckpointNotAvailableError`) -> untrained random
   weights, with a warning saying how to get real ones.

Any other checkpoint error (invalid, unsafe or mismatching file) is not hidden: it is kept in
:attr:`LoadedModel.error` and shown to the user.

A user's session can replace the weights of a model by a checkpoint file it uploaded
(:mod:`app.weights`): inside :func:`use_session`, :func:`get_model` returns that file's model for
that name; other sessions keep the shared one.

Memory (:func:`model_cache`): every model the app holds (shared, uploaded, stage-3 twins) lives in
one least-recently-used :class:`app.cache.LRUCache` bounded in bytes of parameters and buffers per
device: ``$UNIFORMER_MODEL_CACHE_MB`` for CPU memory (default :data:`DEFAULT_MODEL_CACHE_MB`),
``$UNIFORMER_GPU_CACHE_MB`` for each GPU (default: 60% of its memory). Evicted models reload on
demand. A model a running request still uses is not freed under it (the request's reference keeps
it alive) and is counted against the budget until it is freed. Before a load, least recently used
models make room for the new one (its size when loaded before, else the largest model's so far:
:meth:`app.cache.LRUCache.size_hint`); a first load of a model larger than any before can exceed
the budget by the difference until it is stored.
"""
from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import torch
from torch import nn

import uniformer
from uniformer import CheckpointError, CheckpointNotAvailableError, WeightsInfo
from uniformer.downloads import CHECKPOINT_DIR_ENV

from .cache import MB, LRUCache

__all__ = ["CHECKPOINT_DIR_ENV", "MODEL_CACHE_ENV", "GPU_CACHE_ENV", "DEFAULT_MODEL_CACHE_MB", "DEFAULT_MODEL",
           "LoadedModel", "UploadedCheckpoint", "how_to_get_weights", "operator_weights_route", "load_model",
           "load_checkpoint_file", "load_official", "get_model", "get_fast_model", "clear_cache", "image_model_choices",
           "module_footprint", "new_model_cache", "model_cache", "use_session", "session_upload", "weights_key",
           "weights_kind", "weights_line", "redact_paths"]

#: Environment variable naming a folder of local checkpoint files.
#: Environment variable: CPU-memory budget of the model cache, in MB (MiB).
MODEL_CACHE_ENV = "UNIFORMER_MODEL_CACHE_MB"
#: Environment variable: budget of the model cache on each GPU, in MB (MiB).
GPU_CACHE_ENV = "UNIFORMER_GPU_CACHE_MB"
#: Default CPU budget (MB): fits a 16 GB CPU Space next to the app itself (~1 GB), the Explain
#: analyses (<= 1 GB) and the activations of a few concurrent requests.
DEFAULT_MODEL_CACHE_MB = 5000
#: Model selected when the app starts.
DEFAULT_MODEL = "uniformer_small_in1k"


@dataclass(frozen=True)
class LoadedModel:
    """The outcome of loading ``name`` for the UI.

    model: the model in eval mode, or None when loading failed (then ``error`` says why).
    fallback_reason: why the untrained fallback was used (the CheckpointNotAvailableError message),
    else None. error: the message of a checkpoint error that prevented loading, else None.
    origin: where a local file came from: 'upload' (this session's upload), 'folder'
    ($UNIFORMER_CHECKPOINT_DIR), else None.
    """

    name: str
    model: nn.Module | None
    fallback_reason: str | None = None
    error: str | None = None
    origin: str | None = None

    @property
    def weights(self) -> WeightsInfo | None:
        """Where the weights came from (None when loading failed)."""
        return getattr(self.model, "weights_info", None)


@dataclass(frozen=True)
class UploadedCheckpoint:
    """A checkpoint file a user uploaded for model ``name``: where Gradio keeps it on the server
    (``path``, never shown), the name the user gave it and the SHA-256 of its bytes."""

    name: str
    path: str
    filename: str
    sha256: str


def redact_paths(message: str, *paths: str | os.PathLike | None) -> str:
    """``message`` with each of ``paths`` (and its folder) replaced by its file name: error texts
    shown in the UI must not reveal server paths."""
    for path in paths:
        if path:
            path = Path(path)
            message = message.replace(str(path), path.name).replace(str(path.resolve()), path.name)
            message = message.replace(str(path.parent) + os.sep, "")
    return message


def how_to_get_weights(name: str) -> str:
    """One sentence telling a visitor of the app (who cannot set variables or restart it) how to
    get the real weights of ``name``: the "Weights" panel's download (official Hub checkpoints)
    or an upload of the file. The operator's route is :func:`operator_weights_route`."""
    p = uniformer.get_entry(name).pretrained
    upload = f"upload a checkpoint file of {name} there (your session only)"
    if p.hub:
        return (f"open \"Weights\" and click \"Download official weights\" (the official Hub checkpoint "
                f"{p.hub_repo_id}/{p.hub_filename}, for every user), or {upload}.")
    hint = f" ({p.download_hint.rstrip('. ')})" if p.download_hint else ""
    return f"download its official checkpoint yourself{hint}, then open \"Weights\" and {upload}."


def operator_weights_route(name: str) -> str:
    """One sentence for whoever runs the app (a Space's owner, a local user): how to make trained
    weights of ``name`` load at start for everyone (variables, the CLI, a restart)."""
    p = uniformer.get_entry(name).pretrained
    put = f"or save the file as ${CHECKPOINT_DIR_ENV}/{name}.pth and restart the app"
    if p.hub:
        return (f"give the server internet access (unset HF_HUB_OFFLINE) so it downloads "
                f"{p.hub_repo_id}/{p.hub_filename}, or run `python -m uniformer download {name}` "
                f"(or list it in $UNIFORMER_PRELOAD), {put}.")
    return f"run `python -m uniformer download {name}` on the server (or list it in $UNIFORMER_PRELOAD), {put}."


def _error(e: CheckpointError, *paths) -> str:
    return redact_paths(f"{type(e).__name__}: {e}", *paths)


def load_model(name: str) -> LoadedModel:
    """Load ``name`` following the module's policy (no caching; see :func:`get_model`).

    Never raises for checkpoint problems: the untrained fallback sets ``fallback_reason``, other
    checkpoint errors set ``error``. Raises KeyError for an unknown model name.
    """
    try:
        try:
            model = uniformer.create_model(name, pretrained=True)  # $UNIFORMER_CHECKPOINT_DIR first
        except CheckpointNotAvailableError as e:
            reason = str(e)
        else:  # pretrained=True gives a 'local' file from $UNIFORMER_CHECKPOINT_DIR only
            return LoadedModel(name, model, origin="folder" if model.weights_info.source == "local" else None)
        # built outside the except block: its traceback would keep the failed attempt's model alive
        return LoadedModel(name, uniformer.create_model(name), fallback_reason=reason)
    except CheckpointError as e:
        folder = os.environ.get(CHECKPOINT_DIR_ENV, "").strip()
        return LoadedModel(name, None, error=_error(e, Path(folder).expanduser() / f"{name}.pth" if folder else None))


def load_checkpoint_file(upload: UploadedCheckpoint) -> LoadedModel:
    """Model ``upload.name`` with the weights of the uploaded file, read by the library's safe loader
    (``create_model(name, checkpoint_path=...)``). Never raises for checkpoint problems: an invalid,
    unsafe or mismatching file sets ``error`` (its message names the file, not its server path)."""
    try:
        model = uniformer.create_model(upload.name, checkpoint_path=upload.path)
    except CheckpointError as e:
        return LoadedModel(upload.name, None, error=_error(e, upload.path), origin="upload")
    return LoadedModel(upload.name, model, origin="upload")


def load_official(name: str) -> LoadedModel:
    """Fetch the official checkpoint of ``name`` now (the library's ``create_model(name,
    pretrained=True)``, with its progress bars) and make it the model every session shares.
    Raises :class:`uniformer.CheckpointError` (e.g. CheckpointNotAvailableError offline) unchanged."""
    loaded = LoadedModel(name, uniformer.create_model(name, pretrained=True))
    cache = model_cache()
    cache.put(("model", name), loaded)
    for key in cache.keys():  # stage-3 twins of the replaced model
        if key[0] == "twin" and key[1] == name:
            cache.discard(key)
    _GENERATION[name] = _GENERATION.get(name, 0) + 1  # results computed with the old weights are stale
    return loaded


# -- memory -----------------------------------------------------------------------------------

def _modules(objs: Iterable) -> Iterator[nn.Module]:
    for obj in objs:
        if isinstance(obj, nn.Module):
            yield obj
        elif isinstance(obj, LoadedModel) and obj.model is not None:
            yield obj.model
        elif isinstance(obj, tuple):
            yield from _modules(obj)


def module_footprint(objs: Iterable) -> dict[str, int]:
    """{device ('cpu', 'cuda:0', ...): bytes} of the parameters and buffers of the modules in
    ``objs`` (nn.Module, LoadedModel or tuples of them), each tensor storage counted once: modules sharing weights
    (stage-3 twins) cost what they add."""
    seen: set[tuple[str, int]] = set()
    total: dict[str, int] = {}
    for module in _modules(objs):
        for t in (*module.parameters(), *module.buffers()):
            storage = t.untyped_storage()
            device = str(t.device)
            ident = (device, storage.data_ptr())
            if device == "meta" or ident in seen:
                continue
            seen.add(ident)
            total[device] = total.get(device, 0) + storage.nbytes()
    return total


def _held(value) -> list[nn.Module]:
    return list(_modules((value,)))


def _release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc keeps them otherwise, and the process's resident
    memory would not shrink after an eviction)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _budget_mb(env: str, default: float | None) -> float | None:
    value = os.environ.get(env)
    if not value:
        return default
    try:
        mb = float(value)
    except ValueError:
        raise ValueError(f"${env} must be a number of megabytes, not {value!r}") from None
    if mb <= 0:
        raise ValueError(f"${env} must be positive, not {value!r}")
    return mb


def new_model_cache(cpu_mb: float | None = None, gpu_mb: float | None = None) -> LRUCache:
    """A model cache bounded to ``cpu_mb`` MB of CPU memory and ``gpu_mb`` MB on each GPU
    (None: from $UNIFORMER_MODEL_CACHE_MB / $UNIFORMER_GPU_CACHE_MB, defaults
    :data:`DEFAULT_MODEL_CACHE_MB` and 60% of the GPU's memory). Raises ValueError for a
    non-numeric or non-positive setting."""
    cpu_mb = cpu_mb if cpu_mb is not None else _budget_mb(MODEL_CACHE_ENV, DEFAULT_MODEL_CACHE_MB)
    budgets = {"cpu": int(cpu_mb * MB)}
    gpu_mb = gpu_mb if gpu_mb is not None else _budget_mb(GPU_CACHE_ENV, None)
    if gpu_mb is None and torch.cuda.is_available():
        gpu_mb = 0.6 * torch.cuda.get_device_properties(0).total_memory / MB
    if gpu_mb is not None:
        budgets["cuda"] = int(gpu_mb * MB)
    return LRUCache(max_bytes=budgets, footprint=module_footprint, held=_held, on_evict=_release_freed_memory)


@functools.lru_cache(maxsize=None)
def model_cache() -> LRUCache:
    """The process's model cache (created on first use from the environment; see :func:`new_model_cache`).
    Keys: ('model', name) shared models, ('file', name, sha256) uploaded checkpoints, ('twin', ...)
    stage-3 twins (:class:`app.dense_models.Stage3Twins`)."""
    return new_model_cache()


# -- sessions ---------------------------------------------------------------------------------

_SESSION: contextvars.ContextVar[Mapping[str, UploadedCheckpoint]] = contextvars.ContextVar("uniformer_session",
                                                                                              default={})


@contextlib.contextmanager
def use_session(uploads: Mapping[str, UploadedCheckpoint] | None) -> Iterator[None]:
    """Within the block, :func:`get_model` returns the uploaded checkpoint's model for each model
    name in ``uploads`` (one user's session; see :mod:`app.weights`)."""
    token = _SESSION.set(dict(uploads or {}))
    try:
        yield
    finally:
        _SESSION.reset(token)


def session_upload(name: str) -> UploadedCheckpoint | None:
    """The checkpoint the current session uploaded for ``name``, if any."""
    return _SESSION.get().get(name)


#: How many times the shared weights of each model were replaced (:func:`load_official`).
_GENERATION: dict[str, int] = {}


def weights_key(name: str) -> str:
    """A cache key part naming the weights ``name`` runs with now: ``name``, ``name@<sha256 prefix>``
    when the session runs an uploaded checkpoint, ``name#<n>`` after the shared weights were
    replaced n times by a download. Keeps results of different weights apart."""
    upload = session_upload(name)
    if upload is not None:
        return f"{name}@{upload.sha256[:16]}"
    generation = _GENERATION.get(name, 0)
    return f"{name}#{generation}" if generation else name


def get_model(name: str) -> LoadedModel:
    """The model ``name`` for the current session: its uploaded checkpoint (:func:`use_session`) or
    the shared :func:`load_model`, through :func:`model_cache`. Concurrent first requests for one
    model wait for a single load; other models are not blocked. Failed loads (``error``) are not
    cached, so fixing the file and retrying works without a restart."""
    upload = session_upload(name)
    if upload is not None:
        key, load = ("file", name, upload.sha256), functools.partial(load_checkpoint_file, upload)
    else:
        key, load = ("model", name), functools.partial(load_model, name)
    return model_cache().get_or_compute(key, load, store=lambda loaded: loaded.error is None, make_room=True)[0]


def get_fast_model(name: str, precision: str = "auto", device: torch.device | str = "cpu"):
    """(load outcome, module to run, :class:`uniformer.runtime.select.PathChoice`) for ``name`` in
    the current session at ``precision`` on ``device``: the fastest faithful path of the library's
    measured table (:func:`uniformer.runtime.select.select_path`, batch 1), never one measured
    slower than eager fp32. Run a 'bf16' choice at precision 'bf16'.

    A path other than eager is prepared once per model weights, path and device and kept in
    :func:`model_cache` (bf16 weights, fused copies: counted in its memory budget by their
    parameters). ONNX Runtime is chosen only when the model's export is already cached
    (:func:`uniformer.runtime.select.onnx_export_cached`): the app never exports while it serves
    (an export takes about a minute of both cores for UniFormer-S, and the exporter does not run
    under Gradio's patched tqdm). Loading failed: (loaded, None, None).
    Raises ValueError for an unknown precision."""
    from uniformer.runtime.select import onnx_export_cached, prepare_path, select_path

    loaded = get_model(name)
    if loaded.model is None:
        return loaded, None, None
    device = torch.device(device)
    choice = select_path(loaded.model, device, precision, batch=1)
    if choice.path == "onnxruntime" and not model_cache().get_or_compute(  # checked once per weights
            ("onnx-exported", weights_key(name)), lambda: onnx_export_cached(loaded.model))[0]:
        choice = select_path(loaded.model, device, precision, batch=1, exclude=("onnxruntime",))
    if choice.path == "eager":
        return loaded, loaded.model, choice
    key = ("fast", weights_key(name), choice.path, str(device))
    runner = model_cache().get_or_compute(key, lambda: prepare_path(loaded.model, choice).to(device),
                                          make_room=True)[0]
    return loaded, runner, choice


def clear_cache() -> None:
    """Forget every loaded model (tests; changed environment)."""
    model_cache().clear()


# -- what the UI says about weights ------------------------------------------------------------

def weights_kind(loaded: LoadedModel) -> str:
    """Which weights are live, in the UI's words: 'official file', 'local file', 'project-trained',
    'untrained', or 'none' (loading failed)."""
    info = loaded.weights
    if loaded.model is None or info is None:
        return "none"
    return {"local": "local file", "project": "project-trained", "untrained": "untrained"}.get(info.source,
                                                                                               "official file")


def weights_line(loaded: LoadedModel) -> str:
    """The Markdown weights line of a load outcome, e.g. '**Weights:** local file `my.pth` (uploaded,
    this session only)'. Files are named, server paths never shown."""
    kind, info = weights_kind(loaded), loaded.weights
    if kind == "none":
        return "**Weights:** none (loading failed)"
    if kind == "untrained":
        return "**Weights:** untrained random weights: predictions are meaningless"
    name = f"`{Path(info.path).name}`" if info.path else ""
    if kind == "local file":
        where = {"upload": "uploaded, this session only", "folder": f"${CHECKPOINT_DIR_ENV}"}.get(loaded.origin, "")
        return f"**Weights:** local file {name}" + (f" ({where})" if where else "")
    if kind == "project-trained":
        return f"**Weights:** project-trained {name}"
    return f"**Weights:** official file \u00b7 {info.describe(full_paths=False)}"


def image_model_choices() -> list[tuple[str, str]]:
    """(label shown, model name) for every registered image classifier, for a dropdown."""
    return [(f"{n} \u2014 {uniformer.get_entry(n).description}", n)
            for n in uniformer.list_models(task="image-classification")]
