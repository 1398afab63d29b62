"""Moving-digits clips as video files: what the moving-digits model (``uniformer_xxs_moving_digits``)
classifies, written as MP4s a person can watch and a video pipeline can decode.

The clips are those of :class:`uniformer.train.MovingDigitsDataset` (one generator: training,
the held-out check and these files draw the same clips), rendered in the model's training setting:
8 frames of 32x32 pixels, a 12-pixel digit from scikit-learn's held-out split. A label is a motion
(:data:`uniformer.models.digits.MOVING_DIGITS_CLASSES`), which only the order of the frames tells.

To be watchable, frames are enlarged ``scale`` times with nearest-neighbour (128x128) and each is
held for ``hold`` frames at ``fps`` frames per second (4 s by default). Both are undone exactly by
the model's pipeline: segment sampling over 8 * hold frames takes one frame of every position, and
the bilinear resize back to 32x32 of a nearest-neighbour 4x enlargement gives the rendered pixels.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..models.digits import MOVING_DIGITS_CLASSES, MOVING_DIGITS_FRAMES, MOVING_DIGITS_SIZE
from .video import write_video

__all__ = ["moving_digits_frames", "write_moving_digits_clips"]


def moving_digits_frames(count: int | None = None, scale: int = 4, hold: int = 4) -> list[tuple[str, np.ndarray]]:
    """(motion, frames (8 * hold, 32 * scale, 32 * scale, 3) uint8) of the first ``count`` validation
    clips of :class:`~uniformer.train.MovingDigitsDataset` (default: one per motion, in label
    order; clip i has motion i modulo 6). Ink is white on black. Val clips are a fixed function of
    their index, so the frames are the same on every machine."""
    from ..train.data import MovingDigitsDataset

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
