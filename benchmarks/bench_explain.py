"""The Explain tab's time per interaction against plain inference, as ratios, measured in one run.

For each model (default UniFormer-S and -B at 224, CPU), on one photo, through the app's own
handlers (:mod:`app.explain_handlers`, caches cleared at the start of every round):

* plain inference: ``predict_image`` (decode, preprocess, forward, softmax), the 1.00 baseline;
* analyze: ``uniformer.explain.analyze`` alone (decode, preprocess, forward with attention capture);
* first click: a click on a new image (captured forward + stage-2 ERF + every view drawn);
* new point: a click on another stage-2 token of the same image (its ERF + redraw, no full forward);
* slider move: a layer or head change (redraw from the cache, no network), median over 6 moves;
* Grad-CAM: the CAM panel's GradCAM on stage 4 (forward + backward on a weight-sharing copy).

Weights are untrained (speed does not depend on them). Models are timed round-robin, so load
changes during the run hit all of them alike. Usage::

    python benchmarks/bench_explain.py                   # S and B, 5 rounds, torch's thread count
    python benchmarks/bench_explain.py --threads 1 --rounds 3 --json out.json
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
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the app's loader falls back to untrained weights at once
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import uniformer  # noqa: E402  (first: makes torchvision importable next to a CPU-only torch)
import gradio as gr  # noqa: E402
import torch  # noqa: E402

import uniformer.explain as E  # noqa: E402
from app import explain_handlers as xh  # noqa: E402
from app.examples import write_examples  # noqa: E402
from app.models import get_model  # noqa: E402
from uniformer.inference import predict_image  # noqa: E402

DEFAULT_MODELS = ("uniformer_small_in1k", "uniformer_base_in1k")
COLUMNS = ("plain inference", "analyze", "first click", "new point", "slider move", "Grad-CAM")
SLIDER_MOVES = ((9, 0), (9, 3), (2, 0), (6, 1), (12, 0), (14, 2))  # (layer, head) of the tab's sliders


def _seconds(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _select(x: int, y: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": [x, y], "value": None})


def one_round(name: str, photo: str) -> dict[str, float]:
    """Seconds per interaction for ``name`` on ``photo``, starting from empty explain caches."""
    model = get_model(name).model
    xh.analyses.clear()
    xh.extras.clear()
    times = {}
    with torch.inference_mode():
        times["plain inference"], _ = _seconds(lambda: predict_image(model, photo))
    times["analyze"], _ = _seconds(lambda: E.analyze(model, photo))
    xh.analyses.clear()
    state = xh.prepare_image(photo, name)[2]  # the upload event (decode, geometry), not timed
    times["first click"], out = _seconds(lambda: xh.click(state, 9, 0, _select(300, 120)))
    state = out[0]
    times["new point"], _ = _seconds(lambda: xh.click(state, 9, 0, _select(180, 200)))
    moves = [_seconds(lambda lh=lh: xh.rerender(state, *lh))[0] for lh in SLIDER_MOVES]
    times["slider move"] = statistics.median(moves)
    times["Grad-CAM"], _ = _seconds(lambda: xh.cam_view(state, "GradCAM", "stage 4", -1))
    return times


def benchmark(names: list[str], photo: str, rounds: int, warmup: int) -> dict[str, dict[str, float]]:
    """Median seconds per interaction and model over ``rounds`` round-robin rounds (after ``warmup``)."""
    for name in names:
        get_model(name)
        for _ in range(warmup):
            one_round(name, photo)
    samples = {name: {c: [] for c in COLUMNS} for name in names}
    for _ in range(rounds):
        for name in names:
            for column, seconds in one_round(name, photo).items():
                samples[name][column].append(seconds)
    return {name: {c: statistics.median(v) for c, v in cols.items()} for name, cols in samples.items()}


def format_table(results: dict[str, dict[str, float]]) -> str:
    """Milliseconds per interaction and the ratio to plain inference (x)."""
    header = f"{'model':<22}" + "".join(f"{c:>22}" for c in COLUMNS)
    lines = [header, "-" * len(header)]
    for name, t in results.items():
        base = t["plain inference"]
        cells = [f"{t[c] * 1e3:9.0f} ms ({t[c] / base:5.2f}x)" for c in COLUMNS]
        lines.append(f"{name:<22}" + "".join(f"{cell:>22}" for cell in cells))
    lines.append("(x) = time / plain inference of the same model, measured in this run; slider move = median of "
                 f"{len(SLIDER_MOVES)} layer/head changes")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="registered image classifiers")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds per model first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--image", default=None, help="photo to explain (default: the app's 'chelsea' example)")
    p.add_argument("--json", metavar="OUT", help="also write setup and results as JSON to OUT")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    photo = args.image or str(write_examples()["chelsea"])
    setup = {"device": "cpu", "hardware": f"{platform.processor() or platform.machine()}, "
                                          f"{torch.get_num_threads()} threads", "cpu_count": os.cpu_count(),
             "torch": torch.__version__, "uniformer": uniformer.__version__, "image": Path(photo).name,
             "input": "224x224 (each checkpoint's eval crop)"}
    print(", ".join(f"{k} {v}" for k, v in setup.items()))
    print(f"median of {args.rounds} rounds after {args.warmup} warm-up; models round-robin; untrained weights",
          flush=True)
    results = benchmark(args.models, photo, args.rounds, args.warmup)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"setup": setup, "args": vars(args), "seconds": results}, indent=2))
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
