"""Class names of each label set, in the order of the checkpoints' heads.

ImageNet-1k comes from timm; the others are the official orders shipped in ``label_files/``
(copied from the official repository's data lists: Kinetics orders are NOT alphabetical,
OFFICIAL_NOTES §5), plus ADE20K-150 (with its palette) and COCO for the dense tasks.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

__all__ = ["get_labels", "label_sets", "read_label_file"]


def read_label_file(name: str) -> str:
    """Text of ``uniformer/data/label_files/<name>``."""
    return resources.files("uniformer.data").joinpath("label_files", name).read_text(encoding="utf-8")


def _imagenet_1k() -> tuple[str, ...]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    # "tench, Tinca tinca" -> "tench": the first synonym, as the official demos print
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))


def _indexed(lines: list[tuple[str, int]]) -> tuple[str, ...]:
    names = dict((i, n) for n, i in lines)
    if sorted(names) != list(range(len(names))):
        raise ValueError("label file indices are not 0..N-1")
    return tuple(names[i] for i in range(len(names)))


def _kinetics_400() -> tuple[str, ...]:
    # "riding a bike<TAB>0" per line, in the official (non-alphabetical) order
    rows = [line.rsplit("\t", 1) for line in read_label_file("k400_categories.txt").splitlines() if line.strip()]
    return _indexed([(n.strip(), int(i)) for n, i in rows])


def _kinetics_600() -> tuple[str, ...]:
    # "name_with_underscores index" in two files (common + special classes)
    rows = []
    for f in ("k600_common_category.list", "k600_special_category.list"):
        rows += [line.rsplit(" ", 1) for line in read_label_file(f).splitlines() if line.strip()]
    return _indexed([(n.replace("_", " "), int(i)) for n, i in rows])


def _lines(name: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in read_label_file(name).splitlines() if line.strip())


def _json_classes(name: str) -> tuple[str, ...]:
    return tuple(json.loads(read_label_file(name))["classes"])


_LABEL_SETS = {
    "imagenet-1k": _imagenet_1k,
    "kinetics-400": _kinetics_400,
    "kinetics-600": _kinetics_600,
    "something-something-v1": lambda: _lines("sthv1_category.txt"),
    "something-something-v2": lambda: _lines("sthv2_category.txt"),
    "ade20k-150": lambda: _json_classes("ade20k_150.json"),
    "coco-80": lambda: _json_classes("coco_80.json"),
    "coco-keypoints-17": lambda: tuple(json.loads(read_label_file("coco_keypoints_17.json"))["keypoints"]),
}


def label_sets() -> list[str]:
    """Names of the known label sets."""
    return sorted(_LABEL_SETS)


@lru_cache(maxsize=None)
def get_labels(label_set: str) -> tuple[str, ...]:
    """Class names of ``label_set`` in head order (see :func:`label_sets`). Raises KeyError for an
    unknown set."""
    try:
        loader = _LABEL_SETS[label_set]
    except KeyError:
        raise KeyError(f"unknown label set {label_set!r}; known: {label_sets()}") from None
    return loader()
