"""What app users wait for, before vs after issue 13's changes, measured side by side in one run.

    python benchmarks/bench_app.py                      # every task, 2 rounds
    python benchmarks/bench_app.py --tasks classify segment --rounds 3

Every task runs through the functions the app's handlers call (the handlers themselves where they
are pure: Explain), with untrained weights (speed does not depend on them), on 2-core CPU defaults.
"before" = the configuration the app had (fp32 eager, full-size decoding); "after" = what it runs
now (the hardware's default precision, bf16 where native; reduced JPEG decoding for Segmentation).
Rows:

* classify: ``predict_image`` UniFormer-S on a photo: fp32 | bf16 | ONNX Runtime (fp32); and per
  image-model family (S, XXS-160) fp32 eager vs the app's default path (``uniformer.runtime.select``);
* explain first click / slider / Grad-CAM: ``app.explain_handlers`` (click after the caches are
  cleared; a slider move; the CAM panel on stage 4; the first CAM call of the process includes
  importing pytorch-grad-cam) - code changes, not a configuration, so only "after";
* segment 512 (3 MP photo) and segment 24 MP: ``segment_image`` upernet_global_small, short side 512:
  before = ``load_image`` + fp32, after = what the app runs: ``load_image_reduced`` to
  ``MAX_SEGMENT_SIDE``, its ``working_copy`` (~1 MP for a 4:3 photo) + default precision;
* detect 800: ``detect_objects`` mask_rcnn_1x_hybrid_small at (1333, 800): fp32 | bf16;
* video 16x8 1x1: one 16 x 224 x 224 clip through uniformer_small_k400_16x8: fp32 | bf16.

Each (task, configuration) is run once per round, configurations interleaved; medians are printed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uniformer  # noqa: E402,F401  (first: makes torchvision importable next to a CPU-only torch)
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from uniformer.data import load_image  # noqa: E402
from uniformer.data.images import load_image_reduced  # noqa: E402
from uniformer.precision import default_precision  # noqa: E402

TASKS = ("classify", "explain", "segment", "detect", "video")


def photos(tmp: Path) -> dict[str, Path]:
    """A 3 MP and a 24 MP JPEG of the same scene (skimage's chelsea, upscaled)."""
    from skimage import data

    base = Image.fromarray(data.chelsea())
    out = {}
    for label, size in (("3 MP", (2000, 1500)), ("24 MP", (6000, 4000))):
        path = tmp / f"chelsea_{size[0]}x{size[1]}.jpg"
        base.resize(size, Image.BICUBIC).save(path, quality=90)
        out[label] = path
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def classify_configs(photo: Path) -> dict:
    from uniformer import create_model
    from uniformer.inference import predict_image
    from uniformer.runtime import with_runtime

    torch.manual_seed(0)  # the same untrained weights every run: the ONNX export cache hits
    model = create_model("uniformer_small_in1k")
    ort = with_runtime(model, "onnxruntime")
    ort.session((3, 224, 224))  # export / load outside the timing
    out = {"classify S (fp32 eager)": lambda: predict_image(model, photo, precision="fp32"),
           "classify S (bf16)": lambda: predict_image(model, photo, precision="bf16"),
           "classify S (ONNX Runtime)": lambda: predict_image(ort, photo)}
    out.update(default_path_configs(photo))
    return out


def default_path_configs(photo: Path) -> dict:
    """Per image-model family (S: image, XXS-160: light): fp32 eager vs the path the app picks by
    default (``uniformer.runtime.select``, precision 'auto', batch 1; prepared before timing)."""
    from uniformer import create_model
    from uniformer.inference import predict_image
    from uniformer.runtime.select import prepare_path, select_path

    out = {}
    for name in ("uniformer_small_in1k", "uniformer_xxs_160_in1k"):
        torch.manual_seed(0)
        model = create_model(name)
        choice = select_path(model, "cpu", "auto", batch=1)
        run = prepare_path(model, choice)
        if choice.path == "onnxruntime":
            run.session(tuple(model.pretrained_cfg.input_size))  # export / load outside the timing
        out[f"classify {name} (fp32 eager)"] = lambda m=model: predict_image(m, photo, precision="fp32")
        out[f"classify {name} (app default: {choice.path}, {choice.precision})"] = (
            lambda r=run, c=choice: predict_image(r, photo, precision=c.precision))
    return out


def explain_configs(photo: Path) -> dict:
    import gradio as gr

    from app import explain_handlers as xh
    from app.models import get_model

    name = "uniformer_small_in1k"
    get_model(name)
    sel = gr.SelectData(None, {"index": [300, 120], "value": None})
    holder = {}

    def first_click():
        xh.analyses.clear()
        xh.extras.clear()
        state = xh.prepare_image(str(photo), name)[2]
        holder["state"] = xh.click(state, 9, 0, sel)[0]

    def slider():
        xh.rerender(holder["state"], 6, 1)

    def cam():
        xh.extras.clear()
        xh.cam_view(holder["state"], "GradCAM", "stage 4", -1)

    return {"explain first click": first_click, "explain slider move": slider, "Grad-CAM": cam}


def segment_configs(shots: dict[str, Path]) -> dict:
    from app.segmentation_handlers import MAX_SEGMENT_SIDE, working_copy
    from uniformer import create_model
    from uniformer.tasks import segment_image

    model = create_model("upernet_global_small")
    after = default_precision("cpu")
    out = {}
    for label, path in shots.items():
        out[f"segment 512, {label} (before: full decode, fp32)"] = (
            lambda p=path: segment_image(model, load_image(p), precision="fp32"))
        out[f"segment 512, {label} (after: the app's working copy, {after})"] = (
            lambda p=path: segment_image(model, working_copy(load_image_reduced(p, MAX_SEGMENT_SIDE)), precision=after))
    return out


def detect_configs(photo: Path) -> dict:
    from uniformer import create_model
    from uniformer.tasks import detect_objects

    model = create_model("mask_rcnn_1x_hybrid_small")
    img = load_image(photo)
    return {"detect 800 (fp32)": lambda: detect_objects(model, img, precision="fp32"),
            "detect 800 (bf16)": lambda: detect_objects(model, img, precision="bf16")}


def video_configs() -> dict:
    from uniformer import create_model

    model = create_model("uniformer_small_k400_16x8")
    clip = torch.randn(1, 3, 16, 224, 224)

    def run(precision):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            model(clip)
    return {"video S 16x8, 1x1 view (fp32)": lambda: run("fp32"), "video S 16x8, 1x1 view (bf16)": lambda: run("bf16")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, default precision here: "
          f"{default_precision('cpu')}, load average at start {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        shots = photos(Path(tmp))
        configs = {}
        builders = {"classify": lambda: classify_configs(shots["3 MP"]),
                    "explain": lambda: explain_configs(shots["3 MP"]),
                    "segment": lambda: segment_configs(shots), "detect": lambda: detect_configs(shots["3 MP"]),
                    "video": video_configs}
        for task in args.tasks:
            configs.update(builders[task]())
        samples = {k: [] for k in configs}
        first = {}
        for r in range(args.rounds + 1):  # round 0 = warm-up (kept only as the "first call" figure)
            for k, fn in configs.items():
                s = timed(fn)
                if r == 0:
                    first[k] = s
                else:
                    samples[k].append(s)
                print(f"  round {r} {k}: {s:.2f} s", flush=True)
    print(f"\n| task (configuration) | first call (s) | median of {args.rounds} (s) |\n|---|---:|---:|")
    for k, v in samples.items():
        print(f"| {k} | {first[k]:.2f} | {statistics.median(v):.2f} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
