"""This implementation's paths against the official UniFormer code at equal weights, timed in one run.

    python benchmarks/bench_vs_official.py --official-dir PATH             # S, B, XXS-160; batch 1 and 16
    python benchmarks/bench_vs_official.py --official-dir PATH --models S --batches 1 --repeats 1

PATH: a copy of the official repository's ``image_classification`` folder (or its ``models``
folder) holding ``models/uniformer.py`` and ``models/uniformer_light.py`` (github.com/Sense-X/UniFormer;
e.g. ``git archive`` of a clone). Without ``--official-dir`` (or without those files) the script says
so and exits 0: nothing is measured.

For each model the official model is built (its own constructor and init), its state dict is mapped
with this library's ``checkpoint_filter_fn`` and loaded into ours (so both run the same weights:
checked, fp32 logits within 1e-4 relative), then the paths run round-robin (every repeat runs each
path once, after ``--warmup`` runs) on the same random input:

* official fp32 eager (the baseline, 1.00) and official bf16 autocast;
* ours eager fp32, ours ONNX Runtime (``runtime="onnxruntime"``), ours ``autocast_weights`` bf16
  (bf16 stored weights under bf16 autocast), and ours "selected": what
  :func:`uniformer.runtime.select.select_path` picks for ``precision="auto"`` on this machine.

Ratio = throughput / official fp32 eager throughput, from the median time of each path. The
official light model keeps its token-shrinking state in module globals: it runs single-threaded
in this process, as it does here.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import uniformer  # noqa: E402
from bench_runtime import machine, time_paths  # noqa: E402
from uniformer.precision import autocast_weights  # noqa: E402
from uniformer.runtime import with_runtime  # noqa: E402
from uniformer.runtime.select import prepare_path, select_path  # noqa: E402

#: key -> (our registered name, official module, official constructor, input shape (C, H, W))
MODELS = {
    "S": ("uniformer_small_in1k", "uniformer", "uniformer_small", (3, 224, 224)),
    "B": ("uniformer_base_in1k", "uniformer", "uniformer_base", (3, 224, 224)),
    "XXS-160": ("uniformer_xxs_160_in1k", "uniformer_light", "uniformer_xxs", (3, 160, 160)),
}
PATHS = ("official fp32", "ours eager", "ours ONNX Runtime", "official bf16 autocast", "ours autocast_weights bf16",
         "ours selected")


def official_files(official_dir: str | None) -> Path | None:
    """The folder holding the official ``uniformer.py`` and ``uniformer_light.py``, or None."""
    if not official_dir:
        return None
    root = Path(official_dir)
    for folder in (root / "models", root, root / "image_classification" / "models"):
        if (folder / "uniformer.py").is_file() and (folder / "uniformer_light.py").is_file():
            return folder
    return None


def load_official(folder: Path, module: str):
    """Import the official model file ``folder/<module>.py`` under a private name (it needs timm)."""
    name = f"official_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / f"{module}.py")
    mod = sys.modules[name] = importlib.util.module_from_spec(spec)  # timm's register_model looks it up
    spec.loader.exec_module(mod)
    return mod


def equal_weight_pair(folder: Path, key: str) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """(official model, our model with the official model's weights, max relative fp32 logit difference)."""
    name, module, ctor, shape = MODELS[key]
    torch.manual_seed(0)
    official = getattr(load_official(folder, module), ctor)().eval()
    if getattr(official, "cls_token", None) is not None:  # light models: a trained-like (non-zero) score token;
        with torch.no_grad():  # the untrained zero one makes every first score tie, and the official code's
            official.cls_token.normal_()  # unstable sort breaks ties differently from our stable one
    ours = uniformer.create_model(name).eval()
    entry = uniformer.get_entry(name)
    missing, unexpected = ours.load_state_dict(entry.filter_fn(official.state_dict(), ours), strict=False)
    if unexpected or [k for k in missing if not k.endswith("num_batches_tracked")]:
        raise RuntimeError(f"{key}: official weights do not map onto {name}: missing {missing}, "
                           f"unexpected {unexpected}")
    x = torch.randn(2, *shape)
    with torch.inference_mode():
        ref, got = official(x), ours(x)
    return official, ours, ((got - ref).abs().max() / ref.abs().max()).item()


def build_paths(official: torch.nn.Module, ours: torch.nn.Module, shape: tuple[int, ...],
                batch: int) -> tuple[dict, str]:
    """{path: callable(x)} and the selected path's name."""
    ort = with_runtime(ours, "onnxruntime")
    ort.session(shape)  # export (or load the cached export) outside the timing
    bf16_ours = autocast_weights(ours)
    choice = select_path(ours, "cpu", precision="auto", batch=batch)
    selected = prepare_path(ours, choice)

    def bf16(model):
        def run(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x)
        return run

    fns = {"official fp32": official, "ours eager": ours, "ours ONNX Runtime": ort,
           "official bf16 autocast": bf16(official), "ours autocast_weights bf16": bf16(bf16_ours),
           "ours selected": selected}
    return fns, choice.path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official-dir", default=None, help="the official image_classification folder (or its models/)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    folder = official_files(args.official_dir)
    if folder is None:
        print("skipped: the official model files are needed (--official-dir pointing at a copy of Sense-X/UniFormer's "
              "image_classification folder with models/uniformer.py and models/uniformer_light.py)"
              + (f"; not found under {args.official_dir}" if args.official_dir else ""))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}", flush=True)
    rows = []
    for key in args.models:
        official, ours, diff = equal_weight_pair(folder, key)
        print(f"{key}: official weights mapped with checkpoint_filter_fn, fp32 logits max rel diff {diff:.1e}",
              flush=True)
        if diff > 1e-4:
            raise SystemExit(f"{key}: ours and the official model disagree ({diff:.1e}): not the same function")
        shape = MODELS[key][3]
        for b in args.batches:
            t0 = time.perf_counter()
            fns, chosen = build_paths(official, ours, shape, b)
            print(f"  paths ready in {time.perf_counter() - t0:.1f} s; selected path at batch {b}: {chosen}",
                  flush=True)
            med = time_paths(fns, torch.randn(b, *shape), args.repeats, args.warmup)
            base = med["official fp32"]
            row = {"model": key, "batch": b, "selected": chosen,
                   "ms": {p: s * 1000 for p, s in med.items()}, "ratio": {p: base / s for p, s in med.items()}}
            rows.append(row)
            print(f"  {key} b{b}: " + ", ".join(f"{p} {row['ratio'][p]:.2f}x" for p in PATHS), flush=True)
    cols = [p for p in PATHS if p != "official fp32"]
    print("\n| model, batch | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for r in rows:
        cells = [f"{r['ratio'][p]:.2f}" + (f" ({r['selected']})" if p == "ours selected" else "") for p in cols]
        print(f"| {r['model']}, {r['batch']} | " + " | ".join(cells) + " |")
    print(f"\nratio = throughput / official fp32 eager throughput (medians of {args.repeats} round-robin repeats); "
          f"load average (1 min) at end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
