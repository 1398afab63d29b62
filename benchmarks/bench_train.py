"""Training throughput of ``uniformer.train`` on CPU: UniFormer-XXS and UniFormer-S, 1 vs 2 processes.

Each setting runs :func:`uniformer.train.fit` (AdamW, cosine schedule, label smoothing: the real
training step) on synthetic images for ``--steps`` optimizer steps after ``--warmup`` steps, and
reports the median throughput of the timed steps in samples/s (global batch / step time), and
the 2-process / 1-process ratio. The 2-process runs use DDP over gloo (``torch.multiprocessing``
spawns the ranks with torchrun's environment variables), each rank half the global batch.

Threads (N = ``--threads``, default all cores): three settings per model -- 1 process x N threads,
1 process x N/2 threads, 2 processes x N/2 threads each. The ratio 2p / 1p compares the 2-process
run with the better 1-process one (what data parallelism buys on this CPU); 2p / 1p(N/2) is the
scaling at equal threads per process. Oversubscribed machines (other jobs on the cores) slow
multi-threaded runs most; numbers there are noisy -- compare ratios within one run. Usage::

    python benchmarks/bench_train.py --quick                 # 64 px, batch 8, 2 timed steps: a smoke run
    python benchmarks/bench_train.py --size 160 --batch-size 32 --steps 10 --json train.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import uniformer  # noqa: E402,F401  (before timm: makes torchvision importable next to a CPU-only torch)

#: (label, registered model name) of the measured models.
MODELS = (("XXS", "uniformer_xxs_160_in1k"), ("S", "uniformer_small_in1k"))


class SyntheticImages(torch.utils.data.Dataset):
    """``length`` random (3, size, size) images with labels i % classes (deterministic per index)."""

    def __init__(self, length: int, size: int, classes: int):
        self.length, self.size, self.classes = length, size, classes

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        return torch.randn(3, self.size, self.size, generator=g), i % self.classes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(rank: int, world: int, port: int, model: str, args, out: str | None, threads: int) -> list[float]:
    """One process of a setting: fit on synthetic data; returns (rank 0 writes) per-step samples/s."""
    from uniformer.train import TrainConfig, fit

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(threads)
    steps = args.warmup + args.steps
    data = SyntheticImages(args.batch_size * steps, args.size, 10)
    cfg = TrainConfig(model=model, data="synthetic", input_size=args.size, batch_size=args.batch_size, max_steps=steps,
                      warmup_steps=1, drop_path=0.1, num_classes=10, log_every_steps=1, progress=False, device="cpu",
                      eval_every_epochs=1000)
    result = fit(cfg, datasets=(data, None, [str(i) for i in range(10)]))
    rates = [h["samples_per_s"] for h in result.history if h["kind"] == "train"][args.warmup:]
    if rank == 0 and out:
        Path(out).write_text(json.dumps(rates))
    return rates


def _spawned(rank: int, world: int, port: int, model: str, args, out: str, threads: int) -> None:
    import warnings

    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    _run(rank, world, port, model, args, out, threads)


def measure(model: str, world: int, threads: int, args) -> float:
    """Median samples/s of ``model`` trained by ``world`` processes of ``threads`` threads each."""
    import tempfile

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:  # every setting in a fresh process: same conditions
        out = os.path.join(tmp, "rates.json")
        mp.spawn(_spawned, args=(world, _free_port(), model, args, out, threads), nprocs=world, join=True)
        return statistics.median(json.loads(Path(out).read_text()))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="64 px, batch 8, 1 warm-up + 2 timed steps")
    p.add_argument("--size", type=int, default=128, help="input side in pixels (default 128)")
    p.add_argument("--batch-size", type=int, default=16, help="global batch per step (default 16)")
    p.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps (default 2)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads in all (default: all cores)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.batch_size, args.steps, args.warmup = 64, 8, 2, 1
    print(f"training throughput on CPU ({platform.processor() or platform.machine()}, {args.threads} threads), "
          f"{args.size}x{args.size} px, global batch {args.batch_size}, median of {args.steps} steps after "
          f"{args.warmup} warm-up")
    full, half = args.threads, max(1, args.threads // 2)
    print(f"{'model':6s} {f'1 proc x {full} thr':>16s} {f'1 proc x {half} thr':>16s} {f'2 proc x {half} thr':>16s} "
          f"{'2p / 1p':>8s} {f'2p / 1p({half})':>12s}")
    rows = {}
    t0 = time.perf_counter()
    for label, name in MODELS:
        one_full = measure(name, 1, full, args)
        one_half = measure(name, 1, half, args) if half != full else one_full
        two = measure(name, 2, half, args)
        best = max(one_full, one_half)
        rows[label] = {"model": name, f"samples_per_s_1proc_{full}threads": one_full,
                       f"samples_per_s_1proc_{half}threads": one_half, f"samples_per_s_2proc_{half}threads": two,
                       "ratio_2p_vs_best_1p": two / best, "ratio_2p_vs_1p_same_threads": two / one_half}
        print(f"{label:6s} {one_full:12.1f} s/s {one_half:12.1f} s/s {two:12.1f} s/s {two / best:8.2f} "
              f"{two / one_half:12.2f}")
    print(f"(samples/s = global batch / step time; total {time.perf_counter() - t0:.0f} s)")
    report = {"size": args.size, "batch_size": args.batch_size, "steps": args.steps, "threads": args.threads,
              "torch": torch.__version__, "results": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
