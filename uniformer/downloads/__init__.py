"""Where every registered model's official weights come from, and fetching them by name.

Each registered name has exactly one *source*, read from its registry entry
(``PretrainedCfg.source``; :mod:`uniformer.downloads.sources`):

- ``hub``: a file on the Hugging Face Hub (``PretrainedCfg.hub``, downloaded with
  ``huggingface_hub``: :mod:`uniformer.downloads.hub`); most also have a Google Drive copy
  (``drive_id``), tried when the Hub cannot be had;
- ``drive``: Google Drive only (the model-zoo link's file id), downloaded with ``gdown``
  (:mod:`uniformer.downloads.drive`) into the verified cache (:mod:`uniformer.downloads.cache`);
- ``inside``: a backbone whose weights come inside dense checkpoints (``holders``): the first
  holder that can be had is fetched and its ``backbone.`` entries are used;
- ``unreleased``: the official README links a training log only; no weights exist;
- ``project``: trained by this project and shipped inside the package (offline).

The shipped table ``uniformer/data/official_downloads.tsv`` records where each link is in the
official READMEs; its columns equal :func:`downloads_table` (checked by the tests), it is not read
at run time.

Lookup order of :func:`fetch_weights` (what ``create_model(name, pretrained=True)`` uses), first hit
wins, every cache is looked at before any network call:

1. ``$UNIFORMER_CHECKPOINT_DIR/<name>.pth`` (or ``/<hub filename>``): the manual route;
2. the caches: the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``) and this package's Drive cache
   ``$UNIFORMER_CACHE/drive/<name>.pth`` (default ``~/.cache/uniformer``, or under
   ``$XDG_CACHE_HOME``), whose size and sha256 are checked against the record written at download;
3. the network: the Hub (one probe without retries, so that no network fails in well under a second
   instead of huggingface_hub's ~25 s of back-off), then Google Drive.

``HF_HUB_OFFLINE=1`` turns off every download, Drive included. ``UNIFORMER_DRIVE_URL`` replaces
``https://drive.google.com`` (a mirror, or a local test server).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..hub import CACHE_ENV, CheckpointNotAvailableError, WeightsInfo, cache_dir
from .cache import drive_cache_path, verify_checkpoint
from .drive import DEFAULT_DRIVE_URL, DRIVE_URL_ENV, WeightsDownloadError, drive_fetch
from .hub import download_with_mirrors, hub_cached, hub_download
from .sources import (CHECKPOINT_DIR_ENV, SOURCES, WeightsSource, checkpoint_dir_file, downloads_table, drive_view_url,
                      manual_route, weights_source)

__all__ = [
    "SOURCES", "CACHE_ENV", "CHECKPOINT_DIR_ENV", "DRIVE_URL_ENV", "DEFAULT_DRIVE_URL", "WeightsSource",
    "WeightsDownloadError", "weights_source", "downloads_table", "cache_dir", "drive_view_url", "drive_cache_path",
    "cached_weights", "download_weights", "fetch_weights", "verify_checkpoint", "checkpoint_dir_file", "weights_status",
    "weights_available", "hub_download",
]


def cached_weights(name: str) -> Path | None:
    """The local file ``create_model(name, pretrained=True)`` would load without any network call, or
    None: the ``$UNIFORMER_CHECKPOINT_DIR`` file, the Hub cache, the verified Drive cache, the shipped
    file (``project``), or for ``inside`` names the first cached holder."""
    found = _cached(weights_source(name))
    return found[0] if found else None


def weights_available(name: str, hub_cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``create_model(name, pretrained=True)`` would load trained weights without a slow or
    uncertain download, judged without loading or downloading anything: a local copy exists
    (:func:`cached_weights`: the ``$UNIFORMER_CHECKPOINT_DIR`` file, the shipped file, the Hub file or
    a mirror in the Hugging Face cache, the verified Drive cache, a cached holder), or the name's
    source is a Hub file and the Hub is not switched off (``HF_HUB_OFFLINE``). A Drive-only file that
    is not cached counts as unavailable (Drive's quotas make that download uncertain).
    ``hub_cache_dir``: the Hugging Face cache folder to look in (default huggingface_hub's).
    Raises KeyError for an unknown name."""
    from huggingface_hub import constants

    src = weights_source(name)
    if _cached(src, hub_cache_dir) is not None:
        return True
    return src.source == "hub" and not constants.HF_HUB_OFFLINE


def _cached(src: WeightsSource, hub_cache_dir: str | os.PathLike | None = None) -> tuple[Path, WeightsInfo] | None:
    """(path, WeightsInfo) of a local copy of ``src``'s weights, else None. No network."""
    from .cache import check_cached

    local = checkpoint_dir_file(src.name)
    if local is not None:
        return local, WeightsInfo("local", path=str(local), note=f"from ${CHECKPOINT_DIR_ENV}")
    from .mirror import mirror_cached  # $UNIFORMER_HUB_MIRROR: first after the local copies

    if src.source in ("hub", "drive") and (hit := mirror_cached(src.name)):
        return hit
    if src.source == "project":
        path = Path(__file__).resolve().parents[1] / src.package_file
        return (path, WeightsInfo("project", path=str(path))) if path.exists() else None
    if src.source == "inside":
        for holder in src.holders:
            found = _cached(weights_source(holder), hub_cache_dir)
            if found:
                return found[0], _inside_info(found[1], holder)
        return None
    if src.source == "hub":
        hit = hub_cached(src, hub_cache_dir)
        if hit:
            return hit[0], _hub_info(src, hit[1], hit[2], hit[0])
    if src.drive_file_id:
        path = drive_cache_path(src.name)
        if check_cached(path, src.drive_file_id):
            return path, _drive_info(src, path)
    return None


