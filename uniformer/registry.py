"""Model registry in timm's style: every official checkpoint is a named entry (checkpoints as data).

The registry knows nothing of the models: each module of :mod:`uniformer.models` registers its
entries (``register_model``) when imported, and ``import uniformer`` imports them all.
An entry fixes everything a checkpoint implies but does not store (head_dim, preprocessing, label
set), so nothing is ever guessed: ``create_model('uniformer_small_in1k', pretrained=True)``.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from .hub import (PROJECT, CheckpointMismatchError, CheckpointNotAvailableError, WeightsInfo, hub_download,
                  load_weights, read_export_config, read_state_dict, resolve_checkpoint_path)

__all__ = ["PretrainedCfg", "ModelEntry", "register_model", "list_models", "get_entry", "create_model", "FEATURE_TASKS"]

logger = logging.getLogger(__name__)

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
    feature_drop_prefixes: tuple[str, ...] = field(default=("norm.", "head.", "aux_head.", "norm_cls.", "head_cls."))


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` to the registry. Raises ValueError if the name is taken."""
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def list_models(pattern: str = "*", task: str | None = None, pretrained_on_hub: bool = False) -> list[str]:
    """Sorted registered names matching the glob ``pattern`` (and ``task``, if given);
    ``pretrained_on_hub=True`` keeps only those whose official checkpoint is on the Hub."""
    return sorted(n for n, e in _REGISTRY.items() if fnmatch.fnmatch(n, pattern)
                  and (task is None or e.task == task) and (not pretrained_on_hub or e.pretrained.hub))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``. Raises KeyError listing close names when unknown."""
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


#: Registry tasks whose models can be feature extractors (``features_only=True``).
FEATURE_TASKS = ("image-classification", "video-classification", "backbone")


def _absolute_indices(indices, num_stages: int) -> tuple[int, ...]:
    """timm's ``out_indices`` -> absolute stage indices: an int n means the last n stages; negative
    indices count from the end. Raises ValueError when out of range."""
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ValueError(f"out_indices={indices} (last n stages) must be in 1..{num_stages}")
        return tuple(range(num_stages - indices, num_stages))
    out = tuple(i + num_stages if i < 0 else i for i in indices)
    if not out or not all(0 <= i < num_stages for i in out):
        raise ValueError(f"out_indices must be stage indices in 0..{num_stages - 1} (or negative), got {indices}")
    return out


def _feature_overrides(entry: ModelEntry, cfg, features_only: bool, out_indices) -> dict:
    """Config changes for ``features_only`` / ``out_indices`` (see :func:`create_model`)."""
    if not features_only and out_indices is None:
        return {}
    is_features = getattr(cfg, "out_indices", None) is not None
    if entry.task not in FEATURE_TASKS:
        raise ValueError(f"{entry.name} is a {entry.task} model; features_only / out_indices apply to "
                         f"{', '.join(FEATURE_TASKS)} models")
    if not features_only and not is_features:
        raise ValueError(f"out_indices needs features_only=True for {entry.name} (a classifier)")
    num_stages = len(cfg.depths)
    changes = {"out_indices": _absolute_indices(out_indices if out_indices is not None else
                                                (cfg.out_indices or num_stages), num_stages)}
    if not is_features:
        changes["stage_norms"] = False  # a classifier checkpoint has no stage norms: raw maps, as timm
    return changes


def _pretrained_state_dict(name: str, entry: ModelEntry) -> tuple[dict, WeightsInfo]:
    """The state dict of ``entry``'s registered checkpoint (Hub, else its mirrors) and where it came
    from. Raises CheckpointNotAvailableError when it cannot be had."""
    p = entry.pretrained
    if not p.hub:
        raise CheckpointNotAvailableError(
            f"{name} has no checkpoint on the Hugging Face Hub. {p.download_hint or ''} "
            f"Download it and pass checkpoint_path=PATH (CLI: --checkpoint PATH).".replace("  ", " "))
    path, repo_id, filename = _download_with_mirrors(p)
    note = None if repo_id == p.hub_repo_id else f"byte-identical mirror of {p.hub_repo_id}/{p.hub_filename}"
    return read_state_dict(path), WeightsInfo("hub", repo_id=repo_id, filename=filename, path=str(path), note=note)


def create_model(name: str, pretrained: bool = False, num_classes: int | None = None,
                 checkpoint_path: str | os.PathLike | None = None, features_only: bool = False,
                 out_indices: int | tuple[int, ...] | None = None, **config_overrides) -> nn.Module:
    """Build a registered model, optionally with weights (timm's ``create_model``, but in eval mode).

    pretrained=True: the official checkpoint from the Hugging Face Hub (cache honoured, so it works
    offline once cached), or else from one of its registered mirrors; for entries with a
    ``package_file`` (checkpoints this project trained and ships), that file, offline.
    checkpoint_path: a local file instead (official or our format, ``.pth`` or ``.safetensors``), or
    an export folder of ``uniformer.train`` (its ``config.json`` then sets the config fields, labels and
    preprocessing, and ``weights_info.source`` is 'project' when the export says this project
    trained it). With ``num_classes`` different from the checkpoint's, the
    classifier heads are re-initialized and every other weight is loaded strictly (fine-tuning).
    ``config_overrides`` change config fields (e.g. ``drop_path_rate=0.1``).

    features_only=True (image, video and backbone entries): a feature extractor, as timm's: no
    final norm or heads; forward returns the stage maps chosen by ``out_indices`` (default all
    four; an int n: the last n; negative indices count from the end), (B, C_i, H/s_i, W/s_i) or
    (B, C_i, T', H/s_i, W/s_i); ``model.feature_info`` (timm ``FeatureInfo``) gives their channels,
    reductions and module names. A classifier checkpoint loads strictly into it: its classifier
    entries (``norm.``, ``head.``, ``aux_head.``, ``norm_cls.``, ``head_cls.``) are dropped by rule and
    counted in ``weights_info.note``. Backbone entries are feature extractors already (with the
    official stage LayerNorms); ``out_indices`` chooses their maps.

    The returned model is in eval mode (timm returns train mode; call ``model.train()`` to train),
    maps normalized inputs (B, 3, H, W) (or (B, 3, T, H, W) for video) to logits (B, num_classes),
    and carries ``model.pretrained_cfg`` (preprocessing, labels), ``model.model_name`` and
    ``model.weights_info`` (where its weights came from).

    Raises KeyError (unknown name), ValueError (features_only / out_indices that do not apply),
    CheckpointNotAvailableError (file cannot be had), InvalidCheckpointError /
    UnsafeCheckpointError (bad file), CheckpointMismatchError (wrong model).
    """
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
    features = _feature_overrides(entry, cfg, features_only, out_indices)
    config_overrides.update(features)
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
            state_dict, weights = _pretrained_state_dict(name, entry)
        notes = [weights.note] if weights.note else []
        drop = ()
        if "stage_norms" in features:  # a classifier checkpoint into a feature extractor
            drop = entry.feature_drop_prefixes
            sd_keys = entry.filter_fn(dict(state_dict)) if entry.filter_fn else state_dict
            dropped = sorted({k.split(".")[0] + ".*" for k in sd_keys if k.startswith(drop)})
            n = sum(k.startswith(drop) for k in sd_keys)
            if n:
                notes.append(f"features_only: {n} classifier entries not loaded ({', '.join(dropped)})")
                logger.info("%s: %s", name, notes[-1])
        elif getattr(cfg, "num_classes", None) not in (None, pcfg.num_classes):
            drop = entry.head_prefixes
            notes.append(f"classifier re-initialized for {cfg.num_classes} classes")
        load_weights(model, state_dict, entry.filter_fn, drop_prefixes=drop, source=weights.path or name)
        weights = dataclasses.replace(weights, note="; ".join(notes) or None)
    model.pretrained_cfg = pcfg
    model.model_name = name
    model.weights_info = weights
    return model.eval()
