"""``mirror``: host official checkpoints on a Hugging Face Hub repo as safetensors with model cards."""
from __future__ import annotations

from .output import Report


def add_parser(sub) -> None:
    """Add this command's sub-parser (options and help) to ``sub``."""
    mr = sub.add_parser("mirror", help="re-host official checkpoints on a Hub repo (safetensors + model card)",
                        description="For each name (default: every checkpoint with an official Hub or Google Drive "
                                    "file): fetch it (the usual lookup: caches, Hub, Drive), verify it strictly "
                                    "against the model, write <name>/model.safetensors and <name>/README.md under "
                                    "--out and upload them in one commit (needs a network and a write token). Then "
                                    "UNIFORMER_HUB_MIRROR=REPO_ID makes every lookup try that repo first.")
    mr.add_argument("repo_id", metavar="REPO_ID", help="Hub model repo, e.g. your-name/uniformer-checkpoints")
    mr.add_argument("names", nargs="*", metavar="NAME", help="registered names or glob patterns (default: all)")
    mr.add_argument("--dry-run", action="store_true", help="only say what would be fetched and uploaded")
    mr.add_argument("--out", default=None, metavar="DIR", help="where the converted files go (default: a temporary "
                                                               "folder, removed after the upload)")
    mr.add_argument("--no-upload", action="store_true", help="convert into --out but do not upload")
    mr.add_argument("--private", action="store_true", help="create the repo as private")
    mr.add_argument("--json", action="store_true", help="print a JSON document instead of text")


def run(args) -> Report:
    """Run the command with the parsed ``args`` -> its Report (printed by ``emit``). Raises
    ValueError / KeyError (bad arguments) and CheckpointError (weights), which ``main`` prints."""
    import tempfile
    from pathlib import Path

    from .. import list_models
    from ..downloads import fetch_weights, weights_status
    from ..hub import CheckpointError
    from ..downloads.mirror import mirror_filename
    from ..mirror_upload import mirror_operations, upload_mirror, write_mirror_entry
    from .download import resolve_names

    if args.no_upload and not args.out:
        raise ValueError("--no-upload needs --out DIR (where the converted files stay)")
    names = resolve_names(args.names) if args.names else list_models()
    names = [n for n in names if weights_status(n)["source"] in ("hub", "drive")]
    if not names:
        raise ValueError("none of these names has an official Hub or Google Drive file to mirror")
    report = Report(data={"repo_id": args.repo_id, "entries": [], "uploaded": None})
    with tempfile.TemporaryDirectory(prefix="uniformer-mirror-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        done = []
        for name in names:
            status = weights_status(name)
            source = status["describe"]
            if args.dry_run:
                report.data["entries"].append({"name": name, "source": source, "cached": status["cached"],
                                               "target": f"{args.repo_id}/{mirror_filename(name)}"})
                report.lines.append(f"{name}: {source} -> {args.repo_id}/{mirror_filename(name)}"
                                    f"{' (cached here)' if status['cached'] else ''}")
                continue
            try:
                path, info = fetch_weights(name)
                entry = write_mirror_entry(name, path, out, info.describe(), args.repo_id)
            except CheckpointError as e:
                report.errors.append(f"{name}: {type(e).__name__}: {e}")
                continue
            done.append(name)
            report.data["entries"].append(entry)
            report.lines.append(f"{name}: verified, sha256 {entry['sha256'][:16]}..., wrote {out / name}")
        if done and not args.dry_run and not args.no_upload:
            url = upload_mirror(args.repo_id, mirror_operations(out, done), private=args.private)
            report.data["uploaded"] = url
            report.lines.append(f"uploaded {len(done)} checkpoint(s) to {args.repo_id}: {url}")
        elif args.dry_run:
            report.lines.append(f"dry run: {len(names)} checkpoint(s) would be fetched, verified, converted and "
                                f"uploaded to {args.repo_id}")
    return report
