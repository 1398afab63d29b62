"""Disk stays bounded: uploads and result files live ``$UNIFORMER_RESULT_TTL_S`` seconds.

One ``python app.py`` with a 5-second TTL and its own TMPDIR and GRADIO_TEMP_DIR gets Segment and
Detect calls through the API (each writes an overlay, a mask, JSON downloads and receives an
upload); once the TTL has passed, both folders are back within 3 MB of their size after start-up.
(The issue's check, 40 calls, is :func:`exercise` with ``calls=40``; the test makes fewer.) The
TTL setting itself and the refused-upload deletion are checked without a server.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from appfiles import running_app

from app import cache
from app.examples import write_examples

#: Slack over the start-up size, bytes (the issue's bound).
SLACK = 3 * 2 ** 20
TTL_S = 5


def disk_usage(folder: Path) -> int:
    """Bytes ``folder`` takes on disk (files and folders, as ``du`` counts them)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:  # deleted while we walk
                pass
    return total


def exercise(url: str, photo: Path, calls: int) -> None:
    """``calls`` API calls alternating /segment and /detect (light models, small sizes) on ``photo``."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    for i in range(calls):
        if i % 2 == 0:
            client.predict(handle_file(str(photo)), "fpn_xxs", "global", 32, 256, 0.6, True, api_name="/segment")
        else:
            client.predict(handle_file(str(photo)), "mask_rcnn_1x_xxs", "global", 320, 0.3, 0.45, True, True, "fp32",
                           api_name="/detect")


def test_segment_and_detect_results_are_deleted_after_the_ttl(tmp_path):
    folders = {"TMPDIR": tmp_path / "tmp", "GRADIO_TEMP_DIR": tmp_path / "gradio"}
    for folder in folders.values():
        folder.mkdir()
    env = {**{k: str(v) for k, v in folders.items()}, cache.RESULT_TTL_ENV: str(TTL_S)}
    with running_app(tmp_path, timeout_s=240, extra_env=env) as url:
        start = {k: disk_usage(v) for k, v in folders.items()}
        exercise(url, write_examples()["coffee"], calls=6)
        grown = {k: disk_usage(v) - start[k] for k, v in folders.items()}
        assert grown["GRADIO_TEMP_DIR"] > 100_000, grown  # uploads and results were written
        results = folders["GRADIO_TEMP_DIR"] / "uniformer"
        assert any(results.rglob("*.png"))  # our result folders live where the TTL covers them

        def settled() -> bool:
            return (all(disk_usage(v) - start[k] <= SLACK for k, v in folders.items())
                    and not any(results.rglob("*.*")))  # every result file gone, not only most bytes

        deadline = time.monotonic() + 6 * TTL_S + 30  # the TTL, Gradio's check period, a busy CPU
        while not settled() and time.monotonic() < deadline:
            time.sleep(1)
        assert settled(), (start, {k: disk_usage(v) for k, v in folders.items()}, sorted(results.rglob("*.*")))


def test_result_ttl_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv(cache.RESULT_TTL_ENV, raising=False)
    assert cache.result_ttl_s() == cache.DEFAULT_RESULT_TTL_S == 3600
    assert cache.delete_cache_setting() == (600, 3600)
    monkeypatch.setenv(cache.RESULT_TTL_ENV, "5")
    assert cache.delete_cache_setting() == (2, 5)
    for bad in ("0", "-3", "an hour"):
        monkeypatch.setenv(cache.RESULT_TTL_ENV, bad)
        with pytest.raises(ValueError, match=cache.RESULT_TTL_ENV):
            cache.result_ttl_s()


def test_result_folders_live_in_gradios_cache_and_old_ones_go(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setenv(cache.RESULT_TTL_ENV, "60")
    old = cache.result_dir("uniformer_seg_")
    (old / "overlay.png").write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - 120, time.time() - 120))  # two TTLs ago
    fresh = cache.result_dir("uniformer_seg_")
    assert fresh.parent == tmp_path / "uniformer" and fresh.is_dir() and not old.exists()
    kept = cache.result_dir("uniformer_det_")
    assert fresh.is_dir() and kept.is_dir()  # younger than the TTL: kept


def test_a_refused_checkpoint_upload_is_deleted_at_once(tmp_path, monkeypatch):
    import gradio as gr

    from app import weights

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    upload = tmp_path / "gradio" / "0123abcd" / "model.pth"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"not a checkpoint" * 64)
    outside = tmp_path / "mine.pth"
    outside.write_bytes(b"not a checkpoint" * 64)
    for path in (upload, outside):
        with pytest.raises(gr.Error, match="cannot be used as weights"):
            weights.use_uploaded(str(path), "uniformer_xxs_128_in1k", weights.SessionWeights())
    assert not upload.exists()  # the refused upload is gone
    assert outside.exists()  # a file outside Gradio's uploads is never touched
