"""GPU check: each task's default model on CUDA against CPU, the app's handlers on CUDA, and a short
throughput table. Runs in a few minutes on a CUDA machine; on a CPU-only machine it runs the CPU
parts, says "no CUDA device" and exits 0.

1. Models: the default model of each task (image, video, segmentation, detection, pose; the app's
   defaults). Official weights are used when they are on this machine already (no download: the
   check must not depend on the network), else seeded random weights; either way the CPU and CUDA
   runs share the same weights (built once on CPU, then copied), on the same seeded input.
   - fp32 on CUDA (TF32 off) against fp32 on CPU: ``max|cuda - cpu| / max|cpu| <= 1e-3`` per output.
   - bf16 and fp16 autocast on CUDA: classifiers must give the CPU's top-1 on every input whose fp32
     top-1/top-2 margin exceeds twice the low-precision error (with random weights the margins can be
     tiny, and such inputs are reported as undecided, not as passes); dense outputs report the
     relative error and the agreement of arg-max maps (segmentation pixels, pose heatmap peaks).
2. App handlers (``app.handlers.classify_image``, ``app.video_handlers.classify_video``,
   ``app.pose_handlers.estimate``, when they exist with these signatures) run on the default device,
   i.e. CUDA: each must return without error; the time is printed.
3. Throughput: images (or clips) per second of the image and video default models at a few batch
   sizes and precisions (CUDA events, after warm-up).

Usage::

    python scripts/gpu_check.py                # full check (real input sizes)
    python scripts/gpu_check.py --quick        # small inputs, fewer repeats (CPU smoke run: seconds)
    python scripts/gpu_check.py --json out.json

Exit status: 0 when every check passed (or no CUDA device), 1 when a check failed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FP32_RTOL = 1e-3


@dataclass(frozen=True)
class Task:
    """A task's default model and the (quick, full) input shapes of one forward."""

    task: str
    model: str
    quick: tuple[int, ...]
    full: tuple[int, ...]
    classifier: bool


TASKS = (
    Task("image", "uniformer_small_in1k", (4, 3, 64, 64), (8, 3, 224, 224), True),
    Task("video", "uniformer_small_k400_16x8", (2, 3, 4, 64, 64), (2, 3, 16, 224, 224), True),
    Task("segmentation", "upernet_global_small", (1, 3, 64, 96), (1, 3, 512, 512), False),
    Task("detection", "mask_rcnn_1x_hybrid_small", (1, 3, 64, 96), (1, 3, 800, 1216), False),
    Task("pose", "top_down_256x192_global_small", (2, 3, 64, 48), (8, 3, 256, 192), False),
)


def _build(name: str):
    """The model with official weights when cached locally (no network), else seeded random weights."""
    import uniformer
    from uniformer.downloads import cached_weights

    path = cached_weights(name)
    torch.manual_seed(0)
    if path is not None:
        return uniformer.create_model(name, pretrained=True), "official"
    return uniformer.create_model(name), "random (seeded)"


