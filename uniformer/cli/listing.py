"""``list``: registered models, where each one's official weights come from."""
from __future__ import annotations

from .output import Report


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    ls = sub.add_parser("list", help="list registered models")
    ls.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'uniformer_small*'")
    ls.add_argument("--json", action="store_true", help="print a JSON list instead of text")


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    from .. import get_entry, list_models
    from ..downloads import weights_source

    report = Report(data=[])
    for name in list_models(args.pattern):
        e, src = get_entry(name), weights_source(name)
        where = {"hub": e.pretrained.hub, "drive": src.drive_url, "inside": "inside " + ", ".join(src.holders),
                 "unreleased": "not released", "project": "in the package (project-trained)"}[src.source]
        report.data.append({"name": name, "task": e.task, "source": src.source, "description": e.description,
                            "where": where})
        report.lines.append(f"{name:36s} {src.source:10s} {e.description:55s} {where}")
    return report
