"""The runs table: its key columns, the metric names, and the column helpers of every table.

A *runs table* is the DataFrame of :func:`.tables.load_runs` (one row per ``metrics.json``) or
of ``ExplorationTree.to_frame`` (one row per exploration node, same column conventions).

The metric names are the generic ones (the analysis computes them for every family) and those
the families declare (``metric_names``, ``headline_metrics``, ``pareto_metrics``), which
:mod:`connectome_gnn.families` reads without importing a family module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..families import available_families, family_declaration

__all__ = [
    "CELL_KEYS",
    "CORE_METRICS",
    "ID_COLUMNS",
    "HEADLINE_METRICS",
    "KNOWN_METRICS",
    "OPTIONAL_METRICS",
    "PARETO_METRICS",
    "RECOVERY_METRICS",
    "REPLICATE_KEYS",
    "TRAINING_METRICS",
    "declared_metrics",
    "group_sizes",
    "is_ok",
    "numeric",
    "sort_runs",
]

#: Columns identifying a run; the runs table starts with them.
ID_COLUMNS = ("model", "sparsity", "filling_factor", "cfg", "seed")

#: Group keys of :func:`best_runs` / :func:`classification_counts`.
CELL_KEYS = ["model", "sparsity"]

#: Group keys of :func:`replicate_stats`.
REPLICATE_KEYS = ["model", "sparsity", "cfg"]

#: Metrics always summarised by :func:`replicate_stats` (NaN when absent).
CORE_METRICS = (
    "connectivity_R2",
    "cluster_accuracy",
    "test_R2",
    "test_pearson",
    "final_loss",
    "training_time_min",
)

#: Metrics of the analysis of every family (model recovery and rollout), in table order.
RECOVERY_METRICS = (
    "connectivity_R2",
    "connectivity_R2_raw",
    "connectivity_slope",
    "W_pearson",
    "sign_match",
    "MagRatio",
    "in_sum_pearson",
    "out_sum_pearson",
    "cluster_accuracy",
    "cluster_accuracy_single_linkage",
    "test_R2",
    "test_pearson",
    "data_mse_rel",
    "data_mse",
    "data_mse_true",
    "field_R2",
    "field_pearson",
)
#: Metrics of the training of every run (train_info.json).
TRAINING_METRICS = ("final_loss", "training_time_min")


def declared_metrics(key: str) -> tuple[str, ...]:
    """The metric names every registered family declares under ``key`` (``metric_names``,
    ``headline_metrics`` or ``pareto_metrics``; see :class:`connectome_gnn.families.Family`),
    family by family in name order, each once."""
    names: dict[str, None] = {}
    for family in available_families():
        names.update(dict.fromkeys(family_declaration(family, key)))
    return tuple(names)


#: Every scalar metric name known to the aggregator: the generic ones and every family's.
KNOWN_METRICS = (*RECOVERY_METRICS, *declared_metrics("metric_names"), *TRAINING_METRICS)
#: Metrics shown in the markdown views (parquet/CSV keep every column).
HEADLINE_METRICS = (
    "connectivity_R2",
    "cluster_accuracy",
    *declared_metrics("headline_metrics"),
    "field_R2",
    "test_R2",
    "test_pearson",
    *TRAINING_METRICS,
)
#: Metrics of the Pareto front and the default metrics of the other tables (those present).
PARETO_METRICS = (
    "connectivity_R2",
    "cluster_accuracy",
    "test_R2",
    *declared_metrics("pareto_metrics"),
    "field_R2",
)
#: Metrics only some runs have (field_R2: a learned input); see :func:`.stats.pareto_front`.
OPTIONAL_METRICS = ("field_R2",)


def numeric(df: pd.DataFrame, column: str) -> pd.Series:
    """Column as floats (NaN where missing or not numeric); all-NaN if the column is absent."""
    if column not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype="float64")
    values = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return values.where(np.isfinite(values))


def is_ok(df: pd.DataFrame) -> pd.Series:
    if "status" not in df.columns:
        return pd.Series(True, index=df.index)
    return df["status"].astype("string").str.strip().str.lower().eq("ok").fillna(False)


def group_sizes(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: its keys, filling_factor, n_runs and n_ok, in first-seen order."""
    frame = df[keys].copy()
    frame["filling_factor"] = df["filling_factor"] if "filling_factor" in df else np.nan
    frame["_ok"] = is_ok(df).astype("int64")
    sizes = frame.groupby(keys, sort=False, dropna=False).agg(
        filling_factor=("filling_factor", "first"),
        n_runs=("_ok", "size"),
        n_ok=("_ok", "sum"),
    )
    return sizes.reset_index()


def sort_runs(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Sort by model, numeric sparsity (then its text), cfg, seed - whichever are given."""
    by = []
    for key in keys:
        if key == "sparsity":
            by += ["filling_factor", "sparsity"]
        else:
            by.append(key)
    by = [c for c in by if c in df.columns]
    if not by or df.empty:
        return df.reset_index(drop=True)
    return df.sort_values(by, kind="stable", na_position="last").reset_index(drop=True)
