"""UCB / PUCT scores of exploration nodes, parent selection and the UCB scores file.

Two forms of the exploration bonus, for a node of score ``s`` visited ``n`` times in a block
of ``N`` nodes (visits as defined in :mod:`.tree`: 1 + descendants, so ``n >= 1``):

* ``ucb``  (the exploration instructions, seed 004): ``s + c * sqrt(ln N / n)``
* ``puct`` (the reference code): ``s + c * sqrt(N) / (1 + n)``

``c`` is the experiment's ``ucb_c`` (default 1.414).  :func:`ucb_score` returns ``+inf`` for an
unvisited arm (``n <= 0``) instead of dividing by zero; with ``N <= 1`` the UCB bonus is 0.

Parent selection for a batch of ``k`` slots (:func:`select_parents`) is greedy and
deterministic: for each slot the eligible node with the highest bonus score is taken (ties:
higher score, then lower node id); then a *virtual child* is added under it (its visits and
those of its ancestors +1, ``N`` +1) before the next slot is chosen, so one batch spreads over
several promising nodes instead of mutating the top node k times.

Eligible parents are the ``ok`` nodes of the block.  Failed nodes have score 0 and still count
as visits, but are only eligible when the experiment sets ``allow_failed_parents`` or when no
node of the block succeeded (then every finished node is eligible, so that a block whose
first batch failed moves on from the failed configurations).  Pruned nodes (stopped early by
the pruning rule, :mod:`.pruning`) are treated the same way: they count as visits with the
score they stopped with (shown in the table with ``status=pruned``) and are parents only
under the same two conditions.  Pending and running nodes are never parents.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..aggregate.output import write_table
from ..io import atomic_path
from ..layout import UCB_SCORES
from ..text import as_float
from .node import ExplorationError, Node, compute_visits
from .tree import ExplorationTree

__all__ = [
    "FORMS",
    "bonus_score",
    "puct_score",
    "select_parents",
    "ucb_score",
    "ucb_table",
    "write_ucb_scores",
]

FORMS = ("ucb", "puct")
UCB_COLUMNS = [
    "node",
    "parent",
    "visits",
    "score",
    "UCB",
    "connectivity_R2",
    "test_pearson",
    "cluster_accuracy",
    "mutation",
    "status",
    "iteration",
]


def ucb_score(score: float, visits: int, total: int, c: float = 1.414) -> float:
    """``score + c * sqrt(ln(total) / visits)``; ``inf`` when ``visits <= 0``; no bonus for
    ``total <= 1``."""
    if visits <= 0:
        return math.inf
    if total <= 1:
        return float(score)
    return float(score) + c * math.sqrt(math.log(total) / visits)


def puct_score(score: float, visits: int, total: int, c: float = 1.414) -> float:
    """``score + c * sqrt(total) / (1 + visits)`` (the reference code's form)."""
    return float(score) + c * math.sqrt(max(total, 0)) / (1 + max(visits, 0))


def bonus_score(form: str, score: float, visits: int, total: int, c: float) -> float:
    """:func:`ucb_score` or :func:`puct_score` by name."""
    if form == "ucb":
        return ucb_score(score, visits, total, c)
    if form == "puct":
        return puct_score(score, visits, total, c)
    raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")


def _settings(tree: ExplorationTree, c: float | None, form: str | None, block: int | None):
    c = float(tree.experiment["ucb_c"] if c is None else c)
    form = tree.experiment["form"] if form is None else form
    if form == "optuna-tpe":  # TPE proposes; the table shows the UCB formula for information
        form = "ucb"
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    block = tree.current_block() if block is None else block
    return c, form, block


def _eligible(nodes: list[Node], allow_failed: bool) -> list[Node]:
    ok = [n for n in nodes if n.status == "ok"]
    if allow_failed or not ok:
        return [n for n in nodes if n.finished]
    return ok


def _node_score(node: Node) -> float:
    score = as_float(node.score)
    return 0.0 if math.isnan(score) else score


def select_parents(
    tree: ExplorationTree,
    k: int,
    c: float | None = None,
    form: str | None = None,
    block: int | None = None,
    allow_failed: bool | None = None,
) -> list[int]:
    """Parent node ids for ``k`` slots of the next batch of ``block`` (see module docstring).

    Raises :class:`ExplorationError` when the block has no finished node to choose from.
    """
    c, form, block = _settings(tree, c, form, block)
    if allow_failed is None:
        allow_failed = bool(tree.experiment.get("allow_failed_parents", False))
    nodes = tree.block_nodes(block)
    candidates = _eligible(nodes, allow_failed)
    if not candidates:
        raise ExplorationError(
            f"{tree.path}: block {block} has no finished node to select a parent from "
            "(wait for the running batch)"
        )
    parents = {n.node_id: n.parent for n in nodes}
    virtual = 0
    chosen: list[int] = []
    for _ in range(k):
        visits = compute_visits(parents)
        total = len(parents)
        best = max(
            candidates,
            key=lambda n: (
                bonus_score(form, _node_score(n), visits[n.node_id], total, c),
                _node_score(n),
                -n.node_id,
            ),
        )
        chosen.append(best.node_id)
        virtual -= 1  # virtual children get negative ids, never clashing with real ones
        parents[virtual] = best.node_id
    return chosen


def ucb_table(
    tree: ExplorationTree,
    block: int | None = None,
    c: float | None = None,
    form: str | None = None,
) -> pd.DataFrame:
    """UCB scores of the finished nodes of ``block``, sorted by UCB (descending).

    Columns: ``node``, ``parent`` (``root`` or the id, as text), ``visits``, ``score``,
    ``UCB``, ``connectivity_R2``, ``test_pearson``, ``cluster_accuracy``, ``mutation``,
    ``status``, ``iteration``.  Ties keep the selection order (higher score, lower id).
    ``df.attrs`` holds ``block``, ``N``, ``c``, ``form`` and the block's iteration range.
    """
    c, form, block = _settings(tree, c, form, block)
    nodes = tree.block_nodes(block)
    visits = tree.visits(block)
    total = len(nodes)
    members = {n.node_id for n in nodes}
    rows = []
    for n in nodes:
        if not n.finished:
            continue
        score = _node_score(n)
        rows.append(
            {
                "node": n.node_id,
                "parent": str(n.parent) if n.parent in members else "root",
                "visits": visits[n.node_id],
                "score": score,
                "UCB": bonus_score(form, score, visits[n.node_id], total, c),
                "connectivity_R2": as_float(n.metrics.get("connectivity_R2")),
                "test_pearson": as_float(n.metrics.get("test_pearson")),
                "cluster_accuracy": as_float(n.metrics.get("cluster_accuracy")),
                "mutation": n.mutation_text,
                "status": n.status,
                "iteration": n.iteration,
            }
        )
    df = pd.DataFrame.from_records(rows, columns=UCB_COLUMNS)
    if not df.empty:
        df = df.sort_values(
            ["UCB", "score", "node"], ascending=[False, False, True], kind="stable"
        ).reset_index(drop=True)
        df["visits"] = df["visits"].astype("int64")
        df["node"] = df["node"].astype("int64")
    first, last = tree.block_bounds(block)
    df.attrs.update(block=block, N=total, c=c, form=form, first=first, last=last)
    return df


def _num(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def format_ucb_lines(table: pd.DataFrame) -> str:
    """The ``ucb_scores.txt`` text: a header and one ``Node i: UCB=...`` line per node."""
    a = table.attrs
    head = (
        f"=== UCB Scores (Simulation block {a.get('block')}, iters {a.get('first')}-"
        f"{a.get('last')}, N={a.get('N')}, c={a.get('c')}, form={a.get('form')}) ==="
    )
    lines = [head, ""]
    for row in table.itertuples(index=False):
        line = (
            f"Node {row.node}: UCB={_num(row.UCB)}, parent={row.parent}, visits={row.visits}, "
            f"score={_num(row.score)}, R2={_num(row.connectivity_R2)}, "
            f"cluster={_num(row.cluster_accuracy)}, Pearson={_num(row.test_pearson)}"
        )
        if row.status != "ok":
            line += f", status={row.status}"
        if row.mutation:
            line += f", Mutation={row.mutation}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_ucb_scores(
    tree: ExplorationTree,
    directory: str | os.PathLike | None = None,
    block: int | None = None,
    c: float | None = None,
    form: str | None = None,
) -> dict[str, Path]:
    """Write ``ucb_scores.txt`` (the reference layout) and ``ucb_scores.{parquet,csv,md}``.

    Only the nodes of ``block`` (default: the current block) appear, so at a block boundary
    the file lists no node (the instructions then say ``parent=root``).  Returns the paths.
    """
    directory = Path(tree.directory if directory is None else directory)
    table = ucb_table(tree, block=block, c=c, form=form)
    paths = write_table(table, directory / UCB_SCORES, floatfmt=".4f")
    txt = directory / f"{UCB_SCORES}.txt"
    with atomic_path(txt) as tmp:
        tmp.write_text(format_ucb_lines(table), encoding="utf-8")
    paths["txt"] = txt
    return paths


def ucb_rows(table: pd.DataFrame) -> list[Mapping]:
    """The table as a list of dicts (convenience for drivers and agents)."""
    return table.to_dict(orient="records")
