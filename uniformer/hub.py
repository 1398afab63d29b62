"""Checkpoint loading: safe reading, unwrapping, key mapping, strict load (downloads: :mod:`uniformer.downloads`).

One code path serves the Hub, local files and the tests:
``resolve_checkpoint`` (Hub or local path) -> ``read_state_dict`` (``torch.load(weights_only=True)``,
unwrap the official container formats; or ``safetensors`` for this project's exports) -> ``load_weights``
(map official names to ours, check every key and shape, ``load_state_dict(strict=True)``). Nothing
falls back silently: each failure raises one of the errors below, whose message says what to do.

This project's exports (``uniformer.train.checkpoint.export_model``) are a folder holding
``model.safetensors`` and ``config.json`` (the model name, config fields, labels and preprocessing);
:func:`read_export_config` reads that JSON (embedded in the safetensors metadata as well, so the
file alone is enough).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

__all__ = [
    "CACHE_ENV",
    "cache_dir",
    "CheckpointError",
    "CheckpointNotAvailableError",
    "InvalidCheckpointError",
    "UnsafeCheckpointError",
    "CheckpointMismatchError",
    "WeightsInfo",
    "read_state_dict",
    "unwrap_state_dict",
    "load_weights",
    "EXPORT_FORMAT",
    "EXPORT_WEIGHTS_NAME",
    "EXPORT_CONFIG_NAME",
    "EXPORT_METADATA_KEY",
    "PROJECT",
    "resolve_checkpoint_path",
    "is_safetensors_file",
    "read_export_config",
    "project_weights_text",
]

#: ``format`` value of this project's export config (``config.json``).
EXPORT_FORMAT = "uniformer-export"
#: File names inside an export folder.
EXPORT_WEIGHTS_NAME = "model.safetensors"
EXPORT_CONFIG_NAME = "config.json"
#: Key of the export config (JSON text) in the safetensors header metadata.
EXPORT_METADATA_KEY = "uniformer_export"
#: ``trained_by`` value of checkpoints trained by this project's fine-tuning code (WeightsInfo 'project').
PROJECT = "uniformer"


#: Environment variable naming uniformer's cache folder (Drive downloads, ONNX exports).
CACHE_ENV = "UNIFORMER_CACHE"


def cache_dir() -> Path:
    """uniformer's cache folder (Google Drive downloads under ``drive/``, ONNX exports under ``onnx/``):
    ``$UNIFORMER_CACHE``, else ``$XDG_CACHE_HOME/uniformer``, else ``~/.cache/uniformer``. Not created here."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(base).expanduser() / "uniformer"


class CheckpointError(Exception):
    """Base class of every checkpoint-loading error of this package."""


class CheckpointNotAvailableError(CheckpointError, FileNotFoundError):
    """The checkpoint file cannot be had: not in the local Hub cache while offline, no network,
    no such Hub repo/file, or a local path that does not exist."""


class InvalidCheckpointError(CheckpointError, ValueError):
    """The file is not a PyTorch checkpoint (empty, truncated, another file type) or holds no
    state dict of tensors."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file needs unsafe unpickling (it stores Python objects beyond tensors and containers)."""


class CheckpointMismatchError(CheckpointError, RuntimeError):
    """The state dict does not fit the model: missing or unexpected keys, or different shapes."""


