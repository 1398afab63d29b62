"""Class names of each label set, in the order of the checkpoints' heads, and the dense-prediction
label metadata (ADE20K palette, COCO keypoint flip pairs and skeleton).

ImageNet-1k comes from timm; the others are the official orders shipped in ``label_files/``
(copied from the official repository's data lists: Kinetics orders are NOT alphabetical,
docs/official.md §5). For the dense tasks (docs/dense.md §7): ``ade20k_150.json`` = mmseg 0.13
``ADE20KDataset`` CLASSES/PALETTE (output channel i = class i; note the name ``'bed '`` with its
trailing space), ``coco_keypoints_17.json`` = mmpose 0.16 ``TopDownCocoDataset`` (names, flip
pairs, sigmas, joint weights, skeleton).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["get_labels", "label_sets", "read_label_file", "get_palette", "KeypointInfo", "get_keypoint_info",
           "LABEL_SETS"]


@lru_cache(maxsize=None)
def _imagenet_1k() -> tuple[str, ...]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    # "tench, Tinca tinca" -> "tench": the first synonym, as the official demos print
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))


@lru_cache(maxsize=None)
def _label_file(name: str) -> dict:
    """The parsed JSON file ``uniformer/data/label_files/<name>`` (shipped with the package)."""
    return json.loads(read_label_file(name))


def _ade20k_150() -> tuple[str, ...]:
    return tuple(_label_file("ade20k_150.json")["classes"])


def _coco_keypoints_17() -> tuple[str, ...]:
    return tuple(_label_file("coco_keypoints_17.json")["keypoints"])


def read_label_file(name: str) -> str:
    """Text of ``uniformer/data/label_files/<name>`` (the official video and COCO label lists)."""
    return resources.files(__package__).joinpath("label_files", name).read_text(encoding="utf-8")


def _indexed(lines: list[tuple[str, int]]) -> tuple[str, ...]:
    names = dict((i, n) for n, i in lines)
    if sorted(names) != list(range(len(names))):
        raise ValueError("label file indices are not 0..N-1")
    return tuple(names[i] for i in range(len(names)))


@lru_cache(maxsize=None)
def _kinetics_400() -> tuple[str, ...]:
    # "riding a bike<TAB>0" per line, in the official (non-alphabetical) order (docs/official.md §5)
    rows = [line.rsplit("\t", 1) for line in read_label_file("k400_categories.txt").splitlines() if line.strip()]
    return _indexed([(n.strip(), int(i)) for n, i in rows])


@lru_cache(maxsize=None)
def _kinetics_600() -> tuple[str, ...]:
    # "name_with_underscores index" in two files (common + special classes)
    rows = []
    for f in ("k600_common_category.list", "k600_special_category.list"):
        rows += [line.rsplit(" ", 1) for line in read_label_file(f).splitlines() if line.strip()]
    return _indexed([(n.replace("_", " "), int(i)) for n, i in rows])


@lru_cache(maxsize=None)
def _lines(name: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in read_label_file(name).splitlines() if line.strip())


def _coco_80() -> tuple[str, ...]:
    return tuple(json.loads(read_label_file("coco_80.json"))["classes"])


_LABEL_SETS = {"imagenet-1k": _imagenet_1k, "ade20k-150": _ade20k_150, "coco-keypoints-17": _coco_keypoints_17,
               "kinetics-400": _kinetics_400, "kinetics-600": _kinetics_600,
               "something-something-v1": lambda: _lines("sthv1_category.txt"),
               "something-something-v2": lambda: _lines("sthv2_category.txt"), "coco-80": _coco_80}
#: Names of the known label sets.
LABEL_SETS = tuple(_LABEL_SETS)


def label_sets() -> list[str]:
    """Names of the known label sets, sorted."""
    return sorted(_LABEL_SETS)


def get_labels(label_set: str) -> tuple[str, ...]:
    """Class names of ``label_set``: 'imagenet-1k' (timm's ImageNet-1k info, the standard index
    order the official heads use), 'ade20k-150' (mmseg's ADE20K order, output channel i = class i)
    or 'coco-keypoints-17' (joint names, heatmap channel order). Raises KeyError for an unknown set."""
    try:
        return _LABEL_SETS[label_set]()
    except KeyError:
        raise KeyError(f"unknown label set {label_set!r}; known: {sorted(_LABEL_SETS)}") from None


def get_palette(label_set: str) -> tuple[tuple[int, int, int], ...]:
    """RGB colour (0-255) of every class of ``label_set``: 'ade20k-150' has mmseg's ADE20K palette
    (the one ControlNet's segmentation annotator draws with). Raises KeyError for a set without one."""
    if label_set != "ade20k-150":
        raise KeyError(f"label set {label_set!r} has no palette; only 'ade20k-150' does")
    return tuple(tuple(int(c) for c in rgb) for rgb in _label_file("ade20k_150.json")["palette"])


@dataclass(frozen=True)
class KeypointInfo:
    """COCO-17 keypoint metadata (mmpose 0.16; docs/dense.md §7).

    names: joint names in heatmap-channel order; flip_pairs: (left, right) channel pairs swapped by
    a horizontal flip; skeleton: limbs as 0-based (joint, joint) pairs (mmpose's 19-limb COCO
    visualisation skeleton); sigmas: per-joint OKS constants; joint_weights: training loss weights.
    """

    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    joint_weights: tuple[float, ...]


def get_keypoint_info(label_set: str = "coco-keypoints-17") -> KeypointInfo:
    """The :class:`KeypointInfo` of ``label_set`` (only 'coco-keypoints-17'). Raises KeyError otherwise."""
    if label_set != "coco-keypoints-17":
        raise KeyError(f"no keypoint metadata for label set {label_set!r}; known: 'coco-keypoints-17'")
    d = _label_file("coco_keypoints_17.json")
    return KeypointInfo(
        names=tuple(d["keypoints"]), flip_pairs=tuple((int(a), int(b)) for a, b in d["flip_pairs"]),
        skeleton=tuple((int(a) - 1, int(b) - 1) for a, b in d["skeleton_1based"]),
        sigmas=tuple(float(s) for s in d["sigmas"]), joint_weights=tuple(float(w) for w in d["joint_weights"]))
