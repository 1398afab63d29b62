"""The import graph of ``uniformer/`` has no cycle and reads one way (the library never imports the
app; ``data`` and ``explain`` never reach ``train``), and importing the package changes no global
state of torch or Pillow (issues 14, 21)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "uniformer"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the ``uniformer`` modules it imports (module level and inside functions). Importing
    ``a.b.c`` from outside ``a.b`` also runs ``a.b``'s ``__init__``: that package is an edge too
    (except the root package, which every module's import runs first by construction)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if name in packages else name.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == "uniformer"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                if mod.split(".")[0] != "uniformer":
                    continue
                targets.add(mod)
                targets |= {f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in files}
        edges = set()
        for t in targets:
            parts = t.split(".")
            for i in range(2, len(parts) + 1):  # the target and the packages above it (not the root)
                prefix = ".".join(parts[:i])
                if prefix in files and prefix != name and not name.startswith(prefix + "."):
                    edges.add(prefix)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_import_graph_sees_function_level_imports():
    graph = import_graph()
    assert "uniformer.registry" in graph["uniformer.models.image"]
    assert "uniformer.data.labels" in graph["uniformer.registry"]  # imported inside PretrainedCfg.class_names


def test_uniformer_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 50
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def imported_top_levels(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path`` (module level and inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_library_never_imports_the_app_or_the_notebooks():
    offenders = {str(p.relative_to(ROOT)): sorted(imported_top_levels(p) & {"app", "notebooks", "tests"})
                 for p in PACKAGE.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert "app" in imported_top_levels(ROOT / "app.py")  # the check sees absolute imports


def test_data_and_explain_never_reach_train():
    """Inputs and explanations do not depend on training code, not even through another module."""
    graph = import_graph()
    starts = [m for m in graph if m.split(".")[:2] in (["uniformer", "data"], ["uniformer", "explain"])]
    assert len(starts) > 10 and "uniformer.data.moving_digits" in starts and "uniformer.explain.digits" in starts
    offenders = {m: sorted(t for t in reachable(graph, m) if t.startswith("uniformer.train")) for m in starts}
    assert {m: t for m, t in offenders.items() if t} == {}
    assert any(t.startswith("uniformer.data") for t in reachable(graph, "uniformer.train.data"))  # edges are seen


def test_the_registry_imports_nothing_from_models():
    assert not any(t.startswith("uniformer.models") for t in import_graph()["uniformer.registry"])


@pytest.mark.slow
def test_import_leaves_torch_op_registry_and_pillow_globals_as_they_were():
    code = """
import torch
from PIL import ImageFile

def schemas():
    out = []
    for op in ("torchvision::nms", "torchvision::qnms", "torchvision::roi_align"):
        try:
            torch._C._dispatch_find_schema_or_throw(op, "")
            out.append(op)
        except RuntimeError:
            pass
    return out

before = schemas(), ImageFile.LOAD_TRUNCATED_IMAGES
import uniformer
from uniformer.data import load_image
from uniformer.data.images import ImageDecodeError
from PIL import Image
import io, numpy as np
buf = io.BytesIO()
Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
assert load_image(buf.getvalue()).size == (64, 64)
try:
    load_image(buf.getvalue()[:-600])  # truncated: rejected for this image, the global untouched
    raise SystemExit("a truncated JPEG was accepted")
except ImageDecodeError:
    pass
uniformer.create_model("uniformer_xxs_digits")  # building models changes nothing either
after = schemas(), ImageFile.LOAD_TRUNCATED_IMAGES
import torchvision, timm  # still importable after uniformer (the shim was scoped)
print(before == after, before, after)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("True"), proc.stdout
