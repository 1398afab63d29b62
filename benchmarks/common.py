"""What the benchmark scripts share: FLOP counting (with attention), timing, memory, the machine's
description and text tables.

Scripts import it as ``from common import ...`` (``python benchmarks/bench_x.py`` puts this folder on
``sys.path``); importing it also puts the checkout on ``sys.path`` so that ``uniformer`` imports
without installing, and imports ``uniformer`` before timm (which makes timm's torchvision import
work next to a CPU-only torch).
"""
from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
import uniformer  # noqa: E402  (before timm, see above)
import timm  # noqa: E402

__all__ = ["ROOT", "EXTRA_FLOP_FORMULAS", "flop_counter", "count_flops", "build_model", "sync", "best_seconds",
           "median_seconds_round_robin", "rss_mb", "peak_rss_mb", "cpu_name", "describe_setup", "text_table"]


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


#: FlopCounterMode knows the CUDA attention kernels but not the CPU one that
#: ``F.scaled_dot_product_attention`` (global MHRA, timm's Swin) dispatches to.
EXTRA_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


def flop_counter() -> FlopCounterMode:
    """A ``torch.utils.flop_counter.FlopCounterMode`` that also counts the CPU attention kernel; use it
    as a context manager, then ``get_total_flops()`` / ``get_flop_counts()`` (per module)."""
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)


def count_flops(fn: Callable, *args, **kwargs) -> int:
    """FLOPs of ``fn(*args, **kwargs)`` by :func:`flop_counter` (matmuls, convolutions and attention; a
    multiply-add = 2 FLOPs; norms and activations are not counted)."""
    with flop_counter() as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def build_model(name: str) -> nn.Module:
    """A registered UniFormer (``uniformer.create_model``) or a timm model, untrained, in eval mode."""
    if name in uniformer.list_models():
        return uniformer.create_model(name).eval()
    return timm.create_model(name, pretrained=False).eval()


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], object], repeats: int, device: torch.device | str = "cpu") -> float:
    """Best (minimum) seconds of ``repeats`` calls of ``fn()``: on a shared machine other jobs only
    ever add time, so the minimum is the least disturbed run."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def median_seconds_round_robin(fns: dict[str, Callable[[], object]], runs: int, warmup: int,
                               device: torch.device | str = "cpu") -> dict[str, float]:
    """Median seconds of each ``fns[name]()`` over ``runs`` timed calls after ``warmup`` untimed ones.
    Timed round-robin (each round calls every function once), so that a change in machine load during
    the run affects every function alike and the ratios stay fair."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def rss_mb() -> float:
    """Current resident set size of this process (MB), from /proc (0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB): ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_setup(device: torch.device, precision: str, **extra) -> dict:
    """Where and how the numbers were measured: device, hardware (GPU name, or CPU name and torch
    threads), precision, library versions, CPU count, and ``extra``."""
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{cpu_name()}, {torch.get_num_threads()} threads")
    return {"device": str(device), "hardware": hardware, "precision": precision, **extra,
            "torch": torch.__version__, "timm": timm.__version__, "uniformer": uniformer.__version__,
            "cpu_count": os.cpu_count()}


def text_table(columns: Sequence[str], rows: Sequence[Sequence[object]], notes: Sequence[str] = (),
               separator_before: int | None = None) -> str:
    """A plain-text table: a header of ``columns``, a rule, one line per row (cells already formatted
    or ``str()``-ed; the first column left-aligned, the others right-aligned, each as wide as its
    widest cell), then the ``notes`` lines. ``separator_before``: index of a column preceded by ' |'
    (e.g. where the ratio columns start). Raises ValueError when a row's length differs from the
    header's."""
    cells = [[str(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(f"row of {len(row)} cells for {len(columns)} columns: {row}")
    widths = [max([len(columns[i])] + [len(row[i]) for row in cells]) for i in range(len(columns))]

    def line(row: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(row):
            if i == separator_before:
                out.append("|")
            out.append(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
        return " ".join(out)

    header = line(list(columns))
    return "\n".join([header, "-" * len(header), *(line(row) for row in cells), *notes])
