"""The package's import graph has no cycle, counting imports inside functions too, and its
layers point one way: models need nothing from shapes, the library nothing from the UI."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnviz"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every cnnviz module ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cnnviz")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnnviz"):
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _exists(sub) else node.module)
    return found


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_graph_is_not_empty():
    assert "cnnviz.models.registry" in GRAPH and "cnnviz.specs" in GRAPH["cnnviz.models.registry"]


def test_module_import_graph_has_no_cycle():
    graphlib.TopologicalSorter(GRAPH).prepare()  # raises CycleError naming the cycle


def test_subpackage_graph_has_no_cycle():
    layers: dict[str, set[str]] = {}
    for module, imported in GRAPH.items():
        layers.setdefault(_layer(module), set()).update(
            _layer(i) for i in imported if _layer(i) != _layer(module))
    graphlib.TopologicalSorter(layers).prepare()


@pytest.mark.parametrize("lower, upper", [
    ("cnnviz.models", "cnnviz.shapes"), ("cnnviz.specs", "cnnviz.models"),
    ("cnnviz.models", "cnnviz.training"), ("cnnviz.graph", "cnnviz.shapes"),
])
def test_lower_layers_do_not_import_upper_ones(lower, upper):
    offenders = {m: sorted(i for i in imported if _layer(i) == upper)
                 for m, imported in GRAPH.items() if _layer(m) == lower}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_only_the_ui_and_pages_import_streamlit():
    for path in PACKAGE.rglob("*.py"):
        if "ui" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(str(n).startswith("streamlit") for n in names), path
