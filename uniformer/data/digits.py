"""scikit-learn's handwritten digits: the deterministic train / held-out split and their rendering
as images (what the digits model reads, in training, in the app and in the notebooks)."""
from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["DIGIT_CLASSES", "load_digits_split", "render_digit"]

#: Class names of the digits, in label order.
DIGIT_CLASSES = tuple(str(i) for i in range(10))


def load_digits_split(split: str, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits (UCI optdigits test part: 1797 8x8 images, values 0..16 =
    ink pixel counts of 4x4 blocks of a 32x32 bitmap), split deterministically and stratified:
    ``split`` 'train' (80%: 1437) or 'val' (20%: 360). Returns (images (N, 8, 8) uint8, labels (N,) int64).
    Raises ValueError for another split name."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    d = load_digits()
    idx_train, idx_val = train_test_split(np.arange(len(d.target)), test_size=val_fraction,
                                          stratify=d.target, random_state=seed)
    idx = np.sort(idx_train if split == "train" else idx_val)
    return d.images[idx].astype(np.uint8), d.target[idx].astype(np.int64)


def render_digit(counts: np.ndarray) -> Image.Image:
    """An 8x8 digit (ink counts 0..16) -> 8x8 RGB image, dark ink on white paper (0 -> 255, 16 -> 0).
    The model's own transform then upsamples it (``PretrainedCfg.interpolation``)."""
    counts = np.asarray(counts, dtype=np.float64)
    gray = np.clip(255.0 - counts * (255.0 / 16.0) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")