# Container keys of the official training checkpoints, most specific first (docs/official.md §4):
# DeiT/light trainer {'model', 'model_ema', ...}, TokenLabeling/timm {'state_dict', ...},
# slowfast {'model_state', ...}, mmseg/mmdet/mmpose {'meta', 'state_dict'}.
_CONTAINER_KEYS = ("model", "state_dict", "model_state", "model_ema", "state_dict_ema")
_DDP_PREFIX = "module."


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from: what the UI and CLI show to users.

    source: 'hub' (official Hub file), 'drive' (official Google Drive file, ``filename`` holds its
    file id), 'local' (a file given by path), 'project' (a checkpoint this project's fine-tuning code
    trained) or 'untrained' (random initialization).
    """

    source: str
    repo_id: str | None = None
    filename: str | None = None
    path: str | None = None
    note: str | None = None

    @property
    def trained(self) -> bool:
        return self.source != "untrained"

    def describe(self, full_paths: bool = True) -> str:
        """One line for people, e.g. 'official Hub checkpoint Sense-X/uniformer_image/uniformer_small_in1k.pth'.

        full_paths: name a local file by its full path (True: the CLI, notebooks) or by its file name
        only (False: user interfaces served to others, which must not reveal server paths)."""
        path = self.path if full_paths or not self.path else Path(self.path).name
        if self.source == "hub":
            text = f"official Hub checkpoint {self.repo_id}/{self.filename}"
        elif self.source == "drive":
            text = f"official Google Drive checkpoint https://drive.google.com/file/d/{self.filename}/view"
        elif self.source == "local":
            text = f"local checkpoint file {path}"
        elif self.source == "project":
            text = f"checkpoint trained by this project ({path})"
        else:
            text = "untrained random weights: predictions are meaningless"
        return f"{text} ({self.note})" if self.note else text


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` state dict inside ``obj``.

    Accepts a raw state dict (the Hub files) or the official training containers
    (``model`` / ``state_dict`` / ``model_state``, then EMA weights), and strips a DDP ``module.``
    prefix. Raises InvalidCheckpointError when no state dict of tensors is found.
    """
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise InvalidCheckpointError(f"{source} holds {type(obj).__name__}, not a state dict of tensors")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise InvalidCheckpointError(
            f"{source} is not a flat state dict: entries {bad[:5]} are not tensors (known containers: "
            f"{', '.join(_CONTAINER_KEYS)})")
    state_dict = {str(k): v for k, v in obj.items()}
    if all(k.startswith(_DDP_PREFIX) for k in state_dict):
        state_dict = {k[len(_DDP_PREFIX):]: v for k, v in state_dict.items()}
    return state_dict


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint file ``path`` names: the file itself, or ``model.safetensors`` inside an export
    folder. Raises CheckpointNotAvailableError when there is no such file (or the folder holds none)."""
    path = Path(path)
    if path.is_dir():
        if not (path / EXPORT_WEIGHTS_NAME).is_file():
            raise CheckpointNotAvailableError(
                f"{path} is a folder without {EXPORT_WEIGHTS_NAME}; pass a checkpoint file or an export folder")
        return path / EXPORT_WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointNotAvailableError(f"checkpoint file {path} does not exist")
    return path


def is_safetensors_file(path: str | os.PathLike) -> bool:
    """True when ``path`` starts like a safetensors file: an 8-byte little-endian header length
    (smaller than the file) followed by a JSON object. PyTorch files start with ``PK`` (zip) or
    ``0x80`` (legacy pickle), so the two formats cannot be confused."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 0 < int.from_bytes(head[:8], "little") <= os.path.getsize(path) - 8


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise InvalidCheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt: "
                                     f"{type(e).__name__}: {brief(str(e))}); export or download it again") from e


def read_export_config(path: str | os.PathLike) -> dict | None:
    """The export config of a checkpoint written by this project's ``export_model``, else None.

    ``path``: an export folder or a file. For a safetensors file the config embedded in its header
    metadata (key ``uniformer_export``) is used, else a ``config.json`` next to the file whose
    ``format`` is ``'uniformer-export'``. Plain checkpoints (official ``.pth``, foreign safetensors)
    give None. Returns the parsed JSON dict (keys: format, format_version, model_name, config,
    num_classes, labels, pretrained_cfg, trained_by, ...; see ``uniformer.train.checkpoint``).
    Raises CheckpointNotAvailableError (no such file), InvalidCheckpointError (unreadable JSON, or an
    export config without model_name/config).
    """
    path = resolve_checkpoint_path(path)
    text = None
    if is_safetensors_file(path):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                text = (f.metadata() or {}).get(EXPORT_METADATA_KEY)
        except (SafetensorError, OSError, ValueError) as e:
            raise InvalidCheckpointError(f"{path} is not a readable safetensors file ({type(e).__name__}: "
                                         f"{brief(str(e))})") from e
    sibling = path.parent / EXPORT_CONFIG_NAME
    if text is None and sibling.is_file():
        text = sibling.read_text(encoding="utf-8")
    if text is None:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidCheckpointError(f"the export config of {path} is not valid JSON ({e})") from e
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        return None
    if not isinstance(config.get("model_name"), str) or not isinstance(config.get("config"), dict):
        raise InvalidCheckpointError(f"the export config of {path} lacks 'model_name' or 'config'")
    return config


def _dataset_name(text: str | None) -> str | None:
    """'scikit-learn digits, stratified 80/20 split ...' -> 'scikit-learn digits'; 'moving digits
    (train clips ...)' -> 'moving digits': the dataset's name before the split details."""
    if not text:
        return None
    for sep in (", ", " ("):
        text = text.split(sep, 1)[0]
    return text.strip() or None


