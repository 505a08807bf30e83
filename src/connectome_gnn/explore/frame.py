"""An exploration's nodes as a runs table (the column conventions of ``aggregate.tables.load_runs``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from ..aggregate.columns import KNOWN_METRICS
from ..config import format_sparsity
from .node import Node

__all__ = ["nodes_frame"]

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


def nodes_frame(
    nodes: Iterable[Node],
    family: str,
    blocks: Sequence[Mapping[str, Any]],
    cfg_name: Callable[[Node], str],
) -> pd.DataFrame:
    """One row per node, in the column conventions of ``aggregate.tables.load_runs``
    (``ExplorationTree.to_frame``).

    ``blocks``: the experiment's blocks (a node without ``sim`` settings takes its block's
    model and sparsity); ``cfg_name``: the name of a node's training configuration.
    Identity (``model``, ``sparsity`` text, ``filling_factor``, ``cfg`` = ``cfg_name(node)``,
    ``seed``), ``family``, ``status``, ``reason``, ``classification``, the node columns
    (``node_id``, ``iteration``, ``parent``, ``block``, ``batch``, ``slot``, ``source``,
    ``mutation`` text, ``score``, ``note``), the metrics (nested ones flattened, e.g.
    ``per_type_R2_0``), the training parameters (``param_<name>`` when a name clashes) and
    the simulation settings as ``sim_<key>``.  So every function of
    :mod:`connectome_gnn.aggregate.exploration` works on it as on a runs table.
    """
    nodes = list(nodes)
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
        sparsity = n.sim.get("sparsity", blocks[n.block]["sparsity"])
        row: dict[str, Any] = {
            "model": str(n.sim.get("model", blocks[n.block]["model"])),
            "sparsity": format_sparsity(sparsity),
            "filling_factor": float(sparsity),
            "cfg": cfg_name(n),
            "seed": int(n.sim.get("seed", 0)),
            "family": family,
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
