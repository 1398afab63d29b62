"""Detection cost of stage-3 attention: Mask R-CNN with UniFormer-S at 800x1333 with hybrid-14 (the
trained setting), window-14 and global stage 3, in one run, as ratios to hybrid-14, next to the
paper's Table 20 FLOPs (measured there at 800x1280: W-14 250G, H-14 269G, G 326G).

One process builds ``mask_rcnn_1x_hybrid_small`` (untrained: cost does not depend on the weights)
and its two twins (``with_stage3_attention``: no new weights), counts multiply-adds of one whole
``predict`` with ``torch.utils.flop_counter`` (this is also the warm-up), then times ``--repeats``
whole ``predict`` calls per setting, round-robin, reporting each setting's best (minimum) time and
its split over the steps (backbone, neck, RPN, RoI heads, mask pasting). The input is a padded
800x1344 tensor, as the official pipeline makes of a 4:3 photo's 800x1067 (or a 800x1333 one).

Untrained weights score every class near 1/81, so at the official threshold 0.05 no box survives
and the mask head never runs; ``--score-thr 0`` keeps the 100 best boxes, so the mask head's cost is
included (as on a real photo with trained weights). Usage::

    python benchmarks/bench_detection.py --quick              # smoke run: 320x512, 1 repeat
    python benchmarks/bench_detection.py                      # 800x1344, 2 repeats (CPU: minutes)
    python benchmarks/bench_detection.py --score-thr 0 --threads 2 --json det.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from common import cpu_name, flop_counter

import uniformer
from uniformer.heads.roi import RCNNTestConfig
from uniformer.models.dense import with_stage3_attention

#: (label, stage-3 attention, window size, paper Table 20 GFLOPs at 800x1280); the first is the baseline.
MODES = (("hybrid-14", "hybrid", 14, 269), ("window-14", "window", 14, 250), ("global", "global", 14, 326))


def measure(args) -> list[dict]:
    """GMACs and best times of each setting (see the module docstring)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = uniformer.create_model(args.model).eval()
    h, w = args.size
    x = torch.randn(1, 3, h, w)
    rcnn = RCNNTestConfig(score_thr=args.score_thr)
    models, rows = {}, {}
    with torch.inference_mode():
        for label, mode, window, paper in MODES:
            model = with_stage3_attention(base, mode, window)
            with flop_counter() as counter:
                out = model.predict(x, rcnn=rcnn)  # counted, and the warm-up
            per_module = counter.get_flop_counts()  # predict() is not a forward: the backbone is a top module
            rows[label] = {"label": label, "paper_gflops": paper, "gmacs": counter.get_total_flops() / 2e9,
                           "backbone_gmacs": sum(per_module.get(type(model.backbone).__name__, {}).values()) / 2e9,
                           "detections": len(out.detections[0].scores), "best_s": float("inf"), "times": {}}
            models[label] = model
        for _ in range(args.repeats):
            for label, model in models.items():  # round-robin: load changes hit every setting alike
                start = time.perf_counter()
                out = model.predict(x, rcnn=rcnn)
                elapsed = time.perf_counter() - start
                if elapsed < rows[label]["best_s"]:
                    rows[label]["best_s"], rows[label]["times"] = elapsed, dict(out.times)
    return list(rows.values())


def format_table(rows: list[dict]) -> str:
    base = rows[0]
    steps = list(base["times"])
    header = (f"{'stage 3':>10} {'paper GFLOPs':>12} {'GMACs':>7} {'backbone':>9} {'dets':>5} {'total ms':>9} "
              + " ".join(f"{s + ' ms':>13}" for s in steps) + f" | {'paper x':>7} {'GMACs x':>7} {'time x':>7}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['label']:>10} {r['paper_gflops']:>12} {r['gmacs']:>7.1f} {r['backbone_gmacs']:>9.1f} "
                     f"{r['detections']:>5} {r['best_s'] * 1e3:>9.0f} "
                     + " ".join(f"{r['times'].get(s, 0.0):>13.0f}" for s in steps)
                     + f" | {r['paper_gflops'] / base['paper_gflops']:>7.2f} {r['gmacs'] / base['gmacs']:>7.2f} "
                     f"{r['best_s'] / base['best_s']:>7.2f}")
    lines.append(f"ratios: this setting / {base['label']} (below 1 = cheaper). Paper FLOPs are for 800x1280 "
                 "inputs and count the whole detector; GMACs here are multiply-adds of the whole predict at "
                 "the input size above.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mask_rcnn_1x_hybrid_small", help="a registered Mask R-CNN model (S or B)")
    p.add_argument("--size", type=int, nargs=2, default=(800, 1344), metavar=("H", "W"),
                   help="padded network input (default 800 1344: a 800x1333 image padded to 32)")
    p.add_argument("--repeats", type=int, default=2, help="timed predicts per setting (after one counted warm-up)")
    p.add_argument("--score-thr", type=float, default=0.05, help="second-stage score threshold (official 0.05; "
                   "0 keeps 100 boxes, so the mask head runs)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="smoke run: 320x512, 1 repeat")
    p.add_argument("--json", metavar="OUT", help="also write setup and results as JSON to OUT")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.repeats = (320, 512), 1
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    cpu = cpu_name()
    print(f"{args.model} at {args.size[0]}x{args.size[1]} on CPU ({cpu}, {os.cpu_count()} cores, threads "
          f"{args.threads or torch.get_num_threads()}), score_thr {args.score_thr}, best of {args.repeats}")
    rows = measure(args)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "cpu": cpu, "torch": torch.__version__,
                                               "rows": rows}, indent=2, default=list))
    return rows


if __name__ == "__main__":
    main()
