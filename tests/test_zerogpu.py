"""ZeroGPU: which event functions get ``@spaces.GPU`` when ``SPACES_ZERO_GPU`` is set (the variable
ZeroGPU hardware sets), and that without it nothing is decorated: the functions Gradio runs are the
plain (session-bound) handlers.

The ZeroGPU case builds the app in a subprocess with ``SPACES_ZERO_GPU=true``: every function
:func:`app.gpu.gpu_task` marks (``gpu_duration``) is one ``spaces.GPU`` decorates on ZeroGPU
hardware. Off that hardware (here: a CPU-only torch, on which ``spaces`` fails to import) the app
must still start: it warns and runs undecorated. That ``gpu_task`` hands the function and duration to
``spaces.GPU`` is checked with a recording stand-in for the ``spaces`` module (the real one cannot
start without ZeroGPU's CUDA torch)."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
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
out = [{"api_name": fn.api_name, "name": name(fn.fn), "zerogpu": hasattr(fn.fn, "zerogpu"),
        "duration": getattr(fn.fn, "gpu_duration", None)} for fn in demo.fns.values()]
print("JSON" + json.dumps(out))
"""


def test_without_zero_gpu_nothing_is_decorated(monkeypatch):
    monkeypatch.delenv(gpu.ZERO_GPU_ENV, raising=False)

    def handler(image, model_name):
        return model_name

    assert gpu.gpu_task(gpu.SHORT)(handler) is handler
    assert spaces.GPU(duration=30)(handler) is handler  # spaces itself is a no-op off ZeroGPU
    bound = WeightsPanel.bind(handler, gpu=gpu.LONG)
    assert not hasattr(bound, "zerogpu") and bound(SessionWeights(), None, "m") == "m"


@pytest.mark.slow
def test_zero_gpu_decorates_the_functions_that_run_models():
    env = {**os.environ, "SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9",
           "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _LIST_DECORATED], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]  # off ZeroGPU hardware the app still builds
    fns = json.loads(proc.stdout.split("JSON", 1)[1])
    durations = {n: f["duration"] for f in fns if f["duration"] for n in (f["api_name"], f["name"])}
    # every task endpoint runs a model (by endpoint name) ...
    assert {n: durations.get(n) for n in ("classify", "digits", "explain", "shrink", "segment", "detect", "pose",
                                          "classify_video")} == {
        "classify": gpu.SHORT, "digits": gpu.SHORT, "explain": gpu.MEDIUM, "shrink": gpu.MEDIUM,
        "segment": gpu.MEDIUM, "detect": gpu.LONG, "pose": gpu.MEDIUM, "classify_video": gpu.LONG}
    # ... and so do the private events behind the views (by function name)
    assert {n: durations.get(n) for n in ("classify_sketch", "click", "cam_view")} == {
        "classify_sketch": gpu.SHORT, "click": gpu.MEDIUM, "cam_view": gpu.MEDIUM}
    # Segmentation's "time all three modes" (a private event; gradio names it after the bound wrapper)
    assert [f["duration"] for f in fns if f["api_name"] == "run"] == [gpu.LONG]
    assert {"prepare_image", "warm_up", "attend", "explain_gradcam", "find_people"} <= set(durations)
    plain = {n for f in fns if not f["duration"] for n in (f["api_name"], f["name"])}
    # status lines, downloads and uploads load weights on the CPU: they need no GPU
    assert {"model_status", "download_official", "use_uploaded", "forget_upload"} <= plain
    # this machine's torch has no CUDA: spaces cannot start, so nothing is wrapped, and the app says why
    assert not any(f["zerogpu"] for f in fns) and "running without @spaces.GPU" in proc.stderr


def test_gpu_task_hands_function_and_duration_to_spaces(monkeypatch):
    calls = []

    class RecordingSpaces(types.ModuleType):
        def GPU(self, duration=None):  # noqa: N802 -- the spaces API's name
            def wrap(fn):
                calls.append((fn, duration))
                return functools.wraps(fn)(lambda *a, **k: fn(*a, **k))
            return wrap

    monkeypatch.setitem(sys.modules, "spaces", RecordingSpaces("spaces"))
    monkeypatch.setenv(gpu.ZERO_GPU_ENV, "true")
    gpu._spaces.cache_clear()
    try:
        def handler(x):
            return x + 1

        task = gpu.gpu_task(gpu.LONG)(handler)
        assert calls == [(handler, gpu.LONG)] and task is not handler and task(1) == 2 and task.gpu_duration == gpu.LONG
    finally:
        gpu._spaces.cache_clear()
