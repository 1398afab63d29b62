"""GPU hardware of a Hugging Face Space: ZeroGPU through the ``spaces`` package, a no-op elsewhere.

On ZeroGPU hardware (the platform sets ``SPACES_ZERO_GPU``), CUDA exists only inside functions
decorated with ``@spaces.GPU(duration=...)``: :func:`gpu_task` applies that decorator to the event
functions that run models, with a duration (seconds) that fits the task. Everywhere else (a
dedicated GPU, where :func:`app.handlers.default_device` picks CUDA, or a CPU) it returns the
function unchanged. ``spaces`` must be imported before anything initializes CUDA: ``app.py`` calls
:func:`prepare` before it imports the app (and with it torch).
"""
from __future__ import annotations

import functools
import os
import warnings
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


@functools.lru_cache(maxsize=1)
def _spaces():
    """The ``spaces`` module, or None (with a warning) when it cannot start here although
    ``$SPACES_ZERO_GPU`` is set: e.g. a CPU-only torch, where ``spaces`` fails on import. The app
    then runs as on any other hardware instead of failing to start."""
    try:
        import spaces
    except Exception as e:  # noqa: BLE001 -- any failure of the platform package: run without it
        warnings.warn(f"${ZERO_GPU_ENV} is set but the spaces package cannot start here "
                      f"({type(e).__name__}: {e}); running without @spaces.GPU", RuntimeWarning, stacklevel=2)
        return None
    return spaces


def prepare() -> None:
    """On ZeroGPU, import ``spaces`` now, before torch initializes CUDA (``spaces`` refuses to work
    otherwise); elsewhere nothing."""
    if zero_gpu():
        _spaces()


def gpu_task(duration: int) -> Callable[[F], F]:
    """Decorator: on ZeroGPU, ``spaces.GPU(duration=duration)`` (the function then runs in a GPU
    worker for at most ``duration`` seconds) and the result carries ``gpu_duration`` (seconds);
    elsewhere the function itself, unchanged."""
    def decorate(fn: F) -> F:
        if not zero_gpu():
            return fn
        spaces = _spaces()
        task = spaces.GPU(duration=duration)(fn) if spaces is not None else fn
        task.gpu_duration = duration
        return task

    return decorate
