"""``download``: fetch official checkpoints by name, so that later runs need no network."""
from __future__ import annotations

from .output import Report


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    dl = sub.add_parser("download", help="fetch official checkpoints by name (Hugging Face Hub, else Google Drive)",
                        description="For each name (or glob pattern, e.g. 'mask_rcnn_*'): where its official weights "
                                    "come from and where they are (or would be) cached; without --dry-run they are "
                                    "downloaded, so that later runs need no network. Drive files go to "
                                    "$UNIFORMER_CACHE (default ~/.cache/uniformer), Hub files to the Hugging Face "
                                    "cache.")
    dl.add_argument("names", nargs="+", metavar="NAME", help="registered model names or glob patterns")
    dl.add_argument("--dry-run", action="store_true", help="only say where each file comes from and would go")
    dl.add_argument("--json", action="store_true", help="print a JSON list (name, source, hub_repo_id, hub_filename, "
                                                        "drive_file_id, path, ...) instead of text")


def resolve_names(items: list[str]) -> list[str]:
    """Registered names and glob patterns -> names, in order, each once. Raises KeyError for an
    unknown name or a pattern matching nothing (before anything is fetched)."""
    from .. import list_models
    from ..registry import get_entry

    names: list[str] = []
    for item in items:
        if any(c in item for c in "*?["):
            matched = list_models(item)
            if not matched:
                raise KeyError(f"no registered model matches {item!r} (python -m uniformer list)")
            names += matched
        else:
            names.append(get_entry(item).name)
    return list(dict.fromkeys(names))


def run(args) -> Report:
    """Every name resolved first, then each fetched in turn; a failed name does not stop the others."""
    from ..downloads import download_weights, weights_status
    from ..hub import CheckpointError

    report = Report(data=[])
    for name in resolve_names(args.names):
        status = weights_status(name)
        if args.dry_run:
            status["status"] = "cached" if status["cached"] else (
                "not released" if status["source"] == "unreleased" else "would download")
        elif status["cached"]:
            status["status"] = "cached"
        else:
            try:
                download_weights(name)
                status = {**weights_status(name), "status": "downloaded"}
            except CheckpointError as e:
                status["status"], status["error"] = "failed", f"{type(e).__name__}: {e}"
                report.errors.append(f"{name}: {status['error']}")
        report.data.append(status)
        report.lines.append(f"{name}  [{status['source']}]  {status['describe']}")
        where = {"would download": "to", "failed": "(it would go to"}.get(status["status"], "at")
        path = f" {where} {status['path']}{')' if where.startswith('(') else ''}" if status["path"] else ""
        report.lines.append(f"    {status['status']}{path}")
    return report
