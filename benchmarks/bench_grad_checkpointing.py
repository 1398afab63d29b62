"""Peak training memory with and without gradient checkpointing (``model.set_grad_checkpointing``).

One training step (forward, cross-entropy, backward, AdamW step) of a registered model on a
random batch, each setting in its own fresh process so that peaks do not mix: on CPU the peak
is the process's peak resident memory (``ru_maxrss``) minus its resident memory just before the
step (model, optimizer state and batch already allocated), in MB; on CUDA ``max_memory_allocated``
minus the memory allocated before the step. Also prints the step time (s) and the ratio
checkpointed / plain for both. Gradients are the same in both settings (tests/test_features.py).

The issue's setting is UniFormer-S, batch 32, 224 px (``--batch-size 32 --size 224``; about 10 GB
without checkpointing on CPU: slow on 2 cores); the default is a smaller batch that runs in a
minute. Usage::

    python benchmarks/bench_grad_checkpointing.py                              # S, batch 8, 128 px
    python benchmarks/bench_grad_checkpointing.py --batch-size 32 --size 224   # S, batch 32 (the target)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    """Current resident memory of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def one_step(model_name: str, batch: int, size: int, checkpointing: bool, device: str) -> dict:
    """Run one training step in this process; return its peak memory (MB) and time (s)."""
    sys.path.insert(0, str(ROOT))
    import torch

    import uniformer

    torch.manual_seed(0)
    model = uniformer.create_model(model_name).train().to(device)
    model.set_grad_checkpointing(checkpointing)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():  # optimizer state allocated before the measurement
        opt.state[p]["step"] = torch.tensor(0.0)
        opt.state[p]["exp_avg"] = torch.zeros_like(p)
        opt.state[p]["exp_avg_sq"] = torch.zeros_like(p)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, model.num_classes, (batch,), device=device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2 ** 20
    else:
        before = _rss_mb()
    t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB on Linux
    return {"checkpointing": checkpointing, "peak_mb": round(peak - before, 1), "seconds": round(seconds, 2)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="uniformer_small_in1k", help="registered model (default UniFormer-S)")
    p.add_argument("--batch-size", type=int, default=8, help="batch (default 8; the target setting is 32)")
    p.add_argument("--size", type=int, default=128, help="input side in pixels (default 128; the target is 224)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(one_step(args.model, args.batch_size, args.size, args.child == "on", args.device)))
        return {}
    results = {}
    for mode in ("off", "on"):
        cmd = [sys.executable, __file__, "--child", mode, "--model", args.model, "--batch-size", str(args.batch_size),
               "--size", str(args.size), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[mode]
        print(f"{args.model} batch {args.batch_size} {args.size}px, grad checkpointing {mode:3s}: "
              f"peak training memory {r['peak_mb']:8.1f} MB, step {r['seconds']:.2f} s", flush=True)
    ratio_mem = results["on"]["peak_mb"] / results["off"]["peak_mb"]
    ratio_time = results["on"]["seconds"] / results["off"]["seconds"]
    print(f"checkpointed / plain: memory x{ratio_mem:.2f}, step time x{ratio_time:.2f}")
    summary = {"model": args.model, "batch_size": args.batch_size, "size": args.size, "device": args.device,
               "results": results, "memory_ratio": round(ratio_mem, 3), "time_ratio": round(ratio_time, 3)}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
