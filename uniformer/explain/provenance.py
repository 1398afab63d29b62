"""Which weights made a figure: the untrained mark for titles, and one short missing-checkpoint note.

A figure drawn from untrained random weights must say so in the figure itself, not in a printed line
cells above: :func:`weights_title` appends :data:`UNTRAINED_MARK` to a title when the weights are
untrained. :func:`load_or_fallback` is the one way the teaching notebooks load a model by name:
the official checkpoint (``create_model(name, pretrained=True)``: Hugging Face Hub or Google Drive,
or their caches, or ``$UNIFORMER_CHECKPOINT_DIR``), else a fallback (a model this project trained and
ships, or the same architecture untrained), with :func:`missing_checkpoint_note` saying so in one
short line.
"""
from __future__ import annotations

from torch import nn

from ..factory import create_model
from ..hub import CheckpointNotAvailableError

__all__ = ["UNTRAINED_MARK", "weights_title", "mark_figure", "missing_checkpoint_note", "load_or_fallback"]

#: What every title of a figure drawn from untrained random weights carries.
UNTRAINED_MARK = "UNTRAINED weights"


def weights_title(title: str, weights_info) -> str:
    """``title``, followed by ``[UNTRAINED weights: not meaningful]`` when ``weights_info``
    (a :class:`uniformer.hub.WeightsInfo`, e.g. ``model.weights_info``) is untrained."""
    return title if weights_info.trained else f"{title} [{UNTRAINED_MARK}: not meaningful]"


def mark_figure(fig, weights_info):
    """A plotly figure (``plotly.graph_objects.Figure``) with :func:`weights_title` applied to its
    title, in place; returns it (so ``mark_figure(fig, info).show()``)."""
    fig.update_layout(title_text=weights_title(fig.layout.title.text or "", weights_info))
    return fig


def missing_checkpoint_note(name: str, fallback: str | None = None) -> str:
    """One line (under 250 characters for registered names): the official checkpoint of ``name``
    could not be had, how to get it once, and what runs instead (``fallback``, a model name, or
    None: ``name`` with untrained weights)."""
    instead = f"{fallback} (trained by this project, shipped)" if fallback else "UNTRAINED random weights"
    return (f"NOTE: no official checkpoint for {name} here (offline, not cached). Get it once with "
            f"`python -m uniformer download {name}`. This run uses {instead}.")


def load_or_fallback(name: str, pretrained: bool = True, fallback: str | None = None,
                     **overrides) -> tuple[nn.Module, str | None]:
    """``create_model(name, pretrained=pretrained, **overrides)``; when the official checkpoint cannot
    be had (:class:`uniformer.CheckpointNotAvailableError`: offline and not cached), the model
    ``fallback`` with its shipped weights (``pretrained=True``), or ``name`` untrained for None.

    Returns (model in eval mode, note): note is :func:`missing_checkpoint_note` when the fallback
    ran, else None. Other checkpoint errors (corrupt, unsafe, mismatched files) are raised."""
    try:
        return create_model(name, pretrained=pretrained, **overrides), None
    except CheckpointNotAvailableError:
        model = create_model(fallback, pretrained=True) if fallback else create_model(name, **overrides)
        return model, missing_checkpoint_note(name, fallback)
