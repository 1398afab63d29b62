"""The Google Drive source: the official model-zoo file downloaded with ``gdown`` into the verified
cache (:mod:`uniformer.downloads.cache`), retrying transient failures, one download per name at a time.

``UNIFORMER_DRIVE_URL`` replaces ``https://drive.google.com`` (a mirror, or a local test server);
the file is requested as ``<base>/uc?id=<file id>&export=download``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from ..hub import CheckpointNotAvailableError
from .cache import check_cached, commit_download, drive_cache_path, verify_checkpoint
from .sources import drive_view_url, manual_route

__all__ = ["DRIVE_URL_ENV", "DEFAULT_DRIVE_URL", "DRIVE_RETRIES", "DRIVE_TIMEOUT", "WeightsDownloadError",
           "drive_fetch"]

#: Environment variable replacing the Google Drive base URL (like ``HF_ENDPOINT`` for the Hub).
DRIVE_URL_ENV = "UNIFORMER_DRIVE_URL"
DEFAULT_DRIVE_URL = "https://drive.google.com"
#: Extra attempts after a transient Drive failure (connection reset, timeout, HTTP 5xx / 429).
DRIVE_RETRIES = 2
#: Seconds to wait for the Drive server: (connect, between bytes).
DRIVE_TIMEOUT = (10, 60)
_HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--")


class WeightsDownloadError(CheckpointNotAvailableError):
    """A download was tried and failed: dead link, quota or HTML page instead of the file, network
    error after the retries, or a downloaded file that is not a checkpoint of the model."""


def _drive_download_url(file_id: str) -> str:
    base = os.environ.get(DRIVE_URL_ENV, "").strip() or DEFAULT_DRIVE_URL
    return f"{base.rstrip('/')}/uc?id={file_id}&export=download"


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith(_HTML_STARTS)


def _is_transient(error: BaseException) -> bool:
    """Worth another attempt: a dropped connection, a timeout, HTTP 5xx / 429. Not: a name that does
    not resolve or a refused connection (no network: retrying only makes the user wait), 4xx."""
    import requests
    from gdown.exceptions import DownloadError

    if isinstance(error, requests.HTTPError):
        status = error.response.status_code if error.response is not None else 0
        return status >= 500 or status == 429
    if isinstance(error, requests.ConnectionError):
        text = repr(error)
        return not any(s in text for s in ("NameResolutionError", "Name or service not known", "nodename nor servname",
                                           "Connection refused", "getaddrinfo failed", "Temporary failure in name"))
    return isinstance(error, (requests.Timeout, DownloadError))


_name_locks: dict[str, threading.Lock] = {}
_name_locks_guard = threading.Lock()


def _lock_for(name: str) -> threading.Lock:
    with _name_locks_guard:
        return _name_locks.setdefault(name, threading.Lock())


def drive_fetch(name: str, file_id: str, verify_as: str, progress: bool) -> Path:
    """Download Drive file ``file_id`` into the cache as ``name``'s checkpoint, retrying transient
    failures: to a temporary file in the cache folder, read by the safe loader and checked against
    the model ``verify_as`` (strict keys and shapes), then moved into place with its record. A
    thread asking for the same name meanwhile waits and gets the same file. ``progress``: gdown's
    tqdm bar on stderr. Returns the cached path. Raises WeightsDownloadError (the message names the
    Drive URL and the manual route)."""
    import gdown
    import requests
    from gdown.exceptions import DownloadError, FileURLRetrievalError

    from ..hub import CheckpointError

    dest = drive_cache_path(name)
    view = drive_view_url(file_id)
    url = _drive_download_url(file_id)
    with _lock_for(name):
        if check_cached(dest, file_id):  # another thread finished it while this one waited
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        last: BaseException | None = None
        for attempt in range(1 + DRIVE_RETRIES):
            if attempt:
                time.sleep(min(2.0 ** (attempt - 1), 4.0))
            work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=dest.parent))
            try:
                tmp = work / dest.name
                hasher = hashlib.sha256()
                gdown.download(url=url, output=str(tmp), quiet=not progress, hasher=hasher, timeout=DRIVE_TIMEOUT,
                               log_messages={"start": f"Downloading {name} from Google Drive\n"})
                if tmp.stat().st_size == 0 or _looks_like_html(tmp):
                    raise WeightsDownloadError(
                        f"Google Drive answered with a web page instead of the checkpoint of {name} (a quota page "
                        f"'too many users have viewed or downloaded this file', a sign-in or a virus-scan page). "
                        f"Open {view} in a browser, or try again later. {manual_route(name)}")
                try:
                    verify_checkpoint(verify_as, tmp)
                except CheckpointError as e:
                    raise WeightsDownloadError(f"the file downloaded from {view} is not a checkpoint of {verify_as}: "
                                               f"{e}. {manual_route(name)}") from e
                commit_download(tmp, dest, {"name": name, "drive_file_id": file_id, "url": view}, hasher.hexdigest())
                return dest
            except WeightsDownloadError:
                raise
            except FileURLRetrievalError as e:  # gdown: Drive's quota / permission page
                raise WeightsDownloadError(
                    f"Google Drive refused the checkpoint of {name} ({' '.join(str(e).split())[:300]}). "
                    f"Open {view} in a browser, or try again later. {manual_route(name)}") from e
            except (requests.RequestException, DownloadError, OSError) as e:
                last = e
                if not _is_transient(e):
                    break
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if (isinstance(last, requests.HTTPError) and last.response is not None
                and last.response.status_code in (403, 404, 410)):
            reason = f"the link is dead or private (HTTP {last.response.status_code})"
        elif isinstance(last, requests.ConnectionError) and not _is_transient(last):
            text = repr(last)
            cause = "connection refused" if "refused" in text else "the host name does not resolve"
            reason = f"Google Drive cannot be reached ({cause}: no network?)"
        else:
            reason = f"{type(last).__name__}: {' '.join(str(last).split())[:200]}"
        tries = f" after {attempt + 1} attempts" if attempt else ""
        raise WeightsDownloadError(f"downloading {name} from Google Drive {view} failed{tries}: {reason}. "
                                   f"{manual_route(name)}") from last
