"""GPU hardware of a Hugging Face Space: ZeroGPU through the ``spaces`` package, a no-op elsewhere.

On ZeroGPU hardware (the platform sets ``SPACES_ZERO_GPU``), CUDA exists only inside functions
decorated with ``@spaces.GPU(duration=...)``: :func:`gpu_task` applies that decorator to the event
functions that run models, with a duration (seconds) that fits the task. Everywhere else (a
dedicated GPU, where :func:`app.handlers.default_device` picks CUDA, or a CPU) it returns the
function unchanged. ``spaces`` must be imported before anything initializes CUDA: ``app.py`` calls
:func:`prepare` before it imports the app (and with it torch).
"""
from __future__ import annotations

import os
from typing import Callable, TypeVar

__all__ = ["ZERO_GPU_ENV", "SHORT", "MEDIUM", "LONG", "zero_gpu", "prepare", "gpu_task"]

F = TypeVar("F", bound=Callable)

#: Environment variable ZeroGPU hardware sets ('true').
ZERO_GPU_ENV = "SPACES_ZERO_GPU"
#: GPU seconds reserved per call: one image forward (classify, a click re-rendered from cache).
SHORT = 30
#: An image analysis, a keep-ratio sweep, a segmentation or pose estimate.
MEDIUM = 60
#: Multi-view video, video Grad-CAM, detection with cascades, comparing three attention modes.
LONG = 120


def zero_gpu() -> bool:
    """Whether the app runs on ZeroGPU hardware (``$SPACES_ZERO_GPU`` is 1 / t / true, as ``spaces`` reads it)."""
    return os.environ.get(ZERO_GPU_ENV, "").lower() in ("1", "t", "true")


def prepare() -> None:
    """On ZeroGPU, import ``spaces`` now, before torch initializes CUDA (``spaces`` refuses to work
    otherwise); elsewhere nothing."""
    if zero_gpu():
        import spaces  # noqa: F401


def gpu_task(duration: int) -> Callable[[F], F]:
    """Decorator: ``spaces.GPU(duration=duration)`` on ZeroGPU (the function then runs in a GPU
    worker for at most ``duration`` seconds), else the function itself, unchanged."""
    def decorate(fn: F) -> F:
        if not zero_gpu():
            return fn
        import spaces
        return spaces.GPU(duration=duration)(fn)

    return decorate
