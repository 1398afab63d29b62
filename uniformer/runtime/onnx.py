"""ONNX Runtime as a second runtime for any model ``create_model`` builds (image, light, video,
dense backbone), with the eager model's call signature: tensors in, tensors out.

Each input size is exported once with ``torch.onnx.export(..., dynamo=True)`` (dynamic batch, the
spatial / temporal size fixed per export) and cached as ``<cache>/onnx/<name>-<key>.onnx``, the
key hashing the model name, its config, a digest of its weights, the input size and the torch /
onnx versions, so other weights (or another size) never reuse a stale file. Sessions run on the
CPU execution provider, or the CUDA one where ONNX Runtime has it.

The cached export is then rewritten by ONNX Runtime's own graph optimizer
(``onnxruntime.transformers.optimizer``) with only its GELU fusions on: the exporter writes each
exact (erf) GELU as five element-wise nodes, which ONNX Runtime's session-level optimizations leave
alone; fused into one ``Gelu`` / ``BiasGelu`` contrib kernel they stop being ~18% of UniFormer-S's
CPU time (``benchmarks/bench_runtime.py``, paths ``ort`` vs ``ort-unfused``). The cached files (and
the ``export`` CLI's copies of them) therefore need ONNX Runtime; ``export_onnx`` alone (default
``fuse_gelu=False``) writes standard ONNX.

The light models rank tokens with a stable sort (ties: lower index first), exported as ``TopK``,
whose ties ONNX defines the same way: an untrained score token attends uniformly, so every score
ties, and an unstable sort picked other tokens in each runtime (issue 20).

The TorchScript exporter (``dynamo=False``) is not used: the graphs it writes for our
``movedim``-based LayerNorms carry negative ``Transpose`` permutations that ONNX Runtime refuses
to load ("Invalid attribute perm {0, -1, 1, 2, 3}", measured with torch 2.13 / onnxruntime 1.32).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from pathlib import Path

import torch
from torch import nn

from ..hub import cache_dir

__all__ = ["weights_digest", "onnx_cache_path", "export_onnx", "apply_gelu_fusion", "OnnxRuntimeModel", "ort_providers",
           "session_options"]

_KEY_VERSION = "3"  # bump when the export recipe changes (2: GELU fusion; 3: stable token ranking)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 (hex) of every tensor of ``model.state_dict()``: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def onnx_cache_path(model: nn.Module, input_shape: tuple[int, ...], digest: str | None = None) -> Path:
    """Where the export of ``model`` for inputs (B, *input_shape) is cached (not created here)."""
    import onnx

    name = getattr(model, "model_name", type(model).__name__)
    digest = digest or weights_digest(model)
    key = "|".join([_KEY_VERSION, name, repr(getattr(model, "cfg", None)), digest, repr(tuple(input_shape)),
                    torch.__version__, onnx.__version__])
    short = hashlib.sha256(key.encode()).hexdigest()[:16]
    size = "x".join(str(s) for s in input_shape)
    return cache_dir() / "onnx" / f"{name}-{size}-{short}.onnx"


class _Outputs(nn.Module):
    """The model's forward with list outputs (dense backbones) made a tuple for the exporter."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        return tuple(out) if isinstance(out, (list, tuple)) else out