def _hub_info(src: WeightsSource, repo_id: str, filename: str, path: Path) -> WeightsInfo:
    note = None if repo_id == src.hub_repo_id else f"byte-identical mirror of {src.hub_repo_id}/{src.hub_filename}"
    return WeightsInfo("hub", repo_id=repo_id, filename=filename, path=str(path), note=note)


def _drive_info(src: WeightsSource, path: Path) -> WeightsInfo:
    return WeightsInfo("drive", filename=src.drive_file_id, path=str(path))


def _inside_info(info: WeightsInfo, holder: str) -> WeightsInfo:
    note = f"backbone entries of {holder}" + (f"; {info.note}" if info.note else "")
    return WeightsInfo(info.source, info.repo_id, info.filename, info.path, note=note)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def fetch_weights(name: str, progress: bool = True) -> tuple[Path, WeightsInfo]:
    """The local checkpoint file of ``name``'s official weights and where it came from, downloading
    it when no local copy exists (lookup order: see the module docstring). ``progress``: tqdm bars
    on stderr while downloading (gdown and huggingface_hub draw them; ``gr.Progress(track_tqdm=True)``
    shows them in a Gradio app).

    Raises KeyError (unknown name), CheckpointNotAvailableError (unreleased, offline and not cached,
    no network), WeightsDownloadError (a download failed or gave a wrong file; the message names the
    Drive URL and the manual route).
    """
    src = weights_source(name)
    found = _cached(src)
    if found is not None:
        return found
    from .mirror import mirror_fetch  # $UNIFORMER_HUB_MIRROR: before the official sources

    if src.source in ("hub", "drive") and not _offline() and (hit := mirror_fetch(name)):
        return hit
    if src.source == "project":
        raise CheckpointNotAvailableError(f"{name}: the shipped file {src.package_file} is missing from the package")
    if src.source == "unreleased":
        raise CheckpointNotAvailableError(f"{name}: {src.hint or 'no checkpoint was released.'} "
                                          f"Pass checkpoint_path=PATH to a checkpoint of your own.")
    if src.source == "inside":
        errors = []
        for holder in src.holders:
            try:
                path, info = fetch_weights(holder, progress)
                return path, _inside_info(info, holder)
            except CheckpointNotAvailableError as e:
                errors.append(f"{holder}: {e}")
        raise CheckpointNotAvailableError(f"{name}: its weights come inside {', '.join(src.holders)}, and none "
                                          f"could be had:\n  " + "\n  ".join(errors))
    errors = []
    if src.source == "hub":
        try:
            path, repo_id, filename = download_with_mirrors(src)
            return path, _hub_info(src, repo_id, filename, path)
        except CheckpointNotAvailableError as e:
            if not src.drive_file_id:
                raise
            errors.append(str(e))
    if _offline():
        raise CheckpointNotAvailableError(" ".join(errors + [
            f"{name} is not cached and HF_HUB_OFFLINE is set, so nothing is downloaded; its official file is on "
            f"Google Drive ({src.drive_url}): unset HF_HUB_OFFLINE to download it.",
            manual_route(name, src.drive_file_id)] + ([f"({src.hint})"] if src.hint else [])))
    try:
        path = drive_fetch(name, src.drive_file_id, name, progress)
    except WeightsDownloadError as e:
        if errors:
            raise WeightsDownloadError(f"{errors[0]} Google Drive copy: {e}") from e
        raise
    return path, _drive_info(src, path)


def download_weights(name: str, progress: bool = True) -> Path:
    """Make sure ``name``'s official weights are on this machine and return the file (what
    ``python -m uniformer download NAME`` does; the next ``create_model(name, pretrained=True)`` then
    needs no network). Same lookup and errors as :func:`fetch_weights`."""
    return fetch_weights(name, progress)[0]


def weights_status(name: str) -> dict:
    """Where ``name``'s weights come from and where they are (or would be) on this machine, without
    any network call: what ``python -m uniformer download --dry-run --json`` prints.

    Keys: ``name``, ``source`` (one of :data:`SOURCES`), ``hub_repo_id``, ``hub_filename``,
    ``drive_file_id``, ``drive_url`` (None where there is none), ``holders`` (``inside`` names),
    ``cached`` (a local copy exists), ``path`` (that copy; else where a download would put it: the Drive
    cache file, or the Hub repo's folder in the Hugging Face cache; None for unreleased weights) and
    ``describe`` (one line for people).
    """
    src = weights_source(name)
    found = _cached(src)
    path: Path | None = found[0] if found else None
    if path is None and src.source == "inside":
        path = Path(weights_status(src.holders[0])["path"])
    elif path is None and src.source == "hub":
        from huggingface_hub import constants

        path = Path(constants.HF_HUB_CACHE) / f"models--{src.hub_repo_id.replace('/', '--')}"
    elif path is None and src.source == "drive":
        path = drive_cache_path(name)
    return {"name": name, "source": src.source, "hub_repo_id": src.hub_repo_id, "hub_filename": src.hub_filename,
            "drive_file_id": src.drive_file_id, "drive_url": src.drive_url, "holders": list(src.holders),
            "cached": found is not None, "path": str(path) if path else None, "describe": src.describe()}
