"""Speed of the detection ops in ``uniformer.ops``: NMS on 1000 and 5000 boxes and RoIAlign of 1000
RoIs x 256 channels -> 7x7 from a 256x200x336 map (the stride-4 FPN level of an 800x1344 input),
for the pure-PyTorch implementation and, where its compiled ops run, torchvision's (as ratios).

The inputs are synthetic but shaped like Mask R-CNN's: the NMS boxes are RPN-like proposals (about
ten jittered boxes per object, IoU threshold 0.7, so many are suppressed), the RoIs are boxes of
16 to 112 image pixels (the sizes mmdet maps to the stride-4 level) anywhere in the 800x1344 image,
pooled with ``spatial_scale=1/4, sampling_ratio=0, aligned=True``. Each time printed is the best
(minimum) of ``--repeats`` runs after one warm-up: on a shared machine other jobs only ever add
time. Usage::

    python benchmarks/bench_ops.py                 # CPU, all threads
    python benchmarks/bench_ops.py --threads 1     # single-threaded CPU
    python benchmarks/bench_ops.py --device cuda --quick
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from uniformer.ops import nms, roi_align, torchvision_ops_available  # noqa: E402


def proposals(n: int, gen: torch.Generator, per_object: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """n RPN-like boxes in an 800x1344 image: ``per_object`` jittered copies of n / per_object objects."""
    objs = max(1, n // per_object)
    centre = torch.rand(objs, 2, generator=gen) * torch.tensor([1344.0, 800.0])
    size = torch.exp(torch.rand(objs, 2, generator=gen) * 4) * 8
    o = torch.randint(objs, (n,), generator=gen)
    c = centre[o] + torch.randn(n, 2, generator=gen) * size[o] * 0.15
    wh = size[o] * torch.exp(torch.randn(n, 2, generator=gen) * 0.15)
    return torch.cat([c - wh / 2, c + wh / 2], 1), torch.rand(n, generator=gen)


def level0_rois(k: int, gen: torch.Generator) -> torch.Tensor:
    centre = torch.rand(k, 2, generator=gen) * torch.tensor([1344.0, 800.0])
    size = 16 + torch.rand(k, 2, generator=gen) * 96
    return torch.cat([torch.zeros(k, 1), centre - size / 2, centre + size / 2], 1)


def best_time(fn, device: torch.device, repeats: int) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 repeats, 64 channels")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = 2 if args.quick else args.repeats
    channels = 64 if args.quick else 256
    tv = torchvision_ops_available(device)
    impls = ["torch"] + (["torchvision"] if tv else [])
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"torchvision compiled ops: {'yes' if tv else 'no (PyTorch implementation only)'}")
    print(f"{'op':<44} {'impl':<12} {'best (ms)':>10} {'x torchvision':>14}")

    def report(name: str, fns: dict) -> None:
        times = {impl: best_time(fn, device, repeats) for impl, fn in fns.items()}
        for impl, t in times.items():
            ratio = f"{t / times['torchvision']:.2f}" if "torchvision" in times else "-"
            print(f"{name:<44} {impl:<12} {t * 1e3:>10.1f} {ratio:>14}")

    for n in (1000, 5000):
        boxes, scores = (t.to(device) for t in proposals(n, gen))
        kept = nms(boxes, scores, 0.7, impl="torch").numel()
        report(f"nms {n} boxes, IoU 0.7 ({kept} kept)",
               {impl: (lambda impl=impl: nms(boxes, scores, 0.7, impl=impl)) for impl in impls})

    feats = torch.randn(1, channels, 200, 336, generator=gen).to(device)
    rois = level0_rois(1000, gen).to(device)
    report(f"roi_align 1000 RoIs x {channels} ch -> 7x7, 200x336",
           {impl: (lambda impl=impl: roi_align(feats, rois, 7, 0.25, 0, True, impl=impl)) for impl in impls})
    if tv:
        diff = (roi_align(feats, rois, 7, 0.25, 0, True, impl="torch")
                - roi_align(feats, rois, 7, 0.25, 0, True, impl="torchvision")).abs().max().item()
        print(f"roi_align max |torch - torchvision| = {diff:.2e}")


if __name__ == "__main__":
    main()
