"""Video classification as pure functions: a video file in, a result value out (CLI, app, notebooks).

The pipeline is the official test pipeline of each checkpoint (docs/official.md §6; paper §6.2):

1. :func:`load_clips` -- index the video (:func:`uniformer.data.video.probe_video`), sample the
   frames of every clip with the checkpoint's rule (dense for Kinetics S/B, segment for
   Something-Something and the light models), decode only those (seeking), resize the short side
   (256 for Kinetics with 1 crop, else the crop size), take 1 centre or 3 spatial crops, normalize
   with mean 0.45 / std 0.225: views (V, 3, T, S, S), V = clips x crops.
2. :func:`predict_clips` -- run the model on every view and average the views' logits (slowfast's
   ``ENSEMBLE_METHOD`` 'sum' over the models' logits), softmax -> top-k; every view's own
   probabilities are kept.

:func:`predict_video` does both. Times are milliseconds.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from .data import get_labels
from .data.video import (DecodedFrames, VideoInfo, crop_offsets, normalize, probe_video, read_frames,
                         sample_clips)
from .hub import WeightsInfo
from .inference import ClassScore, RunInfo, autocast, select_device, synchronize

__all__ = ["Views", "VIEW_CHOICES", "VideoClips", "ViewResult", "VideoPrediction", "load_clips", "predict_clips",
           "predict_video", "official_views", "describe_pipeline"]

#: Progress callback: fraction done in [0, 1] and what is happening, e.g. ``gr.Progress()``'s call.
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Views:
    """Test-time views: ``clips`` temporal clips x ``crops`` spatial crops (1 or 3), every view one
    forward pass, their logits averaged. The paper writes frames x crops x clips: 16x1x4 =
    ``Views(clips=4, crops=1)``."""

    clips: int = 1
    crops: int = 1

    def __post_init__(self):
        if not 1 <= self.clips <= 10:
            raise ValueError(f"clips must be between 1 and 10, got {self.clips}")
        if self.crops not in (1, 3):
            raise ValueError(f"crops must be 1 (centre) or 3 (left/centre/right), got {self.crops}")

    @property
    def count(self) -> int:
        return self.clips * self.crops

    def label(self) -> str:
        """'4 clips x 1 crop'."""
        return (f"{self.clips} clip{'s' if self.clips > 1 else ''} \u00d7 {self.crops} "
                f"crop{'s' if self.crops > 1 else ''}")

    def paper(self, frames: int) -> str:
        """The paper's notation frames x crops x clips, e.g. '16\u00d71\u00d74'."""
        return f"{frames}\u00d7{self.crops}\u00d7{self.clips}"

    @classmethod
    def parse(cls, text: str) -> "Views":
        """'4x1' / '4 x 1' (clips x crops) -> Views(4, 1). Raises ValueError for other text."""
        m = re.fullmatch(r"\s*(\d+)\s*[x\u00d7]\s*(\d+)\s*", text)
        if not m:
            raise ValueError(f"views must look like CLIPSxCROPS, e.g. 4x1 or 1x3, got {text!r}")
        return cls(int(m[1]), int(m[2]))


#: Views offered by the app: the official Kinetics (4x1), Something-Something (1x3) and light (1x1)
#: settings and the paper's other ablations (Fig. 8).
VIEW_CHOICES = (Views(1, 1), Views(1, 3), Views(3, 1), Views(4, 1), Views(3, 3), Views(4, 3))


def official_views(pretrained_cfg) -> Views:
    """The checkpoint's official test views (``test_clips`` x ``test_crops``)."""
    return Views(pretrained_cfg.test_clips, pretrained_cfg.test_crops)


