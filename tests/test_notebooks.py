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
    nb = nbformat.read(path, as_version=4)
    checks = TRAINED_CHECKS.get(path.name)
    if checks:
        nb.cells.append(nbformat.v4.new_code_cell(checks))
    client = execute(nb, kernel_name, monkeypatch, tmp_path / "hf_home")
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
