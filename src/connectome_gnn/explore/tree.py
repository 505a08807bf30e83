"""The exploration tree: nodes (training configurations) persisted in ``nodes.yaml``.

Directory layout (``results/explorations/{name}/``)::

    nodes.yaml          the tree (this module); the single source of truth
    configs/<cfg>.yaml  the training configuration of every node (propose.write_configs)
    ucb_scores.*        UCB scores of the current block (ucb.write_ucb_scores)
    iteration_log.md    the iteration log in the exploration-log format (log.write_log)
    iterations.*        the same data as a table (parquet / csv / md)

Iterations, batches, blocks
---------------------------
As in the reference exploration logs, one *iteration* is one node (``## Iter N`` with
``Node: id=N``), numbered 1, 2, ... over the whole exploration; ``n_slots`` consecutive
iterations proposed together form a *batch* (slots 0..n_slots-1, trained in parallel).  Blocks
fix the simulation: block ``b`` (0-based) covers the next ``blocks[b].n_iter_block``
iterations after the previous blocks, so the block of an iteration follows from the
iteration number alone (:meth:`ExplorationTree.block_of`).  In a fresh exploration the node id
equals the iteration; both are stored so that trees continued from elsewhere keep their ids.

Visits (reference-compatible)
-----------------------------
``visits(k) = 1 + number of descendants of k`` among the nodes of k's block: every node counts
its own creation, and creating a node adds one visit to its parent and to every ancestor
(MCTS back-propagation).  A parent outside the block counts as "root" (no ancestor), and
``N`` = number of nodes in the block.  This is the definition of the reference code that wrote
``ucb_scores.txt`` (seed 004: the root with one child has ``visits=2``, the child ``visits=1``),
and it makes every visit count >= 1, so ``sqrt(ln N / n)`` never divides by zero.  Pending and
running nodes count as visits (they are children already being tried), which keeps a batch
from piling onto one parent while the previous batch still runs.

Scores and failures
-------------------
``score = sum(weight * metric)`` over the experiment's score weights (default, signal family:
``0.6 connectivity_R2 + 0.4 cluster_accuracy``).  A run whose metrics file is missing or
unreadable, whose status is not ``ok``, or which lacks a finite value of a weighted metric
becomes a node with status ``failed``, a ``reason`` and score 0 (the reference read a missing
R2 as 0).  Failed nodes keep counting as visits of their parents but are not picked as
parents unless no node of the block succeeded (see :mod:`.ucb`).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..aggregate.columns import KNOWN_METRICS
from ..aggregate.tables import classify
from ..config import ConfigError, format_sparsity, load_yaml, validate
from ..io import DataError, atomic_path, read_json
from ..layout import NODES
from ..text import as_float, format_mutation, plain
from .experiment import load_experiment

__all__ = [
    "NODES_FILE",
    "SOURCES",
    "STATUSES",
    "ExplorationError",
    "ExplorationTree",
    "Node",
    "compute_score",
]

NODES_FILE = NODES
FORMAT_VERSION = 1
STATUSES = ("pending", "running", "ok", "failed")
FINISHED = ("ok", "failed")
SOURCES = ("root", "ucb", "manual", "external")


class ExplorationError(DataError):
    """The exploration state is inconsistent or an operation is impossible; names the file."""


# --------------------------------------------------------------------------------------------
# node
# --------------------------------------------------------------------------------------------

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
    },
}

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


@dataclass
class Node:
    """One training configuration of the exploration.

    ``mutation`` lists ``{"param", "old", "new"}`` relative to the parent's configuration;
    ``config`` is the full training configuration (train schema, defaults filled); ``sim`` the
    block's simulation settings (``model``, ``sparsity``, ``seed``); ``status`` one of
    :data:`STATUSES`; ``source`` one of :data:`SOURCES`; ``note`` free text (e.g. where a block
    root came from).
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

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def classification(self) -> str:
        """converged / partial-W / partial-E / partial / failed (seed-004 thresholds)."""
        if not self.finished:
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
            }
        )

    @classmethod
    def from_dict(cls, data: Any, source: str = "node") -> Node:
        """Build a node from its ``nodes.yaml`` entry; :class:`ConfigError` names the field."""
        d = validate(data, NODE_SCHEMA, source=source)
        return cls(**d)


