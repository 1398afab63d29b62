"""The Hugging Face Hub source: a registered name's Hub file or one of its byte-identical mirrors, from
the local Hugging Face cache first, else downloaded with ``huggingface_hub``."""
from __future__ import annotations

from pathlib import Path

from ..hub import CheckpointNotAvailableError, brief
from .sources import WeightsSource

__all__ = ["hub_download", "hub_cached", "download_with_mirrors"]


def hub_download(repo_id: str, filename: str, revision: str | None = None, probe_timeout: float = 10.0) -> Path:
    """Find ``repo_id``/``filename`` in the local Hugging Face cache, else download it via ``huggingface_hub``.

    Cache first: a cached file is returned without any network call. Otherwise one metadata request
    (``get_hf_file_metadata``, no retries, ``probe_timeout`` seconds) checks that the Hub answers, so
    a machine without network fails at once instead of after huggingface_hub's ~25 s of back-off;
    then ``hf_hub_download`` fetches the file (with its retries and tqdm progress bar). Honours
    ``HF_HUB_OFFLINE``, ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_ENDPOINT`` as huggingface_hub does.
    Returns the local path. Raises CheckpointNotAvailableError when the file cannot be had.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RepositoryNotFoundError)

    cached = try_to_load_from_cache(repo_id, filename, revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    not_found = (f"{repo_id}/{filename} does not exist on the Hugging Face Hub. Check the model name with "
                 f"uniformer.list_models(), or pass checkpoint_path=...")
    if not constants.HF_HUB_OFFLINE:
        try:
            get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision), timeout=probe_timeout)
        except (RepositoryNotFoundError, EntryNotFoundError) as e:
            raise CheckpointNotAvailableError(f"{not_found} ({type(e).__name__})") from e
        except HfHubHTTPError:
            pass  # the Hub answered (e.g. 5xx, 429): hf_hub_download retries with back-off
        except Exception as e:  # transport errors (httpx): name resolution, refused, timeout, TLS
            raise CheckpointNotAvailableError(
                f"{repo_id}/{filename} is not in the local Hugging Face cache and the Hub "
                f"({constants.ENDPOINT}) cannot be reached ({type(e).__name__}: {brief(' '.join(str(e).split()))}). "
                f"Connect to the internet to download it, or download it yourself and pass checkpoint_path=... "
                f"(CLI: --checkpoint PATH).") from e
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise CheckpointNotAvailableError(
            f"{repo_id}/{filename} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"({type(e).__name__}). Connect to the internet once (and unset HF_HUB_OFFLINE) to download it, "
            f"or download it yourself and pass checkpoint_path=... (CLI: --checkpoint PATH).") from e
    except (RepositoryNotFoundError, EntryNotFoundError) as e:
        raise CheckpointNotAvailableError(f"{not_found} ({type(e).__name__})") from e
    except (HfHubHTTPError, OSError) as e:
        raise CheckpointNotAvailableError(
            f"downloading {repo_id}/{filename} failed: {type(e).__name__}: {e}. Retry when the network is "
            f"available, or pass checkpoint_path=... to a downloaded copy.") from e


def _specs(src: WeightsSource) -> list[tuple[str, str]]:
    """(repo_id, filename) of ``src``'s Hub file, then of its mirrors."""
    return [(src.hub_repo_id, src.hub_filename)] + [tuple(m.split(":", 1)) for m in src.mirrors]


def hub_cached(src: WeightsSource, cache_dir: str | Path | None = None) -> tuple[Path, str, str] | None:
    """(path, repo_id, filename) of ``src``'s Hub file or one of its mirrors in the local Hugging Face
    cache (``cache_dir``: that cache's folder, default huggingface_hub's), else None. No network."""
    from huggingface_hub import try_to_load_from_cache

    if src.hub_repo_id is None:
        return None
    for repo_id, filename in _specs(src):
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        if isinstance(found, str):
            return Path(found), repo_id, filename
    return None


def download_with_mirrors(src: WeightsSource) -> tuple[Path, str, str]:
    """(local path, repo_id, filename) of ``src``'s Hub file, else of the first of its mirrors that
    can be had. Raises the primary file's CheckpointNotAvailableError (naming the mirrors tried) when
    none can."""
    (repo_id, filename), *mirrors = _specs(src)
    try:
        return hub_download(repo_id, filename), repo_id, filename
    except CheckpointNotAvailableError as primary:
        for repo_id, filename in mirrors:
            try:
                return hub_download(repo_id, filename), repo_id, filename
            except CheckpointNotAvailableError:
                continue
        if not mirrors:
            raise
        tried = ", ".join(f"{r}/{f}" for r, f in mirrors)
        raise CheckpointNotAvailableError(f"{primary} (mirrors tried as well: {tried})") from primary
