"""Where the official weights of a registered name are: one :class:`WeightsSource` per name, read from
the registry (``PretrainedCfg.hub / drive_id / holders / package_file``), and the manual route
(``$UNIFORMER_CHECKPOINT_DIR``). No network, no file is read here."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SOURCES", "CHECKPOINT_DIR_ENV", "WeightsSource", "weights_source", "downloads_table", "drive_view_url",
           "checkpoint_dir_file", "manual_route"]

#: The sources a registered name can resolve to (``PretrainedCfg.source``).
SOURCES = ("hub", "drive", "inside", "unreleased", "project")
#: Environment variable naming a folder of checkpoints put there by hand (``<name>.pth``).
CHECKPOINT_DIR_ENV = "UNIFORMER_CHECKPOINT_DIR"


@dataclass(frozen=True)
class WeightsSource:
    """Where the official weights of one registered name come from.

    source: one of :data:`SOURCES`. hub_repo_id / hub_filename: the Hub file (``hub`` names);
    mirrors: byte-identical re-hosts of it (``'repo_id:filename'``). drive_file_id: the Google
    Drive file id of the official model-zoo link (``drive`` names, and most ``hub`` names as a
    second source). holders: for ``inside`` names, the dense checkpoints holding the backbone,
    Hub-hosted first. package_file: for ``project`` names, the shipped file. hint: one sentence on
    where the weights are (the registry's ``download_hint``).
    """

    name: str
    source: str
    hub_repo_id: str | None = None
    hub_filename: str | None = None
    drive_file_id: str | None = None
    holders: tuple[str, ...] = ()
    package_file: str | None = None
    hint: str | None = None
    mirrors: tuple[str, ...] = ()

    @property
    def drive_url(self) -> str | None:
        """The human-facing Drive page of the file (``https://drive.google.com/file/d/<id>/view``)."""
        return drive_view_url(self.drive_file_id) if self.drive_file_id else None

    @property
    def downloadable(self) -> bool:
        """True when released weights exist somewhere (everything but ``unreleased``)."""
        return self.source != "unreleased"

    def describe(self) -> str:
        """One line for people: where the weights come from."""
        if self.source == "hub":
            extra = f" (also on Google Drive: {self.drive_url})" if self.drive_file_id else ""
            return f"Hugging Face Hub {self.hub_repo_id}/{self.hub_filename}{extra}"
        if self.source == "drive":
            return f"Google Drive {self.drive_url}"
        if self.source == "inside":
            return f"inside the dense checkpoints {', '.join(self.holders)} (their 'backbone.' entries)"
        if self.source == "project":
            return f"shipped in the package ({self.package_file})"
        return f"not released: {self.hint or 'the official README links a log only'}"


def drive_view_url(file_id: str) -> str:
    """The Google Drive page of ``file_id``, as the official READMEs link it."""
    return f"https://drive.google.com/file/d/{file_id}/view"


def weights_source(name: str) -> WeightsSource:
    """Where the official weights of the registered model ``name`` come from (no network), as its
    registry entry says. Raises KeyError for an unknown name."""
    from ..registry import get_entry

    p = get_entry(name).pretrained
    source = p.source
    # Hub-hosted holders first (they download without Drive's quotas), then the registry's order.
    holders = tuple(sorted(p.holders, key=lambda h: get_entry(h).pretrained.hub is None))
    return WeightsSource(name, source, p.hub_repo_id, p.hub_filename,
                         p.drive_id if source in ("hub", "drive") else None, holders=holders,
                         package_file=p.package_file if source == "project" else None, hint=p.download_hint,
                         mirrors=tuple(p.mirrors))


def downloads_table() -> list[dict[str, str]]:
    """One row per registered name, sorted by name, with the columns of the shipped table
    ``uniformer/data/official_downloads.tsv`` that the registry decides: ``name, task, source,
    drive_file_id``. ``source`` is ``hub``, ``hub+drive``, ``drive``, ``inside:<holders>``,
    ``unreleased`` or ``project``. (The table adds where each link is in the official READMEs; a
    test checks that its columns equal these rows.)"""
    from ..registry import get_entry, list_models

    rows = []
    for name in list_models():
        p = get_entry(name).pretrained
        source = p.source
        if source == "hub" and p.drive_id:
            source = "hub+drive"
        elif source == "inside":
            source = "inside:" + ",".join(p.holders)
        rows.append({"name": name, "task": get_entry(name).task, "source": source,
                     "drive_file_id": p.drive_id or ""})
    return rows


def checkpoint_dir_file(name: str, directory: str | os.PathLike | None = None) -> Path | None:
    """``<name>.pth`` or the Hub filename of ``name`` inside ``directory`` (default
    ``$UNIFORMER_CHECKPOINT_DIR``): the manual route for files downloaded by hand. None when there is
    no such file or no folder is configured."""
    from ..registry import get_entry

    directory = directory if directory is not None else os.environ.get(CHECKPOINT_DIR_ENV, "").strip()
    if not directory:
        return None
    hub_filename = get_entry(name).pretrained.hub_filename
    for filename in dict.fromkeys(f for f in (f"{name}.pth", hub_filename) if f):
        path = Path(directory).expanduser() / filename
        if path.is_file():
            return path
    return None


def manual_route(name: str, file_id: str | None = None) -> str:
    """The sentence telling people how to supply ``name``'s weights themselves."""
    where = f"from {drive_view_url(file_id)} " if file_id else ""
    return (f"Download it yourself {where}and pass checkpoint_path=PATH (CLI: --checkpoint PATH), or save it as "
            f"${CHECKPOINT_DIR_ENV}/{name}.pth.")
