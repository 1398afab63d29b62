"""Where every registered model's official weights come from, and fetching them by name.

Each registered name has exactly one *source* (the table ``uniformer/data/official_downloads.tsv``,
read from the official model-zoo READMEs of Sense-X/UniFormer, cross-checked with the registry):

- ``hub``: a file on the Hugging Face Hub (``PretrainedCfg.hub``, downloaded with
  ``huggingface_hub``); most also have a Google Drive copy, tried when the Hub cannot be had;
- ``drive``: Google Drive only (the model-zoo link's file id), downloaded with ``gdown``;
- ``inside``: a backbone whose weights come inside dense checkpoints (``holders``): the first
  holder that can be had is fetched and its ``backbone.`` entries are used;
- ``unreleased``: the official README links a training log only; no weights exist;
- ``project``: trained by this project and shipped inside the package (offline).

Lookup order of :func:`fetch_weights` (what ``create_model(name, pretrained=True)`` uses), first hit
wins, every cache is looked at before any network call:

1. ``$UNIFORMER_CHECKPOINT_DIR/<name>.pth`` (or ``/<hub filename>``): the manual route;
2. the caches: the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``) and this package's Drive cache
   ``$UNIFORMER_CACHE/drive/<name>.pth`` (default ``~/.cache/uniformer``, or under
   ``$XDG_CACHE_HOME``), whose size and sha256 are checked against the record written at download;
3. the network: the Hub (one probe without retries, so that no network fails in well under a second
   instead of huggingface_hub's ~25 s of back-off), then Google Drive.

Drive downloads go to a temporary file in the cache folder, are read by the same safe loader as
every checkpoint (``read_state_dict``) and must fit the model of that name with strict keys and
shapes, and only then are moved into place (``os.replace``, atomic) with a JSON record beside them
(``<name>.pth.json``: file id, size, sha256, time). ``HF_HUB_OFFLINE=1`` turns off every download,
Drive included. ``UNIFORMER_DRIVE_URL`` replaces ``https://drive.google.com`` (a mirror, or a local
test server); the file is requested as ``<base>/uc?id=<file id>&export=download``.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .hub import (CACHE_ENV, CheckpointMismatchError, CheckpointNotAvailableError, WeightsInfo, cache_dir,
                  read_state_dict)

__all__ = [
    "SOURCES", "CACHE_ENV", "CHECKPOINT_DIR_ENV", "DRIVE_URL_ENV", "DEFAULT_DRIVE_URL", "WeightsSource",
    "WeightsDownloadError", "weights_source", "official_downloads", "cache_dir", "drive_view_url", "drive_cache_path",
    "cached_weights", "download_weights", "fetch_weights", "verify_checkpoint", "checkpoint_dir_file", "weights_status",
]

#: The sources a registered name can resolve to.
SOURCES = ("hub", "drive", "inside", "unreleased", "project")
#: Environment variable naming the Drive cache folder (default ``~/.cache/uniformer``).
#: Environment variable naming a folder of checkpoints put there by hand (``<name>.pth``).
CHECKPOINT_DIR_ENV = "UNIFORMER_CHECKPOINT_DIR"
#: Environment variable replacing the Google Drive base URL (like ``HF_ENDPOINT`` for the Hub).
DRIVE_URL_ENV = "UNIFORMER_DRIVE_URL"
DEFAULT_DRIVE_URL = "https://drive.google.com"
#: Extra attempts after a transient Drive failure (connection reset, timeout, HTTP 5xx / 429).
DRIVE_RETRIES = 2
#: Seconds to wait for the Drive server: (connect, between bytes).
DRIVE_TIMEOUT = (10, 60)
_RECORD_SUFFIX = ".json"
_HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--")


class WeightsDownloadError(CheckpointNotAvailableError):
    """A download was tried and failed: dead link, quota or HTML page instead of the file, network
    error after the retries, or a downloaded file that is not a checkpoint of the model."""


@dataclass(frozen=True)
class WeightsSource:
    """Where the official weights of one registered name come from.

    source: one of :data:`SOURCES`. hub_repo_id / hub_filename: the Hub file (``hub`` names).
    drive_file_id: the Google Drive file id of the official model-zoo link (``drive`` names, and
    most ``hub`` names as a second source). holders: for ``inside`` names, the dense checkpoints
    holding the backbone, Hub-hosted first. package_file: for ``project`` names, the shipped file.
    hint: one sentence on where the weights are (the registry's ``download_hint``).
    """

    name: str
    source: str
    hub_repo_id: str | None = None
    hub_filename: str | None = None
    drive_file_id: str | None = None
    holders: tuple[str, ...] = ()
    package_file: str | None = None
    hint: str | None = None

    @property
    def drive_url(self) -> str | None:
        """The human-facing Drive page of the file (``https://drive.google.com/file/d/<id>/view``)."""
        return drive_view_url(self.drive_file_id) if self.drive_file_id else None

    @property
    def downloadable(self) -> bool:
        """True when released weights exist somewhere (everything but ``unreleased``)."""
        return self.source != "unreleased"

    def describe(self) -> str:
        """One line for people: where the weights come from."""
        if self.source == "hub":
            extra = f" (also on Google Drive: {self.drive_url})" if self.drive_file_id else ""
            return f"Hugging Face Hub {self.hub_repo_id}/{self.hub_filename}{extra}"
        if self.source == "drive":
            return f"Google Drive {self.drive_url}"
        if self.source == "inside":
            return f"inside the dense checkpoints {', '.join(self.holders)} (their 'backbone.' entries)"
        if self.source == "project":
            return f"shipped in the package ({self.package_file})"
        return f"not released: {self.hint or 'the official README links a log only'}"


def drive_view_url(file_id: str) -> str:
    """The Google Drive page of ``file_id``, as the official READMEs link it."""
    return f"https://drive.google.com/file/d/{file_id}/view"


def _drive_download_url(file_id: str) -> str:
    base = os.environ.get(DRIVE_URL_ENV, "").strip() or DEFAULT_DRIVE_URL
    return f"{base.rstrip('/')}/uc?id={file_id}&export=download"


@functools.lru_cache(maxsize=1)
def official_downloads() -> dict[str, dict[str, str]]:
    """The shipped table: ``{name: row}`` with the columns ``name, task, source, drive_file_id,
    readme, readme_row`` for every registered name (released checkpoints no name covers yet are left
    out). ``source`` is ``hub``, ``hub+drive``, ``drive``, ``inside:<holders>``, ``unreleased`` or
    ``project``."""
    path = Path(__file__).resolve().parent / "data" / "official_downloads.tsv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {r["name"]: r for r in rows if not r["name"].startswith("(")}


def weights_source(name: str) -> WeightsSource:
    """Where the official weights of the registered model ``name`` come from (no network).

    Raises KeyError for an unknown name, ValueError when the shipped table and the registry
    disagree (a bug: the tests check every name).
    """
    from .registry import get_entry

    p = get_entry(name).pretrained
    row = official_downloads().get(name)
    if row is None:
        raise ValueError(f"{name} is registered but missing from uniformer/data/official_downloads.tsv")
    kind, _, rest = row["source"].partition(":")
    drive_id = row["drive_file_id"] or None
    if kind in ("hub", "hub+drive") or p.hub:
        if not p.hub or kind not in ("hub", "hub+drive"):
            raise ValueError(f"{name}: the registry's Hub file ({p.hub}) and the table's source "
                             f"({row['source']}) disagree")
        return WeightsSource(name, "hub", p.hub_repo_id, p.hub_filename, drive_id, hint=p.download_hint)
    if kind == "inside":
        holders = tuple(h for h in rest.split(",") if h)
        # Hub-hosted holders first (they download without Drive's quotas), then the table's order.
        holders = tuple(sorted(holders, key=lambda h: get_entry(h).pretrained.hub is None))
        return WeightsSource(name, "inside", holders=holders, hint=p.download_hint)
    if kind == "project":
        return WeightsSource(name, "project", package_file=p.package_file, hint=p.download_hint)
    if kind in ("drive", "unreleased"):
        return WeightsSource(name, kind, drive_file_id=drive_id if kind == "drive" else None, hint=p.download_hint)
    raise ValueError(f"{name}: unknown source {row['source']!r} in official_downloads.tsv")


def drive_cache_path(name: str) -> Path:
    """Where the Drive checkpoint of ``name`` is (or would be) cached: ``<cache_dir>/drive/<name>.pth``."""
    return cache_dir() / "drive" / f"{name}.pth"


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + _RECORD_SUFFIX)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# Files whose sha256 was checked in this process, keyed by (path, size, mtime_ns): checking once per
# process keeps repeated loads (an app switching models) from re-hashing hundreds of MB.
_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def _check_cached(path: Path, file_id: str | None) -> bool:
    """True when ``path`` exists and matches its record (file id, size, sha256). A file that fails the
    check is moved aside (``<name>.pth.corrupt``) with a warning, so the next lookup downloads it again."""
    record_path = _record_path(path)
    if not path.is_file():
        return False
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    problem = None
    if not isinstance(record, dict) or "sha256" not in record or "size" not in record:
        problem = f"its record {record_path.name} is missing or unreadable"
    elif file_id is not None and record.get("drive_file_id") != file_id:
        problem = f"it was downloaded from Drive file {record.get('drive_file_id')}, not {file_id}"
    elif stat.st_size != record["size"]:
        problem = f"its size is {stat.st_size} bytes, {record['size']} were downloaded"
    else:
        with _verified_lock:
            known = _verified.get(key)
        digest = known or _sha256(path)
        if digest != record["sha256"]:
            problem = f"its sha256 {digest[:12]}... differs from the recorded {record['sha256'][:12]}..."
        else:
            with _verified_lock:
                _verified[key] = digest
            return True
    aside = path.with_name(path.name + ".corrupt")
    warnings.warn(f"cached checkpoint {path} is not the file that was downloaded ({problem}); moved it to "
                  f"{aside.name} and will download it again", RuntimeWarning, stacklevel=3)
    os.replace(path, aside)
    return False


def checkpoint_dir_file(name: str, directory: str | os.PathLike | None = None) -> Path | None:
    """``<name>.pth`` or the Hub filename of ``name`` inside ``directory`` (default
    ``$UNIFORMER_CHECKPOINT_DIR``): the manual route for files downloaded by hand. None when there is
    no such file or no folder is configured."""
    from .registry import get_entry

    directory = directory if directory is not None else os.environ.get(CHECKPOINT_DIR_ENV, "").strip()
    if not directory:
        return None
    hub_filename = get_entry(name).pretrained.hub_filename
    for filename in dict.fromkeys(f for f in (f"{name}.pth", hub_filename) if f):
        path = Path(directory).expanduser() / filename
        if path.is_file():
            return path
    return None


def _hub_cached(src: WeightsSource) -> tuple[Path, str, str] | None:
    """(path, repo_id, filename) of the Hub file or one of its mirrors in the local HF cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    from .registry import get_entry

    p = get_entry(src.name).pretrained
    for spec in (p.hub, *p.mirrors):
        repo_id, filename = spec.split(":", 1)
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return Path(found), repo_id, filename
    return None


def cached_weights(name: str) -> Path | None:
    """The local file ``create_model(name, pretrained=True)`` would load without any network call, or
    None: the ``$UNIFORMER_CHECKPOINT_DIR`` file, the Hub cache, the verified Drive cache, the shipped
    file (``project``), or for ``inside`` names the first cached holder."""
    found = _cached(weights_source(name))
    return found[0] if found else None


def _cached(src: WeightsSource) -> tuple[Path, WeightsInfo] | None:
    """(path, WeightsInfo) of a local copy of ``src``'s weights, else None. No network."""
    local = checkpoint_dir_file(src.name)
    if local is not None:
        return local, WeightsInfo("local", path=str(local), note=f"from ${CHECKPOINT_DIR_ENV}")
    from .mirror import mirror_cached  # $UNIFORMER_HUB_MIRROR: first after the local copies

    if src.source in ("hub", "drive") and (hit := mirror_cached(src.name)):
        return hit
    if src.source == "project":
        path = Path(__file__).resolve().parent / src.package_file
        return (path, WeightsInfo("project", path=str(path))) if path.exists() else None
    if src.source == "inside":
        for holder in src.holders:
            found = _cached(weights_source(holder))
            if found:
                return found[0], _inside_info(found[1], holder)
        return None
    if src.source == "hub":
        hit = _hub_cached(src)
        if hit:
            return hit[0], _hub_info(src, hit[1], hit[2], hit[0])
    if src.drive_file_id:
        path = drive_cache_path(src.name)
        if _check_cached(path, src.drive_file_id):
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


def _manual_route(name: str, file_id: str | None = None) -> str:
    where = f"from {drive_view_url(file_id)} " if file_id else ""
    return (f"Download it yourself {where}and pass checkpoint_path=PATH (CLI: --checkpoint PATH), or save it as "
            f"${CHECKPOINT_DIR_ENV}/{name}.pth.")


@functools.lru_cache(maxsize=8)
def _expected_tensors(name: str) -> dict:
    """``{key: meta tensor of the right shape}`` of the model ``name`` (built once on CPU: the
    constructors read values, e.g. drop-path rates, so they cannot run on the meta device)."""
    from .registry import get_entry

    entry = get_entry(name)
    return {k: v.to("meta") for k, v in entry.build(entry.config).state_dict().items()}


def verify_checkpoint(name: str, path: str | os.PathLike) -> None:
    """Check that ``path`` reads safely as a checkpoint of the registered model ``name``: the safe
    loader (``read_state_dict``), the entry's key mapping, then every key and shape against a freshly
    built model of that name. Raises InvalidCheckpointError /
    UnsafeCheckpointError (not a safe checkpoint) or CheckpointMismatchError (another model)."""
    from .hub import _mismatch_report
    from .registry import get_entry

    entry = get_entry(name)
    state_dict = read_state_dict(path)
    mapped = entry.filter_fn(dict(state_dict)) if entry.filter_fn else state_dict
    report = _mismatch_report(_expected_tensors(name), mapped)
    if report:
        raise CheckpointMismatchError(f"{path} is not a checkpoint of {name}: {report}")


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


def _drive_fetch(name: str, file_id: str, verify_as: str, progress: bool) -> Path:
    """Download Drive file ``file_id`` into the cache as ``name``'s checkpoint (see the module
    docstring), retrying transient failures. Returns the cached path. Raises WeightsDownloadError."""
    import gdown
    import requests
    from gdown.exceptions import DownloadError, FileURLRetrievalError

    from .hub import CheckpointError

    dest = drive_cache_path(name)
    view = drive_view_url(file_id)
    url = _drive_download_url(file_id)
    with _lock_for(name):
        if _check_cached(dest, file_id):  # another thread finished it while this one waited
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
                        f"Open {view} in a browser, or try again later. {_manual_route(name)}")
                try:
                    verify_checkpoint(verify_as, tmp)
                except CheckpointError as e:
                    raise WeightsDownloadError(f"the file downloaded from {view} is not a checkpoint of {verify_as}: "
                                               f"{e}. {_manual_route(name)}") from e
                record = {"name": name, "drive_file_id": file_id, "url": view, "size": tmp.stat().st_size,
                          "sha256": hasher.hexdigest(), "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                       time.gmtime())}
                record_tmp = work / "record.json"
                record_tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
                os.replace(tmp, dest)  # atomic within one file system; the record follows it
                os.replace(record_tmp, _record_path(dest))
                stat = dest.stat()
                with _verified_lock:
                    _verified[(str(dest), stat.st_size, stat.st_mtime_ns)] = record["sha256"]
                return dest
            except WeightsDownloadError:
                raise
            except FileURLRetrievalError as e:  # gdown: Drive's quota / permission page
                raise WeightsDownloadError(
                    f"Google Drive refused the checkpoint of {name} ({' '.join(str(e).split())[:300]}). "
                    f"Open {view} in a browser, or try again later. {_manual_route(name)}") from e
            except (requests.RequestException, DownloadError, OSError) as e:
                last = e
                if not _is_transient(e):
                    break
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if isinstance(last, requests.HTTPError) and last.response is not None and last.response.status_code in (403, 404, 410):
            reason = f"the link is dead or private (HTTP {last.response.status_code})"
        elif isinstance(last, requests.ConnectionError) and not _is_transient(last):
            text = repr(last)
            cause = "connection refused" if "refused" in text else "the host name does not resolve"
            reason = f"Google Drive cannot be reached ({cause}: no network?)"
        else:
            reason = f"{type(last).__name__}: {' '.join(str(last).split())[:200]}"
        tries = f" after {attempt + 1} attempts" if attempt else ""
        raise WeightsDownloadError(f"downloading {name} from Google Drive {view} failed{tries}: {reason}. "
                                   f"{_manual_route(name)}") from last


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
        from .registry import _download_with_mirrors, get_entry

        try:
            path, repo_id, filename = _download_with_mirrors(get_entry(name).pretrained)
            return Path(path), _hub_info(src, repo_id, filename, Path(path))
        except CheckpointNotAvailableError as e:
            if not src.drive_file_id:
                raise
            errors.append(str(e))
    if _offline():
        raise CheckpointNotAvailableError(" ".join(errors + [
            f"{name} is not cached and HF_HUB_OFFLINE is set, so nothing is downloaded; its official file is on "
            f"Google Drive ({src.drive_url}): unset HF_HUB_OFFLINE to download it.",
            _manual_route(name, src.drive_file_id)] + ([f"({src.hint})"] if src.hint else [])))
    try:
        path = _drive_fetch(name, src.drive_file_id, name, progress)
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
