"""The exploration tree: the bookkeeping of an exploration's nodes.

:class:`ExplorationTree` numbers nodes, maps iterations to blocks, counts visits and records
results; the nodes themselves are in :mod:`.node`, their persistence in ``nodes.yaml`` in
:mod:`.store` and their export as a runs table in :mod:`.frame`.

Iterations, batches, blocks
---------------------------
As in the reference exploration logs, one *iteration* is one node (``## Iter N`` with
``Node: id=N``), numbered 1, 2, ... over the whole exploration; ``n_slots`` consecutive
iterations proposed together form a *batch* (slots 0..n_slots-1, trained in parallel).  Blocks
fix the simulation: block ``b`` (0-based) covers the next ``blocks[b].n_iter_block``
iterations after the previous blocks, so the block of an iteration follows from the
iteration number alone (:meth:`ExplorationTree.block_of`).  In a fresh exploration the node id
equals the iteration; both are stored so that trees continued from elsewhere keep their ids.
Visits, scores and failures: see :mod:`.node`.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import load_yaml, validate
from ..io import DataError, read_json
from ..text import as_float, plain
from .experiment import load_experiment
from .frame import nodes_frame
from .node import (
    SOURCES,
    STATUSES,
    ExplorationError,
    Node,
    compute_score,
    compute_visits,
    config_diff,
)
from .store import NODES_FILE, check_resumable, read_nodes, write_nodes

__all__ = ["ExplorationTree"]


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

    # ---- construction / persistence (.store) ----------------------------------------------

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
        """Read ``<directory>/nodes.yaml`` (:func:`.store.read_nodes`); any problem raises an
        error naming the file and, for a bad node, the node id and field."""
        experiment, nodes = read_nodes(directory)
        tree = cls.__new__(cls)
        tree.directory = Path(directory)
        tree.experiment = experiment
        tree._nodes = {}
        for node in nodes:
            tree._insert(node, source=f"{tree.path}: node {node.node_id}")
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
        check_resumable(path, tree.experiment, exp, {n.block for n in tree})
        tree.experiment = exp
        return tree

    def save(self) -> Path:
        """Write ``nodes.yaml`` atomically (:func:`.store.write_nodes`); returns its path."""
        return write_nodes(self.path, self.experiment, self)

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
        """Set the status (e.g. ``running`` when submitted); ``failed`` sets score 0, ``pruned``
        keeps the score."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        node = self[node_id]
        node.status = status
        node.reason = reason
        if status == "failed":
            node.score = 0.0
        elif status not in ("ok", "pruned"):
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
        else the file's ``status`` (``ok`` when absent); ``pruned`` (stopped by the pruning
        rule) keeps the score of the metrics it stopped with.  An ok run lacking a finite value of a
        weighted metric becomes failed with a reason naming the metric.  Returns the node.
        """
        node = self[node_id]
        if metrics is None:
            node.metrics = {}
            return self.set_status(node_id, "failed", reason or "no metrics")
        node.metrics = plain(dict(metrics))
        state = str(status or metrics.get("status") or "ok").strip().lower()
        if state not in ("ok", "pruned"):
            return self.set_status(
                node_id, "failed", reason or metrics.get("reason") or f"status {state}"
            )
        score = compute_score(metrics, self.score_weights)
        if math.isnan(score):
            bad = [m for m in self.score_weights if math.isnan(as_float(metrics.get(m)))]
            return self.set_status(
                node_id, "failed", reason or f"missing or non-finite {', '.join(bad)}"
            )
        node.status = state
        node.reason = reason or (metrics.get("reason") if state == "pruned" else None)
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

    # ---- queries (table export: .frame) ---------------------------------------------------------

    def best(self, block: int | None = None) -> Node | None:
        """The ok node with the highest score (of ``block``, or overall); ties: lowest id."""
        pool = [n for n in self if n.status == "ok" and (block is None or n.block == block)]
        if not pool:
            return None
        return max(pool, key=lambda n: (n.score, -n.node_id))

    def to_frame(self, include_unfinished: bool = True) -> pd.DataFrame:
        """One row per node (finished ones only unless ``include_unfinished``), in the column
        conventions of ``aggregate.tables.load_runs``: see :func:`.frame.nodes_frame`."""
        nodes = [n for n in self if include_unfinished or n.finished]
        return nodes_frame(nodes, self.family, self.blocks, self.cfg_name)