def describe_pipeline(pretrained_cfg) -> dict[str, str]:
    """The checkpoint's test pipeline in words (the facts of its ``VideoPretrainedCfg``): 'sampling'
    (rule, frames, stride or segments), 'views' (official clips x crops, e.g. '4 clips x 1 crop
    (16x1x4)'), 'resize' (short side in px, then the crop) and 'normalization' (mean / std)."""
    p = pretrained_cfg
    views = official_views(p)
    one, three = p.test_short_side(1), p.test_short_side(3)
    short = f"{one} px" if one == three else f"{one} px (1 crop) or {three} px (3 crops)"
    return {"sampling": p.describe_sampling(), "views": f"{views.label()} ({views.paper(p.num_frames)})",
            "resize": f"short side {short}, bilinear, then {p.crop_size}\u00d7{p.crop_size} crops",
            "normalization": f"mean {p.mean[0]}, std {p.std[0]} on every RGB channel"}


@dataclass
class VideoClips:
    """Model inputs of one video, and where every pixel came from.

    views: (V, 3, T, S, S) normalized float32, view v = clip v // crops, crop v % crops;
    clip_indices: the T frame indices of every clip (0-based, display order); crop_boxes: (x0, y0,
    x1, y1) of every crop in displayed-frame pixels; short_side: the resize before cropping (px);
    frames: the decoded frames (resized, uncropped, (3, h, w) in [0, 1]) by index; decode_ms:
    probing + decoding (+ rotation and the short-side resize done while decoding); preprocess_ms:
    cropping + normalization.
    """

    views: torch.Tensor
    clip_indices: list[list[int]]
    view_list: list[tuple[int, int]]
    crop_boxes: list[tuple[float, float, float, float]]
    short_side: int
    crop_size: int
    sampling: str
    sampling_rate: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: VideoInfo
    decoded: DecodedFrames
    decode_ms: float
    preprocess_ms: float

    @property
    def frames_per_clip(self) -> int:
        return len(self.clip_indices[0])

    def view_frames_uint8(self, view: int = 0) -> torch.Tensor:
        """The frames view ``view`` shows the model, de-normalized: (T, S, S, 3) uint8."""
        x = self.views[view]  # (3, T, S, S)
        mean = torch.tensor(self.mean).view(3, 1, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1, 1)
        return ((x * std + mean).clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 3, 0)

    @property
    def playback_fps(self) -> float:
        """Frames per second that play the first clip's sampled frames at their own pace in the
        video (at least 1; the video's rate when the clip repeats a single frame)."""
        idx = self.clip_indices[0]
        span_s = self.info.time_of(idx[-1]) - self.info.time_of(idx[0])
        return max(1.0, (len(idx) - 1) / span_s if span_s > 0 else self.info.fps)

    @property
    def notes(self) -> list[str]:
        """What a user should know about these clips, in words (empty normally): a one-frame video
        (the clip repeats its frame, so motion cannot be judged) and frames the decoder could not
        produce (damaged file; the nearest earlier frame stands in)."""
        notes = []
        if self.info.num_frames == 1:
            notes.append("This video has 1 frame: the clip repeats it, as the official index rule does; motion "
                         "cannot be judged.")
        if self.decoded.substituted:
            bad = ", ".join(str(i) for i in sorted(self.decoded.substituted)[:8])
            notes.append(f"Frames {bad} could not be decoded (damaged file); the nearest earlier frame stands in "
                         f"for them.")
        return notes

    def centre_view(self) -> int:
        """Index of the first clip's centre crop (the view explanations use)."""
        crops = len(self.crop_boxes)
        return crops // 2


