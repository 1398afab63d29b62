"""Set-up files agree: pins in requirements*.txt == environment.yml; torch and torchvision pinned together;
the torchvision compatibility step is a no-op when not needed and makes the imports work."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
