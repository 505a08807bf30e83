"""Persistence of an exploration tree: ``nodes.yaml``, the single source of truth.

Directory layout (``results/explorations/{name}/``, names in :mod:`connectome_gnn.layout`)::

    nodes.yaml          the tree (this module)
    configs/<cfg>.yaml  the training configuration of every node (propose.write_configs)
    ucb_scores.*        UCB scores of the current block (ucb.write_ucb_scores)
    iteration_log.md    the iteration log in the exploration-log format (log.write_log)
    iterations.*        the same data as a table (parquet / csv / md)

``nodes.yaml`` holds ``version`` (:data:`FORMAT_VERSION`), the resolved ``experiment`` and the
``nodes`` (:data:`.node.NODE_SCHEMA` each).  Every problem reading it raises
:class:`.node.ExplorationError` naming the file and, for a bad node, the node id and field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError, load_yaml, validate
from ..io import atomic_path
from ..layout import NODES
from ..text import plain
from .experiment import load_experiment
from .node import ExplorationError, Node

__all__ = ["FORMAT_VERSION", "NODES_FILE", "check_resumable", "read_nodes", "write_nodes"]

NODES_FILE = NODES
FORMAT_VERSION = 1

_HEADER_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "experiment", "nodes"],
    "properties": {
        "version": {"type": "integer", "const": FORMAT_VERSION},
        "experiment": {"type": "object"},
        "nodes": {"type": "array", "items": {"type": "object"}},
    },
}


def read_nodes(directory: str | os.PathLike) -> tuple[dict, list[Node]]:
    """The resolved experiment and the nodes of ``<directory>/nodes.yaml``."""
    path = Path(directory) / NODES_FILE
    if not path.is_file():
        raise ExplorationError(f"{path}: file not found")
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        raise ExplorationError(str(exc)) from None
    if data is None:
        raise ExplorationError(f"{path}: empty file (expected version, experiment, nodes)")
    try:
        head = validate(data, _HEADER_SCHEMA, source=str(path))
        experiment = load_experiment(head["experiment"])
    except ConfigError as exc:
        msg = str(exc)
        if not msg.startswith(str(path)):
            msg = f"{path}: field 'experiment': {msg}"
        raise ExplorationError(msg) from None
    nodes = []
    for i, entry in enumerate(head["nodes"]):
        ident = entry.get("node_id") if isinstance(entry, dict) else None
        where = f"{path}: node {ident}" if isinstance(ident, int) else f"{path}: nodes[{i}]"
        try:
            nodes.append(Node.from_dict(entry, source=where))
        except ConfigError as exc:
            raise ExplorationError(str(exc)) from None
    return experiment, nodes


def check_resumable(
    path: Path, stored: Mapping[str, Any], experiment: Mapping[str, Any], used: Iterable[int]
) -> None:
    """Refuse an experiment that changes a block holding nodes (``used``): every such block
    must keep its model, sparsity and ``n_iter_block``."""
    for b in sorted(used):
        old = stored["blocks"][b]
        if b >= len(experiment["blocks"]):
            raise ExplorationError(
                f"{path}: block {b} holds nodes but the experiment has only "
                f"{len(experiment['blocks'])} blocks"
            )
        new = experiment["blocks"][b]
        for key in ("model", "sparsity", "n_iter_block"):
            if old[key] != new[key]:
                raise ExplorationError(
                    f"{path}: block {b} holds nodes with {key}={old[key]!r} but the "
                    f"experiment now says {new[key]!r} (use a new exploration name)"
                )


def write_nodes(path: Path, experiment: Mapping[str, Any], nodes: Iterable[Node]) -> Path:
    """Write ``nodes.yaml`` atomically (``yaml.safe_dump``); returns its path."""
    nodes = list(nodes)
    data = {
        "version": FORMAT_VERSION,
        "experiment": plain(experiment),
        "nodes": [n.to_dict() for n in nodes],
    }
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    with atomic_path(path) as tmp:
        tmp.write_text(
            f"# exploration {experiment['name']}: {len(nodes)} nodes (connectome_gnn.explore)\n"
            + text,
            encoding="utf-8",
        )
    return path