def load_clips(source, pretrained_cfg, views: Views | None = None, seek: bool = True,
               progress: Progress | None = None) -> VideoClips:
    """Decode and preprocess ``source`` (a video file path) as ``pretrained_cfg`` (a
    :class:`~uniformer.models.video.VideoPretrainedCfg`) was tested: see the module docstring.
    ``views`` default: the checkpoint's official test views. Raises VideoDecodeError for an
    unusable file, ValueError for bad views."""
    views = views or official_views(pretrained_cfg)
    t0 = time.perf_counter()
    if progress:
        progress(0.0, "indexing the video (demuxing, no decoding)")
    info = probe_video(source)
    T, S = pretrained_cfg.input_size[1], pretrained_cfg.input_size[-1]
    clip_indices = sample_clips(info.num_frames, pretrained_cfg.sampling, T, views.clips, pretrained_cfg.sampling_rate)
    short = pretrained_cfg.test_short_side(views.crops)
    if progress:
        progress(0.05, f"decoding {len({i for c in clip_indices for i in c})} of {info.num_frames} frames")
    decoded = read_frames(source, [i for c in clip_indices for i in c], info=info, seek=seek, short_side=short)
    t1 = time.perf_counter()
    h, w = next(iter(decoded.frames.values())).shape[-2:]
    offsets = crop_offsets(h, w, S, views.crops)
    scale_x, scale_y = info.width / w, info.height / h
    boxes = [(left * scale_x, top * scale_y, (left + S) * scale_x, (top + S) * scale_y) for top, left in offsets]
    batch, view_list = [], []
    for c, indices in enumerate(clip_indices):
        clip = normalize(decoded.stack(indices), pretrained_cfg.mean, pretrained_cfg.std)  # (3, T, h, w)
        for k, (top, left) in enumerate(offsets):
            batch.append(clip[..., top:top + S, left:left + S])
            view_list.append((c, k))
    t2 = time.perf_counter()
    return VideoClips(torch.stack(batch), clip_indices, view_list, boxes, short, S, pretrained_cfg.sampling,
                      pretrained_cfg.sampling_rate, tuple(pretrained_cfg.mean), tuple(pretrained_cfg.std), info,
                      decoded, (t1 - t0) * 1000, (t2 - t1) * 1000)


@dataclass(frozen=True)
class ViewResult:
    """One view: its clip and crop, the frames it saw, its softmax probabilities of the final top-k
    classes (same order as ``VideoPrediction.topk``) and its own best class."""

    clip: int
    crop: int
    frame_indices: tuple[int, ...]
    probabilities: tuple[float, ...]
    top1: ClassScore


@dataclass
class VideoPrediction:
    """Top-k classes of a video (views averaged) with every view's scores, what produced them,
    the frames sampled, how long each part took (ms) and ``notes`` for the user (see
    :attr:`VideoClips.notes`)."""

    topk: list[ClassScore]
    views: list[ViewResult]
    model_name: str
    weights: WeightsInfo
    device: str
    precision: str
    input_size: tuple[int, ...]
    sampling: str
    sampling_rate: int | None
    clips: int
    crops: int
    short_side: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip_indices: list[list[int]]
    video: dict
    frames_decoded: int
    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def view_table(self) -> tuple[list[str], list[list]]:
        """(columns, rows) of the per-view scores: one row per top-k class (name, then each view's
        probability in %, rounded to 0.01, then the views' average) and a last row of each view's
        own top-1 ('label (p%)'); a view's column is named 'clip c, crop (frames a-b)', crops being
        'centre' or 'left/top', 'centre', 'right/bottom'."""
        crop_names = {1: ["centre"], 3: ["left/top", "centre", "right/bottom"]}[self.crops]
        heads = [f"clip {v.clip + 1}, {crop_names[v.crop]} (frames {v.frame_indices[0]}\u2013{v.frame_indices[-1]})"
                 for v in self.views]
        rows = [[c.label, *(round(100 * v.probabilities[k], 2) for v in self.views), round(100 * c.probability, 2)]
                for k, c in enumerate(self.topk)]
        rows.append(["view's own top-1", *(f"{v.top1.label} ({100 * v.top1.probability:.1f}%)" for v in self.views),
                     self.topk[0].label])
        return ["class", *heads, "average"], rows

    @property
    def run_info(self) -> RunInfo:
        """What produced this prediction (:func:`uniformer.inference.describe_run` shows it); the
        inference covers every view, decoding is not counted (see ``decode_ms``)."""
        return RunInfo(self.model_name, self.weights, self.device, self.precision, self.inference_ms,
                       (("cropping", self.preprocess_ms),))

    def to_dict(self) -> dict:
        """JSON-ready dict (weights as their description and fields)."""
        d = asdict(self)
        d["weights"] = {**asdict(self.weights), "description": self.weights.describe()}
        return d


