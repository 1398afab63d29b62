"""Image-model speed: UniFormer next to timm baselines, all measured in one run, as ratios.

For each model: parameters (M), compute per 224x224 image (GMACs and GFLOPs), latency at batch 1
(median ms of ``--repeats`` timed forwards after warm-up) and throughput at batch 16 (images/s,
from the median batch time). Ratios are taken against ``--baseline`` (convnext_tiny = 1.00).
Weights are untrained (speed does not depend on them). Usage::

    python benchmarks/bench_image.py --quick                  # smoke run, a minute on 2 CPU cores
    python benchmarks/bench_image.py --threads 8 --json out.json
    python benchmarks/bench_image.py --device cuda --precision bf16
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import uniformer  # noqa: E402  (before timm: makes torchvision importable next to a CPU-only torch)
import timm  # noqa: E402
from uniformer.inference import PRECISIONS, autocast, select_device  # noqa: E402

DEFAULT_MODELS = ("uniformer_small_in1k", "uniformer_base_in1k", "convnext_tiny", "swin_tiny_patch4_window7_224")
DEFAULT_BASELINE = "convnext_tiny"


@dataclass
class Result:
    """One model's numbers. flops: per image, a multiply-add counted as 2 FLOPs (MACs = flops / 2)."""

    model: str
    params_m: float
    gflops: float
    latency_ms: float
    throughput_ips: float

    @property
    def gmacs(self) -> float:
        return self.gflops / 2


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# FlopCounterMode knows the CUDA attention kernels but not the CPU one that
# F.scaled_dot_product_attention (global MHRA, timm's Swin) dispatches to.
_EXTRA_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


def build_model(name: str) -> nn.Module:
    """A registered UniFormer (``uniformer.create_model``) or a timm model, untrained, in eval mode."""
    if name in uniformer.list_models():
        return uniformer.create_model(name).eval()
    return timm.create_model(name, pretrained=False).eval()


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``model(x)``: matmuls, convolutions and attention, a multiply-add = 2 FLOPs."""
    with FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS) as counter:
        model(x)
    return counter.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_forward(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    _sync(x.device)
    return time.perf_counter() - start


def median_forward_times(models: dict[str, nn.Module], x: torch.Tensor, runs: int, warmup: int) -> dict[str, float]:
    """Median seconds of ``model(x)`` for each model, over ``runs`` timed forwards after ``warmup``
    untimed ones. Timed round-robin (each round runs every model once), so that a change in machine
    load during the run affects every model alike and the ratios stay fair."""
    for model in models.values():
        for _ in range(warmup):
            model(x)
    _sync(x.device)
    times = {name: [] for name in models}
    for _ in range(runs):
        for name, model in models.items():
            times[name].append(_time_forward(model, x))
    return {name: statistics.median(t) for name, t in times.items()}


def benchmark(names: list[str], device: torch.device, precision: str, image_size: int, batch_size: int,
              repeats: int, warmup: int) -> list[Result]:
    """Measure every model: parameters and FLOPs, latency at batch 1 (``repeats`` forwards),
    throughput at ``batch_size`` (``max(2, repeats // 3)`` batches after ``min(warmup, 2)`` warm-up ones)."""
    models = {name: build_model(name).to(device) for name in names}
    one = torch.randn(1, 3, image_size, image_size, device=device)
    batch = torch.randn(batch_size, 3, image_size, image_size, device=device)
    with torch.inference_mode(), autocast(device, precision):
        flops = {name: count_flops(model, one) for name, model in models.items()}
        latency = median_forward_times(models, one, repeats, warmup)
        batch_time = median_forward_times(models, batch, max(2, repeats // 3), min(warmup, 2))
    return [Result(name, sum(p.numel() for p in model.parameters()) / 1e6, flops[name] / 1e9,
                   latency[name] * 1e3, batch_size / batch_time[name]) for name, model in models.items()]


def format_table(results: list[Result], baseline: str, batch_size: int) -> str:
    """The results as a text table, with latency and throughput ratios against ``baseline``."""
    base = next(r for r in results if r.model == baseline)
    header = (f"{'model':<30} {'params (M)':>10} {'GMACs':>7} {'GFLOPs':>7} {'latency b1 (ms)':>16} "
              f"{f'throughput b{batch_size} (img/s)':>24} {'latency x':>10} {'throughput x':>13}")
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(f"{r.model:<30} {r.params_m:>10.1f} {r.gmacs:>7.2f} {r.gflops:>7.2f} {r.latency_ms:>16.1f} "
                     f"{r.throughput_ips:>24.1f} {r.latency_ms / base.latency_ms:>10.2f} "
                     f"{r.throughput_ips / base.throughput_ips:>13.2f}")
    lines.append(f"ratios against {baseline} = 1.00: 'latency x' below 1 is faster, 'throughput x' above 1 is faster")
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_setup(device: torch.device, precision: str, image_size: int) -> dict:
    """Where and how the numbers were measured."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{_cpu_name()}, {torch.get_num_threads()} threads"
    return {"device": str(device), "hardware": hardware, "precision": precision, "image_size": image_size,
            "torch": torch.__version__, "timm": timm.__version__, "uniformer": uniformer.__version__,
            "cpu_count": os.cpu_count()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:i]")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="autocast precision (fp16: CUDA only)")
    p.add_argument("--repeats", type=int, default=30,
                   help="timed batch-1 forwards per model (batch throughput: repeats // 3, at least 2)")
    p.add_argument("--warmup", type=int, default=5, help="untimed forwards before timing")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size of the throughput measurement")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                   help="UniFormer registry names or timm names")
    p.add_argument("--baseline", default=DEFAULT_BASELINE, help="model whose ratios are 1.00 (must be in --models)")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 repeats, 1 warm-up")
    p.add_argument("--json", metavar="OUT", help="also write setup and results as JSON to OUT")
    args = p.parse_args(argv)
    if args.baseline not in args.models:
        p.error(f"--baseline {args.baseline} is not among --models")
    if args.quick:
        args.repeats, args.warmup = 5, 1
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    """Run the benchmark from the command line; print (and optionally save) the table."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    setup = describe_setup(device, args.precision, args.image_size)
    print(", ".join(f"{k} {v}" for k, v in setup.items()))
    print(f"batch 1: median of {args.repeats} forwards after {args.warmup} warm-up; batch {args.batch_size}: "
          f"median of {max(2, args.repeats // 3)}; models timed round-robin; untrained weights; global MHRA "
          f"runs F.scaled_dot_product_attention", flush=True)
    results = benchmark(args.models, device, args.precision, args.image_size, args.batch_size, args.repeats,
                        args.warmup)
    print(format_table(results, args.baseline, args.batch_size))
    print("GMACs: multiply-adds (the paper's 'FLOPs': UniFormer-S 3.6G, -B 8.3G); GFLOPs = 2 x GMACs "
          "(torch.utils.flop_counter: matmuls, convolutions, attention; no norms or activations)")
    if args.json:
        payload = {"setup": setup, "args": vars(args), "results": [{**asdict(r), "gmacs": r.gmacs} for r in results]}
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
