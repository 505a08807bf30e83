"""Model-family plug-ins.

A family bundles, for one kind of circuit, the simulator, the learned GNN, the quantities the
analysis reads off the learned model, and its config schema.  Stages look families up by name
here; adding a family (e.g. FlyVis) means writing its module and one line in ``_REGISTRY``.

The stages that never build a model (aggregate, explore) read only a family's declarations
(:data:`DECLARATIONS`: its metric names, score weights and exploration search space) with
:func:`family_declaration`, which takes them from the class body of the family module's source
when they are literals there, without importing the module (family modules import torch).
"""

from __future__ import annotations

import ast
import copy
from functools import cache
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .base import Family

# family name -> "module:attribute" (imported lazily so that light stages stay light)
_REGISTRY: dict[str, str] = {
    "signal": "connectome_gnn.families.signal:SignalFamily",
    "flyvis": "connectome_gnn.families.flyvis:FlyVisFamily",
}

#: The class attributes of :class:`~.base.Family` that :func:`family_declaration` reads.
DECLARATIONS = (
    "metric_names",
    "headline_metrics",
    "pareto_metrics",
    "score_weights",
    "search_space",
)


def available_families() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str, source: str) -> tuple[str, str]:
    if name not in _REGISTRY:
        raise ConfigError(
            f"{source}: unknown model family {name!r} (available: {', '.join(available_families())})"
        )
    module_name, attr = _REGISTRY[name].split(":")
    return module_name, attr


def get_family(name: str, source: str = "family") -> Family:
    module_name, attr = _entry(name, source)
    return getattr(import_module(module_name), attr)()


def family_declaration(name: str, key: str, source: str = "family") -> Any:
    """The class attribute ``key`` (one of :data:`DECLARATIONS`) of family ``name`` (a copy).

    Read from the family's module source when the class derives from ``Family`` directly and
    gives its declarations as literals (the base class supplies those it leaves out), else
    from the imported class.  Raises :class:`ConfigError` naming ``source`` for an unknown
    family or a declaration the family does not make.
    """
    if key not in DECLARATIONS:
        raise ValueError(f"{key!r} is not a family declaration ({', '.join(DECLARATIONS)})")
    values = _declarations(*_entry(name, source))
    if key not in values:
        raise ConfigError(f"{source}: model family {name!r} declares no {key}")
    return copy.deepcopy(values[key])


@cache
def _declarations(module_name: str, attr: str) -> dict[str, Any]:
    values = _literal_declarations(module_name, attr)
    if values is None:
        cls = getattr(import_module(module_name), attr)
        return {key: getattr(cls, key) for key in DECLARATIONS if hasattr(cls, key)}
    inherited = {key: getattr(Family, key) for key in DECLARATIONS if hasattr(Family, key)}
    return {**inherited, **values}


def _literal_declarations(module_name: str, attr: str) -> dict[str, Any] | None:
    """The declarations assigned in the body of class ``attr`` of the module's source; None
    when the source or the class is not found, the class has another base than ``Family`` or
    a declaration is not a literal."""
    spec = find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name == attr):
            continue
        if [ast.unparse(base) for base in node.bases] != ["Family"]:
            return None
        values = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in DECLARATIONS:
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        return values
    return None


__all__ = [
    "DECLARATIONS",
    "Family",
    "available_families",
    "family_declaration",
    "get_family",
]
