"""Class names of each label set, in the order of the checkpoints' heads."""
from __future__ import annotations

from functools import lru_cache

__all__ = ["get_labels"]


@lru_cache(maxsize=None)
def _imagenet_1k() -> tuple[str, ...]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    # "tench, Tinca tinca" -> "tench": the first synonym, as the official demos print
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))


_LABEL_SETS = {"imagenet-1k": _imagenet_1k}


def get_labels(label_set: str) -> tuple[str, ...]:
    """Class names of ``label_set`` ('imagenet-1k': timm's ImageNet-1k info, the standard index
    order the official heads use). Raises KeyError for an unknown set."""
    try:
        return _LABEL_SETS[label_set]()
    except KeyError:
        raise KeyError(f"unknown label set {label_set!r}; known: {sorted(_LABEL_SETS)}") from None
