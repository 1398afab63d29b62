"""Class activation maps (Grad-CAM and friends) through ``pytorch-grad-cam``, on a chosen stage.

The target layer is the output map (B, C, h, w) of a stage, so no ``reshape_transform`` is needed.
The CAM runs on a private *twin* of the model: a structural copy sharing the weight tensors
(no copy of the weights) whose parameters do not require gradients. So the library's hooks and
backward touch nothing other requests use: no hook fires in their forwards and no ``.grad`` is
written to the shared parameters (gradients flow from the score back to the tapped map only). The last block of the
stage is wrapped so that its output map passes through an ``nn.Identity`` tap that the CAM
hooks; this also covers the light models, whose hourglass blocks return (map, state) and whose
stages are not called as modules.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .analysis import Analysis
from .overlay import to_image

__all__ = ["CAM_METHODS", "CamResult", "shared_weights_twin", "class_activation_map", "preload_cam_library"]

#: Method names accepted by :func:`class_activation_map` -> pytorch_grad_cam class names.
CAM_METHODS = {"GradCAM": "GradCAM", "GradCAM++": "GradCAMPlusPlus", "EigenCAM": "EigenCAM",
               "LayerCAM": "LayerCAM", "XGradCAM": "XGradCAM", "HiResCAM": "HiResCAM"}


@dataclass(frozen=True)
class CamResult:
    """A class activation map.

    map: (H, W) float32 in [0, 1] on the original image (0 outside the centre crop); input_map:
    (S_h, S_w) float32 in [0, 1] on the model input; method, stage (0-based), class_index, label (the
    checkpoint's own class name, :meth:`Analysis.class_label`).
    """

    map: np.ndarray
    input_map: np.ndarray
    method: str
    stage: int
    class_index: int
    label: str


class _Tapped(nn.Module):
    """Runs ``inner`` and passes its map output (or the first element of a tuple output) through
    ``tap``, an identity the CAM hooks. The map enters the tap detached and requiring grad: the
    gradient the CAM needs is d(score)/d(map), so the backward stops at the tap instead of running
    through every earlier stage down to the input (and no graph is recorded before the tap)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.tap = nn.Identity()

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        if isinstance(out, tuple):
            return (self.tap(out[0].detach().requires_grad_(True)), *out[1:])
        return self.tap(out.detach().requires_grad_(True))


def shared_weights_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model``'s modules sharing its parameter and buffer storage; the twin's
    parameters have ``requires_grad=False`` and it has no hooks (the model's hook dicts, which
    other threads may be changing, e.g. an attention capture, are neither copied nor read).
    Hooks or module swaps on the twin leave ``model`` untouched. Costs the module objects only
    (tens of ms), not the weights."""
    memo = {id(p): nn.Parameter(p.detach(), requires_grad=False) for p in model.parameters()}
    memo.update({id(b): b for b in model.buffers()})
    for module in model.modules():
        for name, value in vars(module).items():
            if "hooks" in name and isinstance(value, dict):
                memo[id(value)] = type(value)()
    return copy.deepcopy(model, memo)


def preload_cam_library() -> None:
    """Import ``pytorch_grad_cam`` now (it imports scikit-learn and OpenCV: ~2 s on 2 cores, about
    a third of a first CAM call); an app may call this in a background thread at start-up."""
    import pytorch_grad_cam  # noqa: F401


def _cam_class(method: str):
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {list(CAM_METHODS)}")
    import pytorch_grad_cam  # after uniformer (its _compat makes torchvision importable)

    return getattr(pytorch_grad_cam, CAM_METHODS[method])


def class_activation_map(model: nn.Module, analysis: Analysis, method: str = "GradCAM", stage: int = 3,
                         class_index: int | None = None) -> CamResult:
    """``method`` (a key of :data:`CAM_METHODS`) on the output of 0-based ``stage`` for
    ``class_index`` (default: the top class of ``analysis``) -> :class:`CamResult`, H x W in [0, 1].

    Runs one forward (+ backward for gradient methods) on ``analysis.input``. Raises ValueError for
    an unknown method, a stage outside 0-3 or a class index outside the head, and for backbones.
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam_class = _cam_class(method)
    if analysis.logits is None:
        raise ValueError("class activation maps need a classifier (this model is a backbone)")
    if not 0 <= stage < len(model.stages):
        raise ValueError(f"stage must be in 0..{len(model.stages) - 1}, got {stage}")
    num_classes = analysis.logits.shape[0]
    class_index = int(np.argmax(analysis.logits)) if class_index is None else int(class_index)
    if not 0 <= class_index < num_classes:
        raise ValueError(f"class index must be in 0..{num_classes - 1}, got {class_index}")
    twin = shared_weights_twin(model)
    blocks = twin.stages[stage].blocks
    blocks[len(blocks) - 1] = _Tapped(blocks[len(blocks) - 1])
    device = next(model.parameters()).device
    x = analysis.input.to(device)  # no input gradient: the graph starts at the tap (see _Tapped)
    with torch.enable_grad(), cam_class(model=twin, target_layers=[blocks[len(blocks) - 1].tap]) as cam:
        input_map = cam(input_tensor=x, targets=[ClassifierOutputTarget(class_index)])[0]
    input_map = np.clip(np.nan_to_num(input_map.astype(np.float32)), 0, 1)
    return CamResult(to_image(input_map, analysis.geometry, smooth=True), input_map, method, stage, class_index,
                     analysis.class_label(class_index))
