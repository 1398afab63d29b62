"""The app's one cache mechanism: a thread-safe least-recently-used cache, bounded in entries and/or
in bytes, that computes a missing key once however many threads ask for it (per-key single flight).

Every cache of the app is an :class:`LRUCache`: the model cache (:func:`app.models.model_cache`:
models, uploaded-checkpoint models and stage-3 twins, bounded in bytes per device), the Explain
tab's analyses and extras, and the Token shrinking tab's traces.

Bytes are counted by a *footprint* function over the values held (``values -> {pool: bytes}``, a
pool being e.g. ``'cpu'`` or ``'cuda:0'``), so values that share memory (a stage-3 twin shares
every weight with its model) are counted once, and by a *weigh* function per value otherwise.
Budgets are per pool (``max_bytes={'cpu': ..., 'cuda': ...}``; a ``'cuda'`` budget applies to
each ``'cuda:N'`` pool); when a pool is over budget, the least recently used entry holding memory in
that pool goes first. The newest value always stays, even alone over budget.

Eviction only drops the cache's reference: a value a request still uses stays alive (Python
references keep it), so nothing is freed under a running request. With ``held`` (value -> the
objects whose lifetime holds its memory, e.g. its ``nn.Module``), the cache keeps weak references to
evicted values still alive and counts them in the footprint until they are freed: the budget then
bounds what the process really holds through the cache, and a model kept alive by a long request
makes the cache evict others sooner, never exceed the budget silently.
"""
from __future__ import annotations

import gc
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping

__all__ = ["LRUCache", "MB", "RESULT_TTL_ENV", "DEFAULT_RESULT_TTL_S", "result_ttl_s", "delete_cache_setting",
           "upload_folder", "result_dir", "discard_upload"]

#: Bytes in a megabyte (MiB), the unit of the app's cache settings.
MB = 1 << 20


def _as_pools(size: int | Mapping[str, int]) -> dict[str, int]:
    return dict(size) if isinstance(size, Mapping) else {"": int(size)}


