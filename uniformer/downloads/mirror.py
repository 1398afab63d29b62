"""A Hugging Face Hub mirror of the official checkpoints, as safetensors with a model card each.

Layout of a mirror repo: ``<name>/model.safetensors`` (the official state dict, keys unchanged, so
every loader that reads the official ``.pth`` reads it: ``read_state_dict`` knows both formats) and
``<name>/README.md`` (source, license, the paper's number, the sha256 of the original file).

``UNIFORMER_HUB_MIRROR=REPO_ID`` makes ``create_model(name, pretrained=True)`` look in that repo
first, right after the local copies (``$UNIFORMER_CHECKPOINT_DIR``): its cached file, then a
download; when the mirror lacks the file the usual lookup goes on (:mod:`uniformer.downloads`).
``python -m uniformer mirror REPO_ID [NAMES...]`` builds and uploads one (:mod:`uniformer.mirror_upload`).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..hub import WeightsInfo

__all__ = ["MIRROR_ENV", "mirror_repo", "mirror_filename", "mirror_cached", "mirror_fetch"]

#: Environment variable naming the mirror repo looked at first.
MIRROR_ENV = "UNIFORMER_HUB_MIRROR"


def mirror_repo() -> str | None:
    """The mirror repo id from ``$UNIFORMER_HUB_MIRROR``, or None when unset."""
    return os.environ.get(MIRROR_ENV, "").strip() or None


def mirror_filename(name: str) -> str:
    """Path of ``name``'s weights inside a mirror repo: ``<name>/model.safetensors``."""
    return f"{name}/model.safetensors"


def _info(repo_id: str, name: str, path: str) -> WeightsInfo:
    return WeightsInfo("hub", repo_id=repo_id, filename=mirror_filename(name), path=path,
                       note="safetensors mirror of the official checkpoint")


def mirror_cached(name: str) -> tuple[Path, WeightsInfo] | None:
    """(path, WeightsInfo) of ``name`` in the local Hub cache of the ``$UNIFORMER_HUB_MIRROR`` repo;
    None when no mirror is set or the file is not cached. No network."""
    from huggingface_hub import try_to_load_from_cache

    repo = mirror_repo()
    if repo is None:
        return None
    found = try_to_load_from_cache(repo, mirror_filename(name))
    return (Path(found), _info(repo, name, found)) if isinstance(found, str) else None


def mirror_fetch(name: str) -> tuple[Path, WeightsInfo] | None:
    """(path, WeightsInfo) of ``name`` downloaded from the ``$UNIFORMER_HUB_MIRROR`` repo; None when
    no mirror is set or it cannot give the file (offline, missing: the caller goes on)."""
    from .hub import hub_download
    from ..hub import CheckpointNotAvailableError

    repo = mirror_repo()
    if repo is None:
        return None
    try:
        path = hub_download(repo, mirror_filename(name))
    except CheckpointNotAvailableError:
        return None
    return Path(path), _info(repo, name, str(path))
