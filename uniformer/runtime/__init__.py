"""Runtimes other than eager PyTorch for the models ``create_model`` builds.

``create_model(name, ..., runtime="onnxruntime")`` = ``with_runtime(create_model(name, ...),
"onnxruntime")``: the same call signature and outputs, run by ONNX Runtime (:mod:`.onnx`).
"""
from __future__ import annotations

from torch import nn

from ..hub import cache_dir

__all__ = ["RUNTIMES", "with_runtime", "cache_dir"]

RUNTIMES = ("torch", "onnxruntime")


def with_runtime(model: nn.Module, runtime: str = "torch", input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """``model`` run by ``runtime``: 'torch' returns it unchanged; 'onnxruntime' wraps it in an
    :class:`~uniformer.runtime.onnx.OnnxRuntimeModel` (exported per input size on first use, or at
    once for ``input_shape`` = (C, *S) when given). Raises ValueError for an unknown runtime."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "torch":
        return model
    from .onnx import OnnxRuntimeModel

    return OnnxRuntimeModel(model, input_shape)
