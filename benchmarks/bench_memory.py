"""Server memory while every image model is selected in turn: the app's model cache keeps the
resident memory within its budget.

Starts ``python app.py`` with ``UNIFORMER_MODEL_CACHE_MB=--budget-mb`` (offline by default, so the
models run untrained weights: memory does not depend on them), then classifies one small image
with every registered image classifier in turn through the app's API (``gradio_client``,
endpoint ``/classify``), sampling the server's resident set size (VmRSS, every 0.1 s). It prints
the start-up RSS (server answering, no model selected), the RSS after each model, the peak, and
PASS when the peak stays within start-up + budget + ``--slack-mb`` (issue 12: 0.5 GB). With
``--compare-unbounded`` it runs the same sequence with an unbounded cache first (the old
behaviour), for the ratio. Linux only (reads /proc). Usage::

    python benchmarks/bench_memory.py                      # budget 1500 MB, ~3-6 min on 2 CPU cores
    python benchmarks/bench_memory.py --budget-mb 1500 --compare-unbounded
    python benchmarks/bench_memory.py --models uniformer_small_in1k uniformer_base_in1k --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
sys.path.insert(0, str(REPO / "tests"))


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MB (MiB), from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class PeakSampler(threading.Thread):
    """Samples the RSS of ``pid`` every ``interval_s`` seconds until stopped; ``peak`` in MB."""

    def __init__(self, pid: int, interval_s: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval_s, self.peak = pid, interval_s, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (OSError, RuntimeError):
                return
            time.sleep(self.interval_s)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


def run(budget_mb: float | None, names: list[str], image: str, online: bool, log: Path) -> dict:
    """Start the server with ``budget_mb`` (None: unbounded), classify ``image`` with each of
    ``names``; return the measurements (MB, seconds)."""
    from appfiles import app_server, wait_until_up  # the browser tests' server helpers
    from gradio_client import Client, handle_file

    env = {"UNIFORMER_MODEL_CACHE_MB": str(budget_mb or 10 ** 7), "UNIFORMER_PRELOAD": ""}
    if online:
        env["HF_HUB_OFFLINE"] = "0"
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    with app_server(hf_home, log, env) as (process, url):
        wait_until_up(process, url, log, 300)
        client = Client(url, verbose=False)
        time.sleep(1.0)
        start = rss_mb(process.pid)
        sampler = PeakSampler(process.pid)
        sampler.start()
        rows = []
        for name in names:
            t0 = time.perf_counter()
            client.predict(handle_file(image), name, "fp32", api_name="/classify")
            rows.append({"model": name, "seconds": round(time.perf_counter() - t0, 2),
                         "rss_mb": round(rss_mb(process.pid), 1)})
            print(f"  {name:<34} {rows[-1]['seconds']:>7.1f} s   RSS {rows[-1]['rss_mb']:>7.0f} MB", flush=True)
        peak = sampler.stop()
    return {"budget_mb": budget_mb, "start_rss_mb": round(start, 1), "peak_rss_mb": round(peak, 1),
            "end_rss_mb": rows[-1]["rss_mb"] if rows else start, "models": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-mb", type=float, default=1500, help="UNIFORMER_MODEL_CACHE_MB for the run")
    parser.add_argument("--slack-mb", type=float, default=512, help="allowed over start-up + budget (default 0.5 GB)")
    parser.add_argument("--models", nargs="*", help="image models to select (default: every registered one)")
    parser.add_argument("--online", action="store_true", help="do not set HF_HUB_OFFLINE (downloads weights)")
    parser.add_argument("--compare-unbounded", action="store_true", help="first run with an unbounded cache")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args(argv)

    import uniformer
    from PIL import Image

    names = args.models or uniformer.list_models(task="image-classification")
    with tempfile.TemporaryDirectory() as tmp:
        image = str(Path(tmp) / "photo.png")
        Image.new("RGB", (64, 64), (120, 160, 200)).save(image)
        results = {}
        if args.compare_unbounded:
            print("unbounded cache (every model kept):", flush=True)
            results["unbounded"] = run(None, names, image, args.online, Path(tmp) / "unbounded.log")
        print(f"UNIFORMER_MODEL_CACHE_MB={args.budget_mb:g}:", flush=True)
        bounded = results["bounded"] = run(args.budget_mb, names, image, args.online, Path(tmp) / "bounded.log")

    limit = bounded["start_rss_mb"] + args.budget_mb + args.slack_mb
    ok = bounded["peak_rss_mb"] <= limit
    print(f"\nmodels selected : {len(names)}")
    print(f"start RSS       : {bounded['start_rss_mb']:.0f} MB")
    print(f"peak RSS        : {bounded['peak_rss_mb']:.0f} MB (end {bounded['end_rss_mb']:.0f} MB)")
    print(f"budget          : {args.budget_mb:.0f} MB (+ {args.slack_mb:.0f} MB slack: limit {limit:.0f} MB)")
    if "unbounded" in results:
        u = results["unbounded"]
        print(f"unbounded       : start {u['start_rss_mb']:.0f} MB, peak {u['peak_rss_mb']:.0f} MB "
              f"(bounded peak / unbounded peak = {bounded['peak_rss_mb'] / u['peak_rss_mb']:.2f})")
    print(f"result          : {'PASS' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps({**results, "limit_mb": limit, "pass": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
