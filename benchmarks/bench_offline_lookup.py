"""What a missing network costs: ``python -m uniformer predict photo.jpg`` (weights not cached) with
``HF_HUB_OFFLINE=1`` against the same command without it, measured in one run, interleaved.

Without ``HF_HUB_OFFLINE`` the lookup asks the network (the Hub, then Google Drive for the Drive copy)
before it can say that the file cannot be had; the target (issue 12) is that this costs at most 3 s
more than the offline call. ``--old`` adds the pre-fix behaviour for reference: huggingface_hub's own
``hf_hub_download`` without the probe (its HEAD request is retried with back-off, ~25 s).

Each command runs in a fresh process with an empty ``HF_HOME`` and ``UNIFORMER_CACHE`` (nothing
cached), so process start-up and imports are in both timings; the difference is the network part.
Runs are interleaved (offline, online, offline, online, ...) so that a change of machine load hits
both alike; the script prints each run, the medians and the difference, and exits 1 when the
difference exceeds ``--budget`` seconds. It only means something on a machine WITHOUT network (with
network, the online run downloads the checkpoint). Usage::

    python benchmarks/bench_offline_lookup.py                 # 3 rounds
    python benchmarks/bench_offline_lookup.py --rounds 5 --old
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD = ("import time\nfrom huggingface_hub import hf_hub_download\n"
       "try:\n    hf_hub_download('Sense-X/uniformer_image', 'uniformer_small_in1k.pth')\n"
       "except Exception as e:\n    print(type(e).__name__)\n")


def _run(argv: list[str], env: dict) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return time.perf_counter() - start, proc.returncode, (proc.stderr.strip().splitlines() or [""])[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=3.0, help="allowed extra seconds without HF_HUB_OFFLINE (3)")
    ap.add_argument("--model", default="uniformer_small_in1k", help="a registered name (default: the CLI's)")
    ap.add_argument("--old", action="store_true", help="also time hf_hub_download without the probe")
    args = ap.parse_args(argv)

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        Image.new("RGB", (64, 64), (120, 90, 60)).save(photo)
        cmd = [sys.executable, "-m", "uniformer", "predict", str(photo), "--model", args.model]
        times: dict[str, list[float]] = {"HF_HUB_OFFLINE=1": [], "no HF_HUB_OFFLINE": []}
        if args.old:
            times["old: hf_hub_download"] = []
        for r in range(args.rounds):
            for label in times:
                env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "UNIFORMER_CHECKPOINT_DIR")}
                env.update(HF_HOME=str(Path(tmp) / f"hf{r}"), UNIFORMER_CACHE=str(Path(tmp) / f"cache{r}"))
                if label == "HF_HUB_OFFLINE=1":
                    env["HF_HUB_OFFLINE"] = "1"
                run = [sys.executable, "-c", OLD] if label.startswith("old") else cmd
                seconds, rc, last = _run(run, env)
                times[label].append(seconds)
                print(f"round {r + 1} {label:24s} {seconds:6.2f} s  exit {rc}  {last[:110]}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print("\nmedian seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    extra = med["no HF_HUB_OFFLINE"] - med["HF_HUB_OFFLINE=1"]
    verdict = "OK" if extra <= args.budget else "OVER BUDGET"
    print(f"no-network lookup costs {extra:+.2f} s more than HF_HUB_OFFLINE=1 (budget {args.budget:.1f} s): {verdict}")
    return 0 if extra <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
