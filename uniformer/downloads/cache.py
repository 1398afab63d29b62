"""The verified download cache: ``<cache_dir>/drive/<name>.pth`` beside a JSON record of what was
downloaded (file id, size, sha256, time). A cached file counts only while it matches its record;
one that does not is moved aside. A new file is verified as a checkpoint of its model (safe loader,
strict keys and shapes) before it is moved into place atomically."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import warnings
from pathlib import Path

from ..hub import CheckpointMismatchError, cache_dir, read_state_dict

__all__ = ["drive_cache_path", "check_cached", "commit_download", "verify_checkpoint"]

_RECORD_SUFFIX = ".json"

# Files whose sha256 was checked in this process, keyed by (path, size, mtime_ns): checking once per
# process keeps repeated loads (an app switching models) from re-hashing hundreds of MB.
_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def drive_cache_path(name: str) -> Path:
    """Where the Drive checkpoint of ``name`` is (or would be) cached: ``<cache_dir>/drive/<name>.pth``."""
    return cache_dir() / "drive" / f"{name}.pth"


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + _RECORD_SUFFIX)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _remember(path: Path, digest: str) -> None:
    stat = path.stat()
    with _verified_lock:
        _verified[(str(path), stat.st_size, stat.st_mtime_ns)] = digest


def check_cached(path: Path, file_id: str | None) -> bool:
    """True when ``path`` exists and matches its record (file id, size, sha256). A file that fails the
    check is moved aside (``<name>.pth.corrupt``) with a RuntimeWarning, so the next lookup downloads
    it again."""
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
            _remember(path, digest)
            return True
    aside = path.with_name(path.name + ".corrupt")
    warnings.warn(f"cached checkpoint {path} is not the file that was downloaded ({problem}); moved it to "
                  f"{aside.name} and will download it again", RuntimeWarning, stacklevel=3)
    os.replace(path, aside)
    return False


def commit_download(tmp: Path, dest: Path, record: dict, sha256: str) -> None:
    """Move the downloaded (and verified) file ``tmp`` to ``dest`` and write its record beside it:
    ``record`` plus ``size``, ``sha256`` and ``downloaded_at`` (UTC). ``os.replace`` makes each move
    atomic within one file system; the record follows the file."""
    record = {**record, "size": tmp.stat().st_size, "sha256": sha256,
              "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record_tmp = tmp.with_name(tmp.name + ".record")
    record_tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, dest)
    os.replace(record_tmp, _record_path(dest))
    _remember(dest, sha256)


@functools.lru_cache(maxsize=8)
def _expected_tensors(name: str) -> dict:
    """``{key: meta tensor of the right shape}`` of the model ``name`` (built once on CPU: the
    constructors read values, e.g. drop-path rates, so they cannot run on the meta device)."""
    from ..registry import get_entry

    entry = get_entry(name)
    return {k: v.to("meta") for k, v in entry.build(entry.config).state_dict().items()}


def verify_checkpoint(name: str, path: str | os.PathLike) -> None:
    """Check that ``path`` reads safely as a checkpoint of the registered model ``name``: the safe
    loader (``read_state_dict``), the entry's key mapping, then every key and shape against a freshly
    built model of that name. Raises InvalidCheckpointError /
    UnsafeCheckpointError (not a safe checkpoint) or CheckpointMismatchError (another model)."""
    from ..hub import _mismatch_report
    from ..registry import get_entry

    entry = get_entry(name)
    state_dict = read_state_dict(path)
    mapped = entry.filter_fn(dict(state_dict)) if entry.filter_fn else state_dict
    report = _mismatch_report(_expected_tensors(name), mapped)
    if report:
        raise CheckpointMismatchError(f"{path} is not a checkpoint of {name}: {report}")
