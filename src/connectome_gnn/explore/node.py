"""Nodes of an exploration: one training configuration each, its state and its score.

Scores and failures
-------------------
``score = sum(weight * metric)`` over the experiment's score weights (by default the family's,
e.g. ``0.6 connectivity_R2 + 0.4 cluster_accuracy``).  A run whose metrics file is missing or
unreadable, whose status is not ``ok``, or which lacks a finite value of a weighted metric
becomes a node with status ``failed``, a ``reason`` and score 0 (the reference read a missing
R2 as 0).  Failed nodes keep counting as visits of their parents but are not picked as
parents unless no node of the block succeeded (see :mod:`.ucb`).

Pruned nodes
------------
With ``pruning`` set, a run whose intermediate score cannot win is stopped (:mod:`.pruning`):
its node has status ``pruned``, a ``reason``, the metrics of the weights it stopped with and
their score (the last score it reported).  A pruned node is finished: it counts as a visit of
its parents like every node, and UCB treats it like a failed one: it is not picked as a
parent unless ``allow_failed_parents`` is set or no node of the block is ``ok`` (its score is
that of an unfinished training, so it would be unfair to mutate it, and the rule judged it
unable to win).  It is never the best node of a block (``carry_best`` takes an ok node).
``explore --resume-pruned`` trains it to its end from its checkpoint (``no_pruning`` is then
set on the node, so that the rule does not stop it again).

Visits (reference-compatible)
-----------------------------
``visits(k) = 1 + number of descendants of k`` among the nodes of k's block (:func:`compute_visits`):
every node counts its own creation, and creating a node adds one visit to its parent and to
every ancestor (MCTS back-propagation).  A parent outside the block counts as "root" (no
ancestor), and ``N`` = number of nodes in the block.  This is the definition of the reference
code that wrote ``ucb_scores.txt`` (seed 004: the root with one child has ``visits=2``, the
child ``visits=1``), and it makes every visit count >= 1, so ``sqrt(ln N / n)`` never divides
by zero.  Pending and running nodes count as visits (they are children already being tried),
which keeps a batch from piling onto one parent while the previous batch still runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..aggregate.scores import weighted_score as compute_score
from ..aggregate.tables import classify
from ..config import validate
from ..io import DataError
from ..text import format_mutation, plain

__all__ = [
    "FINISHED",
    "NODE_SCHEMA",
    "SOURCES",
    "STATUSES",
    "ExplorationError",
    "Node",
    "compute_score",
    "compute_visits",
    "config_diff",
]

STATUSES = ("pending", "running", "ok", "failed", "pruned")
FINISHED = ("ok", "failed", "pruned")
SOURCES = ("root", "ucb", "tpe", "manual", "external")


class ExplorationError(DataError):
    """The exploration state is inconsistent or an operation is impossible; names the file."""


_MUTATION_SCHEMA = {
    "type": "object",
    "required": ["param", "new"],
    "additionalProperties": False,
    "properties": {"param": {"type": "string"}, "old": {}, "new": {}},
}

#: JSON schema of one node entry of ``nodes.yaml``.
NODE_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": ["node_id", "iteration", "block", "config", "status"],
    "properties": {
        "node_id": {"type": "integer", "minimum": 1},
        "iteration": {"type": "integer", "minimum": 1},
        "parent": {"type": ["integer", "null"], "minimum": 1, "default": None},
        "block": {"type": "integer", "minimum": 0},
        "batch": {"type": "integer", "minimum": 1, "default": 1},
        "slot": {"type": "integer", "minimum": 0, "default": 0},
        "source": {"type": "string", "enum": list(SOURCES), "default": "ucb"},
        "mutation": {"type": "array", "items": _MUTATION_SCHEMA, "default": []},
        "sim": {"type": "object", "default": {}},
        "config": {"type": "object"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "reason": {"type": ["string", "null"], "default": None},
        "metrics": {"type": "object", "default": {}},
        "score": {"type": ["number", "null"], "default": None},
        "note": {"type": ["string", "null"], "default": None},
        "no_pruning": {"type": "boolean", "default": False},
        "trial": {"type": ["integer", "null"], "minimum": 0, "default": None},
    },
}


@dataclass
class Node:
    """One training configuration of the exploration.

    ``mutation`` lists ``{"param", "old", "new"}`` relative to the parent's configuration;
    ``config`` is the full training configuration (train schema, defaults filled); ``sim`` the
    block's simulation settings (``model``, ``sparsity``, ``seed``); ``status`` one of
    :data:`STATUSES`; ``source`` one of :data:`SOURCES`; ``note`` free text (e.g. where a block
    root came from); ``no_pruning``: train to the end whatever the pruning rule says (a pruned
    node resumed on request); ``trial``: the Optuna trial number (form ``optuna-tpe``).
    """

    node_id: int
    iteration: int
    parent: int | None
    block: int
    config: dict
    sim: dict = field(default_factory=dict)
    batch: int = 1
    slot: int = 0
    source: str = "ucb"
    mutation: list[dict] = field(default_factory=list)
    status: str = "pending"
    reason: str | None = None
    metrics: dict = field(default_factory=dict)
    score: float | None = None
    note: str | None = None
    no_pruning: bool = False
    trial: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def classification(self) -> str:
        """converged / partial-W / partial-E / partial / failed (seed-004 thresholds), or the
        status of an unfinished or pruned node."""
        if not self.finished or self.status == "pruned":
            return self.status
        return classify(
            self.metrics.get("connectivity_R2"), self.metrics.get("cluster_accuracy"), self.status
        )

    @property
    def mutation_text(self) -> str:
        return format_mutation(self.mutation)

    def to_dict(self) -> dict:
        return plain(
            {
                "node_id": self.node_id,
                "iteration": self.iteration,
                "parent": self.parent,
                "block": self.block,
                "batch": self.batch,
                "slot": self.slot,
                "source": self.source,
                "mutation": self.mutation,
                "sim": self.sim,
                "config": self.config,
                "status": self.status,
                "reason": self.reason,
                "metrics": self.metrics,
                "score": self.score,
                "note": self.note,
                "no_pruning": self.no_pruning,
                "trial": self.trial,
            }
        )

    @classmethod
    def from_dict(cls, data: Any, source: str = "node") -> Node:
        """Build a node from its ``nodes.yaml`` entry; :class:`ConfigError` names the field."""
        d = validate(data, NODE_SCHEMA, source=source)
        return cls(**d)


def compute_visits(parents: Mapping[int, int | None]) -> dict[int, int]:
    """``visits = 1 + number of descendants`` for a ``{node_id: parent}`` map.

    A parent that is not a key counts as root.  Cycles (impossible in a valid tree) are cut.
    """
    visits = {node_id: 1 for node_id in parents}
    for node_id in parents:
        seen = {node_id}
        parent = parents[node_id]
        while parent is not None and parent in parents and parent not in seen:
            visits[parent] += 1
            seen.add(parent)
            parent = parents[parent]
    return visits


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict]:
    """``[{param, old, new}]`` for the keys whose value differs (``description`` ignored)."""
    out = []
    for key in list(old) + [k for k in new if k not in old]:
        if key == "description":
            continue
        a, b = old.get(key), new.get(key)
        if a != b or type(a) is bool and type(b) is not bool:
            out.append({"param": key, "old": plain(a), "new": plain(b)})
    return out
