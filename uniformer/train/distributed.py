"""Multi-process training: torchrun environment, process group, reductions, SyncBatchNorm on CPU.

``python -m uniformer train ...`` runs as one process; under
``torchrun --nproc_per_node N -m uniformer train ...`` torchrun sets RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR / MASTER_PORT and :func:`init_distributed` joins the process group:
NCCL when the processes have GPUs (one per local rank), gloo on CPUs. Only rank 0 logs, shows
progress and writes checkpoints.

PyTorch's ``nn.SyncBatchNorm`` refuses CPU tensors, so :class:`CPUSyncBatchNorm` computes the
global batch statistics with autograd-aware all-reduces (``torch.distributed.nn``); on GPUs the
built-in one is used. Either way the parameters and buffers keep the BatchNorm names, so a
checkpoint loads into the plain model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["DistEnv", "env_world", "init_distributed", "cleanup", "all_reduce_sum", "all_gather_objects",
           "broadcast_object", "CPUSyncBatchNorm", "convert_sync_batchnorm", "unwrap"]


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run: rank / world_size / local_rank, its device, the backend
    ('gloo' / 'nccl', None for one process) and whether :func:`init_distributed` created the
    process group (then :func:`cleanup` destroys it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that logs and writes files)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment variables; (0, 1, 0) without."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the torchrun process group when WORLD_SIZE > 1 (or use an existing one).

    ``device``: 'auto' (CUDA when available: ``cuda:LOCAL_RANK``; else CPU), 'cpu', 'cuda'.
    Backend: NCCL for CUDA, gloo for CPU. Raises ValueError for CUDA without GPUs, RuntimeError
    when torchrun's rendezvous variables are missing.
    """
    rank, world, local_rank = env_world()
    want_cuda = torch.cuda.is_available() if device == "auto" else torch.device(device).type == "cuda"
    if want_cuda and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA device is available; use --device cpu")
    if want_cuda:
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, dev, dist.get_backend(), False)
    if world <= 1:
        return DistEnv(0, 1, 0, dev, None, False)
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world} but {missing} are not set; start the run with torchrun")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistEnv(rank, world, local_rank, dev, backend, True)


def cleanup(env: DistEnv) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum of ``tensor`` over all processes (in place and returned); itself for one process."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj, env: DistEnv) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every process (picklable objects)."""
    if not env.distributed:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, env: DistEnv):
    """Rank 0's ``obj`` on every process."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class CPUSyncBatchNorm(_BatchNorm):
    """BatchNorm over the whole global batch of every process, for any input rank (B, C, *S);
    works on CPU with gloo (``nn.SyncBatchNorm`` needs GPUs).

    Training with an initialized process group: mean = sum(x) / n and biased variance =
    sum((x - mean)^2) / n over all processes' samples and positions (two autograd-aware
    all-reduces, so gradients flow across processes as in the single-process BatchNorm); running
    stats updated with the unbiased variance, as ``nn.BatchNorm``. Otherwise: plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...), got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        sums = all_reduce(torch.cat([x.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        centered = x - mean.view(shape)
        var = all_reduce(centered.pow(2).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp(min=1), alpha=m)
        y = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` synchronized across processes: ``nn.SyncBatchNorm`` on CUDA,
    :class:`CPUSyncBatchNorm` on CPU (same parameters, buffers and state-dict names)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: nn.Module) -> nn.Module:
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
            out = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
            if module.affine:
                with torch.no_grad():
                    out.weight = module.weight
                    out.bias = module.bias
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.train(module.training)
        for name, child in module.named_children():
            out.add_module(name, convert(child))
        return out

    return convert(model)
