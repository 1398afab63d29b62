"""ZeroGPU: which event functions get ``@spaces.GPU`` when ``SPACES_ZERO_GPU`` is set (the variable
ZeroGPU hardware sets), and that without it nothing is decorated: the functions Gradio runs are the
plain (session-bound) handlers. The ZeroGPU case runs in a subprocess, since ``spaces`` patches
torch when it is imported there; no GPU and no ZeroGPU service are needed to build the app."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import spaces

from app import gpu
from app.weights import SessionWeights, WeightsPanel

REPO = Path(__file__).resolve().parents[1]

_LIST_DECORATED = """
import json
from app.gpu import prepare
prepare()
from app.builder import build_app
demo = build_app()
def name(f):
    return getattr(f, "__name__", None) or getattr(getattr(f, "func", None), "__name__", "")
out = [{"api_name": fn.api_name, "name": name(fn.fn), "zerogpu": hasattr(fn.fn, "zerogpu")} for fn in demo.fns.values()]
print("JSON" + json.dumps(out))
"""


def test_without_zero_gpu_nothing_is_decorated(monkeypatch):
    monkeypatch.delenv(gpu.ZERO_GPU_ENV, raising=False)

    def handler(image, model_name):
        return model_name

    assert gpu.gpu_task(gpu.SHORT)(handler) is handler
    assert spaces.GPU(duration=30)(handler) is handler  # spaces itself is a no-op off ZeroGPU
    bound = WeightsPanel.bind(handler, gpu=gpu.LONG)
    assert not hasattr(bound, "zerogpu") and bound(None, "m", SessionWeights()) == "m"


def test_zero_gpu_decorates_the_functions_that_run_models():
    env = {**os.environ, "SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9",
           "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _LIST_DECORATED], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fns = json.loads(proc.stdout.split("JSON", 1)[1])
    decorated = {n for f in fns if f["zerogpu"] for n in (f["api_name"], f["name"])}
    named = {"classify", "explain_click", "explain_cam", "token_shrinking", "segment", "segment_compare_modes",
             "detect", "pose", "classify_video"}
    assert named <= decorated  # every named API endpoint that runs a model
    assert {"prepare_image", "warm_up", "attend", "explain_gradcam", "find_people"} <= decorated
    plain = {n for f in fns if not f["zerogpu"] for n in (f["api_name"], f["name"])}
    # status lines, downloads and uploads load weights on the CPU: they need no GPU
    assert {"model_status", "download_official", "use_uploaded", "forget_upload"} <= plain
