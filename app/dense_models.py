"""Models of the dense-prediction tabs: which ones the dropdowns offer, and the stage-3 attention
twins (global / window / hybrid) of the loaded segmentors and detectors.

Weights come from :func:`app.models.get_model` (local folder, Hub, or the untrained fallback with
its warning). A stage-3 twin shares every weight with the loaded model
(:func:`uniformer.models.dense.with_stage3_attention`), so switching modes costs no memory; building
one takes a moment, so twins live in the app's model cache (:func:`app.models.model_cache`, which
counts shared weights once); each :class:`Stage3Twins` (one per tab, created when the tab is built)
keeps at most ``maxsize`` of them there.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from torch import nn

import uniformer
import uniformer.models.detection  # noqa: F401  (registers the detectors)
from uniformer.models.dense import with_stage3_attention
from uniformer.models.light import is_light

from .models import LoadedModel, get_model, model_cache

__all__ = ["DEFAULT_SEG_MODEL", "DEFAULT_POSE_MODEL", "DEFAULT_DET_MODEL", "seg_model_choices", "pose_model_choices",
           "det_model_choices", "is_light_detector", "LIGHT_STAGE3_NOTE", "Stage3Twins"]

#: Segmentation model selected when the tab opens: the one official dense checkpoint on the Hub
#: (ControlNet's segmentation annotator).
DEFAULT_SEG_MODEL = "upernet_global_small"
#: Pose model selected when the tab opens.
DEFAULT_POSE_MODEL = "top_down_256x192_global_small"
#: Detection model selected when the Detection tab opens (and the Pose tab's person detector).
DEFAULT_DET_MODEL = "mask_rcnn_1x_hybrid_small"


def _choices(task: str) -> list[tuple[str, str]]:
    names = uniformer.list_models(task=task)
    hub_first = sorted(names, key=lambda n: (uniformer.get_entry(n).pretrained.hub is None, n))
    return [(f"{n} \u2014 {uniformer.get_entry(n).description}", n) for n in hub_first]


def seg_model_choices() -> list[tuple[str, str]]:
    """(label shown, model name) of every registered segmentation model, the Hub one first."""
    return _choices("semantic-segmentation")


def pose_model_choices() -> list[tuple[str, str]]:
    """(label shown, model name) of every registered pose model."""
    return _choices("pose-estimation")


def is_light_detector(name: str) -> bool:
    """Whether detector ``name`` has a light-weight (XXS / XS) backbone: hourglass stage-3 blocks,
    so no windowed attention to switch."""
    return is_light(name)


#: What the stage-3 attention control says for a light-weight (XXS / XS) backbone, where it is fixed.
LIGHT_STAGE3_NOTE = "light-weight backbone (XXS / XS): hourglass stage-3 blocks, no windows to switch"


def det_model_choices() -> list[tuple[str, str]]:
    """(label shown, model name) of every registered detector: Mask R-CNN S then B (1x before 3x),
    the cascades, then the light-weight ones."""
    names = uniformer.list_models(task="object-detection")
    order = sorted(names, key=lambda n: (is_light_detector(n), n.startswith("cascade"), "base" in n, "3x" in n, n))
    return [(f"{n} \u2014 {uniformer.get_entry(n).description}", n) for n in order]


class Stage3Twins:
    """Stage-3 twins of the loaded models, kept in the app's model cache: ``get(name, mode,
    window_size)`` -> (the :class:`LoadedModel` of ``name``, the model running stage 3 that way (the
    loaded model itself for its own setting), or None when loading failed). Thread-safe; a twin is
    built once even under concurrent requests; this tab keeps at most ``maxsize`` twins (least
    recently used dropped first), and the model cache may drop them sooner to stay within budget."""

    def __init__(self, maxsize: int = 8):
        self.maxsize = maxsize
        self._keys: OrderedDict[tuple, None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, mode: str, window_size: int) -> tuple[LoadedModel, nn.Module | None]:
        """Raises ValueError for a mode the model cannot run (windows on a light backbone)."""
        loaded = get_model(name)
        if loaded.model is None:
            return loaded, None
        # The entry holds the model with its twin: while it exists, id(loaded.model) cannot be reused by
        # a reloaded model (the twin shares its weights, so this costs no memory).
        key = ("twin", name, id(loaded.model), mode, int(window_size))
        (_, twin), _ = model_cache().get_or_compute(
            key, lambda: (loaded.model, with_stage3_attention(loaded.model, mode, int(window_size))))
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            dropped = [self._keys.popitem(last=False)[0] for _ in range(max(0, len(self._keys) - self.maxsize))]
        for old in dropped:
            model_cache().discard(old)
        return loaded, twin

    def clear(self) -> None:
        with self._lock:
            keys, self._keys = list(self._keys), OrderedDict()
        for key in keys:
            model_cache().discard(key)
