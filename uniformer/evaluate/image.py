"""Image classification on an ImageNet-style folder (one sub-folder per class): top-1 / top-5 with
the checkpoint's own evaluation preprocessing (``uniformer.data.transforms.eval_transform``:
resize to floor(S / crop_pct), centre crop S, 224 or 384; the token-labeling models' class token
head is what ``forward`` returns), as the official DeiT-style ``main.py --eval``."""
from __future__ import annotations

from pathlib import Path

import torch

from .common import EvalResult, model_facts, progress_bar, run_sharded

__all__ = ["image_folder_samples", "evaluate_image"]

_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".JPEG")


def _class_index(folders: list[str], class_names: tuple[str, ...]) -> dict[str, int]:
    """Folder name -> the checkpoint's class index: by class name when every folder is named after
    one; by number when every folder is an integer index; by sorted position when there is one
    folder per class (ImageNet's WordNet ids, as torchvision's ImageFolder). Raises ValueError."""
    lookup = {n.lower().replace(" ", "_"): i for i, n in enumerate(class_names)}
    if all(f.lower().replace(" ", "_") in lookup for f in folders):
        return {f: lookup[f.lower().replace(" ", "_")] for f in folders}
    if all(f.isdigit() and int(f) < len(class_names) for f in folders):
        return {f: int(f) for f in folders}
    if len(folders) == len(class_names):
        return {f: i for i, f in enumerate(sorted(folders))}
    raise ValueError(f"cannot map {len(folders)} class folders to the checkpoint's {len(class_names)} classes: name "
                     f"them after the classes (e.g. {class_names[0]!r}), by class index (0..{len(class_names) - 1}) "
                     f"or give all {len(class_names)} (sorted WordNet ids as ImageNet's val/)")


def image_folder_samples(root: str | Path, class_names: tuple[str, ...]) -> list[tuple[str, int]]:
    """(path, class index) of every image under ``root/<class folder>/``, sorted by folder and file
    (see :func:`_class_index` for how folders map to classes). Raises ValueError (no such folder,
    no class folders, no images)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder (expected one sub-folder of images per class)")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not folders:
        raise ValueError(f"{root} has no class sub-folders")
    index = _class_index(folders, class_names)
    samples = [(str(f), index[d]) for d in folders for f in sorted((root / d).rglob("*"))
               if f.is_file() and f.suffix in _SUFFIXES + tuple(s.upper() for s in _SUFFIXES)]
    if not samples:
        raise ValueError(f"no images under {root}")
    return samples


@torch.inference_mode()
def evaluate_image(model: torch.nn.Module, data: str | Path, batch_size: int = 64, device: str = "auto",
                   num_workers: int = 0) -> EvalResult:
    """Top-1 / top-5 (%) of a classifier from ``create_model`` on the ImageNet-style folder ``data``,
    sharded over torchrun's processes (each image once) and gathered on every rank.

    Raises ValueError (bad folder), ImageDecodeError (an unreadable image: the official protocol
    has no way to skip one)."""
    from ..data import load_image
    from ..data.transforms import eval_transform
    from .metrics import topk_accuracy

    cfg = model.pretrained_cfg
    samples = image_folder_samples(data, cfg.class_names())
    transform = eval_transform(cfg)
    k = min(5, cfg.num_classes)

    def work(indices, env):
        model.to(env.device).eval()
        out = []
        batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
        for batch in progress_bar(batches, "evaluate", env.is_main):
            x = torch.stack([transform(load_image(samples[i][0])) for i in batch]).to(env.device)
            top = model(x).float().topk(k, dim=-1).indices.tolist()
            out += list(zip(batch, top))
        return out

    tops, env, seconds = run_sharded(len(samples), work, device)
    name, weights = model_facts(model)
    metrics = topk_accuracy(tops, [y for _, y in samples], (1, 5) if k >= 5 else (1,))
    crop = cfg.input_size[-1]
    protocol = (f"resize short side to {int(crop / cfg.crop_pct)} ({cfg.interpolation}), centre crop {crop}, "
                f"mean {cfg.mean} std {cfg.std}; {len(set(y for _, y in samples))} classes present")
    return EvalResult(name, weights, "image", str(data), metrics, len(samples), protocol,
                      world_size=env.world_size, seconds=seconds)
