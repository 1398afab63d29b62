"""Runtime paths side by side, ratios measured in one run: eager fp32, fused, ONNX Runtime, bf16.

    python benchmarks/bench_runtime.py                         # all models, batch 1 and 16
    python benchmarks/bench_runtime.py --models S --batches 1 16 --repeats 5
    python benchmarks/bench_runtime.py --profile S             # where S's time goes, by op class

Models (untrained weights: speed does not depend on them): S = uniformer_small_in1k 224,
B = uniformer_base_in1k 224, XXS-160 = uniformer_xxs_160_in1k 160 (light, token shrinking),
video-S = uniformer_small_k400_16x8 (16 x 224 x 224). Paths:

* eager: the model as ``create_model`` returns it, fp32 (= the official code's speed, issue 13);
* fused: ``uniformer.fuse.fuse_for_inference`` (norms folded into the adjacent linear maps), fp32;
* ort: ``create_model(..., runtime='onnxruntime')`` of the fused model (exported once per size with
  torch.onnx dynamo=True, GELUs fused by ONNX Runtime's optimizer, cached under
  $UNIFORMER_CACHE/onnx; the first run exports), fp32;
* ort-unfused: the same export without the GELU fusion (what the runtime ran before), fp32;
* bf16 / fused-bf16: bf16 autocast (native on CPUs with AVX512-BF16 / AMX; emulated elsewhere);
* bf16-weights: bf16 autocast on ``uniformer.precision.autocast_weights(fused)`` (conv / linear
  weights stored in bf16 once instead of cast on every call; the same outputs as fused-bf16);
* bf16-compiled (opt-in: ``--paths ... bf16-compiled``): bf16-weights through ``torch.compile``
  with inductor's ``freezing`` (weights constant-folded and prepacked); compiles once per input
  size, ~30 s for S on 2 cores, done in the warm-up run (not timed).

Timing: every repeat runs each path once, round-robin (so load changes hit all paths alike), after
``--warmup`` runs; the median per path is reported with its throughput and its ratio to eager.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uniformer  # noqa: E402
from uniformer.fuse import fuse_for_inference  # noqa: E402
from uniformer.precision import autocast_weights, cpu_bf16_flags  # noqa: E402
from uniformer.runtime import with_runtime  # noqa: E402

MODELS = {"S": ("uniformer_small_in1k", (3, 224, 224)), "B": ("uniformer_base_in1k", (3, 224, 224)),
          "XXS-160": ("uniformer_xxs_160_in1k", (3, 160, 160)),
          "video-S": ("uniformer_small_k400_16x8", (3, 16, 224, 224))}
PATHS = ("eager", "fused", "ort", "ort-unfused", "bf16", "fused-bf16", "bf16-weights")
OPT_IN_PATHS = ("bf16-compiled",)

OP_CLASSES = (  # (class, substrings of aten op names), first match wins
    ("attention (SDPA)", ("scaled_dot_product", "_flash_attention", "_efficient_attention")),
    ("convolution", ("conv", "mkldnn_convolution")),
    ("matmul / linear", ("addmm", "::mm", "bmm", "linear", "matmul")),
    ("norm", ("batch_norm", "layer_norm")),
    ("GELU / softmax", ("gelu", "softmax")),
    ("elementwise (add, mul)", ("::add", "::mul", "::div", "::sub")),
    ("data movement (copy, permute, cat)", ("copy", "clone", "contiguous", "cat", "permute", "transpose",
                                             "reshape", "view", "flatten", "unbind", "empty", "select", "slice",
                                             "expand", "as_strided", "stack", "movedim", "_unsafe_view")),
    ("pool / mean", ("mean", "pool")),
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}; torch {torch.__version__}, {torch.get_num_threads()} threads; bf16 flags: "
            f"{', '.join(cpu_bf16_flags()) or 'none'}; load average (1 min) at start {load:.2f}")


def build_paths(name: str, shape: tuple[int, ...], paths: list[str]) -> dict:
    """{path: callable(x)} for model ``name`` (seeded untrained weights, so the ONNX export cache hits
    on the next run)."""
    torch.manual_seed(0)
    model = uniformer.create_model(name)
    fused = fuse_for_inference(model) if any(p.startswith(("fused", "ort", "bf16-")) for p in paths) else None
    cpu = torch.device("cpu")
    out = {}
    for p in paths:
        if p == "eager":
            out[p] = model
        elif p == "fused":
            out[p] = fused
        elif p == "ort":
            ort = with_runtime(fused, "onnxruntime")
            t0 = time.perf_counter()
            ort.session(shape)  # export (or load the cached export) before timing
            print(f"  {name}: ONNX session ready in {time.perf_counter() - t0:.1f} s ({ort.onnx_path(shape).name})",
                  flush=True)
            out[p] = ort
        elif p == "ort-unfused":
            out[p] = unfused_session(fused, shape)
        elif p in ("bf16", "fused-bf16", "bf16-weights", "bf16-compiled"):
            base = {"bf16": model, "fused-bf16": fused}.get(p) or autocast_weights(fused)
            if p == "bf16-compiled":
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True  # constant-fold and prepack the (inference-only) weights
                base = torch.compile(base)

            def run(x, base=base):
                with torch.autocast(cpu.type, dtype=torch.bfloat16):
                    return base(x)
            out[p] = run
    return out


def unfused_session(model: torch.nn.Module, shape: tuple[int, ...]):
    """callable(x) running ``model``'s plain export (no GELU fusion) in ONNX Runtime, same options."""
    import tempfile

    import onnxruntime as ort

    from uniformer.runtime.onnx import export_onnx, session_options

    path = export_onnx(model, Path(tempfile.mkdtemp()) / "plain.onnx", shape)
    sess = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])


