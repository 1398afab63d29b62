"""Video classification on a CSV list (``path,label`` per line; an optional header; paths relative
to the list's folder): top-1 / top-5 with the checkpoint's official test views (e.g. 4 clips x 1
crop or 4 x 3 for Kinetics, 1 x 3 for Something-Something), its sampling (dense with its stride for
Kinetics, segment-based for Something-Something), resize, crops and normalization, logits averaged
over the views (SlowFast's ``test_net``): :func:`uniformer.inference_video.predict_video`."""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from .common import EvalResult, model_facts, progress_bar, run_sharded

__all__ = ["video_list_samples", "evaluate_video"]


def video_list_samples(path: str | Path, num_classes: int) -> list[tuple[str, int]]:
    """(video path, label) rows of a CSV list; a first row whose label is not an integer is a
    header. Raises ValueError (no such file, a malformed row, a label outside 0..num_classes-1)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a CSV video list (path,label per line)")
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r and any(c.strip() for c in r)]
    if rows and not rows[0][-1].strip().lstrip("-").isdigit():
        rows = rows[1:]
    samples = []
    for n, row in enumerate(rows, 1):
        if len(row) < 2 or not row[-1].strip().lstrip("-").isdigit():
            raise ValueError(f"{path} row {n}: expected 'path,label', got {','.join(row)!r}")
        label = int(row[-1])
        if not 0 <= label < num_classes:
            raise ValueError(f"{path} row {n}: label {label} is outside 0..{num_classes - 1}")
        video = Path(",".join(row[:-1]).strip())
        samples.append((str(video if video.is_absolute() else path.parent / video), label))
    if not samples:
        raise ValueError(f"{path} lists no videos")
    return samples


def evaluate_video(model: torch.nn.Module, data: str | Path, views: str | None = None, device: str = "auto"
                   ) -> EvalResult:
    """Top-1 / top-5 (%) of a video classifier from ``create_model`` on the CSV list ``data`` with its
    official views (or ``views``, e.g. '1x3'), sharded over torchrun's processes.
    Raises ValueError (bad list or views), VideoDecodeError (an unreadable video)."""
    from ..inference_video import Views, official_views, predict_video
    from .metrics import topk_accuracy

    cfg = model.pretrained_cfg
    samples = video_list_samples(data, cfg.num_classes)
    chosen = Views.parse(views) if views else official_views(cfg)
    k = min(5, cfg.num_classes)

    def work(indices, env):
        model.to(env.device).eval()
        out = []
        for i in progress_bar(indices, "evaluate", env.is_main):
            pred = predict_video(model, samples[i][0], chosen, topk=k, device=env.device)
            out.append((i, [c.index for c in pred.topk]))
        return out

    tops, env, seconds = run_sharded(len(samples), work, device)
    name, weights = model_facts(model)
    metrics = topk_accuracy(tops, [y for _, y in samples], (1, 5) if k >= 5 else (1,))
    protocol = (f"{cfg.describe_sampling()}; views {chosen.label()} ({chosen.paper(cfg.num_frames)}); short side "
                f"{cfg.test_short_side(chosen.crops)} px, crop {cfg.crop_size} px; logits averaged over views")
    return EvalResult(name, weights, "video", str(data), metrics, len(samples), protocol,
                      world_size=env.world_size, seconds=seconds)
