"""Every teaching notebook in notebooks/ runs top to bottom headless, at its default parameters and with
small inputs, and is committed clean.

Each notebook is executed with nbclient (the engine of ``jupyter nbconvert --execute``) in a fresh
``python3`` kernel whose working directory is ``notebooks/`` (as Jupyter starts it), offline
(``HF_HUB_OFFLINE=1``, an empty Hugging Face cache: no ImageNet checkpoint), with a per-cell timeout.

* ``test_notebook_runs_at_defaults``: the notebook exactly as committed, as a student's
  ``jupyter nbconvert --to notebook --execute`` runs it. With ``INTERACTIVE = None`` no widget may be
  opened without a live frontend; in particular no ``Output`` widget, whose nbclient stand-in is what
  stalled such runs (see ``notebooks/nbwidgets.py``). 02 and 03 must show a trained model offline: the
  shipped digits model, with attention rows that are not uniform and token scores that are not all
  equal (checked on the notebook's own variables by cells appended for the test).
* ``test_notebook_runs_small``: small inputs injected papermill-style (a cell tagged
  ``injected-parameters`` after the ``parameters`` cell overrides the names of ``SMALL_PARAMETERS``
  it declares), for 01 and 04, whose checks by hand are worth a second input size (their defaults: 224 px).

The notebooks' own ``assert`` statements and ``assert_close`` checks are what is tested; their inline
figures are rendered too (ipykernel's inline backend).
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT_S = 300

# Names a notebook may declare in its "parameters" cell, and their values for the small runs.
SMALL_PARAMETERS = {"IMAGE_SIZE": 64, "TRAIN_STEPS": 3}
# Notebooks whose default run covers their small run, so it runs alone (CI time): offline, 02 and 03 run
# the 64-px digits model whatever IMAGE_SIZE says; 06 and 07 run the same cells, only more training steps;
# 05 and 08 default to half the official input size (256 / 400 px), the same cells on a smaller photo.
# 01 and 04 (224 px at their defaults) also run at 64 px: their by-hand checks at a second input size.
DEFAULT_RUN_COVERS = {"02_local_vs_global.ipynb", "03_token_shrinking.ipynb", "05_dense_prediction.ipynb",
                      "06_finetune_image.ipynb", "07_finetune_video.ipynb", "08_detection.ipynb"}
KERNEL_ENV = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}

# Appended to a notebook for the default run, executed in its kernel after its last cell: offline, 02
# and 03 must have shown a trained model (the shipped digits model), not uniform attention / tied scores.
TRAINED_CHECKS = {
    "02_local_vs_global.ipynb": """
assert model.model_name == "uniformer_xxs_digits" and model.weights_info.source == "project", model.weights_info
rows = q_global.per_head.reshape(len(q_global.per_head), -1)           # (heads, N): the rows shown
# each row spread evenly over the grid (a light model's rows sum to 1 minus the score token's share)
uniform = rows.sum(1) / rows.shape[1]
assert (rows.max(1) > 1.5 * uniform).all() and (rows.min(1) < 0.75 * uniform).all(), rows
for info in analysis.layers_of(E.GLOBAL):                               # every captured global row
    a = analysis.attention[info.name]                                   # (heads, N, N)
    assert (a.max(-1) - a.min(-1)).max() > 0.2 / a.shape[-1], info.label
""",
    "03_token_shrinking.ipynb": """
from uniformer.explain.shrinking import score_map
assert model.model_name == "uniformer_xxs_digits" and model.weights_info.source == "project", model.weights_info
assert TRAINED and not TIED
assert float(A.max() - A.min()) > 0.5 * float(A.mean()), A               # Eq. 9 scores of the first block
for entry in trace[1:]:                                                 # the score maps shown per layer
    scores = score_map(entry)
    assert scores is not None and float(scores.max() - scores.min()) > 0.1 * float(abs(scores).mean()), entry
assert sorted(kept.tolist()) != list(range(K)), "the kept tokens are not just the first K (ties)"
""",
}


# Offline (no checkpoint), 01, 04, 05 and 08 draw untrained weights: at least this many figures, each with
# UNTRAINED_MARK in its title (matplotlib suptitle / axes titles, plotly layout title). The notebooks that
# show trained weights offline (the shipped digits models; 06's "before training" is named so) carry none.
UNTRAINED_FIGURES = {"01_uniformer_block.ipynb": 2, "04_video.ipynb": 2, "05_dense_prediction.ipynb": 1,
                     "08_detection.ipynb": 6}

# Prepended to every default run: records the titles of each matplotlib figure shown with plt.show().
RECORD_TITLES = """
import matplotlib.pyplot as _plt
_FIGURE_TITLES = []


