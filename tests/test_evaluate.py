"""``uniformer.evaluate`` and ``python -m uniformer evaluate``: each family's official protocol on
small datasets in the official layouts with known answers (oracle models score 100 / AP 100, known
confusions give hand-computed numbers, AP equals pycocotools run directly), and 2 processes equal 1."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import evalsets
from uniformer import create_model, get_entry
from uniformer.evaluate import evaluate, evaluate_pose, evaluate_segmentation
from uniformer.evaluate.metrics import intersect_and_union, reduce_zero_label, segmentation_metrics, topk_accuracy


def test_topk_and_segmentation_metrics_by_hand():
    assert topk_accuracy([[3, 1], [2, 0], [5, 4]], [3, 0, 9], ks=(1, 2)) == {"top1": 100 / 3, "top2": 200 / 3}
    label = reduce_zero_label(np.array([[0, 1, 1, 2], [2, 2, 3, 3]]))  # -> ignore, 0, 0, 1 / 1, 1, 2, 2
    assert label.tolist() == [[255, 0, 0, 1], [1, 1, 2, 2]]
    pred = np.array([[2, 0, 1, 1], [1, 1, 2, 0]])  # the ignored pixel's prediction does not count
    counts = intersect_and_union(pred, label, num_classes=4)
    # class 0: label 2 px, pred 2 px (one at (0,1), one at (1,3)), 1 shared -> IoU 1/3
    # class 1: label 3, pred 4, shared 3 -> IoU 3/4; class 2: label 2, pred 1, shared 1 -> IoU 1/2; class 3: absent
    assert counts.tolist() == [[1, 3, 1, 0], [3, 4, 2, 0], [2, 4, 1, 0], [2, 3, 2, 0]]
    m = segmentation_metrics(counts)
    assert m["mIoU"] == pytest.approx(100 * (1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert m["aAcc"] == pytest.approx(100 * 5 / 7) and m["mAcc"] == pytest.approx(100 * (1 / 2 + 1 + 1 / 2) / 3)


def test_image_folder_oracle_scores_100_and_a_known_confusion(tmp_path):
    data = evalsets.image_folder(tmp_path / "val")
    cfg = dataclasses.replace(get_entry("uniformer_small_in1k").pretrained, input_size=(3, 32, 32))
    result = evaluate(evalsets.ImageOracle(cfg), data, batch_size=3)
    assert result.metrics == {"top1": 100.0, "top5": 100.0} and result.samples == 8
    assert result.paper == [{"metric": "top1", "protocol": "", "value": 82.9, "source": "Table 2"}]
    assert "paper 82.9 (Table 2)" in "\n".join(result.lines())
    result = evaluate(evalsets.ImageOracle(cfg, wrong={3}), data, batch_size=5)  # class 3: truth ranked second
    assert result.metrics == {"top1": 75.0, "top5": 100.0}


def test_video_list_oracle_scores_100_with_the_official_views(tmp_path):
    data = evalsets.video_list(tmp_path / "vid", constant=True)
    result = evaluate(evalsets.VideoOracle(create_model("uniformer_small_sthv2_16_prek400")), data)
    assert result.metrics == {"top1": 100.0, "top5": 100.0} and result.samples == 4
    assert "1 clip × 3 crops" in result.protocol and result.paper[0]["value"] == 67.7
    (tmp_path / "bad.csv").write_text("path,label\nvid/videos/v0.mp4,400\n")
    with pytest.raises(ValueError, match="outside 0..399"):
        evaluate(evalsets.VideoOracle(create_model("uniformer_xxs4_128_k400")), tmp_path / "bad.csv")


def test_segmentation_oracle_single_scale_and_known_confusion(tmp_path):
    data = evalsets.ade20k(tmp_path / "ade", size=(64, 64))  # a test scale fitting the images: no resize
    model = evalsets.seg_oracle(create_model("fpn_xxs", test_scale=(256, 64)))
    result = evaluate(model, data)
    assert result.metrics["mIoU"] == 100.0 and result.metrics["aAcc"] == 100.0 and result.samples == 3
    assert [p["value"] for p in result.paper] == [42.3]
    # class 12 (annotation 13) answered as class 4: each image has 4 equal bands -> class 4's IoU is 1/2, class 12's 0
    model = evalsets.seg_oracle(create_model("fpn_xxs", test_scale=(256, 64)), confuse={12: 4})
    result = evaluate_segmentation(model, data)
    assert result.metrics["mIoU"] == pytest.approx(100 * (1 + 1 / 2 + 0 + 1) / 4, abs=0.01)
    assert result.metrics["aAcc"] == pytest.approx(75.0, abs=0.01)


def test_segmentation_multi_scale_flip_oracle(tmp_path):
    data = evalsets.ade20k(tmp_path / "ade", size=(96, 64), constant=True)
    model = create_model("upernet_global_small", test_scale=(128, 32))  # ratios 0.5-1.75 of a small scale
    result = evaluate(evalsets.seg_oracle(model), data, multi_scale=True)
    assert result.metrics["mIoU"] == 100.0 and "multi-scale" in result.protocol
    assert [p["value"] for p in result.paper] == [48.5]


def test_detection_oracle_ap_100_and_equal_to_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = evalsets.coco_instances(tmp_path / "coco")
    ann = data / "annotations" / "instances_val2017.json"
    model = evalsets.det_oracle(create_model("mask_rcnn_1x_xxs"), ann)
    result = evaluate(model, data, results_file=tmp_path / "results.json")
    assert result.metrics["bbox_AP"] == 100.0 and result.metrics["segm_AP"] == 100.0
    assert {p["metric"]: p["value"] for p in result.paper} == {"bbox_AP": 42.8, "segm_AP": 39.2}
    # one object per image missed: compare with pycocotools run directly on the same results JSON
    model = evalsets.det_oracle(create_model("mask_rcnn_1x_xxs"), ann, drop=1)
    result = evaluate(model, data, results_file=tmp_path / "results.json")
    gt = COCO(str(ann))
    for iou_type in ("bbox", "segm"):
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "results.json")), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert result.metrics[f"{iou_type}_AP"] == pytest.approx(100 * ev.stats[0])
        assert result.metrics[f"{iou_type}_AR100"] == pytest.approx(100 * ev.stats[8])
    assert 0 < result.metrics["bbox_AP"] < 100


def test_pose_oracle_with_gt_boxes_and_with_detections(tmp_path):
    data = evalsets.coco_keypoints(tmp_path / "coco")
    ann = data / "annotations" / "person_keypoints_val2017.json"
    model = evalsets.pose_oracle(create_model("top_down_256x192_global_small"), ann)
    result = evaluate_pose(model, data, flip_test=False)
    assert result.metrics["AP"] == 100.0 and result.samples == 3
    gt = json.loads(ann.read_text())["annotations"]
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in gt[:2]]
    dets.append({"image_id": gt[0]["image_id"], "category_id": 1, "bbox": [0, 0, 30, 30], "score": 0.8})  # a false one
    dets.append({"image_id": gt[1]["image_id"], "category_id": 18, "bbox": [0, 0, 50, 50], "score": 0.9})  # a dog
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    result = evaluate_pose(model, data, det_file=tmp_path / "dets.json", flip_test=False)
    # the third person is missed: recall 2/3, precision 1 up to it (the false box scores ~0: its crop's joints are
    # far away) -> 67 of COCO's 101 recall points have precision 1
    assert result.extra["persons"] == 3 and result.samples == 2
    assert result.metrics["AP"] == pytest.approx(100 * 67 / 101)


# --- 2 processes (gloo on CPU) give the 1-process results ---------------------------------------------
FAMILIES = {  # family -> (model, dataset builder, evaluate options, config overrides: smaller test scales)
    "image": ("uniformer_xxs_128_in1k", lambda d: evalsets.image_folder(d / "img", per_class=2, noise=True),
              {"batch_size": 3}, {}),
    "video": ("uniformer_xxs4_128_k400", lambda d: evalsets.video_list(d / "vid"), {}, {}),
    "segmentation": ("fpn_xxs", lambda d: evalsets.ade20k(d / "ade", size=(64, 48)), {}, {"test_scale": (256, 64)}),
    "detection": ("mask_rcnn_1x_xxs", lambda d: evalsets.coco_instances(d / "det", n=3), {},
                  {"test_scale": (320, 192)}),
    "pose": ("top_down_256x192_global_small", lambda d: evalsets.coco_keypoints(d / "pose"), {}, {}),
}


def _evaluate_all(root: Path) -> dict:
    torch.set_num_threads(1)
    out = {}
    paths = json.loads((root / "paths.json").read_text())
    for family, (name, _, options, overrides) in FAMILIES.items():
        model = create_model(name, checkpoint_path=root / f"{name}.pth", **overrides)
        result = evaluate(model, paths[family], **options)
        out[family] = {"metrics": result.metrics, "samples": result.samples, "world_size": result.world_size,
                       **result.extra}
    return out


def _worker(rank: int, world: int, port: int, root: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    out = _evaluate_all(Path(root))
    if rank == 0:
        (Path(root) / "two.json").write_text(json.dumps(out))
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def eval_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalsets")
    paths = {}
    for family, (name, build, _, _) in FAMILIES.items():
        paths[family] = str(build(root))
        torch.manual_seed(0)
        torch.save(create_model(name).state_dict(), root / f"{name}.pth")  # fixed random weights for all runs
    (root / "paths.json").write_text(json.dumps(paths))
    return root


def test_two_processes_equal_one_for_every_family(eval_root):
    one = _evaluate_all(eval_root)
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(eval_root)), nprocs=2, join=True)
    two = json.loads((eval_root / "two.json").read_text())
    for family in FAMILIES:
        assert two[family]["world_size"] == 2 and one[family]["world_size"] == 1
        a, b = {**one[family], "world_size": 0}, {**two[family], "world_size": 0}
        assert a["samples"] == b["samples"], family
        assert a["metrics"] == pytest.approx(b["metrics"], abs=1e-9), family
        assert {k: v for k, v in a.items() if k != "metrics"} == {k: v for k, v in b.items() if k != "metrics"}
    assert one["image"]["samples"] == 8 and one["video"]["samples"] == 4 and one["segmentation"]["samples"] == 3
    assert one["detection"]["samples"] == 3 and one["pose"]["samples"] == 3


def test_cli_evaluate_under_torchrun_equals_one_process(eval_root):
    root = Path(__file__).resolve().parents[1]
    args = ["uniformer_xxs_128_in1k", "--data", eval_root / "img", "--checkpoint",
            eval_root / "uniformer_xxs_128_in1k.pth", "--json", "--batch-size", "3", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "uniformer", "evaluate", *map(str, args)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(_free_port()), "-m", "uniformer", "evaluate", *map(str, args)],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # rank 1 prints nothing: one JSON document
    assert (a["world_size"], b["world_size"]) == (1, 2) and a["samples"] == b["samples"] == 8
    assert a["metrics"] == b["metrics"] and a["paper"] == b["paper"] == [
        {"metric": "top1", "protocol": "", "value": 76.8, "source": "Table 11"}]


def test_readme_reproduce_table_has_every_paper_number():
    from uniformer import list_models
    from uniformer.registry import paper_results

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text().split("## Reproduce the paper")[1]
    for name in list_models():
        for p in paper_results(name):
            row = next((line for line in readme.splitlines() if f"evaluate {name} " in line
                        and ("--multi-scale" in line) == (p["protocol"] == "multi-scale+flip")), None)
            assert row is not None and str(p["value"]) in row, (name, p)
    have = {n for n in list_models() if paper_results(n)}
    official = {n for n in list_models() if get_entry(n).pretrained.top1 is not None}
    assert official <= have  # every classifier with a paper top-1 has its row
    assert all(paper_results(n)[0]["value"] == get_entry(n).pretrained.top1 for n in official)
