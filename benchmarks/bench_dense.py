"""Dense-prediction cost of stage-3 attention: UniFormer-S segmentation (UperNet) at 512x512 and
512x2048 with global, hybrid-32 and window-32 stage 3, in one run, as ratios to global (paper §4.3).

Each (size, mode) runs in a fresh Python process, so its peak memory (``ru_maxrss``) is its own:
the process builds the model (untrained: cost does not depend on the weights), switches stage 3
with ``with_stage3_attention`` (no new weights), counts the forward's multiply-adds with
``torch.utils.flop_counter`` (this first forward is also the warm-up), then times ``--repeats``
forwards of the whole segmentor (image -> logits at 1/4) and of the backbone alone. The settings
run ``--rounds`` times, round-robin, and each time reported is the best (minimum) of all its
forwards: on a shared machine other jobs only ever add time, so the minimum is the least disturbed
estimate. Usage::

    python benchmarks/bench_dense.py --quick          # smoke run: 128x128 and 128x512, 1 round of 1
    python benchmarks/bench_dense.py                  # 512x512 and 512x2048 (CPU: tens of minutes)
    python benchmarks/bench_dense.py --model fpn_global_small --threads 2 --json dense.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from common import ROOT, best_seconds, cpu_name, flop_counter, peak_rss_mb, rss_mb

import uniformer
from uniformer.models.dense import with_stage3_attention

#: (label, stage-3 attention, window size) of the compared settings; the first is the baseline.
MODES = (("global", "global", None), ("hybrid-32", "hybrid", 32), ("window-32", "window", 32))
SIZES = ((512, 512), (512, 2048))
QUICK_SIZES = ((128, 128), (128, 512))


def worker(model_name: str, height: int, width: int, mode: str, window: int | None, repeats: int,
           threads: int | None) -> dict:
    """One measurement, in this (fresh) process: GMACs, best times (ms) and memory (MB)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = with_stage3_attention(uniformer.create_model(model_name), mode, window).eval()
    x = torch.randn(1, 3, height, width)
    with torch.inference_mode():
        loaded_rss, build_peak = rss_mb(), peak_rss_mb()
        with flop_counter() as counter:
            model(x)  # counted, and the warm-up
        full_s = best_seconds(lambda: model(x), repeats)
        peak = peak_rss_mb()
        backbone_s = best_seconds(lambda: model.backbone(x), repeats)
    per_module = counter.get_flop_counts()
    top = type(model).__name__
    backbone_gmacs = sum(per_module.get(f"{top}.backbone", {}).values()) / 2e9
    stage3_attention_gmacs = sum(v for op, v in per_module.get(f"{top}.backbone.stages.2", {}).items()
                                 if "attention" in str(op)) / 2e9
    return {"gmacs": counter.get_total_flops() / 2e9, "backbone_gmacs": backbone_gmacs,
            "stage3_attention_gmacs": stage3_attention_gmacs, "full_ms": full_s * 1e3, "backbone_ms": backbone_s * 1e3,
            "loaded_rss_mb": loaded_rss, "build_peak_mb": build_peak, "peak_rss_mb": peak,
            "forward_extra_mb": max(0.0, peak - loaded_rss), "exact_extra": peak > build_peak,
            "threads": torch.get_num_threads()}