class LRUCache:
    """Thread-safe LRU cache with per-key single flight.

    max_items: most entries (None: no count bound). max_bytes: budget in bytes, an int (one pool)
    or {pool: bytes} ('cuda' covers every 'cuda:N'); None: no byte bound. weigh: value -> bytes
    (int) or {pool: bytes}; footprint: list of held objects -> {pool: bytes} for values that share
    memory (takes precedence over ``weigh``). held: value -> iterable of weak-referenceable objects
    keeping its memory alive after eviction (see the module docstring). on_evict: called after
    entries were dropped (outside the lock), e.g. to return freed memory to the OS.
    """

    def __init__(self, max_items: int | None = None, max_bytes: int | Mapping[str, int] | None = None,
                 weigh: Callable[[Any], int | Mapping[str, int]] | None = None,
                 footprint: Callable[[list], Mapping[str, int]] | None = None,
                 held: Callable[[Any], Iterable[Any]] | None = None, on_evict: Callable[[], None] | None = None):
        if max_bytes is not None and weigh is None and footprint is None:
            raise ValueError("max_bytes needs weigh or footprint to measure values")
        self.max_items = max_items
        self.max_bytes = None if max_bytes is None else _as_pools(max_bytes)
        self.weigh, self._footprint, self.held, self.on_evict = weigh, footprint, held, on_evict
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._evicted_alive: weakref.WeakSet = weakref.WeakSet()
        self._sizes: dict[Hashable, dict[str, int]] = {}  # bytes of each key when last stored

    # -- reading -------------------------------------------------------------------------------
    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value under ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return default

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def keys(self) -> list:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._data)

    def nbytes(self) -> dict[str, int]:
        """{pool: bytes} held through the cache now, evicted values still alive included."""
        with self._lock:
            return self._measure()

    # -- writing -------------------------------------------------------------------------------
    def get_or_compute(self, key: Hashable, compute: Callable[[], Any],
                       store: Callable[[Any], bool] | None = None, make_room: bool = False) -> tuple[Any, bool]:
        """(value, cached): the cached value, or ``compute()``'s result, stored under ``key`` unless
        ``store(value)`` is false. Concurrent callers of one missing key wait for a single compute;
        other keys are not blocked (the cache lock is never held while computing). An exception
        from ``compute`` reaches every waiting caller's own retry and nothing is stored.
        make_room: before computing, evict for the bytes the value will take (:meth:`size_hint`),
        so a large value is not built on top of a full cache."""
        sentinel = object()
        value = self.get(key, sentinel)
        if value is not sentinel:
            return value, True
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            value = self.get(key, sentinel)
            if value is not sentinel:
                return value, True
            try:
                if make_room:
                    self.make_room(self.size_hint(key))
                value = compute()
                if store is None or store(value):
                    self.put(key, value)
            finally:
                with self._lock:
                    if self._key_locks.get(key) is key_lock:
                        del self._key_locks[key]
            return value, False

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` as the most recently used entry, then evict least recently used entries
        until the bounds hold (the newest entry always stays)."""
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._retire(old)
            del old  # a local reference would count the replaced value as still alive
            self._data[key] = value
            if self.max_bytes is not None:
                self._sizes[key] = self._measure_one(value)
            evicted = self._trim()
        self._after_evict(evicted)

    def size_hint(self, key: Hashable) -> dict[str, int]:
        """{pool: bytes} the value of ``key`` will take: its size when it was last stored, else the
        largest size stored so far per pool (a guess; {} before anything was stored)."""
        with self._lock:
            if key in self._sizes:
                return dict(self._sizes[key])
            hint: dict[str, int] = {}
            for size in self._sizes.values():
                for pool, n in size.items():
                    hint[pool] = max(hint.get(pool, 0), n)
            return hint

    def make_room(self, nbytes: Mapping[str, int]) -> None:
        """Evict least recently used entries until ``nbytes`` more ({pool: bytes}, e.g. a model about
        to be loaded) would fit the budgets (or nothing is left to evict)."""
        if self.max_bytes is None:
            return
        evicted = False
        with self._lock:
            while self._data:
                total = self._measure()
                over = {pool for pool, n in nbytes.items() if n > 0 and (budget := self.max_bytes.get(
                    pool, self.max_bytes.get(pool.split(":")[0]))) is not None and total.get(pool, 0) + n > budget}
                if not over:
                    break
                key = next((k for k in self._data if any(
                    p in over and b > 0 for p, b in self._measure_one(self._data[k]).items())), None)
                if key is None:
                    break
                value = self._data.pop(key)
                self._retire(value)
                del value
                evicted = True
        self._after_evict(evicted)

    def discard(self, key: Hashable) -> None:
        """Drop ``key`` if present."""
        with self._lock:
            value = self._data.pop(key, None)
            if value is not None:
                self._retire(value)
        self._after_evict(value is not None)

    def trim(self) -> None:
        """Re-apply the bounds (values may have grown, e.g. a model moved to a GPU)."""
        with self._lock:
            evicted = self._trim()
        self._after_evict(evicted)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            for value in self._data.values():
                self._retire(value)
            self._data.clear()
        self._after_evict(True)

    # -- internals (called with the lock held) --------------------------------------------------
    def _retire(self, value: Any) -> None:
        if self.held is not None:
            for obj in self.held(value):
                try:
                    self._evicted_alive.add(obj)
                except TypeError:  # not weak-referenceable: cannot be tracked
                    pass

    def _measure(self) -> dict[str, int]:
        if self._footprint is not None:
            objs = [obj for v in self._data.values() for obj in (self.held(v) if self.held else (v,))]
            return dict(self._footprint(objs + list(self._evicted_alive)))
        total: dict[str, int] = {}
        for v in self._data.values():
            for pool, n in _as_pools(self.weigh(v)).items():
                total[pool] = total.get(pool, 0) + n
        return total

    def _measure_one(self, value: Any) -> dict[str, int]:
        if self._footprint is not None:
            return dict(self._footprint(list(self.held(value)) if self.held else [value]))
        return _as_pools(self.weigh(value))

    def _over_budget(self) -> set[str]:
        """The pools whose bytes exceed their budget."""
        if self.max_bytes is None:
            return set()
        over = set()
        for pool, n in self._measure().items():
            budget = self.max_bytes.get(pool, self.max_bytes.get(pool.split(":")[0]))
            if budget is not None and n > budget:
                over.add(pool)
        return over

    def _victim(self, over: set[str]) -> Hashable | None:
        """The least recently used key (never the newest) holding memory in one of the ``over`` pools."""
        for key in list(self._data)[:-1]:
            if any(n > 0 and pool in over for pool, n in self._measure_one(self._data[key]).items()):
                return key
        return None

    def _trim(self) -> bool:
        evicted, collected = False, False
        while len(self._data) > 1:
            if self.max_items is not None and len(self._data) > max(1, self.max_items):
                key = next(iter(self._data))
            else:
                over = self._over_budget()
                if not over:
                    break
                if evicted and not collected and len(self._evicted_alive):
                    gc.collect()  # evicted values in reference cycles: free them before evicting more
                    collected = True
                    continue
                key = self._victim(over)
                if key is None:
                    break
            value = self._data.pop(key)
            self._retire(value)
            del value  # a local reference would count the evicted value as still alive
            evicted = True
        return evicted

    def _after_evict(self, evicted: bool) -> None:
        if evicted and self.on_evict is not None:
            self.on_evict()


# -- files on disk: one lifetime for uploads and results -------------------------------------------

#: Environment variable: seconds an upload or a result file (pictures, downloads) is kept on disk.
RESULT_TTL_ENV = "UNIFORMER_RESULT_TTL_S"
#: Its default: one hour.
DEFAULT_RESULT_TTL_S = 3600


def result_ttl_s() -> int:
    """Seconds uploads and result files live (``$UNIFORMER_RESULT_TTL_S``, default
    :data:`DEFAULT_RESULT_TTL_S`). Raises ValueError for a value that is not a positive integer."""
    raw = os.environ.get(RESULT_TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_RESULT_TTL_S
    try:
        ttl = int(raw)
    except ValueError:
        ttl = 0
    if ttl <= 0:
        raise ValueError(f"${RESULT_TTL_ENV} must be a positive number of seconds, got {raw!r}")
    return ttl


def delete_cache_setting() -> tuple[int, int]:
    """``gr.Blocks(delete_cache=(frequency, age))`` for :func:`result_ttl_s`: every file Gradio holds
    (uploads, and every file a handler returned, our result folders included: see :func:`result_dir`)
    is deleted once older than the TTL, checked every ``min(TTL / 2, 10 min)`` seconds (at least 1),
    and all of them when the server stops."""
    ttl = result_ttl_s()
    return max(1, min(ttl // 2, 600)), ttl


def upload_folder() -> Path:
    """Gradio's file cache (``$GRADIO_TEMP_DIR``, default ``<tmp>/gradio``): uploads land there, and
    files there are served as they are, not copied."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def result_dir(prefix: str) -> Path:
    """A fresh folder for one result's files (pictures, downloads), inside Gradio's file cache
    (:func:`upload_folder`, sub-folder ``uniformer``): Gradio serves the files without a copy and its
    ``delete_cache`` (:func:`delete_cache_setting`) deletes them with the uploads, after
    :func:`result_ttl_s` seconds. Folders of ours older than that (emptied by Gradio, or holding files
    nobody was shown) are removed here, before the new one is made, so the folders stay bounded too."""
    root = upload_folder() / "uniformer"
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - result_ttl_s()
    for old in root.iterdir():
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            continue
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def discard_upload(path: str | os.PathLike | None) -> None:
    """Delete an upload the app refused (an unreadable image, a rejected checkpoint) at once, rather
    than after the TTL. Only files inside Gradio's file cache are touched; anything else is left."""
    if not path:
        return
    try:
        file = Path(path).resolve()
        if file.is_file() and file.is_relative_to(upload_folder().resolve()):
            file.unlink(missing_ok=True)
    except OSError:
        pass
