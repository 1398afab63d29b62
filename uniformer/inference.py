"""Inference as pure functions: image(s) in, a result value out (used by the CLI, the app, notebooks).

``predict_image(model, image)`` decodes nothing itself when given a PIL image; give it a path or
bytes and it decodes with :func:`uniformer.data.load_image` (so bad files raise ImageDecodeError).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from torch import nn

from .data import eval_transform, load_image
from .hub import WeightsInfo

__all__ = ["ClassScore", "RunInfo", "device_label", "describe_run", "ImagePrediction", "select_device", "autocast",
           "preprocess_images", "predict_image", "predict_images", "PRECISIONS", "resolve_precision"]

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ClassScore:
    """One class of a top-k list: index into the label set, its name, its softmax probability."""

    index: int
    label: str
    probability: float


def device_label(device: str | torch.device) -> str:
    """'CPU', or 'CUDA (<GPU name>)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    return device.type.upper()


@dataclass(frozen=True)
class RunInfo:
    """What produced a result and how long it took: every result of :mod:`uniformer.inference`,
    :mod:`uniformer.inference_video` and :mod:`uniformer.tasks` carries one (``result.run_info``).

    model_name; weights: where the weights came from; device: e.g. 'cpu', 'cuda:0'; precision:
    'fp32' / 'bf16' / 'fp16' (None where the task runs fp32 only); inference_ms: the network's
    forward (milliseconds); steps: (what, milliseconds) of the work around it, in pipeline order
    (e.g. ('preprocessing', 3.1)); precision_note: a word on how the precision was chosen.
    """

    model_name: str
    weights: WeightsInfo
    device: str
    precision: str | None
    inference_ms: float
    steps: tuple[tuple[str, float], ...] = ()
    precision_note: str | None = None


def describe_run(info: RunInfo) -> str:
    """The one Markdown line saying where and how fast a result was computed, e.g.
    '**Device:** CPU · **Precision:** fp32 · **Inference:** 41 ms (+ 3 ms preprocessing, 7 ms resizing)'
    (milliseconds rounded to whole numbers)."""
    parts = [f"**Device:** {device_label(info.device)}"]
    if info.precision is not None:
        parts.append(f"**Precision:** {info.precision}" + (f" ({info.precision_note})" if info.precision_note else ""))
    around = ", ".join(f"{ms:.0f} ms {what}" for what, ms in info.steps)
    parts.append(f"**Inference:** {info.inference_ms:.0f} ms" + (f" (+ {around})" if around else ""))
    return " \u00b7 ".join(parts)


@dataclass
class ImagePrediction:
    """Top-k classes of one image, with what produced them and how long it took (milliseconds)."""

    topk: list[ClassScore]
    model_name: str
    weights: WeightsInfo
    device: str
    precision: str
    input_size: tuple[int, ...]
    preprocess_ms: float
    inference_ms: float
    source: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def run_info(self) -> RunInfo:
        """What produced this prediction (:func:`describe_run` shows it)."""
        return RunInfo(self.model_name, self.weights, self.device, self.precision, self.inference_ms,
                       (("preprocessing", self.preprocess_ms),))

    def to_dict(self) -> dict:
        """JSON-ready dict (weights as their description and fields)."""
        d = asdict(self)
        d["weights"] = {**asdict(self.weights), "description": self.weights.describe()}
        return d


def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' or None: CUDA when available, else CPU. Otherwise ``torch.device(device)``;
    raises ValueError for a CUDA device when CUDA is not available."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA device is available; use device='cpu' or 'auto'")
    return device


def autocast(device: torch.device, precision: str = "fp32"):
    """A context for ``precision`` ('fp32', 'bf16', 'fp16') on ``device``. fp16 runs only on CUDA
    (raises ValueError on CPU); bf16 works on both. Raises ValueError for an unknown precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast needs a CUDA device; use bf16 or fp32 on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``precision`` itself, or for 'auto' the device's default (:func:`uniformer.precision.default_precision`:
    bf16 where the hardware computes it natively, else fp32)."""
    if precision == "auto":
        from .precision import default_precision

        return default_precision(device)
    return precision


def preprocess_images(images: Sequence, pretrained_cfg) -> torch.Tensor:
    """Decode (see ``load_image``) and preprocess images as the checkpoint was evaluated:
    -> (B, 3, S, S) float32. Raises ImageDecodeError for a bad image."""
    transform = eval_transform(pretrained_cfg)
    return torch.stack([transform(load_image(im)) for im in images])


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA); no-op on CPU. For honest timings in milliseconds."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def predict_images(model: nn.Module, images: Sequence, topk: int = 5, device: str | torch.device | None = None,
                   precision: str = "fp32", sources: Sequence[str | None] | None = None) -> list[ImagePrediction]:
    """Classify a batch of images with ``model`` (from ``create_model``) -> one prediction each.

    images: paths, bytes, PIL images or arrays (decoded with ``load_image``). The model is moved
    to ``device`` (default: the model's current device). Probabilities are a softmax in float32.
    precision: 'fp32', 'bf16', 'fp16' (autocast) or 'auto' (bf16 where the hardware has native
    bf16, else fp32; the result's ``precision`` says which ran). A model from
    ``create_model(..., runtime='onnxruntime')`` always runs its fp32 graph.
    Raises ImageDecodeError (bad image), ValueError (bad topk / precision / device).
    """
    if not images:
        raise ValueError("no images given")
    cfg = model.pretrained_cfg
    labels = cfg.class_names()
    if not 1 <= topk <= len(labels):
        raise ValueError(f"topk must be between 1 and {len(labels)}, got {topk}")
    dev = select_device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    precision = resolve_precision(precision, dev)
    if getattr(model, "runtime", "torch") != "torch":
        precision = "fp32"
    t0 = time.perf_counter()
    x = preprocess_images(images, cfg).to(dev)
    t1 = time.perf_counter()
    with autocast(dev, precision):
        logits = model(x)
    probs = logits.float().softmax(-1)
    synchronize(dev)
    t2 = time.perf_counter()
    values, indices = probs.topk(topk, dim=-1)
    sources = list(sources) if sources is not None else [im if isinstance(im, str) else None for im in images]
    per_image_pre = (t1 - t0) * 1000 / len(images)
    per_image_inf = (t2 - t1) * 1000 / len(images)
    return [
        ImagePrediction(
            topk=[ClassScore(int(i), labels[int(i)], float(p)) for p, i in zip(v.tolist(), ix.tolist())],
            model_name=getattr(model, "model_name", type(model).__name__),
            weights=getattr(model, "weights_info", WeightsInfo("untrained")),
            device=str(dev), precision=precision, input_size=tuple(x.shape[1:]),
            preprocess_ms=per_image_pre, inference_ms=per_image_inf, source=src)
        for v, ix, src in zip(values, indices, sources)
    ]


def predict_image(model: nn.Module, image, topk: int = 5, device: str | torch.device | None = None,
                  precision: str = "fp32") -> ImagePrediction:
    """Classify one image; see :func:`predict_images`."""
    return predict_images(model, [image], topk=topk, device=device, precision=precision)[0]