@torch.inference_mode()
def predict_clips(model: nn.Module, clips: VideoClips, topk: int = 5, device: str | torch.device | None = None,
                  precision: str = "fp32", progress: Progress | None = None,
                  source: str | None = None) -> VideoPrediction:
    """Classify the views of ``clips`` with ``model`` (from ``create_model``): one forward per view,
    logits averaged over views, softmax in float32. Raises ValueError (bad topk / precision / device)."""
    cfg = model.pretrained_cfg
    labels = cfg.class_names() if hasattr(cfg, "class_names") else get_labels(cfg.label_set)  # project labels too
    if not 1 <= topk <= len(labels):
        raise ValueError(f"topk must be between 1 and {len(labels)}, got {topk}")
    dev = select_device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    t0 = time.perf_counter()
    logits = []
    n = clips.views.shape[0]
    for v in range(n):
        if progress:
            progress(0.3 + 0.7 * v / n, f"view {v + 1} of {n}: clip {clips.view_list[v][0] + 1}, "
                                        f"crop {clips.view_list[v][1] + 1}")
        with autocast(dev, precision):
            logits.append(model(clips.views[v:v + 1].to(dev)).float())
    logits = torch.cat(logits)  # (V, classes)
    synchronize(dev)
    t1 = time.perf_counter()
    probs = logits.mean(0).softmax(-1)
    values, indices = probs.topk(topk)
    view_probs = logits.softmax(-1)
    best = view_probs.argmax(-1)
    top = [ClassScore(int(i), labels[int(i)], float(p)) for p, i in zip(values.tolist(), indices.tolist())]
    views = [ViewResult(c, k, tuple(clips.clip_indices[c]), tuple(float(view_probs[v, i]) for i in indices.tolist()),
                        ClassScore(int(best[v]), labels[int(best[v])], float(view_probs[v, best[v]])))
             for v, (c, k) in enumerate(clips.view_list)]
    if progress:
        progress(1.0, "done")
    crops = len(clips.crop_boxes)
    return VideoPrediction(
        topk=top, views=views, model_name=getattr(model, "model_name", type(model).__name__),
        weights=getattr(model, "weights_info", WeightsInfo("untrained")), device=str(dev), precision=precision,
        input_size=tuple(clips.views.shape[1:]), sampling=clips.sampling, sampling_rate=clips.sampling_rate,
        clips=n // crops, crops=crops, short_side=clips.short_side, mean=clips.mean, std=clips.std,
        clip_indices=[list(c) for c in clips.clip_indices], video=clips.info.summary(),
        frames_decoded=clips.decoded.decoded, decode_ms=clips.decode_ms, preprocess_ms=clips.preprocess_ms,
        inference_ms=(t1 - t0) * 1000, source=source, notes=clips.notes)


def predict_video(model: nn.Module, source, views: Views | None = None, topk: int = 5,
                  device: str | torch.device | None = None, precision: str = "fp32", seek: bool = True,
                  progress: Progress | None = None) -> VideoPrediction:
    """Classify the video file ``source`` with a video model from ``create_model``: its checkpoint's
    sampling, views (default: the official ones), resize, crops and normalization; see
    :func:`load_clips` and :func:`predict_clips`. Raises VideoDecodeError (unusable file) and
    ValueError (bad views / topk / precision / device)."""
    clips = load_clips(source, model.pretrained_cfg, views, seek=seek, progress=progress)
    return predict_clips(model, clips, topk=topk, device=device, precision=precision, progress=progress,
                         source=str(source))

