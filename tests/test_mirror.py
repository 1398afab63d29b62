"""``python -m uniformer mirror`` and ``UNIFORMER_HUB_MIRROR``, offline: conversion of a local
official-format file to safetensors with its model card, the lookup order with a local Hub cache,
and the upload through huggingface_hub's own HfApi against a local server recording the requests."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from hubcache import add_file_to_hub_cache, add_to_hub_cache, official_state_dict

ROOT = Path(__file__).resolve().parents[1]
NAME = "uniformer_xxs_128_in1k"  # official file on Google Drive only


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """An official-format training checkpoint of NAME and its mirror folder."""
    from uniformer.mirror_upload import write_mirror_entry

    tmp = tmp_path_factory.mktemp("mirror")
    original = tmp / "official.pth"
    torch.save({"model": official_state_dict("light_xxs")}, original)
    entry = write_mirror_entry(NAME, original, tmp / "out", "local test file", "me/uniformer-mirror")
    return tmp, original, entry


def test_conversion_keeps_every_tensor_and_loads_like_the_pth(mirrored):
    from safetensors.torch import load_file

    from uniformer import create_model
    from uniformer.hub import read_state_dict

    tmp, original, entry = mirrored
    weights, card = map(Path, entry["files"])
    assert weights == tmp / "out" / NAME / "model.safetensors" and card.name == "README.md"
    converted, official = load_file(str(weights)), read_state_dict(original)
    assert converted.keys() == official.keys() and all(torch.equal(converted[k], official[k]) for k in official)
    x = torch.randn(1, 3, 128, 128)
    a, b = create_model(NAME, checkpoint_path=original), create_model(NAME, checkpoint_path=weights)
    assert b.weights_info.source == "local" and torch.equal(a(x), b(x))


def test_model_card_names_source_license_paper_number_and_sha256(mirrored):
    _, original, entry = mirrored
    text = Path(entry["files"][1]).read_text()
    sha = hashlib.sha256(original.read_bytes()).hexdigest()
    assert entry["sha256"] == sha and f"sha256 `{sha}`" in text and f"{original.stat().st_size} bytes" in text
    assert text.startswith("---\nlicense: mit\n") and "source: local test file" in text
    assert "| top1 | official test | 76.8 | Table 11 |" in text
    assert 'UNIFORMER_HUB_MIRROR"] = "me/uniformer-mirror"' in text


def test_a_wrong_checkpoint_is_refused_before_anything_is_written(tmp_path):
    from uniformer.hub import CheckpointMismatchError
    from uniformer.mirror_upload import write_mirror_entry

    other = tmp_path / "other.pth"
    torch.save(official_state_dict("image_s"), other)
    with pytest.raises(CheckpointMismatchError):
        write_mirror_entry(NAME, other, tmp_path / "out", "x", "me/m")
    assert not (tmp_path / "out").exists()


LOOKUP = """
import json, sys
from uniformer.downloads import fetch_weights
out = {}
for name in sys.argv[1:]:
    path, info = fetch_weights(name)
    out[name] = [info.source, info.repo_id, info.filename, info.note]
