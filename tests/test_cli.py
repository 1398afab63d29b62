"""``python -m uniformer``: predict, list, convert; errors exit non-zero with a message."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hubcache import add_to_hub_cache, official_state_dict

pytestmark = pytest.mark.slow  # every test runs `python -m uniformer` in a fresh process

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, hf_home=None, env=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    if hf_home:
        env["HF_HOME"] = str(hf_home)
    return subprocess.run([sys.executable, "-m", "uniformer", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(path)
    return path


def test_predict_json_from_hub_cache(tmp_path, photo):
    add_to_hub_cache(tmp_path, "Sense-X/uniformer_image", "uniformer_small_in1k.pth", official_state_dict("image_s"))
    proc = _cli("predict", photo, "--json", "--topk", "3", hf_home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert len(result["topk"]) == 3
    assert result["weights"]["source"] == "hub" and result["model_name"] == "uniformer_small_in1k"
    assert result["source"] == str(photo)


def test_predict_text_with_local_checkpoint_and_a_bad_file(tmp_path, photo):
    ckpt = tmp_path / "s.pth"
    torch.save(official_state_dict("image_s"), ckpt)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    proc = _cli("predict", photo, bad, "--checkpoint", ckpt, "--topk", "5")
    assert proc.returncode == 1  # one input failed, the other was answered
    assert f"local checkpoint file {ckpt}" in proc.stdout
    assert proc.stdout.count("%") == 5
    assert "notes.jpg is not an image file" in proc.stderr


def test_predict_without_weights_offline_fails_clearly(tmp_path, photo):
    proc = _cli("predict", photo, hf_home=tmp_path)
    assert proc.returncode == 2
    assert "CheckpointNotAvailableError" in proc.stderr and "--checkpoint" in proc.stderr


def test_predict_untrained_warns(tmp_path, photo):
    proc = _cli("predict", photo, "--untrained", "--model", "uniformer_small_tl_224", hf_home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "meaningless" in proc.stderr


def test_list_and_unknown_model(tmp_path, photo):
    proc = _cli("list", "uniformer_small*")
    assert proc.returncode == 0 and "Sense-X/uniformer_image:uniformer_small_in1k.pth" in proc.stdout
    sources = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()}  # the source column
    assert sources["uniformer_small_in1k"] == "hub" and sources["uniformer_small_tl_224"] == "drive"
    assert sources["uniformer_small_backbone"] == "inside" and sources["uniformer_small_k400_32x4"] == "unreleased"
    assert "https://drive.google.com/file/d/16wjfeyqQFZ2x9W91EXf0Py1bfv4Fydfr/view" in proc.stdout
    proc = _cli("predict", photo, "--model", "nope", hf_home=tmp_path)
    assert proc.returncode == 2 and "unknown model" in proc.stderr


def test_detect_with_official_checkpoint_writes_drawing_and_coco_json(tmp_path, photo):
    from hubcache import load_spec, load_synth

    ckpt = tmp_path / "mask_rcnn_1x_xxs.pth"
    torch.save({"meta": {"mmdet_version": "2.11.0"},
                "state_dict": load_synth().synthesize(load_spec("mask_rcnn_1x_xxs")["keys"])}, ckpt)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    proc = _cli("detect", photo, bad, "--model", "mask_rcnn_1x_xxs", "--checkpoint", ckpt, "--score-thr", "0",
                "--short-side", "128", "--out", tmp_path / "out")
    assert proc.returncode == 1, proc.stderr  # one input failed
    assert "bad.jpg" in proc.stderr and "Traceback" not in proc.stderr
    assert "weights: local file" in proc.stdout or "local" in proc.stdout
    drawing = Image.open(tmp_path / "out" / "chelsea_detections.png")
    assert drawing.size == Image.open(photo).size
    coco = json.loads((tmp_path / "out" / "chelsea_detections.json").read_text())
    assert coco and {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(coco[0])


def test_detect_without_checkpoint_says_where_to_get_it(photo):
    proc = _cli("detect", photo)
    assert proc.returncode == 2 and "Google Drive" in proc.stderr and "--untrained" in proc.stderr
    proc = _cli("detect", photo, "--model", "uniformer_small_in1k", "--untrained")
    assert proc.returncode == 2 and "not a detection model" in proc.stderr


def test_download_dry_run_json_says_where_each_file_comes_from(tmp_path):
    env = {"UNIFORMER_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    proc = _cli("download", "uniformer_small_in1k", "uniformer_xxs_1*", "uniformer_small_backbone",
                "uniformer_small_k400_32x4", "uniformer_xxs_digits", "--dry-run", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert list(rows) == ["uniformer_small_in1k", "uniformer_xxs_128_in1k", "uniformer_xxs_160_in1k",
                          "uniformer_xxs_192_in1k", "uniformer_small_backbone", "uniformer_small_k400_32x4",
                          "uniformer_xxs_digits"]
    hub, drive = rows["uniformer_small_in1k"], rows["uniformer_xxs_128_in1k"]
    assert (hub["source"], hub["hub_repo_id"], hub["hub_filename"]) == ("hub", "Sense-X/uniformer_image",
                                                                       "uniformer_small_in1k.pth")
    assert hub["drive_file_id"] == "1-uepH3Q3BhTmWU6HK-sGAGQC_MpfIiPD" and hub["cached"] is False
    assert hub["path"].startswith(str(tmp_path / "hf"))
    assert (drive["source"], drive["hub_repo_id"], drive["hub_filename"]) == ("drive", None, None)
    assert drive["drive_file_id"] == "1Cr7uB5hUck1BHioEROWZjfLpYRwg4Zps"
    assert drive["path"] == str(tmp_path / "cache" / "drive" / "uniformer_xxs_128_in1k.pth")
    assert drive["status"] == "would download" and not Path(drive["path"]).exists()
    inside = rows["uniformer_small_backbone"]
    assert inside["source"] == "inside" and inside["drive_file_id"] is None
    assert "upernet_global_small" in inside["holders"]
    unreleased = rows["uniformer_small_k400_32x4"]
    assert unreleased["source"] == "unreleased" and unreleased["path"] is None
    project = rows["uniformer_xxs_digits"]
    assert project["source"] == "project" and project["cached"] and Path(project["path"]).exists()
    proc = _cli("download", "no_such_model*", "--dry-run")
    assert proc.returncode == 2 and "no registered model matches" in proc.stderr


def test_download_fetches_from_drive_then_reports_it_cached(tmp_path):
    from drivefiles import DriveServer

    ckpt = tmp_path / "official.pth"
    torch.save({"model": official_state_dict("light_xxs")}, ckpt)
    with DriveServer() as server:
        server.files["1Cr7uB5hUck1BHioEROWZjfLpYRwg4Zps"] = ckpt.read_bytes()
        server.modes["1CjrCEnZCk2aLrN7nVG8vFvu3FAUL4_Y_"] = "quota"
        server.files["1CjrCEnZCk2aLrN7nVG8vFvu3FAUL4_Y_"] = b"unused"
        server.files["1CsXCzfVFPyM2mY8BA_1fO3q_VBngnF44"] = ckpt.read_bytes()  # the Drive copy of a Hub file
        # the same server stands in for the Hub, where it answers 404: the Hub name falls back to Drive
        env = {"UNIFORMER_CACHE": str(tmp_path / "cache"), "UNIFORMER_DRIVE_URL": server.url, "HF_HUB_OFFLINE": "0",
               "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf")}
        proc = _cli("download", "uniformer_xxs_128_in1k", "uniformer_xxs_192_in1k", "uniformer_xxs_160_in1k", "--json",
                    env=env)
    assert proc.returncode == 1, proc.stderr  # one of the three failed
    ok, quota, hub = json.loads(proc.stdout)
    assert hub["source"] == "hub" and hub["status"] == "downloaded", hub
    assert hub["path"] == str(tmp_path / "cache" / "drive" / "uniformer_xxs_160_in1k.pth")
    assert ok["status"] == "downloaded" and ok["cached"] and Path(ok["path"]).read_bytes() == ckpt.read_bytes()
    assert quota["status"] == "failed" and "web page instead of the checkpoint" in quota["error"]
    assert "https://drive.google.com/file/d/1CjrCEnZCk2aLrN7nVG8vFvu3FAUL4_Y_/view" in quota["error"]
    proc = _cli("download", "uniformer_xxs_128_in1k", env=env)  # the server is gone: the cache answers
    assert proc.returncode == 0, proc.stderr
    assert f"cached at {ok['path']}" in proc.stdout


def test_segment_folder_offline_runs_untrained_saying_so_and_writes_png_and_json(tmp_path, photo):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.open(photo).resize((96, 64)).save(folder / "a.png")
    Image.open(photo).resize((64, 80)).save(folder / "sub" / "a.jpg")  # same stem: outputs must not collide
    (folder / "broken.jpg").write_bytes(b"not an image")
    proc = _cli("segment", folder, "--model", "fpn_xxs", "--short-side", "64", "--out", tmp_path / "out", "--json",
                hf_home=tmp_path / "hf", env={"UNIFORMER_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 1, proc.stderr  # the broken file failed, the two photos were answered
    assert "broken.jpg" in proc.stderr and "Traceback" not in proc.stderr
    assert "UNTRAINED random weights" in proc.stderr and "meaningless" in proc.stderr
    results = json.loads(proc.stdout)
    assert [Path(r["source"]).name for r in results] == ["a.png", "a.jpg"]
    for r, size in zip(results, [(96, 64), (64, 80)]):
        overlay, mask, classes = map(Path, r["outputs"])
        assert overlay.parent != tmp_path / "out" and overlay.parent.parent == tmp_path / "out"
        assert Image.open(overlay).size == size and Image.open(mask).size == size
        assert r["weights"].startswith("untrained") and r["image_size"] == list(size)
        counts = np.bincount(np.asarray(Image.open(mask)).ravel(), minlength=150)
        assert {c["index"]: c["pixels"] for c in json.loads(classes.read_text())["classes"]} == \
            {i: int(n) for i, n in enumerate(counts) if n}
    assert len({Path(r["outputs"][0]).parent for r in results}) == 2


def test_pose_with_boxes_text_and_outputs(tmp_path, photo):
    proc = _cli("pose", photo, "--boxes", "10,20,120,200; 200,30,150,250", "--no-flip", "--out", tmp_path / "out",
                "--untrained", hf_home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "UNTRAINED" in proc.stderr
    assert proc.stdout.count("person ") == 2 and "left_wrist" in proc.stdout and "flip test off" in proc.stdout
    written = json.loads((tmp_path / "out" / "chelsea" / "keypoints.json").read_text())
    assert [p["box_xywh"] for p in written["persons"]] == [[10, 20, 120, 200], [200, 30, 150, 250]]
    assert all(len(p["keypoints"]) == 17 * 3 for p in written["persons"])
    assert Image.open(tmp_path / "out" / "chelsea" / "pose.png").size == Image.open(photo).size
    proc = _cli("pose", photo, "--boxes", "10,20,-5,200", "--untrained", hf_home=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "box" in proc.stderr
    proc = _cli("pose", photo, "--model", "fpn_xxs")
    assert proc.returncode == 2 and "not a pose model" in proc.stderr


def test_output_stems_are_unique():
    from uniformer.cli.common import output_stems

    assert output_stems(["a/x.jpg", "b/x.jpg", "c/y.png"]) == ["a_x", "b_x", "y"]
    assert output_stems(["x.jpg", "x.png"]) == ["x", "x_2"]


def test_emit_prints_one_place(capsys):
    from uniformer.cli import Report, emit

    rep = Report(data={"a": 1}, lines=["text"], errors=["f.jpg: bad"], warnings=["untrained"])
    assert emit(rep, as_json=True) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == {"a": 1} and "WARNING: untrained" in err and "error: f.jpg: bad" in err
    assert emit(Report(lines=["x", "y"])) == 0 and capsys.readouterr().out == "x\ny\n"