def project_weights_text(model: nn.Module) -> str | None:
    """One line naming a project-trained checkpoint and what its model card reports, e.g.
    'project-trained checkpoint uniformer_xxs_digits (trained by this project on scikit-learn
    digits, 99.44% held-out)', read from the export config next to the weights; None for weights
    that are not the project's (Hub, local official files, untrained). An unreadable card gives the
    line without its facts (the weights did load)."""
    info = getattr(model, "weights_info", None)
    if info is None or info.source != "project" or not info.path:
        return None
    name = getattr(model, "model_name", type(model).__name__)
    try:
        export = read_export_config(info.path) or {}
    except Exception:  # noqa: BLE001 -- an unreadable card must not hide that the weights loaded
        export = {}
    metrics, training = export.get("metrics") or {}, export.get("training") or {}
    facts = []
    dataset = _dataset_name(training.get("dataset") or metrics.get("val_split"))
    if dataset:
        facts.append(f"trained by this project on {dataset}")
    else:
        facts.append("trained by this project")
    if metrics.get("val_top1") is not None:
        facts.append(f"{metrics['val_top1']:.2f}% held-out")
    return f"project-trained checkpoint {name} ({', '.join(facts)})"


def brief(message: str, limit: int = 120) -> str:
    """The first sentence of ``message`` (an underlying library's error text), at most ``limit``
    characters, cut between words with an ellipsis, never inside a word: what an error message of
    ours quotes of its cause."""
    first = message.strip().splitlines()[0].strip() if message.strip() else ""
    end = first.find(". ")
    first = first[:end + 1] if end >= 0 else first
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + "\u2026"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file safely (``torch.load(weights_only=True)``, map to CPU) and unwrap it.

    Safetensors files (this project's exports; ``path`` may also be an export folder) are read
    with ``safetensors``; everything else with ``torch.load``. ``argparse.Namespace`` (the ``args``
    entry of the official training checkpoints) is the only
    non-tensor class allowed. Raises CheckpointNotAvailableError (no such file),
    InvalidCheckpointError (empty, truncated or not a checkpoint), UnsafeCheckpointError (would
    need unsafe unpickling).
    """
    path = resolve_checkpoint_path(path)
    if path.stat().st_size == 0:
        raise InvalidCheckpointError(f"checkpoint file {path} is empty (0 bytes); download it again")
    if is_safetensors_file(path):
        return unwrap_state_dict(_read_safetensors(path), str(path))
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e) or "not an allowed global" in str(e):
            raise UnsafeCheckpointError(
                f"{path} stores Python objects that safe loading refuses ({str(e).splitlines()[-1].strip()[:200]}). "
                f"If you trust its source, extract its weights once with "
                f"`python -m uniformer convert {path} OUT.pth --trust-source` and load OUT.pth.") from e
        raise InvalidCheckpointError(f"{path} is not a PyTorch checkpoint ({type(e).__name__})") from e
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, AttributeError, IndexError) as e:
        raise InvalidCheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated, corrupt or another file type; "
            f"torch.load: {type(e).__name__}: {brief(str(e))}); download it again") from e
    return unwrap_state_dict(obj, str(path))


def _mismatch_report(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], n: int = 5) -> str:
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in expected if k in given and given[k].shape != expected[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:n])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:n])})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (first: {'; '.join(shapes[:n])})")
    return "; ".join(parts)


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                 filter_fn: Callable[[dict], dict] | None = None, drop_prefixes: tuple[str, ...] = (),
                 source: str = "checkpoint") -> None:
    """Load ``state_dict`` into ``model`` strictly, after ``filter_fn`` (official -> our names).

    ``drop_prefixes``: keys that are deliberately not loaded (e.g. ``('head.', 'aux_head.')`` for
    a new class count); the model keeps its own initialization for them. Every other key must
    match in name and shape. Raises CheckpointMismatchError naming the first offending keys.
    """
    sd = filter_fn(dict(state_dict)) if filter_fn else dict(state_dict)
    expected = model.state_dict()
    if drop_prefixes:
        sd = {k: v for k, v in sd.items() if not k.startswith(drop_prefixes)}
        sd.update({k: v for k, v in expected.items() if k.startswith(drop_prefixes)})
    report = _mismatch_report(expected, sd)
    if report:
        raise CheckpointMismatchError(
            f"{source} does not fit {type(model).__name__}: {report}. Is it a checkpoint of this model "
            f"variant (see uniformer.list_models())?")
    model.load_state_dict(sd, strict=True)
