"""What a command returns (:class:`Report`) and the one place that prints it (:func:`emit`)."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Report", "emit"]


@dataclass
class Report:
    """A command's answer. data: JSON-ready (printed by ``--json``); lines: the same for people;
    errors: one line per input that failed (the others were answered; exit status 1); warnings:
    lines for stderr (e.g. untrained weights); status: exit status when no error decides it; quiet:
    print nothing at all (the processes other than rank 0 under torchrun)."""

    data: Any = None
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    status: int = 0
    quiet: bool = False

    def extend(self, other: "Report") -> None:
        """Add ``other``'s lines, errors and warnings (its data is the caller's business)."""
        if self.lines and other.lines:
            self.lines.append("")
        self.lines += other.lines
        self.errors += other.errors
        self.warnings += [w for w in other.warnings if w not in self.warnings]

    @property
    def exit_status(self) -> int:
        return 1 if self.errors and not self.status else self.status


def emit(report: Report, as_json: bool = False, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print ``report``: warnings and errors to ``err`` (stderr), then its data as one JSON document
    (``as_json``) or its lines to ``out`` (stdout). Returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    if report.quiet:
        return report.exit_status
    for line in report.warnings:
        print(f"WARNING: {line}", file=err)
    for line in report.errors:
        print(f"error: {line}", file=err)
    if as_json:
        print(json.dumps(report.data, indent=2), file=out)
    elif report.lines:
        print("\n".join(report.lines), file=out)
    return report.exit_status
