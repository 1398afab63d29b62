"""Download by name: every registered name's source, and the Google Drive path end to end against a
local HTTP server on 127.0.0.1 (real gdown, real files, no monkeypatched success)."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import uniformer
from uniformer import CheckpointNotAvailableError
from uniformer.downloads import (SOURCES, WeightsDownloadError, cached_weights, download_weights, downloads_table,
                                 drive_cache_path, fetch_weights, weights_available, weights_source)
from drivefiles import DriveServer
from hubcache import REFERENCE_DIR, add_to_hub_cache, official_state_dict

ROOT = Path(__file__).resolve().parents[1]
# The smallest released Drive-only checkpoint: UniFormer-XXS (light) 128 px, 10.2M parameters.
NAME, VARIANT = "uniformer_xxs_128_in1k", "light_xxs"
FILE_ID = weights_source(NAME).drive_file_id


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    """The checkpoint in the official Drive format (the light trainer's ``{'model': state_dict}``)."""
    path = tmp_path_factory.mktemp("ckpt") / "official.pth"
    torch.save({"model": official_state_dict(VARIANT), "epoch": 299}, path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def server(checkpoint_bytes):
    with DriveServer() as s:
        s.files[FILE_ID] = checkpoint_bytes
        yield s


@pytest.fixture
def drive(server, tmp_path, monkeypatch):
    """Downloads on: the Drive URL points at the local server, a fresh cache folder, no manual folder."""
    server.reset()
    monkeypatch.setenv("UNIFORMER_DRIVE_URL", server.url)
    monkeypatch.setenv("UNIFORMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("UNIFORMER_CHECKPOINT_DIR", raising=False)
    return server


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix in (".part", ".tmp"))


# --- every name, one source ------------------------------------------------------------------------

def test_shipped_table_equals_the_reference_table():
    shipped = (ROOT / "uniformer" / "data" / "official_downloads.tsv").read_text(encoding="utf-8")
    assert shipped == (REFERENCE_DIR / "official_downloads.tsv").read_text(encoding="utf-8")


def _shipped_table() -> dict[str, dict[str, str]]:
    with open(ROOT / "uniformer" / "data" / "official_downloads.tsv", newline="", encoding="utf-8") as f:
        return {r["name"]: r for r in csv.DictReader(f, delimiter="\t") if not r["name"].startswith("(")}


def test_the_shipped_table_is_what_the_registry_says():
    """The registry is the one place of every checkpoint's facts: the shipped table's columns name,
    task, source and Drive id are exactly :func:`downloads_table`, row for row (the table adds where
    each link is in the official READMEs)."""
    shipped = [{k: r[k] for k in ("name", "task", "source", "drive_file_id")} for r in _shipped_table().values()]
    assert sorted(shipped, key=lambda r: r["name"]) == downloads_table()


def test_every_registered_name_resolves_to_exactly_one_source():
    """Drive ids equal the table's; Hub files equal the registry's and the reference specs'; the counts
    are the issue's: 15 Hub, 64 Google Drive (79 released), backbones inside dense checkpoints."""
    table = _shipped_table()
    names = uniformer.list_models()
    assert set(names) == set(table)
    counts = dict.fromkeys(SOURCES, 0)
    for name in names:
        src, row, entry = weights_source(name), table[name], uniformer.get_entry(name)
        counts[src.source] += 1
        kind = row["source"].split(":")[0]
        expected = {"hub+drive": "hub"}.get(kind, kind)
        assert src.source == expected, name
        assert src.drive_file_id == (row["drive_file_id"] or None), name
        if src.source == "hub":
            assert (src.hub_repo_id, src.hub_filename) == (entry.pretrained.hub_repo_id, entry.pretrained.hub_filename)
        else:
            assert src.hub_repo_id is None and entry.pretrained.hub is None, name
        if src.source == "inside":
            assert set(src.holders) == set(row["source"].split(":", 1)[1].split(","))
            assert all(weights_source(h).source in ("hub", "drive") for h in src.holders)
        if src.source == "project":
            assert entry.pretrained.package_file == src.package_file
    # every Hub file the reference specs name is some registered name's Hub file
    spec_hubs = {json.loads(p.read_text()).get("hub") for p in (REFERENCE_DIR / "specs").glob("*.json")} - {None, ""}
    hub_files = {weights_source(n).hub_repo_id + ":" + weights_source(n).hub_filename
                 for n in names if weights_source(n).source == "hub"}
    assert {h.split(" ")[0] for h in spec_hubs} <= hub_files
    assert counts["hub"] == 15 and counts["drive"] == 64 and counts["hub"] + counts["drive"] == 79
    assert counts["inside"] + counts["unreleased"] + counts["project"] == len(names) - 79


# --- the Drive path, end to end ---------------------------------------------------------------------

def test_weights_available_judges_every_source_without_downloading(drive, checkpoint_bytes, tmp_path, monkeypatch):
    """One library answer to "would pretrained=True load trained weights?" (the app's header and the
    Video tab's opening model ask it): shipped files yes; a Drive-only file only once it is in the
    verified cache; a Hub file when cached (or mirrored) or while the Hub is on; the manual folder
    always; nothing is downloaded to find out."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert weights_available("uniformer_xxs_digits") and weights_available("uniformer_xxs_moving_digits")
    assert not weights_available(NAME) and drive.hits.get(FILE_ID, 0) == 0  # Drive only, not cached: no download
    assert not weights_available("uniformer_small_k400_32x4")  # unreleased
    hub_name = "uniformer_small_k400_16x8"
    assert not weights_available(hub_name)  # offline and not in the Hugging Face cache
    home = tmp_path / "hf_home"
    repo, filename = uniformer.get_entry(hub_name).pretrained.hub.split(":")
    add_to_hub_cache(home, repo, filename, {"w": torch.zeros(1)})
    assert weights_available(hub_name, hub_cache_dir=home / "hub")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert weights_available(hub_name) and not weights_available(NAME)  # the Hub can download; Drive's quotas
    download_weights(NAME, progress=False)
    assert weights_available(NAME) and drive.hits[FILE_ID] == 1
    assert not weights_available("uniformer_xxs_backbone")  # its holders (fpn_xxs, mask_rcnn_1x_xxs) are not here
    monkeypatch.setenv("UNIFORMER_CHECKPOINT_DIR", str(tmp_path))
    (tmp_path / "uniformer_xxs_backbone.pth").write_bytes(b"x")
    assert weights_available("uniformer_xxs_backbone")


def test_drive_download_verifies_moves_records_and_then_loads_from_cache(drive, checkpoint_bytes):
    path = download_weights(NAME, progress=False)
    assert path == drive_cache_path(NAME) and path.read_bytes() == checkpoint_bytes
    record = json.loads(path.with_name(path.name + ".json").read_text())
    assert record["sha256"] == hashlib.sha256(checkpoint_bytes).hexdigest()
    assert record["size"] == len(checkpoint_bytes) and record["drive_file_id"] == FILE_ID
    assert record["url"] == f"https://drive.google.com/file/d/{FILE_ID}/view"
    assert _leftovers(path.parent) == [] and drive.hits[FILE_ID] == 1
    # cache first: the server now answers 404 to everything, and nothing asks it
    drive.modes[FILE_ID] = "404"
    assert cached_weights(NAME) == path
    model = uniformer.create_model(NAME, pretrained=True)
    assert drive.hits[FILE_ID] == 1
    assert model.weights_info.source == "drive" and model.weights_info.path == str(path)
    assert f"drive.google.com/file/d/{FILE_ID}/view" in model.weights_info.describe()
    served = torch.load(path, weights_only=True)["model"]
    assert torch.equal(model.state_dict()["head.weight"], served["head.weight"])


def test_corrupted_cached_file_is_detected_by_its_sha256(drive, checkpoint_bytes):
    path = download_weights(NAME, progress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only the sha256 can tell
    path.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="sha256"):
        again = download_weights(NAME, progress=False)  # moved aside and downloaded again
    assert again == path and path.read_bytes() == checkpoint_bytes and drive.hits[FILE_ID] == 2
    assert path.with_name(path.name + ".corrupt").read_bytes() == bytes(data)
    # corrupt again, and now the link is dead: a clear error, and the bad file is not used
    path.write_bytes(checkpoint_bytes[:-10])
    drive.modes[FILE_ID] = "404"
    with pytest.warns(RuntimeWarning, match="size"), pytest.raises(WeightsDownloadError, match="dead"):
        download_weights(NAME, progress=False)
    assert not path.exists() and cached_weights(NAME) is None


@pytest.mark.parametrize("mode", ["503-once", "drop-once"])
def test_transient_failure_is_retried(drive, checkpoint_bytes, mode):
    drive.modes[FILE_ID] = mode
    path = download_weights(NAME, progress=False)
    assert path.read_bytes() == checkpoint_bytes and drive.hits[FILE_ID] == 2
    assert _leftovers(path.parent) == []


@pytest.mark.parametrize("mode, words", [("quota", "web page instead of the checkpoint"), ("404", "dead")])
def test_quota_page_and_dead_link_are_refused_with_the_manual_route(drive, mode, words):
    drive.modes[FILE_ID] = mode
    with pytest.raises(WeightsDownloadError) as info:
        download_weights(NAME, progress=False)
    message = str(info.value)
    assert words in message and f"https://drive.google.com/file/d/{FILE_ID}/view" in message
    assert "--checkpoint" in message and "$UNIFORMER_CHECKPOINT_DIR" in message
    assert isinstance(info.value, CheckpointNotAvailableError)  # the app falls back to untrained weights
    assert drive.hits[FILE_ID] == 1  # not transient: not retried
    cache = drive_cache_path(NAME).parent
    assert not drive_cache_path(NAME).exists() and _leftovers(cache) == []


def test_a_file_of_another_model_is_not_cached(drive, server, tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"model": {"patch_embed1.proj.weight": torch.zeros(8, 3, 4, 4)}}, other)
    saved = server.files[FILE_ID]
    server.files[FILE_ID] = other.read_bytes()
    try:
        with pytest.raises(WeightsDownloadError, match="not a checkpoint of uniformer_xxs_128_in1k"):
            download_weights(NAME, progress=False)
    finally:
        server.files[FILE_ID] = saved
    assert not drive_cache_path(NAME).exists()


def test_hf_hub_offline_downloads_nothing(drive, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in (NAME, "uniformer_small_in1k"):  # Drive only; Hub with a Drive copy
        with pytest.raises(CheckpointNotAvailableError, match="HF_HUB_OFFLINE") as info:
            download_weights(name, progress=False)
        assert "https://drive.google.com/file/d/" in str(info.value) and "--checkpoint" in str(info.value)
    assert drive.hits[FILE_ID] == 0


def test_checkpoint_dir_is_the_manual_route(drive, tmp_path, checkpoint_bytes, monkeypatch):
    folder = tmp_path / "manual"
    folder.mkdir()
    (folder / f"{NAME}.pth").write_bytes(checkpoint_bytes)
    monkeypatch.setenv("UNIFORMER_CHECKPOINT_DIR", str(folder))
    path, info = fetch_weights(NAME)
    assert path == folder / f"{NAME}.pth" and info.source == "local" and "UNIFORMER_CHECKPOINT_DIR" in info.describe()
    assert cached_weights(NAME) == path and drive.hits[FILE_ID] == 0


@pytest.mark.slow
def test_network_blocked_cached_file_loads_and_uncached_fails_fast(drive, tmp_path):
    """A fresh process whose sockets cannot connect at all, HF_HUB_OFFLINE unset: the cached Drive file
    loads; uncached names (Drive only; Hub with a Drive copy) fail within seconds, not after
    huggingface_hub's ~25 s of back-off, with a clear error."""
    download_weights(NAME, progress=False)
    code = (
        "import socket, time\n"
        "def blocked(*a, **k): raise OSError('network blocked by the test')\n"
        "socket.socket.connect = blocked\n"
        "socket.create_connection = blocked\n"
        "import uniformer\n"
        f"m = uniformer.create_model({NAME!r}, pretrained=True)\n"
        "print('LOADED', m.weights_info.source)\n"
        "for name in ('uniformer_xxs_224_in1k', 'uniformer_small_in1k'):\n"
        "    t = time.perf_counter()\n"
        "    try:\n"
        "        uniformer.download_weights(name, progress=False)\n"
        "    except uniformer.CheckpointNotAvailableError as e:\n"
        "        print('RAISED', round(time.perf_counter() - t, 1), ' '.join(str(e).split()))\n")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "UNIFORMER_DRIVE_URL": ""}
    env.pop("HF_HUB_OFFLINE")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED drive" in proc.stdout
    drive_only, hub = [line.split(" ", 2)[1:] for line in proc.stdout.splitlines() if line.startswith("RAISED")]
    assert float(drive_only[0]) < 10 and float(hub[0]) < 10, proc.stdout
    assert "https://drive.google.com/file/d/" in drive_only[1] and "$UNIFORMER_CHECKPOINT_DIR" in drive_only[1]
    assert "Sense-X/uniformer_image/uniformer_small_in1k.pth" in hub[1] and "cannot be reached" in hub[1]
    assert "Google Drive" in hub[1]
    assert drive.hits[FILE_ID] == 1


def test_unreleased_and_inside_names(drive):
    with pytest.raises(CheckpointNotAvailableError, match="log"):
        download_weights("uniformer_small_k400_32x4", progress=False)
    src = weights_source("uniformer_xxs_backbone")
    assert src.source == "inside" and set(src.holders) == {"fpn_xxs", "mask_rcnn_1x_xxs"}
    with pytest.raises(CheckpointNotAvailableError, match="fpn_xxs") as info:  # neither holder is served
        download_weights("uniformer_xxs_backbone", progress=False)
    assert "mask_rcnn_1x_xxs" in str(info.value) and "dead" in str(info.value)
