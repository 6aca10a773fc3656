"""The package's layout: wings by concern, imports that run one way only, and no cycles."""

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "src" / "alexnet"
# Lower layers never import higher ones; modules of one layer may import each other (without cycles).
# A wing is a sub-package (data, training, studies, bench) or a module of the package's top level.
LAYERS = (
    # the base: what every part reads (records: the typed files commands write and read; tags: TensorBoard's names)
    ("errors", "seeds", "files", "config", "native_logs", "records", "tags"),
    ("data",),  # images in
    # the networks, optimiser, metrics, runs
    ("random_streams", "model", "pretrained", "applications", "architectures", "optim", "metrics", "rundir",
     "export"),
    ("training",),
    ("studies",),
    ("bench",),
    ("__main__", "__init__"),  # the command line, and the package's face: alexnet.AlexNet and the registrations
)
RANK = {wing: rank for rank, wing_names in enumerate(LAYERS) for wing in wing_names}


def module_name(path: Path) -> str:
    """alexnet.data.sources for src/alexnet/data/sources.py; alexnet.data for its __init__.py."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the package's modules it imports}, lazy imports inside functions included."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name and t != "alexnet"}
    return graph


def wing(module: str) -> str:
    """The wing of alexnet.X or alexnet.X.Y: X; of the package itself (its __init__.py): __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a lower layer imports a higher one."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if RANK[wing(b)] > RANK[wing(a)])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles among modules, each once, as [a, b, ..., a]."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_belongs_to_a_declared_wing():
    assert {wing(m) for m in import_graph()} <= set(RANK)
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {
        "data", "training", "studies", "bench"}


def test_imports_run_one_way_and_form_no_cycle():
    graph = import_graph()
    assert upward_imports(graph) == []
    assert cycles(graph) == []


def test_the_checks_catch_an_upward_import_and_a_cycle():
    graph = {"alexnet.data.sources": {"alexnet.training.driver"}, "alexnet.training.driver": {"alexnet.model"},
             "alexnet.model": {"alexnet.export"}, "alexnet.export": {"alexnet.model"}}
    assert upward_imports(graph) == [("alexnet.data.sources", "alexnet.training.driver")]
    assert cycles(graph) == [["alexnet.model", "alexnet.export", "alexnet.model"]]
