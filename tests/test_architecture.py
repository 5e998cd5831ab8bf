"""The package's shape, read from its imports: no module reaches back to one that imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "causalmine"


def _module_name(path: Path) -> str:
    parts = ("causalmine", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    """Module → the causalmine modules it imports, at the top or inside a function."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            # the most specific module named (a package's __init__ only when nothing deeper is)
            found = [t for t in targets if t in modules and t != name]
            deepest = [t for t in found if not any(o.startswith(t + ".") for o in found)]
            graph.add_edges_from((name, t) for t in deepest)
    return graph


def test_no_import_circles():
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == [], f"import circles: {cycles}"


def test_the_graph_sees_real_imports():
    graph = import_graph()
    assert graph.has_edge("causalmine.lit", "causalmine.model.network")
    assert graph.has_edge("causalmine.training.nonfinite", "causalmine.checkpoints")
    assert not graph.has_edge("causalmine.lit", "causalmine.training")


def test_the_schema_and_the_settings_are_the_bottom_and_the_model_does_not_read_data():
    graph = import_graph()
    assert list(graph.successors("causalmine.schema")) == []
    assert list(graph.successors("causalmine.settings")) == []
    for module in graph:
        if module.startswith("causalmine.model"):
            assert not [t for t in graph.successors(module) if t.startswith("causalmine.data")], (
                module
            )


# The data path, top to bottom: a module may import its own layer and the layers before it.
LAYERS = (
    ("causalmine.schema", "causalmine.settings"),
    ("causalmine.data",),
    ("causalmine.model",),
    ("causalmine.scoring",),
    ("causalmine.optim", "causalmine.precision", "causalmine.lit"),
    ("causalmine.training", "causalmine.checkpoints"),
    (
        "causalmine.export",
        "causalmine.inference",
        "causalmine.prediction_files",
    ),
    ("causalmine",),  # recipes, config, loggers, entry points' helpers, reports
)


def layer_of(module: str) -> int:
    """The layer of the longest prefix that names ``module``."""
    matches = [
        (len(prefix), index)
        for index, group in enumerate(LAYERS)
        for prefix in group
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1]


def test_imports_run_down_the_data_path():
    graph = import_graph()
    upward = [(a, b) for a, b in graph.edges if layer_of(b) > layer_of(a)]
    assert upward == [], f"modules importing a later layer: {upward}"
    assert layer_of("causalmine.recipes") == 7 and layer_of("causalmine.scoring.decode") == 3
