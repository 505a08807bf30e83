"""The run tables of rule aggregate, from per-run ``metrics.json`` files.

Each trained run lives at ``results/{model}/{sparsity}/{cfg}/seed{seed}/`` and holds a flat
``metrics.json`` plus (optionally) ``train/run_config.json``.  This module only reads those JSON
files - it never imports torch - so aggregating a thousand runs takes a few seconds.

Tables (written by :func:`.report.aggregate`):

``runs``
    one row per run: identity columns, every metric (nested objects such as ``per_type_R2``
    flattened to ``per_type_R2_<t>``), training hyper-parameters (named as in the config, or
    ``param_<name>`` where that would clash), simulation settings as ``sim_<key>``, the
    :func:`classify` label and ``run_dir``.
``best``
    the best ``ok`` run per (model, sparsity) by a weighted score (:func:`best_runs`).
``replicates``
    mean / std over seeds per (model, sparsity, cfg) (:func:`replicate_stats`).
``classification``
    counts of each classification label per (model, sparsity) (:func:`classification_counts`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import DataError
from ..layout import RUN_CONFIG, TRAIN, parse_run_dir
from ..text import as_float, mean_std_text, natural_key
from .columns import (
    CELL_KEYS,
    CORE_METRICS,
    HEADLINE_METRICS,
    ID_COLUMNS,
    KNOWN_METRICS,
    REPLICATE_KEYS,
    group_sizes,
    is_ok,
    numeric,
    sort_runs,
)
from .scores import row_scores, weighted_metrics

__all__ = [
    "CLASSIFICATIONS",
    "best_runs",
    "classification_counts",
    "classify",
    "default_replicate_metrics",
    "load_runs",
    "replicate_stats",
]

RUN_CONFIG_FILE = Path(TRAIN) / RUN_CONFIG

#: Classification labels, best first.
CLASSIFICATIONS = ("converged", "partial-W", "partial-E", "partial", "failed")

#: Threshold above which connectivity / clustering counts as recovered.
GOOD = 0.9

#: Threshold below which both together count as a failure.
BAD = 0.1

# columns that are added by the aggregator itself; a training parameter never takes these names
_DERIVED_COLUMNS = ("filling_factor", "classification", "run_dir", "score", "n_runs", "n_ok")

_ID_KEYS = ("model", "sparsity", "cfg", "seed")


# --------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------


def classify(connectivity_R2: Any, cluster_accuracy: Any, status: Any = "ok") -> str:
    """Label a run from its connectivity R2 and clustering accuracy.

    ======================================  ===============
    condition (checked in this order)        label
    ======================================  ===============
    status is not "ok", or a metric missing  ``failed``
    R2 > 0.9 and acc > 0.9                   ``converged``
    R2 > 0.9 and acc <= 0.9                  ``partial-W``
    R2 <= 0.9 and acc > 0.9                  ``partial-E``
    R2 < 0.1 and acc < 0.1                   ``failed``
    otherwise                                ``partial``
    ======================================  ===============

    A metric is missing when it is None, NaN/inf or not a number.  Thresholds are strict:
    exactly 0.9 is *not* above 0.9 and exactly 0.1 is *not* below 0.1.
    """
    if str(status).strip().lower() != "ok":
        return "failed"
    r2 = as_float(connectivity_R2)
    acc = as_float(cluster_accuracy)
    if math.isnan(r2) or math.isnan(acc):
        return "failed"
    if r2 > GOOD and acc > GOOD:
        return "converged"
    if r2 > GOOD:
        return "partial-W"
    if acc > GOOD:
        return "partial-E"
    if r2 < BAD and acc < BAD:
        return "failed"
    return "partial"


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def _read_json_object(path: Path) -> dict:
    """Read a JSON object from ``path``; any problem raises one :class:`DataError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read file ({type(exc).__name__}: {exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _scalar(value: Any) -> Any:
    """A value storable in one table cell: lists/tuples become JSON text."""
    if isinstance(value, list | tuple):
        return json.dumps(value)
    return value


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to ``<prefix><key>_<subkey>`` scalar entries.

    Sub-keys of a nested mapping are ordered naturally (``0, 1, ..., 10``).
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            nested = _flatten(value, prefix=f"{name}_")
            for sub in sorted(nested, key=natural_key):
                out[sub] = nested[sub]
        else:
            out[name] = _scalar(value)
    return out


def _sparsity_text(value: Any) -> Any:
    """Sparsity as the text used in result paths (``1``, ``0.5``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return format(float(value), "g")
    return str(value)


def _filling_factor(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x


def _read_run(metrics_path: Path) -> dict[str, Any]:
    """Raw parts of one run: flattened metrics, training params, simulation settings."""
    metrics = _read_json_object(metrics_path)
    config_path = metrics_path.parent / RUN_CONFIG_FILE
    config = _read_json_object(config_path) if config_path.is_file() else {}

    ids: dict[str, Any] = {}
    from_path = None
    for key in _ID_KEYS:
        value = metrics.get(key, config.get(key))
        if value is None:
            if from_path is None:
                from_path = parse_run_dir(metrics_path) or {}
            value = from_path.get(key)
        if value is None:
            raise DataError(f"{metrics_path}: no {key!r} in the file, its run_config or its path")
        ids[key] = value
    ids["sparsity"] = _sparsity_text(ids["sparsity"])
    try:
        ids["seed"] = int(ids["seed"])
    except (TypeError, ValueError):
        raise DataError(f"{metrics_path}: seed {ids['seed']!r} is not an integer") from None
    ids["model"] = str(ids["model"])
    ids["cfg"] = str(ids["cfg"])

    body = {k: v for k, v in metrics.items() if k not in _ID_KEYS}
    for key in HEADLINE_METRICS:
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise DataError(
                f"{metrics_path}: field {key!r} must be a number or null, got {value!r}"
            )
    flat = _flatten(body)
    nested = {k for k in flat if k not in body}
    status = flat.get("status")
    flat["status"] = "ok" if status is None else str(status).strip().lower()
    flat.setdefault("reason", None)

    training = config.get("training") or {}
    simulation = config.get("simulation") or {}
    if not isinstance(training, Mapping) or not isinstance(simulation, Mapping):
        raise DataError(f"{config_path}: 'training' and 'simulation' must be JSON objects")
    return {
        "ids": ids,
        "metrics": flat,
        "nested": nested,
        "training": _flatten(training),
        "simulation": _flatten(simulation, prefix="sim_"),
        "run_dir": str(metrics_path.parent),
    }


def _normalise_paths(metrics_paths: Iterable[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    if isinstance(metrics_paths, str | os.PathLike):
        return [Path(metrics_paths)]
    return [Path(p) for p in metrics_paths]


def load_runs(metrics_paths: Iterable[str | os.PathLike] | str | os.PathLike) -> pd.DataFrame:
    """Load runs into a DataFrame, one row per ``metrics.json``.

    For every ``metrics.json`` the sibling ``train/run_config.json`` is read when it exists (a
    missing one just leaves that run's parameter columns empty).  Columns:

    - ``model``, ``sparsity`` (text, as in the result path), ``filling_factor`` (float),
      ``cfg``, ``seed`` (int), then ``family``, ``status``, ``reason``, ``classification``;
    - every other metric of ``metrics.json``; nested objects are flattened, so
      ``per_type_R2 = {"0": .., "1": ..}`` becomes ``per_type_R2_0``, ``per_type_R2_1``;
    - training hyper-parameters under their own name (``lr_W``, ``batch_size``, ...), or
      ``param_<name>`` when the name is already a metric or identity column;
    - simulation settings as ``sim_<key>``;
    - ``run_dir``: the directory holding ``metrics.json``.

    Identity keys missing from ``metrics.json`` are taken from ``run_config.json`` or, failing
    that, from the path ``{model}/{sparsity}/{cfg}/seed{seed}/metrics.json``.  Rows are sorted
    by model, numeric sparsity, cfg and seed.

    Raises
    ------
    ValueError
        (:class:`connectome_gnn.io.DataError`) naming the file when a metrics or run_config
        file is missing, unreadable, not valid JSON or not a JSON object.
    """
    paths = _normalise_paths(metrics_paths)
    runs = [_read_run(p) for p in paths]

    # global column naming, so a parameter maps to the same column in every run
    metric_cols: dict[str, None] = {}
    nested_cols: set[str] = set()
    for run in runs:
        metric_cols.update(dict.fromkeys(run["metrics"]))
        nested_cols |= run["nested"]
    taken = set(metric_cols) | set(ID_COLUMNS) | set(_DERIVED_COLUMNS)

    def param_name(name: str) -> str:
        return f"param_{name}" if name in taken else name

    records = []
    param_cols: dict[str, None] = {}
    sim_cols: dict[str, None] = {}
    for run in runs:
        row = dict(run["ids"])
        row["filling_factor"] = _filling_factor(row["sparsity"])
        row.update(run["metrics"])
        for key, value in run["training"].items():
            name = param_name(key)
            param_cols[name] = None
            row[name] = value
        for key, value in run["simulation"].items():
            name = param_name(key)
            sim_cols[name] = None
            row[name] = value
        row["classification"] = classify(
            row.get("connectivity_R2"), row.get("cluster_accuracy"), row["status"]
        )
        row["run_dir"] = run["run_dir"]
        records.append(row)

    lead = [*ID_COLUMNS, "family", "status", "reason", "classification"]
    rest_metrics = [c for c in metric_cols if c not in lead]
    columns = [*lead, *rest_metrics, *param_cols, *sim_cols, "run_dir"]
    df = (
        pd.DataFrame.from_records(records, columns=columns)
        if records
        else pd.DataFrame(columns=columns)
    )
    if not df.empty:
        df["seed"] = df["seed"].astype("int64")
        df["filling_factor"] = df["filling_factor"].astype("float64")
    df = sort_runs(df, REPLICATE_KEYS + ["seed"])
    # scalar metrics (not flattened nested objects): the columns of the markdown views
    df.attrs["metric_columns"] = [c for c in rest_metrics if c not in nested_cols]
    return df


# --------------------------------------------------------------------------------------------
# derived tables
# --------------------------------------------------------------------------------------------


def best_runs(df: pd.DataFrame, score_weights: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Best ``ok`` run per (model, sparsity) by a weighted score.

    ``score = sum(weight * metric)`` over ``score_weights``, by default those of each run's
    family (:func:`.scores.row_scores`; signal and flyvis: ``{"connectivity_R2": 0.6,
    "cluster_accuracy": 0.4}``).  A run whose status is not ``ok`` or
    that misses one of the weighted metrics cannot be best; ties go to the first run in
    (cfg, seed) order.  The result has the runs-table columns plus ``score``, ``n_runs`` and
    ``n_ok``.  A (model, sparsity) cell with no eligible run still gets a row, with status
    ``failed``, a ``reason`` and NaN metrics, so empty cells stay visible.
    """
    if score_weights is not None and not score_weights:
        raise ValueError("score_weights must name at least one metric")
    base_cols = [c for c in df.columns]
    cols = _insert_after(base_cols, "classification", ["score", "n_runs", "n_ok"])
    if df.empty:
        return pd.DataFrame(columns=cols)

    scored = df.assign(score=row_scores(df, score_weights))

    sizes = group_sizes(df, CELL_KEYS)
    records = []
    groups = scored.groupby(CELL_KEYS, sort=False, dropna=False)
    for _, cell in sizes.iterrows():
        key = (cell["model"], cell["sparsity"])
        members = groups.get_group(key)
        if members["score"].notna().any():
            row = members.loc[members["score"].idxmax()].to_dict()
        else:
            missing = ", ".join(weighted_metrics(members, score_weights))
            reason = "no ok run" if cell["n_ok"] == 0 else f"no ok run with finite {missing}"
            row = {
                "model": cell["model"],
                "sparsity": cell["sparsity"],
                "filling_factor": cell["filling_factor"],
                "status": "failed",
                "reason": reason,
                "classification": "failed",
            }
        row["n_runs"] = int(cell["n_runs"])
        row["n_ok"] = int(cell["n_ok"])
        records.append(row)
    out = pd.DataFrame.from_records(records, columns=cols)
    out["seed"] = pd.to_numeric(out["seed"], errors="coerce").astype("Int64")
    out["score"] = pd.to_numeric(out["score"], errors="coerce").astype("float64")
    out = sort_runs(out, CELL_KEYS)
    out.attrs = dict(df.attrs)
    return out


def _insert_after(columns: list[str], anchor: str, new: list[str]) -> list[str]:
    columns = [c for c in columns if c not in new]
    pos = columns.index(anchor) + 1 if anchor in columns else len(columns)
    return columns[:pos] + new + columns[pos:]


def default_replicate_metrics(df: pd.DataFrame) -> list[str]:
    """Metrics :func:`replicate_stats` summarises by default.

    :data:`CORE_METRICS` always, plus every other name of :data:`KNOWN_METRICS` present in
    ``df`` (e.g. ``tau_R2``, ``V_rest_R2``), in :data:`KNOWN_METRICS` order.
    """
    return [m for m in KNOWN_METRICS if m in CORE_METRICS or m in df.columns]


def replicate_stats(df: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and spread over seeds per (model, sparsity, cfg).

    Columns: ``model``, ``sparsity``, ``filling_factor``, ``cfg``, ``n_runs`` (all runs),
    ``n_ok`` (status ``ok``) and for each metric ``<m>_mean``, ``<m>_std`` (sample std,
    ddof=1, NaN for a single run) and ``<m>_mean_std`` (text such as ``0.9912 ± 0.0031``).

    Only ``ok`` runs enter the statistics; missing (None/NaN) values of an ok run are skipped.
    ``metrics`` defaults to :func:`default_replicate_metrics`; a metric absent from ``df`` gives
    NaN statistics.
    """
    metrics = list(default_replicate_metrics(df) if metrics is None else metrics)
    stat_cols = [f"{m}_{s}" for m in metrics for s in ("mean", "std", "mean_std")]
    cols = [*REPLICATE_KEYS[:2], "filling_factor", REPLICATE_KEYS[2], "n_runs", "n_ok", *stat_cols]
    if df.empty:
        return pd.DataFrame(columns=cols)

    sizes = group_sizes(df, REPLICATE_KEYS).set_index(REPLICATE_KEYS)
    ok = is_ok(df)
    values = pd.DataFrame({m: numeric(df, m) for m in metrics}, index=df.index)
    values = pd.concat([df[REPLICATE_KEYS], values], axis=1)[ok]
    grouped = values.groupby(REPLICATE_KEYS, sort=False, dropna=False)
    means = grouped[metrics].mean().reindex(sizes.index)
    stds = grouped[metrics].std(ddof=1).reindex(sizes.index)

    out = sizes.copy()
    for m in metrics:
        out[f"{m}_mean"] = means[m].astype("float64")
        out[f"{m}_std"] = stds[m].astype("float64")
        out[f"{m}_mean_std"] = [
            mean_std_text(a, b) for a, b in zip(out[f"{m}_mean"], out[f"{m}_std"], strict=True)
        ]
    out = out.reset_index()[cols]
    out["n_runs"] = out["n_runs"].astype("int64")
    out["n_ok"] = out["n_ok"].astype("int64")
    return sort_runs(out, REPLICATE_KEYS)


def classification_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Number of runs of each classification label per (model, sparsity).

    Columns: ``model``, ``sparsity``, ``filling_factor``, one integer column per label of
    :data:`CLASSIFICATIONS` (zero when absent) and ``n_runs``.
    """
    cols = [*CELL_KEYS, "filling_factor", *CLASSIFICATIONS, "n_runs"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    sizes = group_sizes(df, CELL_KEYS).set_index(CELL_KEYS)
    labels = df["classification"] if "classification" in df else pd.Series("failed", df.index)
    counts = (
        pd.crosstab([df["model"], df["sparsity"]], labels.astype("string"))
        .reindex(index=sizes.index, columns=list(CLASSIFICATIONS), fill_value=0)
        .fillna(0)
        .astype("int64")
    )
    out = pd.concat([sizes[["filling_factor"]], counts, sizes[["n_runs"]]], axis=1)
    out = out.reset_index()[cols]
    out.columns.name = None
    return sort_runs(out, CELL_KEYS)