def run_config(args, size: tuple[int, int], mode: str, window: int | None) -> dict:
    """``worker`` in a fresh subprocess -> its result dict. Raises RuntimeError when it fails."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", args.model, "--size", str(size[0]),
           str(size[1]), "--mode", mode, "--window", str(window or 0), "--repeats", str(args.repeats)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    """Text table with ratios to global at the same size."""
    header = (f"{'input':>10} {'stage 3':>10} {'GMACs':>8} {'backbone':>9} {'S3 attn':>8} {'segmentor ms':>13} "
              f"{'backbone ms':>12} {'peak RSS MB':>12} {'fwd extra MB':>13} | {'GMACs x':>8} {'time x':>7} "
              f"{'backbone x':>10} {'peak x':>7} {'extra x':>8}")
    lines = [header, "-" * len(header)]
    for r in rows:
        base = next(b for b in rows if b["size"] == r["size"] and b["label"] == MODES[0][0])
        extra = r["forward_extra_mb"] / base["forward_extra_mb"] if base["forward_extra_mb"] else float("nan")
        lines.append(
            f"{r['size'][0]:>4}x{r['size'][1]:<5} {r['label']:>10} {r['gmacs']:>8.1f} {r['backbone_gmacs']:>9.1f} "
            f"{r['stage3_attention_gmacs']:>8.1f} {r['full_ms']:>13.0f} "
            f"{r['backbone_ms']:>12.0f} {r['peak_rss_mb']:>12.0f} {r['forward_extra_mb']:>12.0f}"
            f"{' ' if r['exact_extra'] else '*'} | "
            f"{r['gmacs'] / base['gmacs']:>8.2f} {r['full_ms'] / base['full_ms']:>7.2f} "
            f"{r['backbone_ms'] / base['backbone_ms']:>10.2f} {r['peak_rss_mb'] / base['peak_rss_mb']:>7.2f} "
            f"{extra:>8.2f}")
    lines.append("ratios: this setting / global at the same input size (below 1 = cheaper)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="upernet_global_small", help="a registered segmentation model")
    p.add_argument("--repeats", type=int, default=2, help="timed forwards per setting and round (after one "
                   "counted warm-up)")
    p.add_argument("--rounds", type=int, default=2, help="fresh processes per setting, run round-robin")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="smoke run: 128x128 and 128x512, 1 repeat")
    p.add_argument("--json", metavar="OUT", help="also write setup and results as JSON to OUT")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--window", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.rounds = 1, 1
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.model, *args.size, args.mode, args.window or None, args.repeats, args.threads)))
        return []
    cpu = cpu_name()
    print(f"{args.model} on CPU ({cpu}, {os.cpu_count()} cores, threads {args.threads or torch.get_num_threads()}), "
          f"torch {torch.__version__}, fp32, batch 1, untrained weights; best of {args.repeats} forward(s) x "
          f"{args.rounds} round(s) (fresh process each, round-robin), after one counted warm-up each", flush=True)
    configs = [(size, label, mode, window) for size in (QUICK_SIZES if args.quick else SIZES)
               for label, mode, window in MODES]
    runs: dict[tuple, list[dict]] = {}
    for r in range(args.rounds):
        for size, label, mode, window in configs:
            result = run_config(args, size, mode, window)
            runs.setdefault((tuple(size), label), []).append(result)
            print(f"  round {r + 1}: {size[0]}x{size[1]} {label}: {result['full_ms']:.0f} ms "
                  f"(backbone {result['backbone_ms']:.0f} ms), peak {result['peak_rss_mb']:.0f} MB", flush=True)
    rows = []
    for size, label, mode, window in configs:
        results = runs[(tuple(size), label)]
        best = {**results[0], "full_ms": min(x["full_ms"] for x in results),
                "backbone_ms": min(x["backbone_ms"] for x in results)}
        rows.append({"size": list(size), "label": label, "mode": mode, "window": window, **best,
                     "all_full_ms": [x["full_ms"] for x in results]})
    print(format_table(rows))
    print("GMACs: multiply-adds of the segmentor forward (image -> logits at 1/4), the paper's 'FLOPs'; backbone: "
          "of its backbone; S3 attn: of stage 3's attention (Q K^T and A V). "
          "peak RSS: ru_maxrss of the process (Python, torch, weights and the forward); fwd extra: peak minus "
          "the RSS after building the model, i.e. the activations of the forward (* = the build's own peak was higher, "
          "so this is a lower bound).")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "cpu": cpu, "rows": rows}, indent=2))
        print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
