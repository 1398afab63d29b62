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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from common import build_model, count_flops, describe_setup, median_seconds_round_robin, text_table

from uniformer.inference import PRECISIONS, autocast, select_device

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


def benchmark(names: list[str], device: torch.device, precision: str, image_size: int, batch_size: int,
              repeats: int, warmup: int) -> list[Result]:
    """Measure every model: parameters and FLOPs, latency at batch 1 (``repeats`` forwards),
    throughput at ``batch_size`` (``max(2, repeats // 3)`` batches after ``min(warmup, 2)`` warm-up ones)."""
    models = {name: build_model(name).to(device) for name in names}
    one = torch.randn(1, 3, image_size, image_size, device=device)
    batch = torch.randn(batch_size, 3, image_size, image_size, device=device)
    with torch.inference_mode(), autocast(device, precision):
        flops = {name: count_flops(model, one) for name, model in models.items()}
        latency = median_seconds_round_robin({n: lambda m=m: m(one) for n, m in models.items()}, repeats, warmup,
                                             device)
        batch_time = median_seconds_round_robin({n: lambda m=m: m(batch) for n, m in models.items()},
                                                max(2, repeats // 3), min(warmup, 2), device)
    return [Result(name, sum(p.numel() for p in model.parameters()) / 1e6, flops[name] / 1e9,
                   latency[name] * 1e3, batch_size / batch_time[name]) for name, model in models.items()]


def format_table(results: list[Result], baseline: str, batch_size: int) -> str:
    """The results as a text table, with latency and throughput ratios against ``baseline``."""
    base = next(r for r in results if r.model == baseline)
    columns = ["model", "params (M)", "GMACs", "GFLOPs", "latency b1 (ms)", f"throughput b{batch_size} (img/s)",
               "latency x", "throughput x"]
    rows = [[r.model, f"{r.params_m:.1f}", f"{r.gmacs:.2f}", f"{r.gflops:.2f}", f"{r.latency_ms:.1f}",
             f"{r.throughput_ips:.1f}", f"{r.latency_ms / base.latency_ms:.2f}",
             f"{r.throughput_ips / base.throughput_ips:.2f}"] for r in results]
    return text_table(columns, rows, [f"ratios against {baseline} = 1.00: 'latency x' below 1 is faster, "
                                      "'throughput x' above 1 is faster"])


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
    setup = describe_setup(device, args.precision, image_size=args.image_size)
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
