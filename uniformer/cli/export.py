"""``export``: a model for deployment (ONNX, dynamic batch)."""
from __future__ import annotations

from .common import load_model
from .output import Report


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    ex = sub.add_parser("export", help="export a model for deployment (ONNX, dynamic batch)")
    ex.add_argument("model", help="registered model name")
    ex.add_argument("out", help="output file, e.g. model.onnx")
    ex.add_argument("--format", default="onnx", choices=("onnx",), help="export format (onnx)")
    ex.add_argument("--input-size", default=None, metavar="CxHxW",
                    help="input size without the batch, e.g. 3x224x224 or 3x16x224x224 (default: the model's)")
    ex.add_argument("--checkpoint", default=None, help="local checkpoint file instead of the Hub download")
    ex.add_argument("--untrained", action="store_true", help="export random weights (for testing a deployment)")


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    import shutil
    from pathlib import Path

    from ..runtime import with_runtime

    report = Report()
    model = load_model(args.model, args, report)
    size = args.input_size or "x".join(map(str, model.pretrained_cfg.input_size))
    try:
        shape = tuple(int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--input-size must look like 3x224x224, got {size!r}") from None
    cached = with_runtime(model, "onnxruntime").onnx_path(shape)  # exported once, then from the cache
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, path)
    mb = path.stat().st_size / 2**20
    report.data = {"path": str(path), "input_shape": ["B", *shape], "megabytes": mb}
    report.lines.append(f"wrote {path} ({mb:.1f} MB): input 'x' (B, {', '.join(map(str, shape))}), "
                        f"batch dynamic; run it with onnxruntime.InferenceSession")
    return report
