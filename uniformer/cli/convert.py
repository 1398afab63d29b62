"""``convert``: the weights of a training checkpoint that safe loading refuses, as a plain state dict."""
from __future__ import annotations

from .output import Report


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    cv = sub.add_parser("convert", help="extract the weights of a training checkpoint that safe loading refuses")
    cv.add_argument("src")
    cv.add_argument("dst", help="output file: .safetensors writes safetensors, anything else a torch state dict")
    cv.add_argument("--trust-source", action="store_true", required=True,
                    help="required: the file is unpickled unsafely (it can run code), so only for files you trust")


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    import torch

    from ..hub import unwrap_state_dict

    obj = torch.load(args.src, map_location="cpu", weights_only=False)  # explicit, user-confirmed opt-in
    state_dict = unwrap_state_dict(obj, args.src)
    if str(args.dst).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state_dict.items()}, args.dst)
    else:
        torch.save(state_dict, args.dst)
    return Report(data={"tensors": len(state_dict), "path": str(args.dst)},
                  lines=[f"wrote {len(state_dict)} tensors to {args.dst}"])
