"""Moving-digits clips as video files: what the moving-digits model (``uniformer_xxs_moving_digits``)
classifies, written as MP4s a person can watch and a video pipeline can decode.

The clips are those of :class:`MovingDigitsDataset` (one generator: training,
the held-out check and these files draw the same clips), rendered in the model's training setting:
8 frames of 32x32 pixels, a 12-pixel digit from scikit-learn's held-out split. A label is a motion
(:data:`uniformer.models.digits.MOVING_DIGITS_CLASSES`), which only the order of the frames tells.

To be watchable, frames are enlarged ``scale`` times with nearest-neighbour (128x128) and each is
held for ``hold`` frames at ``fps`` frames per second (4 s by default). Both are undone exactly by
the model's pipeline: segment sampling over 8 * hold frames takes one frame of every position, and
the bilinear resize back to 32x32 of a nearest-neighbour 4x enlargement gives the rendered pixels.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..models.digits import MOVING_DIGITS_CLASSES, MOVING_DIGITS_FRAMES, MOVING_DIGITS_SIZE
from .digits import load_digits_split
from .video import write_video

__all__ = ["MOTIONS", "MovingDigitsDataset", "moving_digits_frames", "write_moving_digits_clips"]

#: Motion classes of :class:`MovingDigitsDataset`, in label order.
MOTIONS = ("left", "right", "up", "down", "clockwise", "anticlockwise")


def _motion_order(positions: np.ndarray, motion: str, canvas: float, phase: float) -> np.ndarray:
    """Order (indices) in which the digit visits ``positions`` (T, 2) as (x, y) top-left corners
    in pixels (y downwards) so that it moves ``motion``; angles are about the canvas centre,
    starting at ``phase`` radians."""
    x, y = positions[:, 0], positions[:, 1]
    if motion == "left":
        return np.argsort(-x, kind="stable")
    if motion == "right":
        return np.argsort(x, kind="stable")
    if motion == "up":
        return np.argsort(-y, kind="stable")
    if motion == "down":
        return np.argsort(y, kind="stable")
    c = canvas / 2
    angle = np.mod(np.arctan2(-(y - c), x - c) - phase, 2 * math.pi)  # anticlockwise on screen
    return np.argsort(angle if motion == "anticlockwise" else -angle, kind="stable")


class MovingDigitsDataset(Dataset):
    """Clips of a handwritten digit moving on a black canvas; the label is the motion
    (``MOTIONS``: left, right, up, down, clockwise, anticlockwise), not the digit.

    Each clip draws one digit (train clips from the digits train split, val clips from the val
    split), ``num_frames`` positions independently and uniformly on the canvas, and a label; the
    label only decides the *order* in which the positions are visited (sorted by x, by y, or by
    angle about the centre). So the multiset of frames has the same distribution for every class:
    any model that averages (or otherwise pools without order) over frames sees the same input
    distribution for all six classes and cannot beat chance (1/6) -- only temporal modelling can
    solve it. Output: (3, T, size, size) normalized by ``mean``/``std`` (ink white, value 1).

    Clips are a pure function of (seed, split, index) -- and of the epoch for training clips when
    ``resample=True`` (fresh clips every epoch, seeded by :class:`SeededSamples`). Labels cycle
    through the classes (balanced). ``length``: clips per epoch.
    """

    def __init__(self, split: str = "train", length: int = 1200, num_frames: int = 8, size: int = 32,
                 digit_size: int = 12, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), resample: bool | None = None, seed: int = 0):
        if digit_size >= size:
            raise ValueError(f"digit_size {digit_size} must be smaller than the canvas size {size}")
        self.split, self.length, self.num_frames = split, length, num_frames
        self.size, self.digit_size = size, digit_size
        self.seed = seed
        self.resample = (split == "train") if resample is None else resample
        images, _ = load_digits_split(split, seed=seed)
        digits = torch.from_numpy(images).float().div(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
        self.digits = torch.nn.functional.interpolate(digits, size=(digit_size, digit_size), mode="bilinear",
                                                      align_corners=False).clamp(0, 1)[:, 0]  # (N, d, d)
        self.classes = list(MOTIONS)
        self.targets = [i % len(MOTIONS) for i in range(length)]
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)

    def __len__(self) -> int:
        return self.length

    def clip_parts(self, index: int) -> tuple[int, np.ndarray, float]:
        """(digit index, positions (T, 2) integer (x, y) top-left corners in visiting-set order,
        phase) of clip ``index``: what the clip is made of, before the label orders it."""
        extra = int(torch.randint(0, 2**31 - 1, ()).item()) if self.resample else 0
        rng = np.random.default_rng([self.seed, 0 if self.split == "train" else 1, index, extra])
        digit = int(rng.integers(len(self.digits)))
        positions = rng.integers(0, self.size - self.digit_size + 1, size=(self.num_frames, 2))
        return digit, positions, float(rng.uniform(0, 2 * math.pi))

    def render(self, digit: int, positions: np.ndarray, label: int, phase: float = 0.0) -> torch.Tensor:
        """The normalized clip (3, T, size, size) of ``digit`` visiting ``positions`` in the order
        of motion ``MOTIONS[label]``."""
        order = _motion_order(positions.astype(np.float64), MOTIONS[label], self.size - self.digit_size, phase)
        T, d = self.num_frames, self.digit_size
        frames = torch.zeros(T, self.size, self.size)
        for t, i in enumerate(order):
            x, y = (int(v) for v in positions[i])
            frames[t, y:y + d, x:x + d] = self.digits[digit]
        clip = frames.unsqueeze(0).expand(3, -1, -1, -1)  # (3, T, H, W)
        return (clip - self.mean) / self.std

    def __getitem__(self, index: int):
        label = self.targets[index]
        digit, positions, phase = self.clip_parts(index)
        return self.render(digit, positions, label, phase), label


def moving_digits_frames(count: int | None = None, scale: int = 4, hold: int = 4) -> list[tuple[str, np.ndarray]]:
    """(motion, frames (8 * hold, 32 * scale, 32 * scale, 3) uint8) of the first ``count`` validation
    clips of :class:`MovingDigitsDataset` (default: one per motion, in label
    order; clip i has motion i modulo 6). Ink is white on black. Val clips are a fixed function of
    their index, so the frames are the same on every machine."""
    n = len(MOVING_DIGITS_CLASSES) if count is None else count
    size = MOVING_DIGITS_SIZE
    data = MovingDigitsDataset("val", length=n, num_frames=MOVING_DIGITS_FRAMES, size=size,
                               digit_size=max(4, round(size * 3 / 8)), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    clips = []
    for i in range(n):
        clip, label = data[i]  # (3, T, S, S) in [0, 1]
        frames = (clip.permute(1, 2, 3, 0).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()  # (T, S, S, 3)
        frames = frames.repeat(scale, 1).repeat(scale, 2).repeat(hold, 0)  # (T * hold, S * scale, S * scale, 3)
        clips.append((data.classes[label], frames))
    return clips


def write_moving_digits_clips(directory: str | os.PathLike, scale: int = 4, hold: int = 4,
                              fps: float = 8.0) -> dict[str, Path]:
    """Write one moving-digits clip per motion into ``directory`` (created if needed; files already
    there are reused) as ``moving_digits_<i>_<motion>.mp4`` (H.264, see
    :func:`uniformer.data.video.write_video`) -> {motion: path}, in label order. See
    :func:`moving_digits_frames` for ``scale`` and ``hold``; ``fps``: playback frames per second."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {m: directory / f"moving_digits_{i}_{m}.mp4" for i, m in enumerate(MOVING_DIGITS_CLASSES)}
    if not all(p.is_file() and p.stat().st_size > 0 for p in paths.values()):
        for motion, frames in moving_digits_frames(scale=scale, hold=hold):
            write_video(frames, paths[motion], fps=fps)
    return paths
