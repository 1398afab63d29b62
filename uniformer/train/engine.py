"""The training loop: one process or many (DDP), exact resume, evaluation, export.

:func:`fit` runs a :class:`~uniformer.train.config.TrainConfig` end to end and returns a
:class:`FitResult`; :func:`evaluate` is the held-out evaluation on its own. The same code runs
under ``torchrun`` (see ``distributed.py``): ``batch_size`` is the global batch of one optimizer
step, so N processes with the same config take the same steps as one process (the gradients of
the N shards are averaged by DDP; BatchNorm statistics are per process unless ``sync_bn``).

Determinism: the model is initialized from ``seed`` (same on every rank), then each rank's
generators are seeded with ``seed + rank`` (dropout / drop path / mixup); data order comes from
``DistributedSampler(seed)`` and augmentation from per-sample seeds (``data.SeededSamples``);
data loaders use their own generator, so creating one does not draw from the global stream.
A resumed run restores every generator and skips the consumed samples: it continues exactly.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import EpochSampler, SeededSamples, ShardSampler, build_datasets, with_input_size
from .distributed import (DistEnv, all_gather_objects, all_reduce_sum, cleanup, convert_sync_batchnorm,
                          init_distributed, unwrap)
from .model import build_model, freeze, param_groups, set_train_mode

logger = logging.getLogger(__name__)

__all__ = ["TrainState", "FitResult", "WarmupCosine", "seed_everything", "evaluate", "fit", "resolve_precision"]


@dataclass
class TrainState:
    """Where a run is: ``epoch`` (0-based, the one in progress), ``epoch_step`` (optimizer steps
    done in it), ``step`` (optimizer steps done in total), ``best_top1`` (best held-out top-1 so far,
    %), ``history`` (one dict per logged event: kind 'train' or 'eval')."""

    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    best_top1: float = 0.0
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "epoch_step": self.epoch_step, "step": self.step, "best_top1": self.best_top1}


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model (unwrapped, eval mode; the EMA model when EMA
    is on), the state (history included), the last held-out metrics, the class names and the
    export folder (None without export); ``train_samples``: the size of the training set it ran on
    (after ``train_limit``; for digits with ``augment``, the 1437 scans plus the synthetic drawings)."""

    model: nn.Module
    state: TrainState
    metrics: dict
    classes: list[str]
    export_dir: Path | None = None
    steps_per_epoch: int = 0
    total_steps: int = 0
    train_samples: int = 0

    @property
    def history(self) -> list[dict]:
        return self.state.history


