"""Import ``torchvision`` (and so ``timm`` and ``pytorch_grad_cam``) next to a CPU-only torch,
without changing torch's global operator registry.

PyPI's Linux ``torchvision`` wheels are built against CUDA torch: next to the CPU-only
``torch==2.13.0`` wheel, ``torchvision/_C.so`` cannot load (it links ``libtorch_cuda.so``) and
``import torchvision`` then dies in ``_meta_registrations.py`` because the ``torchvision::nms`` /
``torchvision::qnms`` operators were never defined.

:func:`torchvision_importable` is the scoped fix: a context manager that, when and only when the
compiled ops cannot be loaded and torchvision is not imported yet, declares those two operator
schemas (no kernels) for the duration of the ``with`` block, in which the caller imports
torchvision (or timm); on exit it removes them again, so torch's operator registry is as it was.
torchvision stays importable afterwards (it is in ``sys.modules``); its compiled ops
(``torchvision.ops.nms``, ``roi_align``) raise torchvision's own "Couldn't load custom C++ ops"
error (:mod:`uniformer.ops` then uses its pure-PyTorch versions); everything else works.
Where torchvision's own ops load, it does nothing.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys

import torch

__all__ = ["torchvision_importable"]


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


@contextlib.contextmanager
def torchvision_importable():
    """Within the block, ``import torchvision`` (or timm, pytorch_grad_cam) succeeds even where
    torchvision's compiled ops cannot load: the ``torchvision::nms`` / ``qnms`` schemas are declared
    for the block only, and removed on exit. Yields True when the schemas were declared."""
    if "torchvision" in sys.modules or _compiled_ops_load():
        yield False
        return
    lib = torch.library.Library("torchvision", "DEF")
    try:
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        yield True
    finally:
        lib._destroy()


def ensure_torchvision_importable() -> bool:
    """Import torchvision now, inside :func:`torchvision_importable` (kept for callers of the old
    name; torch's operator registry is left as it was). Returns True when the shim was needed."""
    with torchvision_importable() as shimmed:
        import torchvision  # noqa: F401
    return shimmed