print(json.dumps(out))
"""


def _lookup(hf_home, *names, **env):
    env = {**{k: v for k, v in os.environ.items() if k not in ("UNIFORMER_HUB_MIRROR", "UNIFORMER_CHECKPOINT_DIR")},
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "UNIFORMER_CACHE": str(hf_home / "cache"), **env}
    proc = subprocess.run([sys.executable, "-c", LOOKUP, *names], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_lookup_order_mirror_first_after_local_copies(mirrored, tmp_path):
    _, original, entry = mirrored
    repo = "me/uniformer-mirror"
    add_file_to_hub_cache(tmp_path, repo, f"{NAME}/model.safetensors", Path(entry["files"][0]))
    # a Hub-hosted name cached both officially and in the mirror
    small = official_state_dict("image_s")
    add_to_hub_cache(tmp_path, "Sense-X/uniformer_image", "uniformer_small_in1k.pth", small)
    torch.save(small, tmp_path / "small.pth")
    from uniformer.mirror_upload import write_mirror_entry

    small_entry = write_mirror_entry("uniformer_small_in1k", tmp_path / "small.pth", tmp_path / "m", "x", repo)
    add_file_to_hub_cache(tmp_path, repo, "uniformer_small_in1k/model.safetensors", Path(small_entry["files"][0]))

    found = _lookup(tmp_path, NAME, "uniformer_small_in1k", UNIFORMER_HUB_MIRROR=repo)
    assert found[NAME][:3] == ["hub", repo, f"{NAME}/model.safetensors"]
    assert found["uniformer_small_in1k"][:3] == ["hub", repo, "uniformer_small_in1k/model.safetensors"]
    assert "mirror" in found[NAME][3]
    found = _lookup(tmp_path, "uniformer_small_in1k")  # no mirror set: the official file
    assert found["uniformer_small_in1k"][:3] == ["hub", "Sense-X/uniformer_image", "uniformer_small_in1k.pth"]
    local = tmp_path / "local"
    local.mkdir()
    (local / f"{NAME}.pth").write_bytes(original.read_bytes())
    found = _lookup(tmp_path, NAME, UNIFORMER_HUB_MIRROR=repo, UNIFORMER_CHECKPOINT_DIR=str(local))
    assert found[NAME][0] == "local"  # local copies come before the mirror


class _Recorder(BaseHTTPRequestHandler):
    """Answers the Hub API calls of create_repo / create_commit and records them."""

    requests: list = []

    def log_message(self, *args):
        pass

    def _answer(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append((self.path, body, self.headers.get("authorization")))
        base = f"http://127.0.0.1:{self.server.server_port}"
        if self.path == "/api/repos/create":
            return self._answer({"url": f"{base}/me/uniformer-mirror"})
        if "/preupload/" in self.path:
            return self._answer({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                           for f in json.loads(body)["files"]]})
        if "/commit/" in self.path:
            return self._answer({"commitUrl": f"{base}/me/uniformer-mirror/commit/{'a' * 40}", "commitOid": "a" * 40,
                                 "pullRequestUrl": None})
        return self._answer({"error": "unexpected"}, 404)


def test_upload_goes_through_hfapi_create_repo_and_one_commit(mirrored, monkeypatch):
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    from uniformer.mirror_upload import mirror_operations, upload_mirror

    tmp, _, entry = mirrored
    ops = mirror_operations(tmp / "out", [NAME])
    assert all(isinstance(op, CommitOperationAdd) for op in ops)
    assert [op.path_in_repo for op in ops] == [f"{NAME}/model.safetensors", f"{NAME}/README.md"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs offline; this server is local
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = upload_mirror("me/uniformer-mirror", ops, api=HfApi(endpoint=f"http://127.0.0.1:{server.server_port}",
                                                                   token="hf_test_token"))
    finally:
        server.shutdown()
    paths = [p for p, _, _ in _Recorder.requests]
    assert paths == ["/api/repos/create", "/api/models/me/uniformer-mirror/preupload/main",
                     "/api/models/me/uniformer-mirror/commit/main"]
    created = json.loads(_Recorder.requests[0][1])
    assert (created["name"], created["organization"]) == ("uniformer-mirror", "me") and not created.get("private")
    assert all(auth == "Bearer hf_test_token" for _, _, auth in _Recorder.requests)
    lines = [json.loads(line) for line in _Recorder.requests[2][1].decode().splitlines()]
    files = {v["value"]["path"]: base64.b64decode(v["value"]["content"]) for v in lines if v["key"] == "file"}
    assert files == {f"{NAME}/model.safetensors": Path(entry["files"][0]).read_bytes(),
                     f"{NAME}/README.md": Path(entry["files"][1]).read_bytes()}
    assert url.endswith("/commit/" + "a" * 40)


def test_cli_mirror_dry_run_and_offline_failure(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "UNIFORMER_CACHE": str(tmp_path / "c")}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "uniformer", "mirror", *map(str, args)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    proc = run("me/m", "uniformer_xxs_1*", "uniformer_small_backbone", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)["entries"]
    assert [e["name"] for e in entries] == [f"uniformer_xxs_{r}_in1k" for r in (128, 160, 192)]
    assert entries[0]["target"] == "me/m/uniformer_xxs_128_in1k/model.safetensors"
    proc = run("me/m", NAME, "--out", tmp_path / "o", "--no-upload")  # offline, not cached: a clear failure
    assert proc.returncode == 1 and "CheckpointNotAvailableError" in proc.stderr and "Traceback" not in proc.stderr
