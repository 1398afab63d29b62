"""The fastest faithful way to run a model on a device, read from a measured table (issue 22).

Paths (each gives eager fp32's answers: within 1e-4 relative for the fp32 paths, the same top-1
with bf16 rounding for bf16; ``tests/test_fastpaths_real.py`` checks every registered
architecture at its real size):

* ``eager``: the model as ``create_model`` builds it, fp32 (the reference; speed-up 1 by definition);
* ``fused``: :func:`uniformer.fuse.fuse_for_inference`, fp32;
* ``onnxruntime``: the fused model exported to ONNX Runtime (:mod:`uniformer.runtime.onnx`), fp32;
* ``bf16-weights``: :func:`uniformer.precision.autocast_weights` of the fused model, run under
  bf16 autocast (only where the device computes bf16 natively, or when bf16 is asked for).

The table (``paths.json`` next to this module; written by ``benchmarks/bench_runtime.py
--write-table``) holds measured speed-ups (throughput / eager fp32 throughput, one run, same
machine) per device class (``cpu``, ``cpu-bf16``: AVX512-BF16 / AMX, ``cuda``), model family
(:func:`model_family`) and batch size. :func:`select_path` takes the largest measured speed-up
among the paths the requested precision allows, and eager fp32 when nothing measured beats it:
it never picks a path measured slower than eager, nor one never measured.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

__all__ = ["PATHS", "PATH_PRECISION", "TABLE_FILE", "PathChoice", "device_key", "model_family", "load_table",
           "select_path", "prepare_path", "fastest"]

#: Every path, and the precision it computes in.
PATH_PRECISION = {"eager": "fp32", "fused": "fp32", "onnxruntime": "fp32", "bf16-weights": "bf16"}
PATHS = tuple(PATH_PRECISION)
#: The shipped table of measured speed-ups.
TABLE_FILE = Path(__file__).with_name("paths.json")
_LABELS = {"eager": "eager PyTorch", "fused": "fused norms (PyTorch)", "onnxruntime": "ONNX Runtime",
           "bf16-weights": "bf16 stored weights (PyTorch autocast)"}


@dataclass(frozen=True)
class PathChoice:
    """A chosen path: ``path`` (one of :data:`PATHS`), the ``precision`` it runs ('fp32' / 'bf16'),
    the measured ``speedup`` over eager fp32 on this device class (1.0 for eager), and where the
    figure comes from (``source``: 'measured' or 'unmeasured')."""

    path: str
    precision: str
    speedup: float = 1.0
    source: str = "unmeasured"

    def describe(self) -> str:
        """One line for a result's details, e.g. 'ONNX Runtime, fp32 (1.34x eager fp32, measured)'."""
        gain = f"{self.speedup:.2f}x eager fp32, measured" if self.source == "measured" else "no faster path measured"
        return f"{_LABELS[self.path]}, {self.precision} ({gain})"


def device_key(device: torch.device | str) -> str:
    """The device class the table is keyed by: 'cuda', 'cpu-bf16' (native bf16), 'cpu', or the type."""
    from ..precision import has_native_bf16

    device = torch.device(device)
    if device.type == "cpu":
        return "cpu-bf16" if has_native_bf16(device) else "cpu"
    return device.type


def model_family(model: nn.Module | str) -> str:
    """'image', 'light' (XXS / XS), 'video', 'video-light' or 'dense' (feature extractors, dense
    heads) for a model built by ``create_model`` or a registered name."""
    from ..models.light import is_light
    from ..registry import get_entry

    cfg = get_entry(model).config if isinstance(model, str) else getattr(model, "cfg", None)
    if cfg is None or hasattr(cfg, "backbone") or getattr(cfg, "out_indices", None):
        return "dense"
    light = is_light(cfg)
    if getattr(cfg, "spatial_dims", 2) == 3:
        return "video-light" if light else "video"
    return "light" if light else "image"


@lru_cache(maxsize=4)
def _read(path: str) -> dict:
    return json.loads(Path(path).read_text())


def load_table(path: str | Path | None = None) -> dict:
    """The speed-up table {device class: {family: {batch: {path: speed-up}}}} from ``path``
    (default: the shipped :data:`TABLE_FILE`); {} when the file does not exist.
    Raises ValueError for a file that is not such a table."""
    path = Path(path) if path is not None else TABLE_FILE
    if not path.is_file():
        return {}
    data = _read(str(path))
    table = data.get("speedups") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise ValueError(f"{path} is not a path table (no 'speedups' object)")
    return table


