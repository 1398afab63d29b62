"""Every teaching notebook in notebooks/ runs top to bottom, with small inputs, and is committed clean.

Each notebook is executed with nbclient in a fresh ``python3`` kernel whose working directory is
``notebooks/`` (as Jupyter starts it), offline (``HF_HUB_OFFLINE=1``). Small inputs are injected
papermill-style: a cell tagged ``injected-parameters`` that overrides the names of
``SMALL_PARAMETERS`` the notebook's ``parameters`` cell defines is inserted right after that cell.
The notebooks' own ``assert`` statements and ``assert_close`` checks are what is tested; a
notebook's inline figures are rendered too (ipykernel's inline backend).
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

# Names a notebook may declare in its "parameters" cell, and their values for CI. INTERACTIVE:
# no ipywidgets, since nbclient can block until its timeout on cells that open widgets
# (jupyter/nbclient#312).
SMALL_PARAMETERS = {"IMAGE_SIZE": 64, "INTERACTIVE": False, "TRAIN_STEPS": 3}
KERNEL_ENV = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, kernel_name, monkeypatch):
    from nbclient import NotebookClient

    for key, value in KERNEL_ENV.items():
        monkeypatch.setenv(key, value)  # the kernel process inherits the environment
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, SMALL_PARAMETERS)
    # Raises CellExecutionError (with the cell's traceback) at the first failing cell or assertion.
    NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT_S, shutdown_kernel="immediate",
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
