"""Building and uploading a Hub mirror of the official checkpoints (:mod:`uniformer.downloads.mirror` has the
layout and the lookup): each checkpoint verified strictly, converted to safetensors with its tensors
and names unchanged, a model card beside it, all uploaded in one commit with ``huggingface_hub``."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OFFICIAL_LICENSE", "model_card", "write_mirror_entry", "mirror_operations", "upload_mirror"]

#: The official weights' license (Sense-X/UniFormer's LICENSE file).
OFFICIAL_LICENSE = "mit"


def _sha256(path: Path) -> str:
    """Hex sha256 of the file ``path`` (huggingface_hub's chunked hashing, as it hashes uploads)."""
    from huggingface_hub.utils.sha import sha_fileobj

    with open(path, "rb") as f:
        return sha_fileobj(f).hex()


def model_card(name: str, source: str, sha256: str, size: int, repo_id: str) -> str:
    """The README.md of ``name``'s mirror folder: YAML front matter (license, library, tags), where
    the original file came from (``source``), its ``sha256`` and ``size`` (bytes), the paper's
    number(s) and how to load it."""
    from .registry import get_entry, paper_results

    entry = get_entry(name)
    papers = paper_results(name)
    numbers = "\n".join(f"| {p['metric']} | {p['protocol'] or 'official test'} | {p['value']} | {p['source']} |"
                        for p in papers) or "| - | - | - | the paper reports no number for this checkpoint |"
    return f"""---
license: {OFFICIAL_LICENSE}
library_name: uniformer
tags: [uniformer, {entry.task}]
---
# {name}

{entry.description}

The official UniFormer checkpoint (Li et al., *UniFormer: Unifying Convolution and Self-attention for Visual
Recognition*, TPAMI 2023, arXiv 2201.09450), converted to safetensors without any change to its tensors or
their names.

- source: {source}
- original file: sha256 `{sha256}`, {size} bytes
- license: {OFFICIAL_LICENSE.upper()} (as the official repository Sense-X/UniFormer)

| metric | protocol | paper | source |
|---|---|---|---|
{numbers}

```python
import os
os.environ["UNIFORMER_HUB_MIRROR"] = "{repo_id}"
from uniformer import create_model
model = create_model("{name}", pretrained=True)
```
"""


def write_mirror_entry(name: str, original: str | os.PathLike, out_dir: str | os.PathLike, source: str,
                       repo_id: str) -> dict:
    """Verify ``original`` strictly as ``name``'s checkpoint (``verify_checkpoint``: safe loader, every
    key and shape), then write ``out_dir/<name>/model.safetensors`` (its state dict, unchanged) and
    ``README.md`` (:func:`model_card`) -> {'name', 'files', 'sha256', 'size', 'source'}. Raises the
    CheckpointErrors of ``verify_checkpoint``."""
    from safetensors.torch import save_file

    from .downloads import verify_checkpoint
    from .hub import read_state_dict

    original = Path(original)
    verify_checkpoint(name, original)
    state_dict = read_state_dict(original)
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.safetensors"
    sha, size = _sha256(original), original.stat().st_size
    save_file({k: v.detach().clone().contiguous() for k, v in state_dict.items()}, str(weights),
              metadata={"format": "pt", "uniformer_model": name, "original_sha256": sha})
    (folder / "README.md").write_text(model_card(name, source, sha, size, repo_id))
    return {"name": name, "files": [str(weights), str(folder / "README.md")], "sha256": sha, "size": size,
            "source": source}


def mirror_operations(out_dir: str | os.PathLike, names: list[str]):
    """The ``huggingface_hub.CommitOperationAdd`` list uploading ``names``' folders of ``out_dir``
    (``<name>/model.safetensors``, ``<name>/README.md``)."""
    from huggingface_hub import CommitOperationAdd

    out_dir = Path(out_dir)
    return [CommitOperationAdd(path_in_repo=f"{name}/{f}", path_or_fileobj=str(out_dir / name / f))
            for name in names for f in ("model.safetensors", "README.md")]


def upload_mirror(repo_id: str, operations, api=None, private: bool = False) -> str:
    """Create ``repo_id`` (a model repo; kept if it exists) and commit ``operations`` to it in one
    commit with ``huggingface_hub.HfApi`` (``api``: an ``HfApi`` to use, e.g. with another endpoint)
    -> the commit URL. Needs a network and a write token; raises huggingface_hub's errors."""
    from huggingface_hub import HfApi

    api = api or HfApi()
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    info = api.create_commit(repo_id, operations, commit_message=f"Mirror {len(operations) // 2} official UniFormer "
                                                                 f"checkpoints as safetensors", repo_type="model")
    return str(info.commit_url)