def _nearest_batch(measured: dict, batch: int) -> dict:
    """The measurements of the batch size closest to ``batch`` (on a log scale)."""
    key = min(measured, key=lambda b: abs(math.log(int(b)) - math.log(max(1, batch))))
    return measured[key]


def select_path(model: nn.Module | str, device: torch.device | str = "cpu", precision: str = "auto", batch: int = 1,
                table: dict | None = None, exclude: tuple[str, ...] = ()) -> PathChoice:
    """The fastest faithful path for ``model`` on ``device`` at ``batch`` (inputs per forward).

    precision: 'fp32' (the fastest measured fp32 path, else eager), 'bf16' (asked for: the bf16
    stored weights, the same outputs as bf16 autocast without its per-call weight casts), 'auto'
    (the fastest measured path, bf16 ones included where the device computes bf16 natively, else
    eager fp32). Unmeasured device or family: eager. A model running in another runtime already
    (``model.runtime``), or 'fp16': eager at that precision. ``exclude``: paths not to choose.
    Raises ValueError for an unknown precision.
    """
    from ..precision import default_precision

    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if precision == "fp16" or getattr(model, "runtime", "torch") != "torch":
        return PathChoice("eager", "fp32" if precision == "auto" else precision)
    table = load_table() if table is None else table
    measured = table.get(device_key(device), {}).get(model_family(model), {})
    speeds = _nearest_batch(measured, batch) if measured else {}
    if precision == "bf16":
        speedup = speeds.get("bf16-weights")
        return PathChoice("bf16-weights", "bf16", *((float(speedup), "measured") if speedup else ()))
    allowed = ("fp32", "bf16") if precision == "auto" and default_precision(device) == "bf16" else ("fp32",)
    best = PathChoice("eager", "fp32")
    for path, speedup in speeds.items():
        if PATH_PRECISION.get(path) in allowed and path not in exclude and speedup > best.speedup:
            best = PathChoice(path, PATH_PRECISION[path], float(speedup), "measured")
    return best


def prepare_path(model: nn.Module, choice: PathChoice) -> nn.Module:
    """The module that runs ``model`` (eval, fp32, as ``create_model`` built it) the way ``choice``
    says; ``model`` itself is not changed. Run a 'bf16' choice under
    ``torch.autocast(device, dtype=torch.bfloat16)`` (``predict_images(..., precision='bf16')``
    does). Raises ValueError for an unknown path."""
    from ..fuse import fuse_for_inference
    from ..precision import autocast_weights
    from . import with_runtime

    if choice.path == "eager":
        return model
    if choice.path not in PATH_PRECISION:
        raise ValueError(f"unknown path {choice.path!r}; one of {PATHS}")
    fused = fuse_for_inference(model)
    if choice.path == "fused":
        return fused
    if choice.path == "onnxruntime":
        return with_runtime(fused, "onnxruntime")
    return autocast_weights(fused)


def fastest(model: nn.Module, device: torch.device | str = "cpu", precision: str = "auto", batch: int = 1,
            input_shape: tuple[int, ...] | None = None) -> tuple[nn.Module, PathChoice]:
    """(module to run, choice) for a one-shot caller (the CLI): :func:`select_path`, except that ONNX
    Runtime is chosen only when its export for ``input_shape`` (default: the model's
    ``pretrained_cfg.input_size``) is already cached, since exporting costs far more than one
    forward saves. Run a 'bf16' choice under bf16 autocast."""
    from ..fuse import fuse_for_inference

    choice = select_path(model, device, precision, batch)
    if choice.path == "onnxruntime":
        fused = fuse_for_inference(model)  # once: checked for an export, then run
        if _export_cached(fused, input_shape or model.pretrained_cfg.input_size):
            from . import with_runtime

            return with_runtime(fused, "onnxruntime"), choice
        choice = select_path(model, device, precision, batch, exclude=("onnxruntime",))
    return prepare_path(model, choice), choice


def onnx_export_cached(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> bool:
    """Whether the ONNX Runtime path of ``model`` (its fused copy, as :func:`prepare_path` builds
    it) is already exported for ``input_shape`` (without the batch; default: the model's
    ``pretrained_cfg.input_size``), so that choosing it costs no export."""
    from ..fuse import fuse_for_inference

    return _export_cached(fuse_for_inference(model), input_shape or model.pretrained_cfg.input_size)


def _export_cached(fused: nn.Module, input_shape: tuple[int, ...]) -> bool:
    from .onnx import onnx_cache_path

    return onnx_cache_path(fused, tuple(input_shape)).is_file()
