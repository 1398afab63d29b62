"""Training data: an image folder, a CSV video list, scikit-learn's digits, and "moving digits" clips
(the digits and their generators live in :mod:`uniformer.data`, used by the app and the notebooks too).

Every dataset yields ``(input, label)`` with input a normalized float tensor, (3, H, W) for
images or (3, T, H, W) for clips, and label an int class index; each has ``classes`` (names in
index order) and ``targets`` (the label of every sample).

Augmentation is made a pure function of (seed, epoch, sample index) by :class:`SeededSamples`:
the sampler yields ``(index, epoch)`` keys and the random generators are seeded per sample, so a
run gives the same samples whatever the number of processes or loader workers, and a resumed run
continues exactly (see ``engine.py``).

Bad data raises :class:`DatasetError` with a message naming the file / row and what to do.
"""
from __future__ import annotations

import contextlib
import csv
import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler, Sampler

from ..data.digits import DIGIT_CLASSES, load_digits_split, render_digit
from ..data.moving_digits import MOTIONS, MovingDigitsDataset

__all__ = [
    "DatasetError", "IMAGE_EXTENSIONS", "ImageFolderDataset", "VideoListDataset", "DigitsDataset",
    "MovingDigitsDataset", "MOTIONS", "render_digit", "load_digits_split", "SeededSamples", "EpochSampler",
    "ShardSampler", "build_datasets", "train_transform", "digits_train_transform", "decode_video_clip",
    "with_input_size",
]

#: File extensions an image folder is scanned for (lower case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DatasetError(ValueError):
    """The training data cannot be used as given; the message says which file/row and why."""


# --- seeded, resumable sampling ----------------------------------------------------------------

@contextlib.contextmanager
def _seeded_rngs(seed: int):
    """Seed Python's ``random``, NumPy's global and torch's CPU generator with ``seed`` inside the
    context and restore their previous states after it (so the caller's streams are untouched)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class SeededSamples(Dataset):
    """View of ``dataset`` indexed by ``(index, epoch)`` whose random augmentation is seeded by
    ``(seed, epoch, index)``: the same key gives the same tensor in any process or worker."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample_seed = int(np.random.SeedSequence([self.seed, int(epoch), int(index)]).generate_state(1, np.uint64)[0])
        with _seeded_rngs(sample_seed):
            return self.dataset[index]


class EpochSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by ``seed + epoch``, this process's share) yielding
    ``(index, epoch)`` keys, able to start mid-epoch: ``set_position(epoch, skip)`` skips this
    process's first ``skip`` samples (the ones consumed before an interruption)."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        for i, index in enumerate(super().__iter__()):
            if i >= self.skip:
                yield (index, self.epoch)

    def __len__(self) -> int:
        return self.num_samples - self.skip


