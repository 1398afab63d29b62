"""Model registry in timm's style: every official checkpoint is a named entry (checkpoints as data).

An entry fixes everything a checkpoint implies but does not store (head_dim, preprocessing, label
set), so nothing is ever guessed: ``create_model('uniformer_small_in1k', pretrained=True)``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from .hub import (PROJECT, CheckpointMismatchError, CheckpointNotAvailableError, WeightsInfo, hub_download,
                  load_weights, read_export_config, read_state_dict, resolve_checkpoint_path)

__all__ = ["PretrainedCfg", "ModelEntry", "register_model", "list_models", "get_entry", "create_model"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainedCfg:
    """What a checkpoint was trained and evaluated with (OFFICIAL_NOTES §4-§6).

    hub: ``'repo_id:filename'`` on the Hugging Face Hub, or None when the official file is only on
    Google Drive / Baidu (``download_hint`` says where); mirrors: byte-identical re-hosts of the
    ``hub`` file (``'repo_id:filename'``), tried in order when it cannot be had. input_size:
    (C, H, W) or (C, T, H, W) of the evaluation; crop_pct: centre-crop fraction (resize the short
    side to floor(size / crop_pct)); interpolation: resize filter; mean/std: normalization of
    [0, 1] RGB; label_set: name of the class list ('none' for backbones); top1: the paper's
    ImageNet top-1 (%) where it reports one; reference_variant: the spec/golden name(s) in
    ``shared/reference`` this entry reproduces. labels: the class names themselves, for label sets
    that are not shipped by name (checkpoints trained with ``uniformer.train``); package_file: a
    checkpoint shipped inside the package (path relative to the ``uniformer`` package folder, e.g.
    ``'weights/uniformer_xxs_digits'``), loaded by ``pretrained=True`` without any network.
    """

    hub: str | None = None
    download_hint: str | None = None
    input_size: tuple[int, ...] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    label_set: str = "imagenet-1k"
    num_classes: int = 1000
    top1: float | None = None
    reference_variant: str | tuple[str, ...] | None = None
    mirrors: tuple[str, ...] = ()
    labels: tuple[str, ...] | None = None
    package_file: str | None = None

    def class_names(self) -> tuple[str, ...]:
        """The class names in head order: ``labels`` when given, else ``get_labels(label_set)``."""
        if self.labels is not None:
            return tuple(self.labels)
        from .data.labels import get_labels

        return get_labels(self.label_set)

    @property
    def hub_repo_id(self) -> str | None:
        return self.hub.split(":", 1)[0] if self.hub else None

    @property
    def hub_filename(self) -> str | None:
        return self.hub.split(":", 1)[1] if self.hub else None


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder and config, the checkpoint it stands for, its task."""

    name: str
    build: Callable[..., nn.Module]
    config: object
    pretrained: PretrainedCfg
    filter_fn: Callable[[dict], dict] | None = None
    task: str = "image-classification"
    description: str = ""
    head_prefixes: tuple[str, ...] = field(default=("head.", "aux_head.", "head_cls."))


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` to the registry. Raises ValueError if the name is taken."""
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (registers the entries on import)


def list_models(pattern: str = "*", task: str | None = None, pretrained_on_hub: bool = False) -> list[str]:
    """Sorted registered names matching the glob ``pattern`` (and ``task``, if given);
    ``pretrained_on_hub=True`` keeps only those whose official checkpoint is on the Hub."""
    _ensure_loaded()
    return sorted(n for n, e in _REGISTRY.items() if fnmatch.fnmatch(n, pattern)
                  and (task is None or e.task == task) and (not pretrained_on_hub or e.pretrained.hub))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``. Raises KeyError listing close names when unknown."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        raise KeyError(f"unknown model {name!r}; did you mean {close or list_models()[:8]}? "
                       f"(uniformer.list_models() lists all)") from None


def _download_with_mirrors(p: PretrainedCfg) -> tuple[str, str, str]:
    """(local path, repo_id, filename) of ``p.hub``, else of the first of ``p.mirrors`` that can be
    had. Raises the primary file's CheckpointNotAvailableError (naming the mirrors tried) when none can."""
    try:
        return str(hub_download(p.hub_repo_id, p.hub_filename)), p.hub_repo_id, p.hub_filename
    except CheckpointNotAvailableError as primary:
        for mirror in p.mirrors:
            repo_id, filename = mirror.split(":", 1)
            try:
                return str(hub_download(repo_id, filename)), repo_id, filename
            except CheckpointNotAvailableError:
                continue
        if not p.mirrors:
            raise
        tried = ", ".join(m.replace(":", "/") for m in p.mirrors)
        raise CheckpointNotAvailableError(f"{primary} (mirrors tried as well: {tried})") from primary


def _as_tuples(value):
    """JSON lists -> tuples, recursively (config fields are tuples, possibly nested)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


def _apply_export(entry: ModelEntry, export: dict, source: str):
    """(config, PretrainedCfg) of a project export (``read_export_config``) of ``entry``'s model.
    Raises CheckpointMismatchError when the export is of another model or has unknown config fields."""
    if export["model_name"] != entry.name:
        raise CheckpointMismatchError(
            f"{source} was exported from model {export['model_name']!r}, not {entry.name!r}; load it with "
            f"create_model({export['model_name']!r}, checkpoint_path=...)")
    fields = {k: _as_tuples(v) for k, v in export["config"].items()}
    try:
        cfg = entry.config.replace(**fields)
    except TypeError as e:
        raise CheckpointMismatchError(f"{source}: config fields do not fit {type(entry.config).__name__} ({e})") from e
    pre = export.get("pretrained_cfg") or {}
    known = {f.name for f in dataclasses.fields(entry.pretrained)}
    kept = {k: _as_tuples(v) for k, v in pre.items() if k in known and k not in ("hub", "mirrors", "package_file")}
    labels = export.get("labels")
    pcfg = dataclasses.replace(
        entry.pretrained, **{**kept, "hub": None, "mirrors": (), "download_hint": None, "top1": None,
                             "reference_variant": None, "label_set": export.get("label_set") or "custom",
                             "num_classes": getattr(cfg, "num_classes", entry.pretrained.num_classes),
                             "labels": tuple(labels) if labels is not None else None})
    return cfg, pcfg


def create_model(name: str, pretrained: bool = False, num_classes: int | None = None,
                 checkpoint_path: str | os.PathLike | None = None, runtime: str = "torch",
                 **config_overrides) -> nn.Module:
    """Build a registered model, optionally with weights.

    pretrained=True: the official checkpoint from the Hugging Face Hub (cache honoured, so it works
    offline once cached), or else from one of its registered mirrors; for entries with a
    ``package_file`` (checkpoints this project trained and ships), that file, offline.
    checkpoint_path: a local file instead (official or our format, ``.pth`` or ``.safetensors``), or
    an export folder of ``uniformer.train`` (its ``config.json`` then sets the config fields, labels and
    preprocessing, and ``weights_info.source`` is 'project' when the export says this project
    trained it). With ``num_classes`` different from the checkpoint's, the
    classifier heads are re-initialized and every other weight is loaded strictly (fine-tuning).
    ``config_overrides`` change config fields (e.g. ``drop_path_rate=0.1``).

    The returned model is in eval mode, maps normalized inputs (B, 3, H, W) (or (B, 3, T, H, W)
    for video) to logits (B, num_classes), and carries ``model.pretrained_cfg`` (preprocessing,
    labels), ``model.model_name`` and ``model.weights_info`` (where its weights came from).

    runtime: 'torch' (eager) or 'onnxruntime' (same call signature and outputs, run by ONNX Runtime
    from a cached export; see :mod:`uniformer.runtime`).

    Raises KeyError (unknown name), CheckpointNotAvailableError (file cannot be had),
    InvalidCheckpointError / UnsafeCheckpointError (bad file), CheckpointMismatchError (wrong model).
    """
    if runtime != "torch":
        from .runtime import with_runtime

        return with_runtime(create_model(name, pretrained, num_classes, checkpoint_path, **config_overrides), runtime)
    entry = get_entry(name)
    cfg = entry.config
    pcfg = entry.pretrained
    local_path = export = None
    if checkpoint_path is not None:
        local_path = resolve_checkpoint_path(checkpoint_path)
    elif pretrained and pcfg.package_file:
        local_path = resolve_checkpoint_path(Path(__file__).resolve().parent / pcfg.package_file)
    if local_path is not None:
        export = read_export_config(local_path)
        if export is not None:
            cfg, pcfg = _apply_export(entry, export, str(local_path))
    if num_classes is not None:
        config_overrides["num_classes"] = num_classes
    if config_overrides:
        cfg = cfg.replace(**config_overrides)
    model = entry.build(cfg)
    weights = WeightsInfo("untrained")
    if checkpoint_path is not None or pretrained:
        if local_path is not None:
            path = os.fspath(checkpoint_path) if checkpoint_path is not None else str(local_path)
            state_dict = read_state_dict(local_path)
            source = "project" if export is not None and export.get("trained_by") == PROJECT else "local"
            weights = WeightsInfo(source, path=path)
        else:
            from .downloads import fetch_weights  # $UNIFORMER_CHECKPOINT_DIR, caches, then Hub / Google Drive

            path, weights = fetch_weights(name)
            state_dict = read_state_dict(path)
        new_head = getattr(cfg, "num_classes", None) not in (None, pcfg.num_classes)
        load_weights(model, state_dict, entry.filter_fn, drop_prefixes=entry.head_prefixes if new_head else (),
                     source=weights.path or name)
        if new_head:
            weights = WeightsInfo(weights.source, weights.repo_id, weights.filename, weights.path,
                                  note=f"classifier re-initialized for {cfg.num_classes} classes")
    model.pretrained_cfg = pcfg
    model.model_name = name
    model.weights_info = weights
    return model.eval()