def time_paths(fns: dict, x: torch.Tensor, repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per forward of each path, round-robin."""
    times = {p: [] for p in fns}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for p, fn in fns.items():
                t0 = time.perf_counter()
                fn(x)
                if i >= warmup:
                    times[p].append(time.perf_counter() - t0)
    return {p: statistics.median(t) for p, t in times.items()}


def profile(name: str, shape: tuple[int, ...], batch: int, runs: int = 3) -> list[tuple[str, float, float]]:
    """[(op class, ms per forward, share)] of eager fp32 ``name`` at ``batch`` (self CPU time)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model = uniformer.create_model(name)
    x = torch.randn(batch, *shape)
    with torch.inference_mode():
        model(x)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                model(x)
    totals: dict[str, float] = {}
    for ev in prof.key_averages():
        cls = next((c for c, keys in OP_CLASSES if any(k in ev.key for k in keys)), "other")
        totals[cls] = totals.get(cls, 0.0) + ev.self_cpu_time_total / 1000 / runs
    whole = sum(totals.values())
    return sorted(((c, ms, ms / whole) for c, ms in totals.items()), key=lambda r: -r[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS + OPT_IN_PATHS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--profile", nargs="*", default=None, choices=list(MODELS),
                    help="print the eager fp32 time by op class for these models (batch 1 and 16) and exit")
    ap.add_argument("--json", default=None)
    ap.add_argument("--write-table", default=None, metavar="PATH",
                    help="write the measured speed-ups into this path table (uniformer/runtime/paths.json is the "
                         "shipped one, read by uniformer.runtime.select), under this machine's device class")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    if args.profile is not None:
        for key in args.profile or ["S"]:
            name, shape = MODELS[key]
            for b in args.batches:
                print(f"\n{key} ({name}) batch {b}, eager fp32, self CPU time by op class:\n")
                print("| op class | ms / forward | share |\n|---|---:|---:|")
                for cls, ms, share in profile(name, shape, b):
                    print(f"| {cls} | {ms:.1f} | {share:.0%} |")
        return
    rows = []
    for key in args.models:
        name, shape = MODELS[key]
        fns = build_paths(name, shape, args.paths)
        for b in args.batches:
            x = torch.randn(b, *shape)
            med = time_paths(fns, x, args.repeats, args.warmup)
            for p, s in med.items():
                rows.append({"model": key, "batch": b, "path": p, "ms": s * 1000, "per_s": b / s,
                             "x_eager": med["eager"] / s if "eager" in med else float("nan")})
                print(f"{key:8s} b{b:<3d} {p:11s} {s * 1000:9.1f} ms  {b / s:8.2f} /s  {rows[-1]['x_eager']:.2f}x",
                      flush=True)
    print("\n| model | batch | " + " | ".join(args.paths) + " |")
    print("|---|---:|" + "---:|" * len(args.paths))
    for key in args.models:
        for b in args.batches:
            cells = [next(r for r in rows if r["model"] == key and r["batch"] == b and r["path"] == p)
                     for p in args.paths]
            print(f"| {key} | {b} | " + " | ".join(f"{c['per_s']:.2f}/s ({c['x_eager']:.2f}x)" for c in cells) + " |")
    print(f"\nload average (1 min) at end {os.getloadavg()[0]:.2f}; per second = inputs (images or clips) per "
          f"second; (Nx) = throughput / eager fp32 throughput, medians of {args.repeats} round-robin repeats")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    if args.write_table:
        write_table(Path(args.write_table), rows, args.repeats)


#: bench path -> uniformer.runtime.select path (the paths the library can choose)
TABLE_PATHS = {"eager": "eager", "fused": "fused", "ort": "onnxruntime", "bf16-weights": "bf16-weights"}


def write_table(path: Path, rows: list[dict], repeats: int) -> None:
    """Merge this run's speed-ups over eager fp32 into the path table ``path`` under this
    machine's device class: per model family and batch, each path's smallest speed-up over the
    family's measured models (a path must win for all of them)."""
    from uniformer.runtime.select import device_key, model_family

    table = json.loads(path.read_text()) if path.is_file() else {}
    speedups = table.setdefault("speedups", {})
    measured: dict = {}  # family -> batch -> path -> speed-up; families not measured now keep their entries
    for r in rows:
        if r["path"] not in TABLE_PATHS:
            continue
        cell = measured.setdefault(model_family(MODELS[r["model"]][0]), {}).setdefault(str(r["batch"]), {})
        p = TABLE_PATHS[r["path"]]
        cell[p] = round(min(cell.get(p, float("inf")), r["x_eager"]), 3)
    speedups.setdefault(device_key("cpu"), {}).update(measured)
    table.setdefault("machines", {})[device_key("cpu")] = (
        f"{machine()}; medians of {repeats} round-robin repeats (benchmarks/bench_runtime.py --write-table)")
    path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path} ({device_key('cpu')})")


if __name__ == "__main__":
    main()
