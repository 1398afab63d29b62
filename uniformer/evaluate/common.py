"""What every family's evaluation shares: the result record, sharding the samples over processes
(each sample exactly once, no padding: ``DistributedSampler`` would repeat samples to even the
shards) and gathering the per-sample outputs on rank 0 in sample order."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..train.distributed import DistEnv, all_gather_objects, init_distributed

__all__ = ["EvalResult", "run_sharded", "progress_bar", "model_facts"]


@dataclass
class EvalResult:
    """One evaluation. family: 'image', 'video', 'segmentation', 'detection' or 'pose'; metrics:
    name -> value (top-1 / top-5 / mIoU / aAcc in %, COCO AP in %); samples: how many were
    evaluated (each exactly once over all processes); protocol: how (views, scales, boxes);
    paper: the paper's numbers for this checkpoint and protocol (``uniformer.registry.paper_results``);
    world_size: processes that shared the work; seconds: wall time. Only rank 0 holds the metrics
    under torchrun (the others get ``metrics == {}``)."""

    model_name: str
    weights: str
    family: str
    data: str
    metrics: dict[str, float]
    samples: int
    protocol: str
    paper: list[dict] = field(default_factory=list)
    world_size: int = 1
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model_name": self.model_name, "weights": self.weights, "family": self.family, "data": self.data,
                "metrics": self.metrics, "samples": self.samples, "protocol": self.protocol, "paper": self.paper,
                "world_size": self.world_size, "seconds": self.seconds, **self.extra}

    def lines(self) -> list[str]:
        """Text for people: the metrics, ours beside the paper's."""
        out = [f"model: {self.model_name}  weights: {self.weights}",
               f"data: {self.data}  ({self.samples} samples, {self.world_size} process(es), {self.seconds:.1f} s)",
               f"protocol: {self.protocol}"]
        papers = {p["metric"]: p for p in self.paper}
        for k, v in self.metrics.items():
            p = papers.get(k)
            out.append(f"  {k:>10}: {v:7.2f}" + (f"   paper {p['value']:.1f} ({p['source']})" if p else ""))
        return out


def model_facts(model) -> tuple[str, str]:
    """(model name, weights description) of a model from ``create_model`` (or any module)."""
    info = getattr(model, "weights_info", None)
    return getattr(model, "model_name", type(model).__name__), info.describe() if info else "untrained"


def progress_bar(items: Sequence, desc: str, enabled: bool):
    """``items`` with a tqdm bar on stderr when ``enabled`` (rank 0)."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="sample", disable=not enabled, leave=False)


def run_sharded(n: int, work: Callable[[Sequence[int], DistEnv], list[tuple[int, Any]]], device: str = "auto"
                ) -> tuple[list[Any], DistEnv, float]:
    """Run ``work(indices, env) -> [(index, output), ...]`` on this process's share of
    ``range(n)`` (rank r takes r, r + W, r + 2W, ...: every index exactly once, none padded) and
    gather the outputs on every process, sorted by index -> (outputs, the process environment
    (``env.device``: where to run; ``env.is_main``: show progress), seconds). Joins torchrun's
    process group when WORLD_SIZE > 1 (and leaves it for the caller's later processes).

    Raises RuntimeError when the gathered indices are not exactly ``range(n)``.
    """
    env = init_distributed(device)
    t0 = time.perf_counter()
    mine = list(range(env.rank, n, env.world_size))
    pairs = work(mine, env)
    gathered = [p for part in all_gather_objects(pairs, env) for p in part]
    gathered.sort(key=lambda p: p[0])
    if [i for i, _ in gathered] != list(range(n)):
        raise RuntimeError(f"gathered {len(gathered)} outputs for {n} samples: some were lost or counted twice")
    return [o for _, o in gathered], env, time.perf_counter() - t0
