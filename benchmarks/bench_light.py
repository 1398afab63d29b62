"""Light-weight UniFormer speed: XXS / XS next to UniFormer-S and Table 11's peers, and XXS across keep
ratios (Table 23), all measured in one run, as ratios.

Part 1, each model at its own resolution (Table 11): UniFormer-XXS 160 and XS 192, our UniFormer-S 224,
timm's efficientnet_b0 (224) and mobilevit_xs (256): parameters (M), GMACs per image, latency at
batch 1 (median ms) and throughput at batch ``--batch-size`` (images/s), with throughput ratios to
UniFormer-S and to EfficientNet-B0, and the paper's A100 ratio to EfficientNet-B0 for reference.

Part 2, UniFormer-XXS 160 at keep ratios 1.0 ... 0.25 (``model(x, keep_ratio=r)``): tokens processed
by the hourglass blocks, GMACs, latency and throughput, with ratios to keep ratio 1.0 and Table 23's.

Weights are untrained (speed does not depend on them). Models are timed round-robin (every round runs
each model once), so a change of machine load during the run slows all of them alike. Usage::

    python benchmarks/bench_light.py --quick             # smoke run: 3 rounds, 1 warm-up
    python benchmarks/bench_light.py --threads 1         # single-threaded CPU (steadier on a busy machine)
    python benchmarks/bench_light.py --device cuda --batch-size 128 --json light.json
"""
from __future__ import annotations

import argparse
import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from common import build_model, count_flops, describe_setup, median_seconds_round_robin, text_table

from uniformer.inference import PRECISIONS, autocast, select_device

#: (name, input side in pixels) of part 1; the paper's sizes (Table 11; MobileViT at 256).
MODELS = (("uniformer_xxs_160_in1k", 160), ("uniformer_xs_192_in1k", 192), ("uniformer_small_in1k", 224),
          ("efficientnet_b0", 224), ("mobilevit_xs", 256))
REFERENCE, PEER = "uniformer_small_in1k", "efficientnet_b0"
#: Table 11 throughput (images/s, NVIDIA A100, largest batch) where the paper gives one.
PAPER_THROUGHPUT = {"uniformer_xxs_160_in1k": 9382, "uniformer_xs_192_in1k": 4492, "efficientnet_b0": 9501,
                    "mobilevit_xs": 4822}
#: Part 2: UniFormer-XXS 160 keep ratios, with Table 23's GFLOPs (the paper's MACs) and throughput.
SWEEP_MODEL, SWEEP_SIZE = "uniformer_xxs_160_in1k", 160
KEEP_RATIOS = (1.0, 0.8, 0.6, 0.5, 0.4, 0.25)
PAPER_SWEEP = {1.0: (0.91, 8342), 0.8: (0.82, 8452), 0.6: (0.72, 9094), 0.5: (0.67, 9382), 0.4: (0.62, 9692),
               0.25: (0.55, 10162)}


@dataclass
class Result:
    """One measured setting: ``label`` (model, or keep ratio), input side (pixels), parameters (M),
    GMACs per image (a multiply-add = 1), latency at batch 1 (ms), throughput (images/s), and the
    tokens the hourglass blocks processed per image (light models, else None)."""

    label: str
    image_size: int
    params_m: float
    gmacs: float
    latency_ms: float
    throughput_ips: float
    tokens: int | None = None


def count_gmacs(fn: Callable, x: torch.Tensor) -> float:
    """Multiply-adds of ``fn(x)`` per image, in billions (FlopCounterMode FLOPs / 2 / batch)."""
    return count_flops(fn, x) / 2e9 / x.shape[0]


def measure(fns: dict[str, tuple[Callable, int]], device: torch.device, batch_size: int, rounds: int,
            warmup: int) -> dict[str, tuple[float, float, float]]:
    """{label: (fn, input side in pixels)} -> {label: (GMACs per image, latency in ms at batch 1
    (median of 3 x ``rounds``), images/s at ``batch_size`` (from the median of ``rounds`` batches))}.
    Every setting runs once per round (round-robin), after ``warmup`` untimed calls each."""
    inputs = {label: (torch.randn(1, 3, s, s, device=device), torch.randn(batch_size, 3, s, s, device=device))
              for label, (_, s) in fns.items()}
    gmacs = {label: count_gmacs(fn, inputs[label][0]) for label, (fn, _) in fns.items()}

    def timed(which: int, n: int) -> dict[str, float]:
        calls = {label: functools.partial(fn, inputs[label][which]) for label, (fn, _) in fns.items()}
        return median_seconds_round_robin(calls, n, warmup, device)

    latency, batch_time = timed(0, 3 * rounds), timed(1, rounds)
    return {label: (gmacs[label], latency[label] * 1e3, batch_size / batch_time[label]) for label in fns}


def tokens_processed(model, size: int, keep_ratio: float | None, device: torch.device) -> int:
    """Tokens the hourglass blocks of a light model run attention on for one image (score token and
    representative included), summed over the blocks."""
    _, trace = model.forward_trace(torch.zeros(1, 3, size, size, device=device), keep_ratio=keep_ratio)
    return sum(t.tokens_processed for t in trace)