def apply_gelu_fusion(path: str | os.PathLike) -> int:
    """Rewrite the ONNX file ``path`` in place with ONNX Runtime's GELU fusions (erf GELU -> one
    ``com.microsoft`` ``Gelu``, or ``BiasGelu`` when a bias add precedes it); every other
    fusion of the optimizer stays off, so the graph computes the same function (tested within
    1e-4 of eager). Returns the number of GELUs fused (0 leaves the file as it was).
    Raises ImportError without onnxruntime."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    opts = FusionOptions("bert")
    for flag in [f for f in vars(opts) if f.startswith("enable_")]:
        setattr(opts, flag, flag in ("enable_gelu", "enable_bias_gelu"))
    with contextlib.redirect_stdout(io.StringIO()):
        model = optimizer.optimize_model(str(path), model_type="bert", num_heads=0, hidden_size=0, opt_level=0,
                                         use_gpu=False, optimization_options=opts, only_onnxruntime=False)
    stats = model.get_fused_operator_statistics()
    fused = int(stats.get("Gelu", 0)) + int(stats.get("BiasGelu", 0))
    if fused:
        model.save_model_to_file(str(path))
    return fused


def _sort_stable(self, stable=None, dim: int = -1, descending: bool = False):
    """ONNX translation of ``torch.sort(..., stable=True)`` (which the exporter lacks): ``TopK`` over
    the whole axis. ONNX's ``TopK`` breaks ties by the lower index, exactly as a stable sort does, so
    the light models' token ranking (ties included: an untrained score token attends uniformly) is
    the same in ONNX Runtime as in eager PyTorch."""
    from onnxscript import opset18 as op

    size = op.Reshape(op.Gather(op.Shape(self), dim, axis=0), op.Constant(value_ints=[1]))  # (1,) = N
    return op.TopK(self, size, axis=dim, largest=descending, sorted=True)


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...],
                opset: int = 18, fuse_gelu: bool = False) -> Path:
    """Export ``model`` (eval mode, fp32) to the ONNX file ``path`` for inputs (B, *input_shape),
    e.g. (3, 224, 224) or (3, 16, 224, 224); the batch size B stays dynamic. Light models run
    at their default keep ratios. The input is named ``x``; outputs ``logits`` (classifiers) or
    ``stage{i}`` (dense backbones). The file is written whole (temporary file, then renamed).
    ``fuse_gelu``: also apply :func:`apply_gelu_fusion` (the file then runs on ONNX Runtime only).
    Raises RuntimeError (with the exporter's message) when the exporter fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _Outputs(model).eval()
    x = torch.zeros(2, *input_shape)  # (B, C, *S); B = 2 so the exporter keeps it symbolic
    with torch.inference_mode(False), torch.no_grad():
        out = wrapper(x)
    outputs = ["logits"] if torch.is_tensor(out) else [f"stage{i}" for i in getattr(model.cfg, "out_indices", None)
                                                         or range(len(out))]
    batch = torch.export.Dim("batch", min=1, max=65536)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(wrapper, (x,), str(tmp), dynamo=True, input_names=["x"], output_names=outputs,
                              dynamic_shapes=({0: batch},), opset_version=opset, external_data=False,
                              verbose=False, custom_translation_table={torch.ops.aten.sort.stable: _sort_stable})
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ONNX export of {getattr(model, 'model_name', type(model).__name__)} failed: {e}") from e
    try:
        if fuse_gelu:
            apply_gelu_fusion(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def ort_providers() -> list[str]:
    """ONNX Runtime execution providers to use: CUDA (when this onnxruntime build has it) then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def session_options():
    """The ``onnxruntime.SessionOptions`` every session here uses: as many intra-op threads as torch
    uses, all graph optimizations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class OnnxRuntimeModel(nn.Module):
    """A model run by ONNX Runtime with the eager model's call signature and outputs.

    ``forward(x)``: (B, C, H, W) or (B, C, T, H, W) float tensor -> logits (B, num_classes), or
    the list of stage maps for a dense backbone, on ``x``'s device. The first call at a new
    input size (C, *S) exports (or reuses the cached export) and opens a session; later calls
    only run it. Sessions are thread-safe, so concurrent requests may share one instance.

    The eager model stays available as ``.eager`` (the explain views need its hooks; it also owns
    the parameters, so ``.parameters()``, ``.to()`` and ``state_dict()`` behave as before);
    ``pretrained_cfg``, ``model_name``, ``weights_info`` and ``cfg`` are the eager model's.
    Autocast contexts do not apply: ONNX Runtime runs the exported fp32 graph.
    Light models: ``keep_ratio`` other than None (their default) raises ValueError (the export
    fixes the keep ratios; use the eager model to sweep them).
    """

    runtime = "onnxruntime"

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.eager = model.eval()
        for attr in ("pretrained_cfg", "model_name", "weights_info", "cfg", "num_classes"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))
        self._sessions: dict[tuple[int, ...], object] = {}
        self._paths: dict[tuple[int, ...], Path] = {}
        self._lock = threading.Lock()
        self._digest: str | None = None
        if input_shape is not None:
            self.session(tuple(input_shape))

    @property
    def is_backbone(self) -> bool:
        return bool(getattr(self.eager, "is_backbone", False))

    def onnx_path(self, input_shape: tuple[int, ...]) -> Path:
        """The cached ONNX file for inputs (B, *input_shape) (exported on first use)."""
        self.session(tuple(input_shape))
        return self._paths[tuple(input_shape)]

    def session(self, input_shape: tuple[int, ...]):
        """The ``onnxruntime.InferenceSession`` for inputs (B, *input_shape): from the cache
        file when there is one, else exported now."""
        with self._lock:
            if input_shape in self._sessions:
                return self._sessions[input_shape]
            import onnxruntime as ort

            if self._digest is None:
                self._digest = weights_digest(self.eager)
            path = onnx_cache_path(self.eager, input_shape, self._digest)
            if not path.is_file():
                export_onnx(self.eager, path, input_shape, fuse_gelu=True)
            sess = ort.InferenceSession(str(path), session_options(), providers=ort_providers())
            self._sessions[input_shape], self._paths[input_shape] = sess, path
            return sess

    def forward(self, x: torch.Tensor, keep_ratio: float | None = None):
        if keep_ratio is not None:
            raise ValueError("the ONNX Runtime model runs at the default keep ratios only; use the eager "
                             "model (runtime='torch', or .eager) to change keep_ratio")
        sess = self.session(tuple(x.shape[1:]))
        out = sess.run(None, {"x": x.detach().float().cpu().contiguous().numpy()})
        tensors = [torch.from_numpy(o).to(x.device) for o in out]
        return tensors if self.is_backbone else tensors[0]

    def extra_repr(self) -> str:
        return f"runtime=onnxruntime, providers={ort_providers()}, exports={sorted(self._paths)}"
