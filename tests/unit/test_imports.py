"""The stage order of the package: an import points to the same or an earlier stage.

io / config / errors / layout / text (and the small glue modules beside them) -> simulate ->
models -> families -> train -> analysis -> aggregate -> explore -> cli.  Imports inside
functions count too: a lazy import that hides a backward edge is still one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "connectome_gnn"
STAGES = (
    ("__init__", "errors", "io", "config", "layout", "text", "progress", "device", "workflow"),
    ("simulate",),
    ("models",),
    ("families",),
    ("train",),
    ("analysis",),
    ("aggregate",),
    ("explore",),
    ("cli", "stages"),
)
#: backward edges tolerated for now (none left: issue 15 removed the last, simulate -> families)
KNOWN_BACKWARD: set[tuple[str, str]] = set()


def _stage(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(STAGES):
        if top in names:
            return i
    raise AssertionError(f"{module}: not in the stage order")


def _ours(name: str | None) -> bool:
    return (name or "").startswith("connectome_gnn.")


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) of every connectome_gnn import in ``path``."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    module = ".".join(rel.parts)
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level or _ours(node.module)):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module.removeprefix("connectome_gnn.")
            for alias in node.names:  # "from pkg import module" imports pkg.module
                sub = f"{target}.{alias.name}".strip(".")
                # "from . import name" at the top: a name of the package's __init__
                out.append((module, sub if _is_module(sub) else target or "__init__", node.lineno))
        elif isinstance(node, ast.Import):
            out += [
                (module, a.name.removeprefix("connectome_gnn."), node.lineno)
                for a in node.names
                if a.name.startswith("connectome_gnn.")
            ]
    return out


EDGES = [edge for path in sorted(PACKAGE.rglob("*.py")) for edge in _imports(path)]


def test_edges_were_found():
    edges = {(a, b) for a, b, _ in EDGES}
    assert ("aggregate.report", "aggregate.tables") in edges  # relative
    assert ("explore.experiment", "aggregate.scores") in edges  # from a package import a module
    assert ("explore.driver", "layout") in edges


@pytest.mark.parametrize("stage", [names[0] for names in STAGES[1:]] + ["layout", "text"])
def test_no_import_points_to_a_later_stage(stage):
    bad = [
        f"{a} -> {b} (line {line})"
        for a, b, line in EDGES
        if _stage(a) == _stage(stage)
        and _stage(b) > _stage(a)
        and (a.split(".")[0], b.split(".")[0]) not in KNOWN_BACKWARD
    ]
    assert not bad


def test_aggregate_and_explore_have_no_cycles():
    graph: dict[str, set[str]] = {}
    for a, b, _ in EDGES:
        if a.split(".")[0] in ("aggregate", "explore"):
            graph.setdefault(a.removesuffix(".__init__"), set()).add(b)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert not [m for m in graph if m in reach(m)]
