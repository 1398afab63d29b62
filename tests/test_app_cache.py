"""The app's one cache mechanism (app/cache.py) and the byte-bounded model cache (app/models.py):
bounds hold while more (tiny) models load than fit, least recently used first out, models in use
counted until freed, shared weights counted once, one load per key under concurrency, and other
keys never wait for it."""
from __future__ import annotations

import gc
import threading
import time

import pytest
import torch

from app import models
from app.cache import MB, LRUCache
from app.dense_models import Stage3Twins

#: Bytes of one tiny model: Linear(256, 256) in fp32 (weight + bias).
TINY_BYTES = (256 * 256 + 256) * 4


def tiny(name: str) -> models.LoadedModel:
    return models.LoadedModel(name, torch.nn.Linear(256, 256))


@pytest.fixture
def cache_of_three():
    """A model cache with room for three tiny models (and not four)."""
    return models.new_model_cache(cpu_mb=3.5 * TINY_BYTES / MB)


def test_memory_bound_holds_and_least_recently_used_goes_first(cache_of_three):
    cache = cache_of_three
    for i in range(6):
        cache.get_or_compute(("model", f"m{i}"), lambda i=i: tiny(f"m{i}"))
        assert cache.nbytes()["cpu"] <= 3.5 * TINY_BYTES
        if i == 2:
            assert cache.get(("model", "m0")) is not None  # m0 used again: now the most recent
        if i == 3:  # m1, not m0, made room
            assert cache.keys() == [("model", "m2"), ("model", "m0"), ("model", "m3")]
    assert cache.keys() == [("model", "m3"), ("model", "m4"), ("model", "m5")]
    assert cache.nbytes() == {"cpu": 3 * TINY_BYTES}
    reloaded, cached = cache.get_or_compute(("model", "m1"), lambda: tiny("m1"))  # evicted: loads again
    assert not cached and reloaded.model is not None and ("model", "m0") not in cache


def test_model_in_use_is_not_freed_and_is_counted_until_released(cache_of_three):
    cache = cache_of_three
    in_use = cache.get_or_compute(("model", "busy"), lambda: tiny("busy"))[0].model  # a request holds it
    for i in range(3):
        cache.get_or_compute(("model", f"m{i}"), lambda i=i: tiny(f"m{i}"))
    assert ("model", "busy") not in cache
    assert in_use.weight.abs().sum() > 0  # evicted, still usable by its request
    assert cache.nbytes()["cpu"] <= 3.5 * TINY_BYTES  # counted: one fewer cached model
    assert len(cache) == 2
    del in_use
    gc.collect()
    cache.get_or_compute(("model", "m3"), lambda: tiny("m3"))
    assert len(cache) == 3 and cache.nbytes() == {"cpu": 3 * TINY_BYTES}


def test_shared_weights_are_counted_once():
    a = torch.nn.Linear(256, 256)
    twin = torch.nn.Sequential(a)  # shares every weight, like a stage-3 twin
    assert models.module_footprint([a, twin, models.LoadedModel("a", a), (a, twin)]) == {"cpu": TINY_BYTES}
    assert models.module_footprint([a, torch.nn.Linear(256, 256)]) == {"cpu": 2 * TINY_BYTES}


def test_stage3_twins_live_in_the_model_cache(monkeypatch):
    cache = models.new_model_cache(cpu_mb=100)
    monkeypatch.setattr(models, "model_cache", lambda: cache)
    monkeypatch.setattr("app.dense_models.model_cache", lambda: cache)
    monkeypatch.setattr("app.dense_models.get_model", lambda name: cache.get_or_compute(("model", name),
                                                                                        lambda: tiny(name))[0])
    monkeypatch.setattr("app.dense_models.with_stage3_attention", lambda m, mode, w: torch.nn.Sequential(m))
    twins = Stage3Twins(maxsize=2)
    loaded, first = twins.get("seg", "window", 14)
    assert twins.get("seg", "window", 14)[1] is first  # built once
    twins.get("seg", "hybrid", 14)
    twins.get("seg", "hybrid", 32)  # over this tab's maxsize: the least recent twin leaves the cache
    assert twins.get("seg", "window", 14)[1] is not first
    assert len(cache) == 3 and cache.nbytes() == {"cpu": TINY_BYTES}  # model + 2 twins, weights shared


def test_per_device_budgets():
    """The same logic for GPU memory: each pool ('cuda:N') has its budget ('cuda' covers every N)."""
    cache = LRUCache(max_bytes={"cpu": 100, "cuda": 10}, weigh=lambda v: v)
    cache.put("a", {"cpu": 60})
    cache.put("b", {"cuda:0": 6})
    cache.put("c", {"cuda:1": 6})  # another GPU: its own budget
    assert cache.keys() == ["a", "b", "c"]
    cache.put("d", {"cuda:0": 6})  # cuda:0 over 10: the least recent entry on cuda:0 (b) goes, not a
    assert cache.keys() == ["a", "c", "d"] and cache.nbytes() == {"cpu": 60, "cuda:0": 6, "cuda:1": 6}
    cache.put("e", {"cpu": 50})  # cpu over 100: a goes, the GPUs keep theirs
    assert cache.keys() == ["c", "d", "e"]


def test_concurrent_first_requests_load_once_and_other_keys_do_not_wait():
    cache = LRUCache(max_items=4)
    calls, release = [], threading.Event()

    def slow(key):
        calls.append(key)
        release.wait(10)
        return key.upper()

    threads = [threading.Thread(target=cache.get_or_compute, args=("a", lambda: slow("a"))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    t0 = time.perf_counter()
    assert cache.get_or_compute("b", lambda: "B") == ("B", False)  # not blocked by a's load
    assert time.perf_counter() - t0 < 1 and "a" not in cache
    release.set()
    for t in threads:
        t.join()
    assert calls == ["a"] and cache.get("a") == "A"


def test_failed_compute_is_not_stored_and_the_next_call_retries():
    cache = LRUCache(max_items=2)
    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("no")))
    assert cache.get_or_compute("k", lambda: 1, store=lambda v: v > 1) == (1, False) and "k" not in cache
    assert cache.get_or_compute("k", lambda: 2) == (2, False) and cache.get("k") == 2


def test_get_model_uses_the_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv(models.MODEL_CACHE_ENV, str(2.5 * TINY_BYTES / MB))
    monkeypatch.setattr(models, "load_model", tiny)
    models.model_cache.cache_clear()
    try:
        for name in ("a", "b", "c", "a", "d"):
            assert models.get_model(name).name == name
        assert models.model_cache().keys() == [("model", "a"), ("model", "d")]
        monkeypatch.setenv(models.MODEL_CACHE_ENV, "lots")
        with pytest.raises(ValueError, match="UNIFORMER_MODEL_CACHE_MB must be a number"):
            models.new_model_cache()
    finally:
        models.model_cache.cache_clear()


def test_make_room_evicts_before_a_load(cache_of_three):
    cache = cache_of_three
    for i in range(3):
        cache.put(("model", f"m{i}"), tiny(f"m{i}"))
    assert cache.size_hint(("model", "new")) == {"cpu": TINY_BYTES}  # the largest so far
    cache.make_room({"cpu": TINY_BYTES})  # one more model is about to be built
    assert cache.keys() == [("model", "m1"), ("model", "m2")]
    cache.make_room({"cpu": 10 * TINY_BYTES})  # more than the budget: everything goes, nothing breaks
    assert len(cache) == 0