def compute_score(metrics: Mapping[str, Any], weights: Mapping[str, float]) -> float:
    """``sum(weight * metric)``; NaN when a weighted metric is missing or not finite."""
    total = 0.0
    for name, weight in weights.items():
        x = as_float(metrics.get(name))
        if math.isnan(x):
            return math.nan
        total += float(weight) * x
    return total


# --------------------------------------------------------------------------------------------
# tree
# --------------------------------------------------------------------------------------------


class ExplorationTree:
    """The nodes of one exploration and its (resolved) experiment, stored in ``nodes.yaml``.

    Create with :meth:`open` (load or start), :meth:`create` or :meth:`load`; change with
    :meth:`add`, :meth:`add_external`, :meth:`update`, :meth:`set_status`; write with
    :meth:`save` (atomic).  Nothing is written implicitly.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        experiment: Mapping[str, Any],
        nodes: Iterable[Node] = (),
    ):
        self.directory = Path(directory)
        self.experiment = load_experiment(experiment)
        self._nodes: dict[int, Node] = {}
        for node in nodes:
            self._insert(node, source=str(self.path))

    # ---- construction / persistence -------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.directory / NODES_FILE

    @classmethod
    def create(
        cls, directory: str | os.PathLike, experiment: Mapping[str, Any] | str | os.PathLike
    ) -> ExplorationTree:
        """A new, empty tree (not yet saved); refuses to replace an existing ``nodes.yaml``."""
        path = Path(directory) / NODES_FILE
        if path.exists():
            raise ExplorationError(f"{path}: already exists (open or load it instead)")
        exp = load_experiment(experiment) if not isinstance(experiment, Mapping) else experiment
        return cls(directory, exp)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ExplorationTree:
        """Read ``<directory>/nodes.yaml``; any problem raises an error naming the file and,
        for a bad node, the node id and field."""
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
        tree = cls.__new__(cls)
        tree.directory = Path(directory)
        tree.experiment = experiment
        tree._nodes = {}
        for node in nodes:
            tree._insert(node, source=f"{path}: node {node.node_id}")
        return tree

    @classmethod
    def open(
        cls, directory: str | os.PathLike, experiment: Mapping[str, Any] | str | os.PathLike
    ) -> ExplorationTree:
        """Load the tree of ``directory`` (resume) or start a new one and save it.

        When ``nodes.yaml`` exists, the experiment may change settings such as ``ucb_c``,
        ``n_slots`` or the parameter space, and may append blocks, but every block that
        already holds nodes must keep its model, sparsity and ``n_iter_block``; otherwise
        :class:`ExplorationError` names the file and the block.
        """
        exp = load_experiment(experiment) if not isinstance(experiment, Mapping) else experiment
        exp = load_experiment(exp)
        path = Path(directory) / NODES_FILE
        if not path.exists():
            tree = cls(directory, exp)
            tree.save()
            return tree
        tree = cls.load(directory)
        used = {n.block for n in tree}
        for b in sorted(used):
            old = tree.experiment["blocks"][b]
            if b >= len(exp["blocks"]):
                raise ExplorationError(
                    f"{path}: block {b} holds nodes but the experiment has only "
                    f"{len(exp['blocks'])} blocks"
                )
            new = exp["blocks"][b]
            for key in ("model", "sparsity", "n_iter_block"):
                if old[key] != new[key]:
                    raise ExplorationError(
                        f"{path}: block {b} holds nodes with {key}={old[key]!r} but the "
                        f"experiment now says {new[key]!r} (use a new exploration name)"
                    )
        tree.experiment = exp
        return tree

    def save(self) -> Path:
        """Write ``nodes.yaml`` atomically (``yaml.safe_dump``); returns its path."""
        data = {
            "version": FORMAT_VERSION,
            "experiment": plain(self.experiment),
            "nodes": [n.to_dict() for n in self],
        }
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
        with atomic_path(self.path) as tmp:
            tmp.write_text(
                f"# exploration {self.name}: {len(self)} nodes (connectome_gnn.explore)\n" + text,
                encoding="utf-8",
            )
        return self.path

    # ---- experiment settings ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.experiment["name"]

    @property
    def family(self) -> str:
        return self.experiment["family"]

    @property
    def blocks(self) -> list[dict]:
        return self.experiment["blocks"]

    @property
    def n_slots(self) -> int:
        return int(self.experiment["n_slots"])

    @property
    def score_weights(self) -> dict[str, float]:
        return dict(self.experiment["score_weights"])

    # ---- node access ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self):
        return iter(sorted(self._nodes.values(), key=lambda n: (n.iteration, n.node_id)))

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __getitem__(self, node_id: int) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise ExplorationError(f"{self.path}: no node {node_id}") from None

    @property
    def nodes(self) -> list[Node]:
        """All nodes in iteration order."""
        return list(self)

    def children(self, node_id: int) -> list[Node]:
        return [n for n in self if n.parent == node_id]

    def cfg_name(self, node: Node | int) -> str:
        """Name of a node's training configuration (the ``cfg`` wildcard): ``<name>_n<id>``."""
        node_id = node.node_id if isinstance(node, Node) else int(node)
        return f"{self.name}_n{node_id:03d}"

    # ---- numbering ----------------------------------------------------------------------------

    def next_iteration(self) -> int:
        """1 + the largest iteration in the tree (1 for an empty tree): resume from the file."""
        return max((n.iteration for n in self._nodes.values()), default=0) + 1

    def next_node_id(self) -> int:
        return max(self._nodes, default=0) + 1

    def next_batch(self) -> int:
        return max((n.batch for n in self._nodes.values()), default=0) + 1

    def block_bounds(self, block: int) -> tuple[int, int]:
        """First and last iteration of ``block`` (both inclusive)."""
        if not 0 <= block < len(self.blocks):
            raise ExplorationError(
                f"{self.path}: no block {block} (the experiment has {len(self.blocks)})"
            )
        first = 1 + sum(int(b["n_iter_block"]) for b in self.blocks[:block])
        return first, first + int(self.blocks[block]["n_iter_block"]) - 1

    def block_of(self, iteration: int) -> int:
        """The block holding ``iteration``; :class:`ExplorationError` past the last block."""
        if iteration < 1:
            raise ExplorationError(f"{self.path}: iterations start at 1, got {iteration}")
        last = 0
        for b, block in enumerate(self.blocks):
            last += int(block["n_iter_block"])
            if iteration <= last:
                return b
        raise ExplorationError(
            f"{self.path}: iteration {iteration} is past the last block (the experiment has "
            f"{last} iterations in {len(self.blocks)} blocks)"
        )

    @property
    def finished(self) -> bool:
        """Every block has its iterations."""
        return self.next_iteration() > self.block_bounds(len(self.blocks) - 1)[1]

    def current_block(self) -> int:
        """Block of the next iteration (the last block once the exploration is finished)."""
        if self.finished:
            return len(self.blocks) - 1
        return self.block_of(self.next_iteration())

    def block_nodes(self, block: int) -> list[Node]:
        return [n for n in self if n.block == block]

    def block_sim(self, block: int) -> dict:
        """Simulation settings of a block: model, sparsity, seed."""
        b = self.blocks[block]
        return {"model": b["model"], "sparsity": float(b["sparsity"]), "seed": int(b["seed"])}

    # ---- visits -----------------------------------------------------------------------------

    def visits(self, block: int | None = None) -> dict[int, int]:
        """``{node_id: 1 + descendants in the block}`` for the nodes of ``block``.

        ``block`` defaults to :meth:`current_block`.  A parent outside the block counts as root.
        """
        block = self.current_block() if block is None else block
        members = {n.node_id: n.parent for n in self.block_nodes(block)}
        return compute_visits(members)

    # ---- changing nodes -----------------------------------------------------------------------

    def _insert(self, node: Node, source: str) -> None:
        if node.node_id in self._nodes:
            raise ExplorationError(f"{source}: node id {node.node_id} is used twice")
        if node.parent is not None and node.parent not in self._nodes:
            raise ExplorationError(
                f"{source}: parent {node.parent} of node {node.node_id} is not an earlier node"
            )
        if any(n.iteration == node.iteration for n in self._nodes.values()):
            raise ExplorationError(f"{source}: iteration {node.iteration} is used twice")
        expected = self.block_of(node.iteration)
        if node.block != expected:
            raise ExplorationError(
                f"{source}: node {node.node_id} has block {node.block} but iteration "
                f"{node.iteration} belongs to block {expected}"
            )
        if node.status not in STATUSES:
            raise ExplorationError(f"{source}: node {node.node_id}: unknown status {node.status!r}")
        if node.source not in SOURCES:
            raise ExplorationError(f"{source}: node {node.node_id}: unknown source {node.source!r}")
        self._nodes[node.node_id] = node

    def add(self, node: Node) -> Node:
        """Add a node (ids, iteration and block are checked; nothing is saved)."""
        self._insert(node, source=str(self.path))
        return node

    def new_node(
        self,
        config: Mapping[str, Any],
        parent: int | None = None,
        *,
        source: str = "ucb",
        mutation: list[dict] | None = None,
        batch: int | None = None,
        slot: int = 0,
        note: str | None = None,
        iteration: int | None = None,
        node_id: int | None = None,
    ) -> Node:
        """A pending node at the next iteration (not added); block and sim follow the iteration."""
        iteration = self.next_iteration() if iteration is None else iteration
        if self.finished and iteration >= self.next_iteration():
            raise ExplorationError(
                f"{self.path}: the exploration is finished (all {len(self.blocks)} blocks done)"
            )
        block = self.block_of(iteration)
        return Node(
            node_id=self.next_node_id() if node_id is None else node_id,
            iteration=iteration,
            parent=parent,
            block=block,
            config=copy.deepcopy(dict(config)),
            sim=self.block_sim(block),
            batch=self.next_batch() if batch is None else batch,
            slot=slot,
            source=source,
            mutation=list(mutation or []),
            note=note,
        )

    def add_external(
        self,
        config: Mapping[str, Any],
        parent: int | None = None,
        *,
        source: str = "external",
        note: str | None = None,
        origin: str | None = None,
        batch: int | None = None,
        slot: int = 0,
    ) -> Node:
        """Accept a configuration written by a person (``manual``) or an agent (``external``).

        The configuration is validated against ``train.schema.yaml`` (defaults filled;
        :class:`ConfigError` names ``origin`` and the field).  It becomes a pending node at the
        next iteration of the current block; its mutation is the difference to the parent's
        configuration (empty for a replicate or for a node without parent).  Not saved.
        """
        if source not in ("manual", "external"):
            raise ValueError(f"source must be 'manual' or 'external', got {source!r}")
        where = origin or f"{source} configuration for exploration {self.name}"
        cfg = validate(dict(config) if config is not None else None, "train", source=where)
        if parent is not None:
            parent = int(parent)
            if parent not in self._nodes:
                raise ExplorationError(f"{where}: parent {parent} is not a node of {self.path}")
        mutation = config_diff(self._nodes[parent].config, cfg) if parent is not None else []
        node = self.new_node(
            cfg, parent, source=source, mutation=mutation, batch=batch, slot=slot, note=note
        )
        return self.add(node)

    def add_external_file(
        self,
        path: str | os.PathLike,
        parent: int | None = None,
        *,
        source: str = "manual",
        note: str | None = None,
    ) -> Node:
        """:meth:`add_external` for a YAML file; errors name the file and the field."""
        return self.add_external(
            load_yaml(path), parent, source=source, note=note, origin=str(path)
        )

    def set_status(self, node_id: int, status: str, reason: str | None = None) -> Node:
        """Set the status (e.g. ``running`` when submitted); ``failed`` sets score 0."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        node = self[node_id]
        node.status = status
        node.reason = reason
        if status == "failed":
            node.score = 0.0
        elif status != "ok":
            node.score = None
        return node

    def update(
        self,
        node_id: int,
        metrics: Mapping[str, Any] | None,
        status: str | None = None,
        reason: str | None = None,
    ) -> Node:
        """Record a finished run from its ``metrics.json`` content.

        ``metrics=None`` (no metrics file) means failed.  The status is ``status`` if given,
        else the file's ``status`` (``ok`` when absent).  An ok run lacking a finite value of a
        weighted metric becomes failed with a reason naming the metric.  Returns the node.
        """
        node = self[node_id]
        if metrics is None:
            node.metrics = {}
            return self.set_status(node_id, "failed", reason or "no metrics")
        node.metrics = plain(dict(metrics))
        state = str(status or metrics.get("status") or "ok").strip().lower()
        if state != "ok":
            return self.set_status(
                node_id, "failed", reason or metrics.get("reason") or f"status {state}"
            )
        score = compute_score(metrics, self.score_weights)
        if math.isnan(score):
            bad = [m for m in self.score_weights if math.isnan(as_float(metrics.get(m)))]
            return self.set_status(
                node_id, "failed", reason or f"missing or non-finite {', '.join(bad)}"
            )
        node.status = "ok"
        node.reason = reason
        node.score = score
        return node

    def update_from_file(self, node_id: int, path: str | os.PathLike) -> Node:
        """:meth:`update` from a ``metrics.json`` file; a missing or corrupt file makes the
        node failed with a reason naming the file (the exploration goes on)."""
        try:
            data = read_json(path)
        except DataError as exc:
            return self.update(node_id, None, reason=str(exc))
        if not isinstance(data, dict):
            return self.update(node_id, None, reason=f"{path}: expected a JSON object")
        return self.update(node_id, data)

    # ---- queries --------------------------------------------------------------------------------

    def best(self, block: int | None = None) -> Node | None:
        """The ok node with the highest score (of ``block``, or overall); ties: lowest id."""
        pool = [n for n in self if n.status == "ok" and (block is None or n.block == block)]
        if not pool:
            return None
        return max(pool, key=lambda n: (n.score, -n.node_id))

    def to_frame(self, include_unfinished: bool = True) -> pd.DataFrame:
        """One row per node, in the column conventions of ``aggregate.tables.load_runs``.

        Identity (``model``, ``sparsity`` text, ``filling_factor``, ``cfg`` = :meth:`cfg_name`,
        ``seed``), ``family``, ``status``, ``reason``, ``classification``, the node columns
        (``node_id``, ``iteration``, ``parent``, ``block``, ``batch``, ``slot``, ``source``,
        ``mutation`` text, ``score``, ``note``), the metrics (nested ones flattened, e.g.
        ``per_type_R2_0``), the training parameters (``param_<name>`` when a name clashes) and
        the simulation settings as ``sim_<key>``.  So every function of
        :mod:`connectome_gnn.aggregate.exploration` works on it as on a runs table.
        """
        nodes = [n for n in self if include_unfinished or n.finished]
        ident = ["model", "sparsity", "filling_factor", "cfg", "seed", "family", "status"]
        node_cols = ["reason", "classification", "node_id", "iteration", "parent", "block"]
        node_cols += ["batch", "slot", "source", "mutation", "score", "note"]
        metric_cols: dict[str, None] = {}
        flat_metrics = []
        for n in nodes:
            flat = _flatten({k: v for k, v in n.metrics.items() if k not in _SKIP_METRICS})
            flat_metrics.append(flat)
            metric_cols.update(dict.fromkeys(flat))
        taken = set(metric_cols) | set(ident) | set(node_cols) | {"run_dir", "n_runs", "n_ok"}
        records = []
        param_cols: dict[str, None] = {}
        sim_cols: dict[str, None] = {}
        for n, flat in zip(nodes, flat_metrics, strict=True):
            sparsity = n.sim.get("sparsity", self.blocks[n.block]["sparsity"])
            row: dict[str, Any] = {
                "model": str(n.sim.get("model", self.blocks[n.block]["model"])),
                "sparsity": format_sparsity(sparsity),
                "filling_factor": float(sparsity),
                "cfg": self.cfg_name(n),
                "seed": int(n.sim.get("seed", 0)),
                "family": self.family,
                "status": n.status,
                "reason": n.reason,
                "classification": n.classification,
                "node_id": n.node_id,
                "iteration": n.iteration,
                "parent": n.parent,
                "block": n.block,
                "batch": n.batch,
                "slot": n.slot,
                "source": n.source,
                "mutation": n.mutation_text,
                "score": n.score,
                "note": n.note,
            }
            row.update(flat)
            for key, value in n.config.items():
                name = f"param_{key}" if key in taken else key
                param_cols[name] = None
                row[name] = value if not isinstance(value, list | dict) else str(value)
            for key, value in n.sim.items():
                sim_cols[f"sim_{key}"] = None
                row[f"sim_{key}"] = value
            records.append(row)
        columns = [*ident, *node_cols, *metric_cols, *param_cols, *sim_cols]
        df = pd.DataFrame.from_records(records, columns=columns)
        if not df.empty:
            df["parent"] = df["parent"].astype("Int64")
            df["score"] = pd.to_numeric(df["score"], errors="coerce").astype("float64")
            for col in metric_cols:
                if col in KNOWN_METRICS:
                    df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        df.attrs["metric_columns"] = [c for c in metric_cols if c in KNOWN_METRICS]
        return df


_SKIP_METRICS = {"model", "sparsity", "cfg", "seed", "family", "status", "reason"}


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, prefix=f"{name}_"))
        elif isinstance(value, list | tuple):
            out[name] = str(list(value))
        else:
            out[name] = value
    return out


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
