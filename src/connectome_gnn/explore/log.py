"""The iteration log: markdown in the exploration-log format, and the same data as a table.

``iteration_log.md`` groups nodes by block and batch and writes one entry per node, as the
reference logs do::

    ## Iter 9: partial
    Node: id=9, parent=5
    Block: 1 (model=signal_N2, sparsity=0.5), batch 3, slot 0
    Mode/Strategy: ucb
    Sparsity: 50% (connectivity_filling_factor=0.5)
    Config: lr_W=6E-4, lr=1.2E-3, lr_emb=1.5E-3, coeff_W_L1=3E-5, batch_size=2, ...
    Metrics: connectivity_R2=0.8123, cluster_accuracy=0.7243, test_R2=0.9012, ...
    Score: 0.7771
    Mutation: coeff_W_L1: 5E-5 -> 3E-5

The status after ``## Iter N:`` is the classification (converged / partial-W / partial-E /
partial / failed, seed-004 thresholds) of a finished node, ``pruned`` for a pruned one, else
``pending`` / ``running``.
``parent=root`` marks a node without parent in its block.  Failed nodes get a ``Reason:``
line.  The reference's ``Next: parent=P`` line is not written: parents are chosen per batch
by UCB and recorded on the children.

``iterations.{parquet,csv,md}`` hold one row per node (``ExplorationTree.to_frame``: every
metric, parameter and node column; the markdown view shows a readable subset).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from ..aggregate.columns import TRAINING_METRICS, declared_metrics
from ..aggregate.output import write_table
from ..io import atomic_path
from ..layout import ITERATION_LOG, ITERATIONS
from ..text import as_float, format_value
from .experiment import space_of
from .node import Node
from .tree import ExplorationTree

__all__ = ["LOG_METRICS", "config_params", "format_log", "iteration_table", "write_log"]

#: Metrics of the ``Metrics:`` line, in this order (those present): the families' headline
#: metrics (FlyVis: tau_R2, V_rest_R2) and field_R2 (a learned input) follow connectivity_R2.
LOG_METRICS = (
    "connectivity_R2",
    *declared_metrics("headline_metrics"),
    "field_R2",
    "cluster_accuracy",
    "test_R2",
    "test_pearson",
    *TRAINING_METRICS,
)
_TABLE_VIEW = [
    "iteration",
    "node_id",
    "parent",
    "block",
    "batch",
    "slot",
    "source",
    "model",
    "sparsity",
    "status",
    "classification",
    "score",
    *LOG_METRICS,
    "mutation",
    "reason",
]


def config_params(tree: ExplorationTree) -> list[str]:
    """Parameters shown on the ``Config:`` line: the parameter space, then any other
    parameter whose value differs between nodes (``description`` excluded)."""
    names = list(space_of(tree.experiment))
    keys: dict[str, None] = {}
    for node in tree:
        keys.update(dict.fromkeys(node.config))
    for key in keys:
        if key in names or key == "description":
            continue
        values = {repr(node.config.get(key)) for node in tree}
        if len(values) > 1:
            names.append(key)
    return names


def _metric_text(value) -> str:
    x = as_float(value)
    if math.isnan(x):
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return "n/a"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.3e}"
    if abs(x) >= 100:
        return f"{x:.2f}"
    return f"{x:.4f}"


def _pct(sparsity: float) -> str:
    return f"{sparsity * 100:g}%"


def _entry(tree: ExplorationTree, node: Node, params: list[str]) -> list[str]:
    members = {n.node_id for n in tree.block_nodes(node.block)}
    parent = node.parent if node.parent in members else "root"
    sim = node.sim or tree.block_sim(node.block)
    sparsity = float(sim.get("sparsity", tree.blocks[node.block]["sparsity"]))
    lines = [
        f"## Iter {node.iteration}: {node.classification}",
        f"Node: id={node.node_id}, parent={parent}",
        f"Block: {node.block} (model={sim.get('model')}, sparsity={format_value(sparsity)}), "
        f"batch {node.batch}, slot {node.slot}",
        f"Mode/Strategy: {node.source}",
        f"Sparsity: {_pct(sparsity)} (connectivity_filling_factor={format_value(sparsity)})",
        "Config: "
        + ", ".join(f"{p}={format_value(node.config.get(p))}" for p in params if p in node.config),
    ]
    if node.finished:
        shown = [m for m in LOG_METRICS if m in node.metrics]
        if shown:
            lines.append(
                "Metrics: " + ", ".join(f"{m}={_metric_text(node.metrics[m])}" for m in shown)
            )
        lines.append(f"Score: {_metric_text(node.score)}")
    if node.mutation:
        lines.append(f"Mutation: {node.mutation_text}")
    elif node.parent is None:
        lines.append(f"Mutation: (root: {node.note or 'base configuration'})")
    else:
        lines.append(f"Mutation: (same configuration as node {node.parent})")
    if node.status in ("failed", "pruned"):
        lines.append(f"Reason: {node.reason or 'unknown'}")
    if node.note and node.parent is not None:
        lines.append(f"Note: {node.note}")
    return lines


def format_log(tree: ExplorationTree) -> str:
    """The whole iteration log as markdown text."""
    params = config_params(tree)
    out = [f"# Exploration {tree.name}", ""]
    if tree.experiment.get("description"):
        out += [tree.experiment["description"], ""]
    weights = " + ".join(f"{w:g}·{m}" for m, w in tree.score_weights.items())
    out += [
        f"Family: {tree.family}; score = {weights}; form={tree.experiment['form']}, "
        f"c={tree.experiment['ucb_c']}; {len(tree)} nodes",
        "",
    ]
    block = batch = None
    for node in tree:
        if node.block != block:
            block, batch = node.block, None
            first, last = tree.block_bounds(block)
            sim = tree.block_sim(block)
            out += [
                f"# Block {block}: model={sim['model']}, sparsity={format_value(sim['sparsity'])} "
                f"(iterations {first}-{last})",
                "",
            ]
        if node.batch != batch:
            batch = node.batch
            its = [n.iteration for n in tree.block_nodes(block) if n.batch == batch]
            out += [f"### Batch {batch} (Iters {min(its)}-{max(its)})", ""]
        out += _entry(tree, node, params) + [""]
    return "\n".join(out).rstrip() + "\n"


def iteration_table(tree: ExplorationTree) -> pd.DataFrame:
    """One row per node (see ``ExplorationTree.to_frame``), in iteration order."""
    return tree.to_frame(include_unfinished=True)


def write_log(tree: ExplorationTree, directory: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``iteration_log.md`` and ``iterations.{parquet,csv,md}``; returns the paths."""
    directory = Path(tree.directory if directory is None else directory)
    table = iteration_table(tree)
    paths = write_table(table, directory / ITERATIONS, markdown_columns=_TABLE_VIEW)
    md = directory / ITERATION_LOG
    with atomic_path(md) as tmp:
        tmp.write_text(format_log(tree), encoding="utf-8")
    paths["log"] = md
    return paths