class ShardSampler(Sampler):
    """Evaluation sampler: process ``rank`` of ``num_replicas`` gets indices rank, rank + n, ...
    (no padding, so per-process sums add up to exactly the whole set); keys ``(index, 0)``."""

    def __init__(self, length: int, num_replicas: int = 1, rank: int = 0):
        self.indices = list(range(rank, length, num_replicas))

    def __iter__(self):
        return iter((i, 0) for i in self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# --- image folder ------------------------------------------------------------------------------

def _check_classes(classes: Sequence[str], where: str) -> None:
    if len(classes) < 2:
        raise DatasetError(f"{where} has only {len(classes)} class ({', '.join(classes) or 'none'}); a classifier "
                           f"needs at least 2 classes (one sub-folder per class, or 2+ distinct labels)")


class ImageFolderDataset(Dataset):
    """Images in ``root/<class name>/<file>``; classes sorted by folder name.

    Files are those with an image extension (``IMAGE_EXTENSIONS``), hidden files ignored, found
    recursively below each class folder. ``transform``: PIL RGB image -> tensor (3, H, W).
    ``classes``: use this class list (e.g. the training set's, for a validation folder): a folder
    of another name raises. Decoding uses :func:`uniformer.data.load_image`.

    Raises DatasetError: no such folder, no class sub-folders, class folders without images, fewer
    than 2 classes, validation classes not in the training classes; and, when a sample is read,
    an unreadable file (naming it). ``verify()`` decodes every file up front and lists all bad ones.
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 classes: Sequence[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"image folder {self.root} does not exist (expected {self.root}/<class>/<image files>)")
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise DatasetError(f"{self.root} has no class sub-folders; put the images of each class in "
                               f"{self.root}/<class name>/")
        self.classes = list(classes) if classes is not None else folders
        unknown = sorted(set(folders) - set(self.classes))
        if unknown:
            raise DatasetError(f"{self.root} has class folders {unknown} that are not training classes {self.classes}")
        self.samples: list[tuple[Path, int]] = []
        empty = []
        for name in folders:
            files = sorted(p for p in (self.root / name).rglob("*")
                           if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                empty.append(name)
            self.samples += [(p, self.classes.index(name)) for p in files]
        if empty:
            raise DatasetError(f"class folder(s) {empty} in {self.root} hold no image files "
                               f"({', '.join(IMAGE_EXTENSIONS)}); remove them or add images")
        if classes is None:
            _check_classes(self.classes, str(self.root))
        self.targets = [label for _, label in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Image.Image:
        """The decoded RGB image of sample ``index``. Raises DatasetError naming an unreadable file."""
        from ..data import ImageDecodeError, load_image

        path = self.samples[index][0]
        try:
            return load_image(path)
        except ImageDecodeError as e:
            raise DatasetError(f"unreadable training image {path}: {e}. Remove or replace the file") from None

    def __getitem__(self, index: int):
        image = self.load(index)
        return (self.transform(image) if self.transform else image), self.samples[index][1]

    def verify(self) -> None:
        """Decode every image; raises DatasetError listing every unreadable file (first 10)."""
        bad = []
        for i in range(len(self)):
            try:
                self.load(i)
            except DatasetError as e:
                bad.append(str(e))
        if bad:
            raise DatasetError(f"{len(bad)} unreadable file(s) in {self.root}:\n" + "\n".join(bad[:10]))


# --- CSV video list ----------------------------------------------------------------------------

class VideoListDataset(Dataset):
    """Videos listed in a CSV file, one ``path,label`` row each (an optional ``path,label`` header;
    relative paths are relative to the CSV's folder, or to ``root``).

    Labels are either all class indices (0..K-1; ``classes`` then defaults to their string
    forms, or give the names) or all class names (classes = the sorted distinct names, or the given
    ``classes``). Clips: ``decode(path) -> (3, T, H, W)`` tensor; default :func:`decode_video_clip`
    (the project's PyAV sampler, :mod:`uniformer.data.video`) with ``num_frames``, ``size``,
    ``mean``/``std`` and ``train`` (random segment offsets, random crop and flip) or not
    (uniform sampling, centre crop).

    Raises DatasetError, naming the CSV line: a row without exactly 2 columns, an empty path, a
    missing file, a label that is neither a known name nor an index in range, mixed name/index
    labels, fewer than 2 classes. Decoding errors name the file.
    """

    def __init__(self, csv_path: str | os.PathLike, num_frames: int = 8, size: int = 224,
                 mean: Sequence[float] = (0.45, 0.45, 0.45), std: Sequence[float] = (0.225, 0.225, 0.225),
                 train: bool = False, classes: Sequence[str] | None = None, root: str | os.PathLike | None = None,
                 decode: Callable | None = None):
        self.csv_path = Path(csv_path)
        if not self.csv_path.is_file():
            raise DatasetError(f"video list {self.csv_path} does not exist (a CSV file of 'path,label' rows)")
        base = Path(root) if root is not None else self.csv_path.parent
        rows = []
        with open(self.csv_path, newline="", encoding="utf-8") as f:
            for line_no, row in enumerate(csv.reader(f), 1):
                if not row or all(not c.strip() for c in row):
                    continue
                if line_no == 1 and [c.strip().lower() for c in row] == ["path", "label"]:
                    continue
                if len(row) != 2:
                    raise DatasetError(f"{self.csv_path}:{line_no}: expected 2 columns 'path,label', "
                                       f"got {len(row)}: {row}")
                path, label = row[0].strip(), row[1].strip()
                if not path or not label:
                    raise DatasetError(f"{self.csv_path}:{line_no}: empty path or label: {row}")
                full = Path(path) if Path(path).is_absolute() else base / path
                if not full.is_file():
                    raise DatasetError(f"{self.csv_path}:{line_no}: video file {full} does not exist")
                rows.append((line_no, full, label))
        if not rows:
            raise DatasetError(f"video list {self.csv_path} has no rows")
        numeric = [lab.lstrip("-").isdigit() for _, _, lab in rows]
        if any(numeric) and not all(numeric) and classes is None:
            line = rows[numeric.index(not numeric[0])][0]
            raise DatasetError(f"{self.csv_path}:{line}: labels mix class names and class indices; use one kind")
        if classes is not None:
            self.classes = list(classes)
        elif all(numeric):
            self.classes = [str(i) for i in range(max(int(lab) for _, _, lab in rows) + 1)]
        else:
            self.classes = sorted({lab for _, _, lab in rows})
        self.samples = []
        for line_no, full, label in rows:
            if label in self.classes:
                index = self.classes.index(label)
            elif label.lstrip("-").isdigit():
                index = int(label)
                if not 0 <= index < len(self.classes):
                    raise DatasetError(f"{self.csv_path}:{line_no}: label {index} is out of range "
                                       f"0..{len(self.classes) - 1}")
            else:
                raise DatasetError(f"{self.csv_path}:{line_no}: unknown label {label!r}; known classes: "
                                   f"{self.classes[:10]}{' ...' if len(self.classes) > 10 else ''}")
            self.samples.append((full, index))
        if classes is None:
            _check_classes(sorted({self.classes[i] for _, i in self.samples}), str(self.csv_path))
        self.targets = [i for _, i in self.samples]
        self.num_frames, self.size, self.mean, self.std, self.train = num_frames, size, tuple(mean), tuple(std), train
        self.decode = decode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            if self.decode is not None:
                clip = self.decode(path)
            else:
                clip = decode_video_clip(path, self.num_frames, self.size, self.mean, self.std, self.train)
        except DatasetError:
            raise
        except (OSError, ValueError, RuntimeError, EOFError, LookupError) as e:  # PyAV's errors derive from these
            raise DatasetError(f"unreadable training video {path}: {type(e).__name__}: {e}") from None
        return clip, label


def decode_video_clip(path: str | os.PathLike, num_frames: int, size: int, mean: Sequence[float],
                      std: Sequence[float], train: bool = False) -> torch.Tensor:
    """One normalized clip (3, num_frames, size, size) of a video file with the PyAV sampler of
    :mod:`uniformer.data.video`: segment ("uniform", TSN) sampling over the whole video -- at
    random offsets inside the segments for training, the official test rule otherwise; short side
    resized to ``size`` (training: to a random 1.0-1.25 x size) then a centre crop (training: a
    random crop and a random horizontal flip); normalized by ``mean`` / ``std``. Randomness comes
    from the global generators (seeded per sample by :class:`SeededSamples`).
    Raises uniformer.data.video.VideoDecodeError for unusable files."""
    from ..data import video

    info = video.probe_video(path)
    n = info.num_frames
    if train:
        seg = n / num_frames
        indices = [min(n - 1, int(seg * j + random.random() * seg)) for j in range(num_frames)]
        short = int(size * random.uniform(1.0, 1.25))
    else:
        indices = video.segment_indices(n, num_frames)
        short = size
    frames = video.read_frames(path, indices, info=info, short_side=short)
    clip = frames.stack(indices)  # (3, T, H, W) in [0, 1]
    h, w = clip.shape[-2:]
    if train:
        top, left = random.randint(0, h - size), random.randint(0, w - size)
        clip = clip[..., top:top + size, left:left + size]
        if random.random() < 0.5:
            clip = clip.flip(-1)
    else:
        clip = video.spatial_crops(clip, size, 1)[0]
    return video.normalize(clip.contiguous(), mean, std)


# --- scikit-learn digits -----------------------------------------------------------------------

#: Synthetic block / seven-segment sketchpad drawings per digit added to the digits train split
#: when training augments (``build_datasets``): the app's drawings are read right, not only sklearn's.
DIGITS_STYLED_PER_DIGIT = 60

def digits_train_transform(data_cfg, augment: bool = True) -> Callable:
    """Training transform of digit images: upsample to the input size (the eval filter), then a
    small random affine (rotation +-10 deg, shift +-8%, scale 0.9-1.1, shear +-5 deg, white fill),
    to tensor, normalize. ``augment=False``: the evaluation transform."""
    from torchvision import transforms as T

    from ..data import eval_transform

    if not augment:
        return eval_transform(data_cfg)
    size = data_cfg.input_size[-1]
    interp = T.InterpolationMode.BICUBIC if data_cfg.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    return T.Compose([
        T.Resize((size, size), interpolation=interp),
        T.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1), shear=5, fill=255,
                       interpolation=T.InterpolationMode.BILINEAR),
        T.ToTensor(), T.Normalize(data_cfg.mean, data_cfg.std)])


class DigitsDataset(Dataset):
    """scikit-learn's handwritten digits as images (``load_digits_split``, ``render_digit``);
    ``transform``: PIL -> tensor (3, H, W). classes '0'..'9'. ``styled_per_digit`` > 0 (train
    split only) appends that many synthetic sketchpad drawings per digit in block and seven-segment
    styles, read into the same 8x8 format by the app's ``sketch_to_digit``
    (``uniformer.data.sketch.styled_digit_counts``, seeded by ``styled_seed``)."""

    def __init__(self, split: str = "train", transform: Callable | None = None, seed: int = 0,
                 styled_per_digit: int = 0, styled_seed: int = 0):
        self.images, labels = load_digits_split(split, seed=seed)
        if styled_per_digit > 0:
            if split != "train":
                raise ValueError("styled drawings augment the train split only, never the held-out split")
            from ..data.sketch import styled_digit_counts

            styled, styled_labels = styled_digit_counts(styled_per_digit, styled_seed)
            self.images, labels = np.concatenate([self.images, styled]), np.concatenate([labels, styled_labels])
        self.targets = labels.tolist()
        self.classes = list(DIGIT_CLASSES)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = render_digit(self.images[index])
        return (self.transform(image) if self.transform else image), self.targets[index]


# --- building the datasets of a run ------------------------------------------------------------

def train_transform(data_cfg, augment: bool = True) -> Callable:
    """Training transform of natural images (the DeiT recipe of §6.1 through timm): random
    resized crop, horizontal flip, RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, at
    ``data_cfg.input_size``; ``augment=False``: the evaluation transform."""
    from timm.data import create_transform

    from ..data import eval_transform

    if not augment:
        return eval_transform(data_cfg)
    return create_transform(input_size=tuple(data_cfg.input_size[-3:]), is_training=True,
                            auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25, interpolation="bicubic",
                            mean=data_cfg.mean, std=data_cfg.std)


def build_datasets(cfg, data_cfg) -> tuple[Dataset, Dataset | None, list[str]]:
    """(train set, validation set or None, class names) of a TrainConfig ``cfg``;
    ``data_cfg``: the PretrainedCfg whose input_size / mean / std / interpolation the inputs get.
    Raises DatasetError for bad data."""
    from ..data import eval_transform

    if cfg.data == "digits":
        train = DigitsDataset("train", digits_train_transform(data_cfg, cfg.augment), seed=0,
                              styled_per_digit=DIGITS_STYLED_PER_DIGIT if cfg.augment else 0)
        return train, DigitsDataset("val", eval_transform(data_cfg), seed=0), train.classes
    if cfg.data == "moving_digits":
        size = data_cfg.input_size[-1]
        kw = dict(num_frames=cfg.num_frames, size=size, digit_size=max(4, round(size * 3 / 8)),
                  mean=data_cfg.mean, std=data_cfg.std, seed=0)
        train = MovingDigitsDataset("train", length=1200, **kw)
        return train, MovingDigitsDataset("val", length=360, **kw), train.classes
    path = Path(cfg.data)
    if path.is_dir():
        train = ImageFolderDataset(path, train_transform(data_cfg, cfg.augment))
        val = ImageFolderDataset(cfg.val_data, eval_transform(data_cfg),
                                 classes=train.classes) if cfg.val_data else None
        return train, val, train.classes
    if path.suffix.lower() == ".csv":
        kw = dict(num_frames=cfg.num_frames, size=data_cfg.input_size[-1], mean=data_cfg.mean, std=data_cfg.std)
        train = VideoListDataset(path, train=cfg.augment, **kw)
        val = VideoListDataset(cfg.val_data, classes=train.classes, **kw) if cfg.val_data else None
        return train, val, train.classes
    raise DatasetError(f"data {cfg.data!r} is neither a built-in dataset ('digits', 'moving_digits'), an image folder "
                       f"nor a .csv video list")


def with_input_size(pretrained_cfg, input_size: int | None, num_frames: int | None = None):
    """``pretrained_cfg`` with a square ``input_size`` (and, for clips, ``num_frames``) applied."""
    size = tuple(pretrained_cfg.input_size)
    side = input_size or size[-1]
    new = (3, num_frames, side, side) if num_frames else (3, side, side)
    return replace(pretrained_cfg, input_size=new)
