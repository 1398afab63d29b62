"""Set-up files agree: pyproject.toml (dependencies and extras) is the one source of truth, and
requirements*.txt / environment.yml list the same pins; torch and torchvision pinned together; the
wheel carries the label files and shipped weights; the torchvision compatibility step makes the
imports work."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            pins[m[1].lower().replace("_", "-")] = m[2]
    return pins


def test_requirements_and_environment_agree():
    req = _pins(ROOT / "requirements.txt") | _pins(ROOT / "requirements-dev.txt")
    env = _pins(ROOT / "environment.yml")
    assert req == env
    assert req["torch"] == "2.13.0" and req["torchvision"] == "0.28.0"


def test_every_requirement_is_pinned():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert "==" in line, f"{name}: {line} is not pinned"


def test_installed_versions_match_pins():
    from importlib.metadata import version

    for name, pinned in _pins(ROOT / "requirements.txt").items():
        assert version(name).split("+")[0] == pinned, name


@pytest.mark.slow
def test_torchvision_timm_gradcam_import_in_a_fresh_process():
    code = ("import uniformer, torchvision, timm, pytorch_grad_cam; "
            "from uniformer._compat import ensure_torchvision_importable as e; print('ok', e())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_space_front_matter():
    readme = (ROOT / "README.md").read_text()
    front = readme.split("---")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front
    assert f"sdk_version: {_pins(ROOT / 'requirements.txt')['gradio']}" in front


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _spec_pins(specs: list[str]) -> dict[str, str]:
    pins = {}
    for spec in specs:
        m = PIN.match(spec)
        assert m, f"pyproject.toml: {spec} is not pinned"
        pins[m[1].lower().replace("_", "-")] = m[2]
    return pins


def test_pyproject_is_the_source_of_the_requirement_files():
    project = _project()
    core = _spec_pins(project["dependencies"])
    extras = {name: _spec_pins(specs) for name, specs in project["optional-dependencies"].items()}
    assert set(extras) == {"app", "video", "train", "eval", "notebooks", "onnx", "dev"}
    runtime = _pins(ROOT / "requirements.txt")
    dev = _pins(ROOT / "requirements-dev.txt")
    assert runtime == core | extras["app"]  # a Space installs the library and the app
    assert runtime | dev == core | extras["app"] | extras["dev"]
    for name, pins in extras.items():  # one version per package everywhere
        for pkg, version in pins.items():
            assert (core | runtime | dev).get(pkg) == version, f"[{name}] {pkg}=={version} disagrees"
    for name in ("video", "train", "notebooks", "onnx"):  # the test environment has every extra
        assert extras[name].items() <= (runtime | dev).items(), name
    assert {"gdown", "torch", "torchvision", "timm", "huggingface-hub"} <= set(core)
    assert {"jupyterlab", "ipywidgets", "ipykernel"} <= set(extras["notebooks"])
    assert {"gradio", "spaces", "onnxruntime"} <= set(extras["app"])


@pytest.mark.slow
def test_wheel_carries_labels_and_shipped_weights(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "uniformer", src / "uniformer", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wheel = next((tmp_path / "dist").glob("uniformer-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "uniformer").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    assert expected <= names, sorted(expected - names)
    assert any(n.startswith("uniformer/weights/uniformer_xxs_digits/model.safetensors") for n in names)
    assert "uniformer/data/label_files/k400_categories.txt" in names
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for extra in ("app", "video", "train", "eval", "notebooks", "onnx", "dev"):
        assert f"Provides-Extra: {extra}" in meta
    assert "Requires-Dist: gdown==6.5.1" in meta