class WarmupCosine:
    """Learning rate of optimizer step ``s`` (0-based): linear warm-up from ``warmup_lr`` to
    ``base_lr`` over ``warmup_steps``, then cosine from ``base_lr`` to ``min_lr`` at ``total_steps``
    (paper §6.1). Called with ``s`` it returns the multiplier of ``base_lr`` (``LambdaLR``)."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int, warmup_lr: float, min_lr: float):
        self.base_lr, self.total_steps, self.warmup_steps = base_lr, total_steps, warmup_steps
        self.warmup_lr, self.min_lr = warmup_lr, min_lr

    def lr(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * step / self.warmup_steps
        t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t))

    def __call__(self, step: int) -> float:
        return self.lr(step) / self.base_lr


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' on CUDA, 'fp32' elsewhere; others unchanged."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _to_device(batch, device):
    x, y = batch
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, device: torch.device, env: DistEnv | None = None,
             precision: str = "fp32") -> dict:
    """Held-out metrics of ``model`` over ``loader`` (every process its shard, then summed):
    val_loss (cross-entropy, no smoothing), val_top1 / val_top5 (%), val_samples, confusion
    (num_classes x num_classes list, rows = true class, columns = predicted)."""
    env = env or DistEnv()
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, n
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    k = min(5, num_classes)
    for batch in loader:
        x, y = _to_device(batch, device)
        with _autocast(device, precision):
            logits = model(x)
        logits = logits.float()
        sums[0] += F.cross_entropy(logits, y, reduction="sum")
        top = logits.topk(k, dim=1).indices
        sums[1] += (top[:, 0] == y).sum()
        sums[2] += (top == y[:, None]).any(1).sum()
        sums[3] += y.numel()
        confusion.index_put_((y, top[:, 0]), torch.ones_like(y), accumulate=True)
    all_reduce_sum(sums, env)
    all_reduce_sum(confusion, env)
    model.train(was_training)
    n = max(1.0, sums[3].item())
    return {"val_loss": sums[0].item() / n, "val_top1": 100 * sums[1].item() / n, "val_top5": 100 * sums[2].item() / n,
            "val_samples": int(sums[3].item()), "confusion": confusion.cpu().tolist()}


class _Log:
    """Rank-0 output: lines above the progress bar (tqdm; the module logger when no bar is shown) and
    metrics.jsonl."""

    def __init__(self, env: DistEnv, cfg: TrainConfig, total: int, initial: int):
        self.env, self.cfg = env, cfg
        self.path = Path(cfg.output_dir) / "metrics.jsonl" if cfg.output_dir and env.is_main else None
        self.bar = None
        if env.is_main and cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train")

    def line(self, text: str) -> None:
        if not self.env.is_main:
            return
        if self.bar is not None:
            self.bar.write(text)
        elif self.cfg.progress:
            logger.info(text)

    def record(self, entry: dict) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({k: v for k, v in entry.items() if k != "confusion"}) + "\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _loader(dataset, sampler, batch_size: int, cfg: TrainConfig, drop_last: bool, seed: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=drop_last,
                      pin_memory=torch.cuda.is_available(), persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed))


def fit(cfg: TrainConfig, model: nn.Module | None = None, callbacks: Sequence[Callable] = (),
        command: str | None = None, datasets: tuple | None = None) -> FitResult:
    """Train ``cfg`` to the end (``epochs`` or ``max_steps``) and return a :class:`FitResult`.

    model: train this module instead of building ``cfg.model`` (e.g. a frame-averaging
    baseline); it must map inputs to logits. callbacks: ``cb(state, metrics)`` called after every
    optimizer step (after a due checkpoint was written), ``metrics`` a dict with lr and loss;
    raising from it stops the run (tests simulate crashes this way). command: the command line,
    recorded in the export. datasets: ``(train, val or None, classes)`` instead of ``cfg.data``.

    Raises DatasetError (bad data), ValueError (bad configuration, e.g. a batch larger than the
    data), the checkpoint errors of ``uniformer.hub`` (starting weights / resume file).
    """
    env = init_distributed(cfg.device)
    try:
        return _fit(cfg, env, model, callbacks, command, datasets)
    finally:
        cleanup(env)


def _fit(cfg, env, model, callbacks, command, datasets) -> FitResult:
    from ..registry import get_entry

    device = env.device
    precision = resolve_precision(cfg.precision, device)
    seed_everything(cfg.seed)
    base_pcfg = getattr(model, "pretrained_cfg", None) or get_entry(cfg.model).pretrained
    model_cfg = getattr(model, "cfg", None) or get_entry(cfg.model).config
    spatial_dims = cfg.model_args.get("spatial_dims", getattr(model_cfg, "spatial_dims", 2))
    video = cfg.data == "moving_digits" or cfg.data.lower().endswith(".csv") or spatial_dims == 3
    data_cfg = with_input_size(base_pcfg, cfg.input_size, cfg.num_frames if video else None)
    train_set, val_set, classes = datasets or build_datasets(cfg, data_cfg)
    if cfg.train_limit is not None:
        train_set = Subset(train_set, range(min(cfg.train_limit, len(train_set))))
    if cfg.val_limit is not None and val_set is not None:
        val_set = Subset(val_set, range(min(cfg.val_limit, len(val_set))))
    num_classes = cfg.num_classes or len(classes)
    if num_classes != len(classes):
        raise ValueError(f"num_classes={num_classes} but the data has {len(classes)} classes")

    # --- model -----------------------------------------------------------------------------
    built = model is None
    if built:
        model = build_model(cfg.model, num_classes, pretrained=cfg.pretrained, checkpoint_path=cfg.init_checkpoint,
                            drop_path=cfg.drop_path, **dict(cfg.model_args))
    if cfg.freeze != "none" or cfg.freeze_stages:
        freeze(model, cfg.freeze, cfg.freeze_stages)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("every parameter is frozen; nothing to train")
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if cfg.sync_bn and env.distributed:
        model = convert_sync_batchnorm(model, device)
    model.to(device)

    # --- data ------------------------------------------------------------------------------
    per_proc = cfg.per_process_batch(env.world_size)
    train_sampler = EpochSampler(train_set, env.world_size, env.rank, shuffle=True, seed=cfg.seed)
    micro_per_epoch = len(train_sampler) // per_proc
    steps_per_epoch = micro_per_epoch // cfg.grad_accum
    if steps_per_epoch < 1:
        raise ValueError(f"the training set ({len(train_set)} samples) is smaller than one global batch "
                         f"({cfg.batch_size}); lower --batch-size")
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(cfg.warmup_epochs * steps_per_epoch)
    train_loader = _loader(SeededSamples(train_set, cfg.seed), train_sampler, per_proc, cfg, True, cfg.seed)
    val_loader = None
    if val_set is not None and len(val_set):
        val_loader = _loader(SeededSamples(val_set, cfg.seed), ShardSampler(len(val_set), env.world_size, env.rank),
                             per_proc, cfg, False, cfg.seed + 1)

    # --- optimization ----------------------------------------------------------------------
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    schedule = WarmupCosine(cfg.lr, total_steps, warmup, cfg.warmup_lr, cfg.min_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema_decay)
    mixup_fn = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        from timm.data import Mixup

        mixup_fn = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                         num_classes=num_classes)

    # --- resume ----------------------------------------------------------------------------
    state = TrainState()
    resume = cfg.resume
    if resume == "auto":
        last = Path(cfg.output_dir or ".") / ckpt.CHECKPOINT_NAME
        resume = str(last) if cfg.output_dir and last.is_file() else None
    random.seed(cfg.seed + env.rank)
    np.random.seed((cfg.seed + env.rank) % 2**32)
    torch.manual_seed(cfg.seed + env.rank)
    if resume:
        saved = ckpt.load_checkpoint(resume)
        if saved.get("classes") != list(classes):
            raise ValueError(f"{resume} was trained on classes {saved.get('classes')[:10]}..., not {classes[:10]}...")
        unwrap(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if ema is not None and saved.get("ema") is not None:
            ema.module.load_state_dict(saved["ema"])
        for k, v in saved["state"].items():
            setattr(state, k, v)
        state.history = list(saved.get("history", []))
        if saved.get("world_size") == env.world_size:
            ckpt.set_rng_state(saved["rng"][env.rank])

    if env.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    soft_criterion = None
    if mixup_fn is not None:
        from timm.loss import SoftTargetCrossEntropy

        soft_criterion = SoftTargetCrossEntropy()

    log = _Log(env, cfg, total_steps, state.step)
    if state.step == 0:
        log.line(f"training {cfg.model if built else type(model).__name__}: {len(train_set)} samples, {num_classes} "
                 f"classes, {env.world_size} process(es) x {per_proc} x {cfg.grad_accum} accumulation = global batch "
                 f"{cfg.batch_size}; {steps_per_epoch} steps/epoch, {total_steps} steps, device {device}, {precision}")
    else:
        log.line(f"resumed from {resume} at step {state.step} (epoch {state.epoch}, step {state.epoch_step} in it)")

    def save() -> None:
        rngs = all_gather_objects(ckpt.rng_state(), env)
        replicas = all_gather_objects(_params_sha256(unwrap(model)), env)
        if env.is_main and cfg.output_dir:
            ckpt.save_checkpoint(Path(cfg.output_dir) / ckpt.CHECKPOINT_NAME, {
                "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "ema": ema.module.state_dict() if ema is not None else None,
                "state": state.to_dict(), "history": state.history, "rng": rngs, "world_size": env.world_size,
                "replica_params_sha256": replicas,
                "config": cfg.to_dict(), "classes": list(classes), "model_name": cfg.model if built else None})

    def run_eval() -> dict:
        metrics = {}
        if val_loader is None:
            return metrics
        metrics = evaluate(unwrap(model), val_loader, num_classes, device, env, precision)
        if ema is not None:
            ema_metrics = evaluate(ema.module, val_loader, num_classes, device, env, precision)
            metrics.update({f"{k}_ema": v for k, v in ema_metrics.items() if k != "confusion"})
            metrics["confusion_ema"] = ema_metrics["confusion"]
        entry = {"kind": "eval", "epoch": state.epoch, "step": state.step,
                 **{k: v for k, v in metrics.items() if not k.startswith("confusion")}}
        state.history.append(entry)
        log.record(entry)
        state.best_top1 = max(state.best_top1, metrics["val_top1"])
        top5 = f" top-5 {metrics['val_top5']:.2f}%" if num_classes > 10 else ""   # says nothing on a few classes
        log.line(f"epoch {state.epoch} step {state.step}: val top-1 {metrics['val_top1']:.2f}%{top5} "
                 f"loss {metrics['val_loss']:.4f}"
                 + (f" | EMA top-1 {metrics['val_top1_ema']:.2f}%" if ema is not None else ""))
        return metrics

    metrics: dict = {}
    window_loss, window_n, t_window = 0.0, 0, time.perf_counter()
    try:
        while state.step < total_steps:
            set_train_mode(model)
            train_sampler.set_position(state.epoch, state.epoch_step * cfg.grad_accum * per_proc)
            micro = 0
            for batch in train_loader:
                x, y = _to_device(batch, device)
                if mixup_fn is not None:
                    x, target = mixup_fn(x, y)
                sync = (micro + 1) % cfg.grad_accum == 0
                no_sync = model.no_sync() if env.distributed and not sync else contextlib.nullcontext()
                with no_sync:
                    with _autocast(device, precision):
                        logits = model(x)
                    loss = (soft_criterion(logits.float(), target) if mixup_fn is not None
                            else criterion(logits.float(), y))
                    (loss / cfg.grad_accum).backward()
                window_loss += loss.item()
                window_n += 1
                micro += 1
                if not sync:
                    continue
                if cfg.clip_grad is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                if ema is not None:
                    ema.update(unwrap(model), step=state.step)
                state.step += 1
                state.epoch_step += 1
                step_info = {"lr": lr, "loss": loss.item()}
                if log.bar is not None:
                    log.bar.update(1)
                    log.bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", epoch=state.epoch)
                if state.step % cfg.log_every_steps == 0 or state.step == total_steps:
                    dt = time.perf_counter() - t_window
                    steps_in_window = window_n / cfg.grad_accum
                    entry = {"kind": "train", "epoch": state.epoch, "step": state.step, "lr": lr,
                             "loss": window_loss / max(1, window_n),
                             "samples_per_s": steps_in_window * cfg.batch_size / dt if dt > 0 else None}
                    state.history.append(entry)
                    log.record(entry)
                    window_loss, window_n, t_window = 0.0, 0, time.perf_counter()
                if cfg.save_every_steps and state.step % cfg.save_every_steps == 0 and state.step < total_steps:
                    save()
                for cb in callbacks:
                    cb(state, step_info)
                if state.step >= total_steps or state.epoch_step >= steps_per_epoch:
                    break
            epoch_done = state.epoch_step >= steps_per_epoch
            last = state.step >= total_steps
            if (epoch_done and (state.epoch + 1) % cfg.eval_every_epochs == 0) or last:
                metrics = run_eval()
            if epoch_done:
                state.epoch += 1
                state.epoch_step = 0
            if epoch_done or last:
                save()
    finally:
        log.close()

    final = unwrap(model)
    if ema is not None:
        final = ema.module
    final.eval()
    for attr in ("pretrained_cfg", "model_name", "weights_info"):
        if hasattr(unwrap(model), attr) and final is not unwrap(model):
            setattr(final, attr, getattr(unwrap(model), attr))
    if built:
        from dataclasses import replace

        final.pretrained_cfg = replace(data_cfg, labels=tuple(classes), num_classes=num_classes, hub=None,
                                       label_set=_label_set(cfg))
    export_dir = None
    if cfg.export and built:
        export_dir = Path(cfg.output_dir) / "export"
        if env.is_main:
            key = "_ema" if ema is not None else ""
            summary = {"val_top1": metrics.get(f"val_top1{key}"), "val_top5": metrics.get(f"val_top5{key}"),
                       "val_loss": metrics.get(f"val_loss{key}"), "val_samples": metrics.get("val_samples"),
                       "val_split": _split_name(cfg)}
            last_train = [h for h in state.history if h["kind"] == "train"]
            if last_train:
                summary["train_loss"] = last_train[-1]["loss"]
            ckpt.export_model(
                final, export_dir, classes, model_name=cfg.model, pretrained_cfg=final.pretrained_cfg,
                label_set=_label_set(cfg), metrics=summary,
                training={"config": cfg.to_dict(), "steps": state.step,
                          "epochs": round(state.step / steps_per_epoch, 2),
                          "dataset": _split_name(cfg, "train"), "world_size": env.world_size, "ema": cfg.ema},
                command=command)
            log.line(f"exported to {export_dir}")
    return FitResult(final, state, metrics, list(classes), export_dir, steps_per_epoch, total_steps, len(train_set))


def _params_sha256(model: nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in order: equal on all DDP replicas when they are in sync
    (stored per rank in each checkpoint as ``replica_params_sha256``)."""
    import hashlib

    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _split_name(cfg: TrainConfig, which: str = "val") -> str:
    if cfg.data == "digits":
        if which == "train" and cfg.augment:
            from .data import DIGITS_STYLED_PER_DIGIT

            return (f"scikit-learn digits, stratified 80/20 split (seed 0): 1437 train images + "
                    f"{10 * DIGITS_STYLED_PER_DIGIT} synthetic block / seven-segment sketchpad drawings (seed 0)")
        return ("scikit-learn digits, stratified 80/20 split (seed 0): " + ("1437 train" if which == "train"
                else "360 held-out")) + " images"
    if cfg.data == "moving_digits":
        return f"moving digits ({which} clips from the digits {which} split)"
    return str(cfg.val_data if which == "val" else cfg.data)


def _label_set(cfg: TrainConfig) -> str:
    return {"digits": "digits", "moving_digits": "moving-digits"}.get(cfg.data, "custom")
