"""Which precision to run by default: bf16 where the hardware computes it natively, else fp32.

bf16 autocast is only faster than fp32 where the hardware has bf16 arithmetic: CPUs with
AVX512-BF16 or AMX (oneDNN then runs the convolutions and matmuls in bf16; measured 1.9x on UniFormer-S
at 224 px, 2 cores), GPUs where ``torch.cuda.is_bf16_supported()`` (Ampere and newer). Elsewhere it
is emulated and slower, so fp32 stays the default. What bf16 changes in the outputs is measured in
``benchmarks/bf16_agreement.py`` (top-1 kept; see benchmarks/README.md).
"""
from __future__ import annotations

import torch

__all__ = ["BF16_CPU_FLAGS", "cpu_bf16_flags", "has_native_bf16", "default_precision", "precision_label",
           "autocast_weights"]

#: /proc/cpuinfo flags of native bf16 arithmetic on x86 CPUs.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The bf16 flags (``BF16_CPU_FLAGS``) this CPU reports in ``cpuinfo``; where that file does not
    exist (macOS, Windows), what PyTorch's own CPU probe says (``torch.cpu._is_avx512_bf16_supported``,
    ``_is_amx_tile_supported``), else ()."""
    try:
        with open(cpuinfo) as f:
            flags = set()
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
        return tuple(f for f in BF16_CPU_FLAGS if f in flags)
    except OSError:
        found = []
        for flag, probe in zip(BF16_CPU_FLAGS, ("_is_avx512_bf16_supported", "_is_amx_tile_supported")):
            fn = getattr(torch.cpu, probe, None)
            if fn is not None and fn():
                found.append(flag)
        return tuple(found)


def has_native_bf16(device: torch.device | str) -> bool:
    """True when ``device`` computes bf16 natively: a CUDA GPU with ``torch.cuda.is_bf16_supported()``,
    or a CPU with AVX512-BF16 / AMX (:func:`cpu_bf16_flags`). Other devices: False."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(cpu_bf16_flags())
    return False


def default_precision(device: torch.device | str) -> str:
    """'bf16' on hardware with native bf16 (:func:`has_native_bf16`), else 'fp32'."""
    return "bf16" if has_native_bf16(device) else "fp32"


def precision_label(device: torch.device | str) -> str:
    """One line for the UI: which precision is the default on ``device`` and why."""
    device = torch.device(device)
    if not has_native_bf16(device):
        return "fp32 by default: this device has no native bf16 (bf16 would be emulated, slower)"
    what = "this GPU" if device.type == "cuda" else f"this CPU ({', '.join(cpu_bf16_flags()).upper()})"
    return f"bf16 by default: {what} computes bf16 natively (about 2x faster); fp32 for exact scores"


def autocast_weights(model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    """A copy of ``model`` whose convolution and linear weights and biases are stored in ``dtype``,
    for running under ``torch.autocast(..., dtype=dtype)`` only.

    Autocast rounds those parameters to ``dtype`` on every call anyway (the matmuls and
    convolutions run in ``dtype``), so the outputs are the same as autocast on the fp32 model,
    without re-casting ~22 M parameters (UniFormer-S) per forward: measured 1.2-1.8x faster than
    plain autocast on a 2-core AVX512-BF16 CPU (``benchmarks/bench_runtime.py``, path ``bf16-weights``).
    Norm layers, embeddings and buffers stay fp32 (autocast runs norms in fp32). The copy is
    eval-only: without autocast its layers refuse fp32 inputs (RuntimeError: dtype mismatch).
    ``model`` itself is not changed.
    """
    import copy

    out = copy.deepcopy(model).eval()
    for module in out.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)):
            for name, p in list(module.named_parameters(recurse=False)):
                setattr(module, name, torch.nn.Parameter(p.detach().to(dtype), requires_grad=False))
    return out