def _outputs(out) -> list[torch.Tensor]:
    """A model output (tensor, list or tuple of tensors) as a flat list of float tensors on CPU."""
    if isinstance(out, torch.Tensor):
        return [out.detach().float().cpu()]
    return [t for o in out for t in _outputs(o)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _run(model, x, device, precision="fp32") -> list[torch.Tensor]:
    from uniformer.inference import autocast

    with torch.inference_mode(), autocast(device, precision):
        return _outputs(model(x.to(device)))


def _top1_check(ref: torch.Tensor, low: torch.Tensor) -> tuple[bool, str]:
    """Same top-1 on every input whose fp32 margin exceeds twice the low-precision error."""
    err = (low - ref).abs().amax(dim=1)
    top2 = ref.topk(2, dim=1).values
    decisive = (top2[:, 0] - top2[:, 1]) > 2 * err
    same = ref.argmax(1) == low.argmax(1)
    n = int(decisive.sum())
    ok = bool(same[decisive].all())
    return ok, f"top-1 same on {int(same[decisive].sum())}/{n} decisive inputs ({len(ref) - n} undecided)"


def _agreement(task: str, ref: list[torch.Tensor], low: list[torch.Tensor]) -> str:
    if task == "segmentation":
        return f"pixel arg-max agreement {float((ref[0].argmax(1) == low[0].argmax(1)).float().mean()) * 100:.2f}%"
    if task == "pose":
        peaks, low_peaks = ref[0].flatten(2).argmax(-1), low[0].flatten(2).argmax(-1)
        return f"heatmap peaks agree on {float((peaks == low_peaks).float().mean()) * 100:.1f}% of joints"
    return ""


def check_models(quick: bool, device: torch.device | None, tasks: tuple[Task, ...], report: dict) -> bool:
    ok_all = True
    for t in tasks:
        start = time.perf_counter()
        model, weights = _build(t.model)
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(t.quick if quick else t.full, generator=gen)
        ref = _run(model, x, torch.device("cpu"))
        row = {"task": t.task, "model": t.model, "weights": weights, "input": list(x.shape),
               "cpu_ms": round((time.perf_counter() - start) * 1000)}
        print(f"[{t.task}] {t.model} ({weights} weights), input {tuple(x.shape)}: CPU fp32 outputs "
              f"{[tuple(o.shape) for o in ref]}")
        if device is not None:
            model = model.to(device)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            cuda = _run(model, x, device)
            rel = max(_rel(c, r) for c, r in zip(cuda, ref, strict=True))
            passed = rel <= FP32_RTOL
            row["fp32_rel_err"] = rel
            on = device.type.upper()
            print(f"    fp32 {on} vs CPU: max relative error {rel:.2e} (<= {FP32_RTOL:g}): "
                  f"{'ok' if passed else 'FAIL'}")
            for precision in ("bf16", "fp16") if device.type == "cuda" else ("bf16",):
                low = _run(model, x, device, precision)
                lrel = max(_rel(c, r) for c, r in zip(low, ref, strict=True))
                line = f"    {precision} {on} vs CPU fp32: max relative error {lrel:.2e}"
                if t.classifier:
                    same, text = _top1_check(ref[0], low[0])
                    passed = passed and same
                    line += f"; {text}: {'ok' if same else 'FAIL'}"
                else:
                    line += f"; {_agreement(t.task, ref, low)}".rstrip("; ")
                row[f"{precision}_rel_err"] = lrel
                print(line)
            row["passed"] = passed
            ok_all = ok_all and passed
            model.cpu()
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        report.setdefault("models", []).append(row)
    return ok_all


def check_handlers(tasks: tuple[Task, ...], report: dict) -> bool:
    """Run the app's handlers (on the app's default device). Tolerant: a handler that does not exist
    (the app changes) is reported as skipped; one that raises is a failure."""
    import numpy as np

    ok_all = True
    rng = np.random.default_rng(0)
    image = (rng.random((240, 320, 3)) * 255).astype("uint8")
    calls = []
    try:
        from app import handlers

        if any(t.task == "image" for t in tasks):
            calls.append(("image: classify_image",
                          lambda: handlers.classify_image(image, "uniformer_small_in1k", "fp32")))
    except ImportError as e:
        print(f"    app.handlers: skipped ({e})")
    try:
        from app import pose_handlers

        if any(t.task == "pose" for t in tasks):
            calls.append(("pose: estimate", lambda: pose_handlers.estimate(image, "top_down_256x192_global_small",
                                                                         None, False, 0.3)))
    except ImportError as e:
        print(f"    app.pose_handlers: skipped ({e})")
    try:
        from app import video_handlers

        def video():
            clip = video_handlers.write_video_examples()
            path = next(iter(clip.values()))
            return video_handlers.classify_video(str(path), "uniformer_small_k400_16x8", "1x1")

        if any(t.task == "video" for t in tasks):
            calls.append(("video: classify_video", video))
    except ImportError as e:
        print(f"    app.video_handlers: skipped ({e})")
    for label, call in calls:
        start = time.perf_counter()
        try:
            call()
            ms = (time.perf_counter() - start) * 1000
            print(f"    {label}: ok ({ms:.0f} ms)")
            report.setdefault("handlers", {})[label] = round(ms)
        except TypeError as e:
            print(f"    {label}: skipped (signature changed: {e})")
        except Exception as e:  # noqa: BLE001 (report every failure of a handler, keep checking the others)
            ok_all = False
            print(f"    {label}: FAIL ({type(e).__name__}: {e})")
            report.setdefault("handlers", {})[label] = f"FAIL {type(e).__name__}: {e}"
    return ok_all


def _time_ms(model, x, device) -> float:
    """One forward's time in ms: CUDA events on a GPU, perf_counter on CPU."""
    if device.type != "cuda":
        start = time.perf_counter()
        model(x)
        return (time.perf_counter() - start) * 1000
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    model(x)
    b.record()
    torch.cuda.synchronize(device)
    return a.elapsed_time(b)


def throughput(device: torch.device, quick: bool, tasks: tuple[Task, ...], report: dict) -> None:
    from uniformer.inference import autocast

    print("\nthroughput (median of repeats, after one warm-up forward):")
    print(f"    {'model':28s} {'input':>18s} {'batch':>5s} {'precision':>9s} {'items/s':>10s} {'ms/batch':>9s}")
    repeats = 3 if quick else 10
    for t in [t for t in tasks if t.classifier]:
        model, _ = _build(t.model)
        model = model.to(device)
        shape = (t.quick if quick else t.full)[1:]
        batches = (1, 2) if quick else (1, 16, 64) if t.task == "image" else (1, 4, 8)
        for batch in batches:
            x = torch.randn((batch, *shape), device=device)
            for precision in ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16"):
                with torch.inference_mode(), autocast(device, precision):
                    model(x)
                    times = [_time_ms(model, x, device) for _ in range(repeats)]
                ms = sorted(times)[len(times) // 2]
                print(f"    {t.model:28s} {str(tuple(shape)):>18s} {batch:5d} {precision:>9s} "
                      f"{batch / ms * 1000:10.1f} {ms:9.2f}")
                report.setdefault("throughput", []).append(
                    {"model": t.model, "batch": batch, "precision": precision, "ms": ms,
                     "items_per_s": batch / ms * 1000})
        model.cpu()
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small inputs and few repeats")
    ap.add_argument("--device", default="cuda",
                    help="the CUDA device to check (default cuda); 'cpu' runs every part against the CPU itself "
                         "(bf16 only), to exercise the script on a machine without CUDA")
    ap.add_argument("--tasks", default=",".join(t.task for t in TASKS),
                    help="comma-separated subset of " + ", ".join(t.task for t in TASKS))
    ap.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    tasks = tuple(t for t in TASKS if t.task in args.tasks.split(","))
    cuda = torch.cuda.is_available()
    device = torch.device(args.device) if cuda or args.device == "cpu" else None
    report = {"torch": torch.__version__, "cuda": torch.version.cuda,
              "device": torch.cuda.get_device_name(device) if cuda else None, "quick": args.quick}
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device: "
          f"{report['device'] or 'no CUDA device'}\n")
    if not cuda:
        print("no CUDA device" + (": --device cpu checks the CPU against itself (a dry run of every part)\n"
                                  if device is not None else "\n"))
    ok = check_models(args.quick, device, tasks, report)
    if device is not None:
        print(f"\napp handlers on the app's default device ({'CUDA' if cuda else 'CPU'}):")
        ok = check_handlers(tasks, report) and ok
        throughput(device, args.quick, tasks, report)
    else:
        print("\nno CUDA device: the CPU parts ran; CUDA comparisons, app handlers on CUDA and throughput skipped.")
    report["passed"] = ok
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\n{'all checks passed' if ok else 'SOME CHECKS FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
