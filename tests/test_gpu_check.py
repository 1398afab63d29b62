"""scripts/gpu_check.py runs on a machine without CUDA: the CPU parts, then 'no CUDA device', exit 0;
with --device cpu every part (comparisons, app handlers, throughput table) runs against the CPU."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # runs scripts/gpu_check.sh

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: run bash scripts/gpu_check.sh instead")
def test_gpu_check_runs_every_part_on_a_cpu_only_machine(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "UNIFORMER_CACHE": str(tmp_path / "c")}
    out = tmp_path / "report.json"
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--quick", "--device", "cpu", "--tasks", "image",
                           "--json", out], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no CUDA device" in proc.stdout and "all checks passed" in proc.stdout
    assert "fp32 CPU vs CPU: max relative error 0.00e+00" in proc.stdout
    assert "image: classify_image: ok" in proc.stdout and "items/s" in proc.stdout
    report = json.loads(out.read_text())
    assert report["passed"] and report["models"][0]["model"] == "uniformer_small_in1k"
    assert {r["precision"] for r in report["throughput"]} == {"fp32", "bf16"}
