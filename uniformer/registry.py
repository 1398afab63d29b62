"""Model registry in timm's style: every official checkpoint is a named entry (checkpoints as data).

An entry fixes everything a checkpoint implies but does not store (head_dim, preprocessing, label
set), so nothing is ever guessed: ``create_model('uniformer_small_in1k', pretrained=True)``.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from .hub import (CheckpointNotAvailableError, WeightsInfo, hub_download, load_weights, read_state_dict)

__all__ = ["PretrainedCfg", "ModelEntry", "register_model", "list_models", "get_entry", "create_model"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainedCfg:
    """What a checkpoint was trained and evaluated with (OFFICIAL_NOTES §4-§6).

    hub: ``'repo_id:filename'`` on the Hugging Face Hub, or None when the official file is only on
    Google Drive / Baidu (``download_hint`` says where). input_size: (C, H, W) or (C, T, H, W) of the
    evaluation; crop_pct: centre-crop fraction (resize the short side to floor(size / crop_pct));
    interpolation: resize filter; mean/std: normalization of [0, 1] RGB; label_set: name of the
    class list ('none' for backbones); top1: the paper's ImageNet top-1 (%) where it reports one;
    reference_variant: the spec/golden name(s) in ``shared/reference`` this entry reproduces.
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
    head_prefixes: tuple[str, ...] = field(default=("head.", "aux_head."))


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


def create_model(name: str, pretrained: bool = False, num_classes: int | None = None,
                 checkpoint_path: str | os.PathLike | None = None, **config_overrides) -> nn.Module:
    """Build a registered model, optionally with weights.

    pretrained=True: the official checkpoint from the Hugging Face Hub (cache honoured, so it works
    offline once cached). checkpoint_path: a local file instead (official or our format). With
    ``num_classes`` different from the checkpoint's, the classifier heads are re-initialized and
    every other weight is loaded strictly (fine-tuning). ``config_overrides`` change config fields
    (e.g. ``drop_path_rate=0.1``).

    The returned model is in eval mode, maps normalized inputs (B, 3, H, W) (or (B, 3, T, H, W)
    for video) to logits (B, num_classes), and carries ``model.pretrained_cfg`` (preprocessing,
    labels), ``model.model_name`` and ``model.weights_info`` (where its weights came from).

    Raises KeyError (unknown name), CheckpointNotAvailableError (file cannot be had),
    InvalidCheckpointError / UnsafeCheckpointError (bad file), CheckpointMismatchError (wrong model).
    """
    entry = get_entry(name)
    cfg = entry.config
    if num_classes is not None:
        config_overrides["num_classes"] = num_classes
    if config_overrides:
        cfg = cfg.replace(**config_overrides)
    model = entry.build(cfg)
    weights = WeightsInfo("untrained")
    if checkpoint_path is not None or pretrained:
        if checkpoint_path is not None:
            path = os.fspath(checkpoint_path)
            state_dict = read_state_dict(path)
            weights = WeightsInfo("local", path=path)
        else:
            p = entry.pretrained
            if not p.hub:
                raise CheckpointNotAvailableError(
                    f"{name} has no checkpoint on the Hugging Face Hub. {p.download_hint or ''} "
                    f"Download it and pass checkpoint_path=PATH (CLI: --checkpoint PATH).".replace("  ", " "))
            path = hub_download(p.hub_repo_id, p.hub_filename)
            state_dict = read_state_dict(path)
            weights = WeightsInfo("hub", repo_id=p.hub_repo_id, filename=p.hub_filename, path=str(path))
        new_head = getattr(cfg, "num_classes", None) not in (None, entry.pretrained.num_classes)
        load_weights(model, state_dict, entry.filter_fn, drop_prefixes=entry.head_prefixes if new_head else (),
                     source=weights.path or name)
        if new_head:
            weights = WeightsInfo(weights.source, weights.repo_id, weights.filename, weights.path,
                                  note=f"classifier re-initialized for {cfg.num_classes} classes")
    model.pretrained_cfg = entry.pretrained
    model.model_name = name
    model.weights_info = weights
    return model.eval()
