"""Make ``torchvision`` (and so ``timm`` and ``pytorch_grad_cam``) importable next to a CPU-only torch.

PyPI's Linux ``torchvision`` wheels are built against CUDA torch: next to the CPU-only
``torch==2.13.0`` wheel, ``torchvision/_C.so`` cannot load (it links ``libtorch_cuda.so``) and
``import torchvision`` then dies in ``_meta_registrations.py`` because the ``torchvision::nms`` /
``torchvision::qnms`` operators were never defined.

:func:`ensure_torchvision_importable` is the guarded fix: when, and only when, the compiled ops
cannot be loaded, it declares those two operator schemas (no kernels), so that the import
succeeds; torchvision's compiled ops (``torchvision.ops.nms``, ``roi_align``) then raise
torchvision's own "Couldn't load custom C++ ops" error, everything else works. Where
torchvision's own ops load, it does nothing.
"""
from __future__ import annotations

import importlib.util
import os

import torch

_DONE = False
_LIB = None  # keeps the torch.library.Library alive for the life of the process


def _compiled_ops_load() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # torchvision is not installed: nothing to fix
    for folder in spec.submodule_search_locations:
        for name in os.listdir(folder):
            if name.startswith("_C") and name.endswith((".so", ".pyd")):
                try:
                    torch.ops.load_library(os.path.join(folder, name))
                    return True
                except (OSError, RuntimeError):
                    return False
    return False


def ensure_torchvision_importable() -> bool:
    """Declare ``torchvision::nms``/``qnms`` when torchvision's compiled ops cannot load.

    Must run before the first ``import torchvision`` of the process (``uniformer/__init__`` does it).
    Returns True when the fallback was installed, False when nothing was needed. Idempotent.
    """
    global _DONE, _LIB
    if _DONE:
        return _LIB is not None
    _DONE = True
    if _compiled_ops_load():
        return False
    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return True
