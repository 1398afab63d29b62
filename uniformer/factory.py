"""``create_model``: build a registered model and give it weights (timm's factory, in eval mode).

The registry (:mod:`uniformer.registry`) holds the entries as data; this module is the one place
that puts an entry, a checkpoint source (local file, shipped file, the caches, the Hub, Google
Drive: :mod:`uniformer.downloads`) and a runtime (:mod:`uniformer.runtime`) together.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from torch import nn

from .downloads import CHECKPOINT_DIR_ENV, checkpoint_dir_file, fetch_weights
from .hub import (PROJECT, CheckpointMismatchError, WeightsInfo, load_weights, read_export_config, read_state_dict,
                  resolve_checkpoint_path)
from .registry import ModelEntry, get_entry
from .runtime import with_runtime

__all__ = ["create_model", "FEATURE_TASKS"]

logger = logging.getLogger(__name__)


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


def create_model(name: str, pretrained: bool = False, num_classes: int | None = None,
                 checkpoint_path: str | os.PathLike | None = None, features_only: bool = False,
                 out_indices: int | tuple[int, ...] | None = None, runtime: str = "torch",
                 **config_overrides) -> nn.Module:
    """Build a registered model, optionally with weights (timm's ``create_model``, but in eval mode).

    pretrained=True: ``$UNIFORMER_CHECKPOINT_DIR/<name>.pth`` when there is one (read like
    ``checkpoint_path``; ``weights_info.note`` says so); for entries with a ``package_file``
    (checkpoints this project trained and ships), that file, offline; else the official checkpoint
    by name (:func:`uniformer.downloads.fetch_weights`: the caches, then the Hugging Face Hub or its
    mirrors, then Google Drive).
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

    runtime: 'torch' (eager) or 'onnxruntime' (same call signature and outputs, run by ONNX Runtime
    from a cached export; see :mod:`uniformer.runtime`).

    Raises KeyError (unknown name), ValueError (features_only / out_indices that do not apply),
    CheckpointNotAvailableError (file cannot be had), InvalidCheckpointError /
    UnsafeCheckpointError (bad file), CheckpointMismatchError (wrong model).
    """
    if runtime != "torch":
        model = create_model(name, pretrained, num_classes, checkpoint_path, features_only=features_only,
                             out_indices=out_indices, **config_overrides)
        return with_runtime(model, runtime)
    entry = get_entry(name)
    cfg = entry.config
    pcfg = entry.pretrained
    local_path = export = folder_file = None
    if checkpoint_path is not None:
        local_path = resolve_checkpoint_path(checkpoint_path)
    elif pretrained:  # the manual route ($UNIFORMER_CHECKPOINT_DIR) first, for every name; then a shipped file
        folder_file = checkpoint_dir_file(name)
        if folder_file is not None:
            local_path = resolve_checkpoint_path(folder_file)
        elif pcfg.package_file:
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
            path = os.fspath(checkpoint_path) if checkpoint_path is not None else str(folder_file or local_path)
            state_dict = read_state_dict(local_path)
            source = "project" if export is not None and export.get("trained_by") == PROJECT else "local"
            weights = WeightsInfo(source, path=path, note=f"from ${CHECKPOINT_DIR_ENV}" if folder_file else None)
        else:  # $UNIFORMER_CHECKPOINT_DIR, the caches, then the Hub / Google Drive
            path, weights = fetch_weights(name)
            state_dict = read_state_dict(path)
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