def run_models(device, precision, batch_size, rounds, warmup) -> list[Result]:
    """Part 1: every model of MODELS at its own size."""
    models = {name: build_model(name).to(device) for name, _ in MODELS}
    with torch.inference_mode(), autocast(device, precision):
        numbers = measure({name: (models[name], size) for name, size in MODELS}, device, batch_size, rounds, warmup)
        tokens = {name: tokens_processed(models[name], size, None, device) if hasattr(models[name], "forward_trace")
                  else None for name, size in MODELS}
    return [Result(name, size, sum(p.numel() for p in models[name].parameters()) / 1e6, *numbers[name],
                   tokens[name]) for name, size in MODELS]


def run_keep_ratios(device, precision, batch_size, rounds, warmup) -> list[Result]:
    """Part 2: SWEEP_MODEL at SWEEP_SIZE for every keep ratio (one model, the ratio per call)."""
    model = build_model(SWEEP_MODEL).to(device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    fns = {f"{r:g}": (functools.partial(model, keep_ratio=r), SWEEP_SIZE) for r in KEEP_RATIOS}
    with torch.inference_mode(), autocast(device, precision):
        numbers = measure(fns, device, batch_size, rounds, warmup)
        tokens = {f"{r:g}": tokens_processed(model, SWEEP_SIZE, r, device) for r in KEEP_RATIOS}
    return [Result(label, SWEEP_SIZE, params, *numbers[label], tokens[label]) for label in fns]


def format_models(results: list[Result], batch_size: int) -> str:
    """Part 1 as a text table with throughput ratios."""
    by = {r.label: r for r in results}
    ref, peer = by[REFERENCE], by[PEER]
    columns = ["model", "size", "params (M)", "GMACs", "tokens", "latency b1 (ms)", f"img/s b{batch_size}", "x S-224",
               "x EffNet-B0", "paper x EffNet-B0"]
    rows = []
    for r in results:
        paper = PAPER_THROUGHPUT.get(r.label)
        rows.append([r.label, r.image_size, f"{r.params_m:.1f}", f"{r.gmacs:.2f}",
                     r.tokens if r.tokens is not None else "-", f"{r.latency_ms:.1f}", f"{r.throughput_ips:.1f}",
                     f"{r.throughput_ips / ref.throughput_ips:.2f}", f"{r.throughput_ips / peer.throughput_ips:.2f}",
                     f"{paper / PAPER_THROUGHPUT[PEER]:.2f}" if paper else "-"])
    return text_table(columns, rows, [f"x S-224 / x EffNet-B0: throughput / that of {REFERENCE} / {PEER} (above 1 = "
                                      "faster); paper: Table 11, A100, largest batch"])


def format_keep_ratios(results: list[Result], batch_size: int) -> str:
    """Part 2 as a text table with ratios to keep ratio 1.0 and Table 23's."""
    base = results[0]
    paper_base = PAPER_SWEEP[1.0]
    columns = ["keep ratio", "tokens", "GMACs", "paper GMACs", "latency b1 (ms)", f"img/s b{batch_size}", "GMACs x",
               "latency x", "img/s x", "paper img/s x"]
    rows = []
    for r in results:
        paper_gmacs, paper_ips = PAPER_SWEEP[float(r.label)]
        rows.append([r.label, r.tokens, f"{r.gmacs:.3f}", f"{paper_gmacs:.2f}", f"{r.latency_ms:.1f}",
                     f"{r.throughput_ips:.1f}", f"{r.gmacs / base.gmacs:.2f}", f"{r.latency_ms / base.latency_ms:.2f}",
                     f"{r.throughput_ips / base.throughput_ips:.2f}", f"{paper_ips / paper_base[1]:.2f}"])
    return text_table(columns, rows, [f"{SWEEP_MODEL} at {SWEEP_SIZE} px; ratios to keep ratio 1.0 (img/s x above "
                                      "1 = faster); tokens: processed by the 10 hourglass blocks per image; paper: "
                                      "Table 23 (A100)"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:i]")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="autocast precision (fp16: CUDA only)")
    p.add_argument("--rounds", type=int, default=10,
                   help="timed batch forwards per setting (batch-1 latency: 3 x as many)")
    p.add_argument("--warmup", type=int, default=2, help="untimed forwards per setting before timing")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size of the throughput measurement")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 rounds, 1 warm-up")
    p.add_argument("--json", metavar="OUT", help="also write setup and results as JSON to OUT")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup = 3, 1
    return args


def main(argv: list[str] | None = None) -> tuple[list[Result], list[Result]]:
    """Run both parts; print (and optionally save) the tables."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    setup = describe_setup(device, args.precision)
    print(", ".join(f"{k} {v}" for k, v in setup.items()))
    print(f"batch {args.batch_size}: median of {args.rounds} forwards, batch 1: median of {3 * args.rounds}, after "
          f"{args.warmup} warm-up; round-robin; untrained weights; GMACs from torch.utils.flop_counter", flush=True)
    models = run_models(device, args.precision, args.batch_size, args.rounds, args.warmup)
    print("\n" + format_models(models, args.batch_size), flush=True)
    ratios = run_keep_ratios(device, args.precision, args.batch_size, args.rounds, args.warmup)
    print("\n" + format_keep_ratios(ratios, args.batch_size))
    if args.json:
        payload = {"setup": setup, "args": vars(args), "models": [asdict(r) for r in models],
                   "keep_ratios": [asdict(r) for r in ratios]}
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return models, ratios


if __name__ == "__main__":
    main()