def _recording(show=_plt.show):
    def recorded(*args, **kwargs):
        for num in _plt.get_fignums():
            fig = _plt.figure(num)
            titles = [fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes]
            _FIGURE_TITLES.append(" | ".join(t for t in titles if t))
        return show(*args, **kwargs)
    return recorded


_plt.show = _recording()
"""
DUMP_TITLES = "import json as _json\nprint('FIGURE_TITLES=' + _json.dumps(_FIGURE_TITLES))"

# Appended to 07's default run: the per-motion accuracies it prints are those of its confusion matrices,
# and its statement of what the short training learned names exactly the motions at >= 2x chance.
MOTION_CHECKS = """
import numpy as _np
_c = _np.asarray(video.metrics["confusion"], float)
_acc = _c.diagonal() / _c.sum(1)
assert sorted(video_yes) == sorted(m for m, a in zip(MOTIONS, _acc) if a >= 2 / 6), (video_yes, _acc)
_s = _np.asarray(shipped_metrics["confusion"], float)
_rot = {m: _s[i, i] / _s[i].sum() for i, m in enumerate(MOTIONS) if m in ("clockwise", "anticlockwise")}
assert min(_rot.values()) > 0.8, _rot                                   # the rotations are learned (shipped model)
"""


def figure_titles(nb) -> list[str]:
    """Titles of every figure a run showed: matplotlib (recorded by RECORD_TITLES, dumped by DUMP_TITLES)
    and plotly (the layout title of each plotly output)."""
    import json

    titles = []
    for cell in code_cells(nb):
        for out in cell.outputs:
            if out.output_type == "stream" and out.text.startswith("FIGURE_TITLES="):
                titles += json.loads(out.text.split("=", 1)[1])
            plotly = out.get("data", {}).get("application/vnd.plotly.v1+json")
            if plotly:
                title = plotly["layout"].get("title", {})
                titles.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return titles


def printed_text(nb) -> str:
    """Everything the run printed (stream outputs), in order."""
    return "".join(o.get("text", "") for c in code_cells(nb) for o in c.outputs if o.output_type == "stream")


def code_cells(nb) -> list:
    """The notebook's code cells."""
    return [c for c in nb.cells if c.cell_type == "code"]


def assigned_names(source: str) -> set[str]:
    """Names bound by plain top-level assignments (``X = ...``, ``X: int = ...``) in ``source``."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def inject_parameters(nb, parameters: dict) -> dict:
    """Insert, after the cell tagged "parameters", a cell tagged "injected-parameters" assigning those
    of ``parameters`` that the parameters cell declares. Returns what was injected ({} without a
    parameters cell)."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            injected = {k: v for k, v in parameters.items() if k in assigned_names(cell.source)}
            new = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in injected.items()))
            new.metadata["tags"] = ["injected-parameters"]
            nb.cells.insert(index + 1, new)
            return injected
    return {}


