"""Widgets in the teaching notebooks only where a live frontend can answer them.

Each notebook's parameters cell has ``INTERACTIVE = None``: sliders when the notebook runs in a live
frontend (JupyterLab, Jupyter Notebook 7), one static drawing of the default setting
otherwise (``jupyter nbconvert --execute``, papermill, nbclient, CI). ``True`` forces the sliders,
``False`` turns them off.

Why not always widgets: ``ipywidgets.interact`` draws into an ``Output`` widget. A headless executor
has no widget manager; nbclient (under nbconvert and papermill) stands in for the Output widget
(``nbclient.output_widget.OutputWidget``) and, for every output captured in it, sends a ``comm_msg``
state update to the kernel on the *shell* channel from its IOPub task, while its main task waits on
that same shell socket for the cell's ``execute_reply``. The reply is then sometimes not noticed
until the wait times out: the cell "stalls" for the whole cell timeout (for ever with nbconvert's
default of no timeout), then carries on. Measured on this project's machine with nbclient 0.11,
ipykernel 7.4, ipywidgets 8.1: a one-cell ``interact`` notebook stalled in 6 of 20 runs, and in 0 of
20 with nbclient's state update switched off (``OutputWidget.sync_state``); the upstream report is
jupyter/nbclient#312.

How a live frontend is recognized: JupyterLab and Notebook 7 (``CodeCell.execute``, checked in
JupyterLab 4.6.6) send the id of the cell being run in the execute request's metadata (``cellId``);
nbclient, and hence nbconvert and papermill, send none. The kernel keeps that request as its shell
parent. A frontend that renders widgets but sends no ``cellId`` gets the static drawing: set
``INTERACTIVE = True`` there.
"""
from __future__ import annotations

__all__ = ["live_frontend", "widgets_or_none"]


def live_frontend() -> bool:
    """True when the code running now was sent by an interactive Jupyter frontend (the execute
    request carries a ``cellId``), False in a headless run or outside a Jupyter kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent("shell")       # ipykernel >= 6
    except (AttributeError, TypeError):
        parent = getattr(kernel, "_parent_header", None) or {}
    return bool((parent or {}).get("metadata", {}).get("cellId"))


def widgets_or_none(interactive: bool | None):
    """The ``ipywidgets`` module when sliders should be shown, else None; prints one line saying why.

    ``interactive``: None (auto: sliders only in a live frontend, see :func:`live_frontend`), True
    (always; in a headless run nbclient may stall, see the module docstring) or False (never).
    """
    if interactive is None:
        interactive = live_frontend()
        if not interactive:
            print("widgets: off (no live Jupyter frontend: a headless run draws the default setting; "
                  "INTERACTIVE = True forces sliders)")
            return None
    if not interactive:
        print("widgets: off (INTERACTIVE = False): the default setting is drawn")
        return None
    try:
        import ipywidgets
    except ImportError:
        print("widgets: off (ipywidgets is not installed: pip install ipywidgets); the default setting is drawn")
        return None
    return ipywidgets
