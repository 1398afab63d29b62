"""Build an offline Hugging Face Hub cache (the ``models--ORG--NAME/snapshots/<rev>/`` layout) for tests.

Point ``HF_HOME`` at the returned root and set ``HF_HUB_OFFLINE=1``: ``hf_hub_download`` then
resolves ``main`` through ``refs/main`` and returns the snapshot file, exactly as on a user's
machine that downloaded the file before.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import torch

#: The reference data of the official implementation kept in the repository (tests/reference/README.md):
#: state-dict specs, golden outputs, the synthetic-weight rule, the official download table.
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


def load_synth():
    """The reference ``synth`` module (synthesize, reference_input) from the reference folder."""
    spec = importlib.util.spec_from_file_location("uniformer_reference_synth", REFERENCE_DIR / "synth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_spec(variant: str) -> dict:
    return json.loads((REFERENCE_DIR / "specs" / f"{variant}.json").read_text())


def official_state_dict(variant: str) -> dict[str, torch.Tensor]:
    """Synthetic weights with the official key names and shapes of ``variant`` (a raw flat
    state dict, the format of the official Hub ``.pth`` files)."""
    return load_synth().synthesize(load_spec(variant)["keys"])


def add_to_hub_cache(hf_home: Path, repo_id: str, filename: str, obj, legacy_format: bool = False) -> Path:
    """Save ``obj`` with ``torch.save`` as ``repo_id``/``filename`` at revision ``main`` in the cache
    under ``hf_home`` (i.e. ``$HF_HOME/hub``). Returns the snapshot file's path."""
    repo_dir = Path(hf_home) / "hub" / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / revision / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, snapshot, _use_new_zipfile_serialization=not legacy_format)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


def add_file_to_hub_cache(hf_home: Path, repo_id: str, filename: str, source: Path) -> Path:
    """Copy the file ``source`` as ``repo_id``/``filename`` at revision ``main`` into the cache under
    ``hf_home`` (any format, e.g. safetensors). Returns the snapshot file's path."""
    import shutil

    snapshot = add_to_hub_cache(hf_home, repo_id, filename, {})
    shutil.copyfile(source, snapshot)
    return snapshot