@pytest.fixture(scope="session")
def kernel_name() -> str:
    """The ``python3`` kernel spec, registered for the user (ipykernel's own) when Jupyter lacks it."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        install(user=True, kernel_name=KERNEL)
    return KERNEL


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


def test_inject_parameters():
    params = nbformat.v4.new_code_cell("IMAGE_SIZE = 224  # pixels\nMODE: str = 'full'\nC, D = 3, 4\nx.y = 5")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell("")])
    assert inject_parameters(nb, {"IMAGE_SIZE": 64, "MODE": "small", "C": 1, "INTERACTIVE": False}) == {
        "IMAGE_SIZE": 64, "MODE": "small"}
    assert nb.cells[2].source == "IMAGE_SIZE = 64\nMODE = 'small'"
    assert nb.cells[2].metadata["tags"] == ["injected-parameters"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(code_cells(nb)) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; clear them before committing"


def execute(nb, kernel_name: str, monkeypatch, hf_home: Path):
    """Run ``nb`` in a fresh kernel (cwd notebooks/, offline, empty Hugging Face cache) -> the client.
    Raises CellExecutionError at the first failing cell or assertion, CellTimeoutError for a cell
    that runs longer than CELL_TIMEOUT_S."""
    from nbclient import NotebookClient

    for key, value in {**KERNEL_ENV, "HF_HOME": str(hf_home)}.items():
        monkeypatch.setenv(key, value)  # the kernel process inherits the environment
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT_S, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()
    return client


def widget_models(client) -> list[str]:
    """Model names of the widgets the kernel opened during the run (nbclient records their state)."""
    return [state.get("_model_name") for state in client.widget_state.values()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_at_defaults(path, kernel_name, monkeypatch, tmp_path):
    from uniformer.explain import UNTRAINED_MARK

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(RECORD_TITLES))
    checks = TRAINED_CHECKS.get(path.name)
    if checks:
        nb.cells.append(nbformat.v4.new_code_cell(checks))
    if path.name == "07_finetune_video.ipynb":
        nb.cells.append(nbformat.v4.new_code_cell(MOTION_CHECKS))
    nb.cells.append(nbformat.v4.new_code_cell(DUMP_TITLES))
    client = execute(nb, kernel_name, monkeypatch, tmp_path / "hf_home")
    # Every figure drawn from untrained weights says so in its title; trained ones do not.
    titles = figure_titles(nb)
    marked = [t for t in titles if UNTRAINED_MARK in t]
    assert len(marked) >= UNTRAINED_FIGURES.get(path.name, 0), (marked, titles)
    if path.name not in UNTRAINED_FIGURES:
        assert not marked, marked
    # One short missing-checkpoint line per model (uniformer.explain.missing_checkpoint_note), never the long
    # error text with its Drive link and HF_HUB_OFFLINE advice, and no line printed twice.
    printed = printed_text(nb)
    notes = [line for line in printed.splitlines() if line.startswith("NOTE: no official checkpoint")]
    assert all(len(n) < 260 for n in notes) and len(notes) == len(set(notes)), notes
    assert "HF_HUB_OFFLINE" not in printed and "drive.google.com" not in printed, printed[:2000]
    if path.name in UNTRAINED_FIGURES:
        assert notes, "an untrained run must say which checkpoint is missing and how to get it"
    if path.name == "06_finetune_image.ipynb":   # the training-set size the text states is the one fit used
        import re

        used = int(re.search(r"training \S+: (\d+) samples", printed).group(1))
        assert f"trained on {used} samples" in printed, printed[-3000:]
        text = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert f"{used} training samples" in text, used
    if path.name == "07_finetune_video.ipynb":   # top-5 of six classes says nothing: not printed
        assert "top-5" not in printed, printed[-2000:]
    # Headless: no slider was opened, and no Output widget (whose nbclient stand-in stalls the run).
    assert not {"OutputModel", "IntSliderModel", "FloatSliderModel"} & set(widget_models(client)), widget_models(client)
    params = [c for c in code_cells(nb) if "parameters" in c.metadata.get("tags", [])]
    if params and "INTERACTIVE" in assigned_names(params[0].source):   # INTERACTIVE = None found no frontend
        printed = "".join(o.get("text", "") for c in code_cells(nb) for o in c.outputs if o.output_type == "stream")
        assert "widgets: off (no live Jupyter frontend" in printed


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name not in DEFAULT_RUN_COVERS], ids=lambda p: p.name)
def test_notebook_runs_small(path, kernel_name, monkeypatch, tmp_path):
    nb = nbformat.read(path, as_version=4)
    assert inject_parameters(nb, SMALL_PARAMETERS), f"{path.name}: no small parameters to inject; list it in DEFAULT_RUN_COVERS"
    execute(nb, kernel_name, monkeypatch, tmp_path / "hf_home")


def test_trained_checks_name_notebooks():
    assert set(TRAINED_CHECKS) <= {p.name for p in NOTEBOOKS} and DEFAULT_RUN_COVERS <= {p.name for p in NOTEBOOKS}


def test_widgets_only_for_a_live_frontend(monkeypatch, capsys):
    """notebooks/nbwidgets.py: INTERACTIVE = None gives sliders only when the running cell came from a
    frontend (its execute request carries a cellId, as JupyterLab / VS Code send); True / False force."""
    import importlib.util
    import types

    import IPython

    spec = importlib.util.spec_from_file_location("nbwidgets", NOTEBOOK_DIR / "nbwidgets.py")
    nbwidgets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nbwidgets)

    def shell_with_parent(parent):
        kernel = types.SimpleNamespace(get_parent=lambda channel="shell": parent)
        return types.SimpleNamespace(kernel=kernel)

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert not nbwidgets.live_frontend() and nbwidgets.widgets_or_none(None) is None       # plain Python
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell_with_parent({"metadata": {}}))  # nbclient / nbconvert
    assert not nbwidgets.live_frontend() and nbwidgets.widgets_or_none(None) is None
    assert "no live Jupyter frontend" in capsys.readouterr().out
    assert nbwidgets.widgets_or_none(True) is not None                                       # forced
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell_with_parent({"metadata": {"cellId": "c1"}}))
    assert nbwidgets.live_frontend() and nbwidgets.widgets_or_none(None).__name__ == "ipywidgets"
    assert nbwidgets.widgets_or_none(False) is None
