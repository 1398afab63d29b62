"""Small benchmark datasets in the official layouts (ImageNet folder, CSV video list, ADE20K, COCO
instances, COCO keypoints) with known answers, and oracle models whose predictions are their
ground truth (for ``tests/test_evaluate.py``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_CLASSES = (0, 3, 7, 9)  # ImageNet indices used by the image folder (folder named by index)


def class_value(k: int) -> int:
    """The grey level (0-255) an image of ImageNet class ``k`` is filled with (oracle code)."""
    return 20 + 20 * IMAGE_CLASSES.index(k)


def image_folder(root: Path, per_class: int = 2, noise: bool = False) -> Path:
    """root/<class index>/<i>.png: constant images of grey level ``class_value`` (or random noise)."""
    rng = np.random.default_rng(0)
    for k in IMAGE_CLASSES:
        (root / str(k)).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (40 + 4 * i, 48, 3), dtype=np.uint8) if noise else \
                np.full((40 + 4 * i, 48, 3), class_value(k), np.uint8)
            Image.fromarray(arr).save(root / str(k) / f"{i}.png")
    return root


class ImageOracle(torch.nn.Module):
    """Reads the class from the grey level of the (normalized) input; ``wrong``: classes it answers
    with another first guess (the truth second)."""

    def __init__(self, pretrained_cfg, wrong=()):
        super().__init__()
        self.pretrained_cfg, self.model_name, self.wrong = pretrained_cfg, "uniformer_small_in1k", set(wrong)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        mean, std = self.pretrained_cfg.mean[0], self.pretrained_cfg.std[0]
        values = (x[:, 0, x.shape[2] // 2, x.shape[3] // 2] * std + mean) * 255
        logits = torch.zeros(x.shape[0], 1000)
        for b, v in enumerate(values.tolist()):
            k = IMAGE_CLASSES[int(round((v - 20) / 20))]
            logits[b, k] = 10.0
            if k in self.wrong:
                logits[b, (k + 1) % 1000] = 20.0
        return logits


# --- ADE20K ------------------------------------------------------------------------------------
SEG_CODES = {1: 0, 5: 80, 13: 160, 150: 240}  # annotation value (1..150 classes, +1) -> image grey level


def ade20k(root: Path, size=(512, 512), n: int = 3, constant: bool = False) -> Path:
    """root/images/validation/*.jpg + root/annotations/validation/*.png. Each image is made of
    vertical bands of the SEG_CODES classes (or, ``constant``, one class per image) with a strip of
    annotation 0 (ignored) at the top; the image's grey level encodes the class."""
    (root / "images" / "validation").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "validation").mkdir(parents=True, exist_ok=True)
    values = list(SEG_CODES)
    for i in range(n):
        w, h = size
        ann = np.zeros((h, w), np.uint8)
        if constant:
            ann[:] = values[i % len(values)]
        else:
            bands = np.array_split(np.arange(w), len(values))
            for j, cols in enumerate(bands):
                ann[:, cols] = values[(i + j) % len(values)]
        ann[: h // 8] = 0  # ignored
        img = np.zeros((h, w), np.uint8)
        for v, grey in SEG_CODES.items():
            img[ann == v] = grey
        img[: h // 8] = img[h // 8]  # the ignored strip looks like the row below it
        Image.fromarray(np.stack([img] * 3, -1)).save(root / "images" / "validation" / f"ADE_val_{i:08d}.png")
        Image.fromarray(ann).save(root / "annotations" / "validation" / f"ADE_val_{i:08d}.png")
    return root


def seg_oracle(model, confuse: dict[int, int] | None = None):
    """Patch ``model.forward`` (a segmentor) to answer the class its input's grey level encodes
    (training ids: annotation - 1); ``confuse``: {true id: answered id}."""
    codes = {v: k - 1 for k, v in SEG_CODES.items()}
    levels = torch.tensor(sorted(codes), dtype=torch.float32)
    ids = torch.tensor([codes[int(v)] for v in levels.tolist()])
    for a, b in (confuse or {}).items():
        ids[ids == a] = b
    mean, std = model.pretrained_cfg.mean[0], model.pretrained_cfg.std[0]

    def forward(x):
        grey = (x[:, 0] * std + mean) * 255  # (B, H, W)
        nearest = (grey[..., None] - levels).abs().argmin(-1)
        cls = ids[nearest]  # (B, H, W)
        return torch.nn.functional.one_hot(cls, 150).permute(0, 3, 1, 2).float() * 10

    model.forward = forward
    return model


# --- COCO ----------------------------------------------------------------------------------------
def _coco_images(n: int):
    return [{"id": 10 + i, "file_name": f"{10 + i:012d}.jpg", "width": 96 + 8 * i, "height": 72 + 4 * i}
            for i in range(n)]


def coco_instances(root: Path, n: int = 3) -> Path:
    """root/annotations/instances_val2017.json + root/val2017/*.jpg: each image with two boxes
    (rectangular polygons) of COCO categories; image sizes all differ (the oracle's key)."""
    from uniformer.data.labels import get_labels
    from uniformer.tasks.detection import coco_category_ids

    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    images, anns = _coco_images(n), []
    rng = np.random.default_rng(1)
    for im in images:
        Image.fromarray(rng.integers(0, 256, (im["height"], im["width"], 3), dtype=np.uint8)).save(
            root / "val2017" / im["file_name"])
        for j, (cat, (x, y, w, h)) in enumerate([(1, (8, 6, 40, 50)), (18, (50, 20, 30, 36))]):
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": cat, "iscrowd": 0,
                         "bbox": [x, y, w, h], "area": w * h,
                         "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    cats = [{"id": c, "name": n} for c, n in zip(coco_category_ids(), get_labels("coco-80"))]
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def det_oracle(model, ann_file: Path, drop: int = 0):
    """Patch ``model.predict`` (a detector) to answer the ground truth of the image it is given
    (found by its original size), score 1, with the annotation masks; ``drop``: leave out the
    first ``drop`` annotations of each image."""
    from pycocotools.coco import COCO

    from uniformer.models.detection import Detections, DetectorOutput
    from uniformer.tasks.detection import coco_category_ids

    coco = COCO(str(ann_file))
    by_size = {(im["height"], im["width"]): im["id"] for im in coco.dataset["images"]}
    index = {c: i for i, c in enumerate(coco_category_ids())}

    def predict(x, img_shapes=None, scale_factors=None, ori_shapes=None, rcnn=None, paste=True):
        dets = []
        for shape in ori_shapes:
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[by_size[tuple(shape)]]))[drop:]
            boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                   a["bbox"][1] + a["bbox"][3]] for a in anns], dtype=torch.float32).reshape(-1, 4)
            masks = torch.from_numpy(np.stack([coco.annToMask(a).astype(bool) for a in anns])) if anns else \
                torch.zeros((0, *shape), dtype=torch.bool)
            dets.append(Detections(boxes, torch.ones(len(anns)), torch.tensor([index[a["category_id"]] for a in anns],
                                                                               dtype=torch.int64), masks, None))
        return DetectorOutput([], [], [], [], [torch.zeros(0, 5)], dets, {})

    model.predict = predict
    return model


POSE_GREY = {20: 0, 90: 1, 160: 2}  # image grey level -> image index (the pose oracle's key)


def coco_keypoints(root: Path) -> Path:
    """root/annotations/person_keypoints_val2017.json + root/val2017/*.jpg: three constant-grey
    images (the grey level names the image), one person each with all 17 keypoints inside its box."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    images, anns = _coco_images(3), []
    rng = np.random.default_rng(2)
    for (grey, i), im in zip(POSE_GREY.items(), images):
        im["width"], im["height"] = 200, 240
        picture = np.full((im["height"], im["width"], 3), grey, np.uint8)
        Image.fromarray(picture).save(root / "val2017" / im["file_name"])
        x, y, w, h = 30 + 5 * i, 20, 140, 200
        pts = np.stack([rng.uniform(x + 10, x + w - 10, 17), rng.uniform(y + 10, y + h - 10, 17)], 1)
        kps = [float(v) for p in pts for v in (*np.round(p, 1), 2)]
        anns.append({"id": i + 1, "image_id": im["id"], "category_id": 1, "iscrowd": 0, "bbox": [x, y, w, h],
                     "area": w * h, "num_keypoints": 17, "keypoints": kps})
    cats = [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}]
    (root / "annotations" / "person_keypoints_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def pose_oracle(model, ann_file: Path):
    """Patch ``model.forward`` (a pose model, flip test off) to answer heatmaps peaking at the
    ground-truth keypoints of the image its crop comes from (found by the crop's grey level)."""
    from uniformer.tasks.pose import box_to_center_scale, get_affine_transform

    data = json.loads(Path(ann_file).read_text())
    cfg = model.cfg
    hw, hh = cfg.heatmap_size
    mean, std = model.pretrained_cfg.mean[0], model.pretrained_cfg.std[0]

    def forward(x):
        out = torch.zeros(x.shape[0], 17, hh, hw)
        ys, xs = torch.meshgrid(torch.arange(hh, dtype=torch.float32), torch.arange(hw, dtype=torch.float32),
                                indexing="ij")
        for b in range(x.shape[0]):
            grey = float((x[b, 0, x.shape[2] // 2, x.shape[3] // 2] * std + mean) * 255)
            ann = data["annotations"][POSE_GREY[min(POSE_GREY, key=lambda g: abs(g - grey))]]
            center, scale = box_to_center_scale(ann["bbox"], cfg.image_size, cfg.bbox_padding)
            m = get_affine_transform(center, scale, (hw, hh))
            kps = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)[:, :2]
            hm = np.c_[kps, np.ones(17)] @ m.T  # (17, 2) heatmap pixels
            for k, (u, v) in enumerate(hm):
                out[b, k] = torch.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * 2.0 ** 2))
        return out

    model.forward = forward
    return model


VIDEO_GREY = {0: 40, 5: 120, 9: 200}  # Kinetics class -> grey level of its constant test video


def video_list(root: Path, labels=(0, 5, 9, 5), constant: bool = False) -> Path:
    """root/list.csv (header, path,label) of short MP4s in root/videos/: random frames, or
    (``constant``) frames of the label's VIDEO_GREY level."""
    from uniformer.data.video import write_video

    (root / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    rows = ["path,label"]
    for i, y in enumerate(labels):
        frames = np.full((12, 48, 64, 3), VIDEO_GREY[y], np.uint8) if constant else \
            rng.integers(0, 256, (12, 48, 64, 3), dtype=np.uint8)
        write_video(frames, root / "videos" / f"v{i}.mp4")
        rows.append(f"videos/v{i}.mp4,{y}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root / "list.csv"


class VideoOracle(torch.nn.Module):
    """Reads the Kinetics class of a (B, 3, T, H, W) clip from its grey level (VIDEO_GREY)."""

    def __init__(self, model):
        super().__init__()
        self.pretrained_cfg, self.model_name = model.pretrained_cfg, model.model_name
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        grey = (x[:, 0].mean((1, 2, 3)) * self.pretrained_cfg.std[0] + self.pretrained_cfg.mean[0]) * 255
        logits = torch.zeros(x.shape[0], self.pretrained_cfg.num_classes)
        for b, g in enumerate(grey.tolist()):
            logits[b, min(VIDEO_GREY, key=lambda k: abs(VIDEO_GREY[k] - g))] = 10.0
        return logits
