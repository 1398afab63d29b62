"""Training configuration: one frozen dataclass holding the paper's recipe as defaults.

Defaults follow the paper's image recipe (§6.1, the DeiT strategy): AdamW (betas 0.9/0.999),
learning rate 1e-3 for a global batch of 1024 (``lr`` here is absolute: scale it to your batch),
cosine schedule with linear warm-up over the first 5 epochs, weight decay 0.05 (not on norms,
biases, layer-scale gammas or tokens), stochastic depth 0.1 (UniFormer-S; B 0.3, L 0.4), label
smoothing 0.1. Mixup/CutMix (timm) are available but off by default; the video recipe (§6.2)
is the same optimizer and schedule with lr 1e-4 x batch / 32. bf16 autocast is used on GPUs
(``precision='auto'``), fp32 on CPUs.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainConfig", "FREEZE_MODES", "PRECISIONS", "DATASETS"]

FREEZE_MODES = ("none", "backbone")
PRECISIONS = ("auto", "fp32", "bf16")
#: Built-in dataset names; anything else is a path (image folder, or a CSV video list).
DATASETS = ("digits", "moving_digits")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on (what ``python -m uniformer train`` fills in).

    Model: ``model`` is a registered name (``uniformer.list_models()``); ``pretrained`` loads its
    registered weights, ``init_checkpoint`` a local file instead; ``model_args`` override config
    fields (e.g. ``{"spatial_dims": 3}`` for a video model: 2-D weights are then inflated over
    time); ``num_classes`` defaults to the dataset's class count (a new head when it differs from
    the checkpoint's). ``freeze='backbone'`` trains the classifier only (linear probe);
    ``freeze_stages=k`` freezes the first k stages.

    Data: ``data`` is 'digits', 'moving_digits', an image folder (one sub-folder per class) or a
    CSV video list (``path,label``); ``val_data`` the held-out set (built-in sets have their own
    deterministic split). ``input_size`` is the square side in pixels (None: the model's
    registered size), ``num_frames`` the clip length of video data. ``train_limit`` /
    ``val_limit``: use only the first N samples (quick checks, CI).

    Optimization: ``batch_size`` is the *global* batch per optimizer step, split over processes
    and ``grad_accum`` micro-steps (it must divide evenly), so a run means the same thing on 1 or N
    processes. ``epochs`` sets the schedule length; ``max_steps`` (if set) replaces it with a step
    count. ``warmup_epochs`` / ``warmup_steps``: linear warm-up from ``warmup_lr`` to ``lr``, then
    cosine to ``min_lr``. ``clip_grad``: max gradient norm (None: no clipping).

    Checkpoints: ``output_dir`` receives ``checkpoint-last.pt`` every ``save_every_steps`` steps
    (0: at epoch ends only) and at the end, ``metrics.jsonl`` and, with ``export``, the exported
    model (safetensors + config.json + README.md) in ``output_dir/export``. ``resume``: a
    checkpoint path, or 'auto' (``output_dir/checkpoint-last.pt`` when it exists).
    """

    # model
    model: str = "uniformer_xxs_digits"
    pretrained: bool = False
    init_checkpoint: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    drop_path: float = 0.1
    freeze: str = "none"
    freeze_stages: int = 0
    grad_checkpointing: bool = False
    sync_bn: bool = False
    # data
    data: str = "digits"
    val_data: str | None = None
    input_size: int | None = None
    num_frames: int = 8
    workers: int = 0
    augment: bool = True
    train_limit: int | None = None
    val_limit: int | None = None
    # optimization (paper §6.1)
    epochs: int = 30
    max_steps: int | None = None
    batch_size: int = 64
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_lr: float = 1e-6
    warmup_epochs: float = 5.0
    warmup_steps: int | None = None
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    clip_grad: float | None = None
    ema: bool = False
    ema_decay: float = 0.9998
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    # bookkeeping
    output_dir: str | None = None
    resume: str | None = None
    save_every_steps: int = 0
    eval_every_epochs: int = 1
    log_every_steps: int = 10
    export: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.freeze not in FREEZE_MODES:
            raise ValueError(f"freeze must be one of {FREEZE_MODES}, got {self.freeze!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("batch_size", "grad_accum", "epochs", "num_frames", "eval_every_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of grad_accum {self.grad_accum}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.export and self.output_dir is None:
            raise ValueError("export=True needs an output_dir")
        if self.resume is not None and self.resume != "auto" and not self.resume:
            raise ValueError("resume must be a path or 'auto'")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (raises TypeError for unknown fields)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise TypeError."""
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def per_process_batch(self, world_size: int) -> int:
        """Samples per process and micro-step: batch_size / (world_size * grad_accum).
        Raises ValueError when that is not a whole number."""
        denom = world_size * self.grad_accum
        if self.batch_size % denom:
            raise ValueError(f"batch_size {self.batch_size} cannot be split over {world_size} processes x "
                             f"{self.grad_accum} accumulation steps")
        return self.batch_size // denom
