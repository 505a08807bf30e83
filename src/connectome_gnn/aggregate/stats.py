"""Statistics of an exploration (or of any set of runs): one DataFrame per question.

Every function takes a *runs table* (:mod:`.columns`).  Only ``ok`` runs enter statistics;
failed runs are counted.  Nothing here imports torch or reads anything but the table.
:func:`.report.exploration_summary` writes them all (the table list is in
:mod:`connectome_gnn.aggregate.exploration`).

A *configuration* is the set of training-parameter values of a run (columns named after
``train.schema.yaml``, or ``param_<name>``; ``description``, ``seed``, ``checkpoint_*`` and
``log_every`` excluded), so repeated runs of one configuration under different node / cfg
names are replicates.  Its label lists the parameters that vary within the table
(``lr_W=6E-4, coeff_W_L1=3E-5``).  Runs without training parameters (no ``run_config.json``)
fall back to their ``cfg`` name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..config import load_schema
from ..text import format_value, mean_std_text, natural_key
from .columns import OPTIONAL_METRICS, PARETO_METRICS, is_ok, numeric
from .tables import best_runs

__all__ = [
    "CONFIG_EXCLUDE",
    "best_configs",
    "config_labels",
    "metrics_present",
    "param_columns",
    "param_label",
    "parameter_effects",
    "pareto_front",
    "per_type_recovery",
    "replicate_cv",
    "sparsity_landscape",
    "type_difficulty_correlation",
    "value_text",
    "variance_by_config",
    "varying_params",
]

#: Training parameters that do not define a configuration.
CONFIG_EXCLUDE = frozenset(
    {"description", "seed", "checkpoint_every", "checkpoint_minutes", "log_every"}
)

PER_TYPE_PREFIX = "per_type_R2_"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _converged(df: pd.DataFrame) -> pd.Series:
    if "classification" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["classification"].astype("string").eq("converged").fillna(False)


def metrics_present(df: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    names = PARETO_METRICS if metrics is None else metrics
    if metrics is not None:
        return list(names)
    return [m for m in names if m in df.columns and numeric(df, m).notna().any()]


def param_label(column: str) -> str:
    return column[len("param_") :] if column.startswith("param_") else column


def value_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    try:
        if pd.isna(value):
            return "nan"
    except (TypeError, ValueError):
        pass
    return format_value(value)


def filling_factors(df: pd.DataFrame) -> pd.Series:
    """The filling factor of each row (column filling_factor, else sparsity), as numbers."""
    if "filling_factor" in df.columns:
        return pd.to_numeric(df["filling_factor"], errors="coerce")
    return pd.to_numeric(df.get("sparsity", pd.Series(np.nan, index=df.index)), errors="coerce")


def _cv(std: float, mean: float) -> float:
    if not (math.isfinite(std) and math.isfinite(mean)) or mean == 0:
        return math.nan
    return std / abs(mean)


def _std(values: np.ndarray, ddof: int) -> float:
    return float(np.std(values, ddof=ddof)) if len(values) > ddof else math.nan


def _run_labels(df: pd.DataFrame) -> pd.Series:
    """``N<id>`` for exploration nodes, else ``<cfg>`` (``<cfg>/seed<s>`` with several seeds)."""
    if "node_id" in df.columns:
        return df["node_id"].map(lambda i: f"N{int(i)}" if pd.notna(i) else "")
    cfg = df["cfg"].astype(str) if "cfg" in df.columns else pd.Series("", index=df.index)
    if "seed" in df.columns and df["seed"].nunique(dropna=True) > 1:
        return cfg + "/seed" + df["seed"].astype(str)
    return cfg


# --------------------------------------------------------------------------------------------
# configurations
# --------------------------------------------------------------------------------------------


def param_columns(runs: pd.DataFrame) -> list[str]:
    """Training-parameter columns of ``runs`` (train schema order; see :data:`CONFIG_EXCLUDE`)."""
    names = [n for n in load_schema("train")["properties"] if n not in CONFIG_EXCLUDE]
    out = []
    for name in names:
        if f"param_{name}" in runs.columns:
            out.append(f"param_{name}")
        elif name in runs.columns:
            out.append(name)
    return out


def varying_params(runs: pd.DataFrame, columns: Sequence[str] | None = None) -> list[str]:
    """Parameter columns taking more than one value in ``runs`` (missing values ignored)."""
    columns = param_columns(runs) if columns is None else list(columns)
    return [c for c in columns if c in runs and runs[c].dropna().map(value_text).nunique() > 1]


def _config_keys(runs: pd.DataFrame) -> pd.Series:
    cols = param_columns(runs)
    if not cols:
        return runs["cfg"].astype(str) if "cfg" in runs else pd.Series("", index=runs.index)
    present = runs[cols].notna().any(axis=1)
    text = runs[cols].apply(lambda row: "|".join(value_text(v) for v in row), axis=1)
    cfg = runs["cfg"].astype(str) if "cfg" in runs else pd.Series("", index=runs.index)
    return text.where(present, "cfg:" + cfg)


def config_labels(runs: pd.DataFrame, params: Sequence[str] | None = None) -> pd.Series:
    """Readable configuration of each run: ``p=v`` for the parameters varying in ``runs``.

    Runs without parameter values get their ``cfg``; when no parameter varies the label is
    ``(same configuration)``.
    """
    if runs.empty:
        return pd.Series([], dtype="object", index=runs.index)
    params = varying_params(runs) if params is None else list(params)
    cfg = runs["cfg"].astype(str) if "cfg" in runs else pd.Series("", index=runs.index)
    if not params:
        has = runs[param_columns(runs)].notna().any(axis=1) if param_columns(runs) else None
        if has is None:
            return cfg
        return pd.Series("(same configuration)", index=runs.index).where(has, cfg)
    text = runs[params].apply(
        lambda row: ", ".join(f"{param_label(p)}={value_text(v)}" for p, v in row.items()), axis=1
    )
    present = runs[params].notna().any(axis=1)
    return text.where(present, cfg)


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def best_configs(
    runs: pd.DataFrame, score_weights: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """:func:`.tables.best_runs` plus a ``config`` column (the best run's parameter values)."""
    best = best_runs(runs, score_weights)
    if best.empty:
        return best.assign(config=pd.Series(dtype="object"))
    labels = config_labels(runs)
    params = varying_params(runs)
    if params:
        text = best[params].apply(
            lambda row: ", ".join(f"{param_label(p)}={value_text(v)}" for p, v in row.items()),
            axis=1,
        )
        best["config"] = text.where(best["status"].eq("ok"), "")
    else:
        best["config"] = [
            labels[(runs["cfg"] == c)].iloc[0] if (runs["cfg"] == c).any() else ""
            for c in best["cfg"]
        ]
    cols = list(best.columns)
    cols.remove("config")
    at = cols.index("cfg") + 1 if "cfg" in cols else len(cols)
    return best[cols[:at] + ["config"] + cols[at:]]


def parameter_effects(
    runs: pd.DataFrame,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """For each model, parameter and value tried: runs and mean/min/max of each metric.

    Columns: ``model``, ``param``, ``value`` (text, e.g. ``6E-4``), ``value_num`` (float, NaN
    for non-numbers), ``n_runs``, ``n_ok``, ``n_converged``, then ``<m>_mean``, ``<m>_min``,
    ``<m>_max`` for each metric over the ``ok`` runs.  ``params`` defaults to the varying
    parameter columns (``param_<name>`` columns are reported under ``<name>``); ``metrics``
    to :data:`PARETO_METRICS` present.  Rows are ordered by model, parameter (in ``params``
    order) and numeric (else text) value.
    """
    params = varying_params(runs) if params is None else list(params)
    metrics = metrics_present(runs, metrics)
    stat_cols = [f"{m}_{s}" for m in metrics for s in ("mean", "min", "max")]
    cols = ["model", "param", "value", "value_num", "n_runs", "n_ok", "n_converged", *stat_cols]
    if runs.empty or not params:
        return pd.DataFrame(columns=cols)
    ok = is_ok(runs)
    conv = _converged(runs)
    values = {m: numeric(runs, m) for m in metrics}
    records = []
    for model in sorted(runs["model"].astype(str).unique()):
        in_model = runs["model"].astype(str).eq(model)
        for param in params:
            if param not in runs.columns:
                continue
            column = runs[param]
            texts = column.map(value_text)
            keep = in_model & column.notna()
            seen = {}
            for idx in runs.index[keep]:
                seen.setdefault(texts[idx], column[idx])
            order = sorted(
                seen,
                key=lambda t: (0, float(seen[t]), t) if _is_number(seen[t]) else (1, 0.0, t),
            )
            for text in order:
                sel = keep & texts.eq(text)
                row = {
                    "model": model,
                    "param": param_label(param),
                    "value": text,
                    "value_num": float(seen[text]) if _is_number(seen[text]) else math.nan,
                    "n_runs": int(sel.sum()),
                    "n_ok": int((sel & ok).sum()),
                    "n_converged": int((sel & ok & conv).sum()),
                }
                for m in metrics:
                    v = values[m][sel & ok].dropna()
                    row[f"{m}_mean"] = float(v.mean()) if len(v) else math.nan
                    row[f"{m}_min"] = float(v.min()) if len(v) else math.nan
                    row[f"{m}_max"] = float(v.max()) if len(v) else math.nan
                records.append(row)
    return pd.DataFrame.from_records(records, columns=cols)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _config_groups(runs: pd.DataFrame):
    """(keys frame, labels) where keys = model, sparsity, filling_factor, config key."""
    keys = pd.DataFrame(
        {
            "model": runs["model"].astype(str),
            "sparsity": runs["sparsity"].astype(str),
            "filling_factor": filling_factors(runs),
            "ckey": _config_keys(runs),
        },
        index=runs.index,
    )
    return keys, config_labels(runs)


def _sorted_groups(keys: pd.DataFrame, labels: pd.Series) -> list[tuple]:
    """Group tuples ordered by model, filling factor (descending), configuration label."""
    first = keys.assign(clabel=labels).drop_duplicates(["model", "sparsity", "ckey"])
    first = first.assign(_ff=-first["filling_factor"].fillna(-np.inf))
    first = first.sort_values(["model", "_ff", "sparsity", "clabel"], kind="stable")
    return [
        (r.model, r.sparsity, r.filling_factor, r.ckey, r.clabel)
        for r in first.itertuples(index=False)
    ]


def replicate_cv(
    runs: pd.DataFrame, metrics: Sequence[str] | None = None, ddof: int = 1
) -> pd.DataFrame:
    """Replicate statistics per identical configuration (per model and sparsity).

    Columns: ``model``, ``sparsity``, ``filling_factor``, ``config``, ``n_runs``, ``n_ok``,
    ``runs`` (node ids ``N62, N81`` or cfg names), then per metric ``<m>_mean``, ``<m>_std``
    (``ddof`` = 1 by default, as :func:`.tables.replicate_stats`; seed 001's "CV=3.30%" for
    0.931/0.859/0.923/0.930 is the ``ddof=0`` value), ``<m>_cv`` (std / |mean|, NaN for a
    single run) and ``<m>_mean_std`` text.  Only ``ok`` runs enter the statistics.
    """
    metrics = metrics_present(runs, metrics)
    stat = [f"{m}_{s}" for m in metrics for s in ("mean", "std", "cv", "mean_std")]
    cols = ["model", "sparsity", "filling_factor", "config", "n_runs", "n_ok", "runs", *stat]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    keys, labels = _config_groups(runs)
    ok = is_ok(runs)
    names = _run_labels(runs)
    values = {m: numeric(runs, m) for m in metrics}
    records = []
    for model, sparsity, ff, key, label in _sorted_groups(keys, labels):
        sel = keys["model"].eq(model) & keys["sparsity"].eq(sparsity) & keys["ckey"].eq(key)
        row = {
            "model": model,
            "sparsity": sparsity,
            "filling_factor": ff,
            "config": label,
            "n_runs": int(sel.sum()),
            "n_ok": int((sel & ok).sum()),
            "runs": ", ".join(names[sel]),
        }
        for m in metrics:
            v = values[m][sel & ok].dropna().to_numpy()
            mean = float(v.mean()) if len(v) else math.nan
            std = _std(v, ddof)
            row[f"{m}_mean"] = mean
            row[f"{m}_std"] = std
            row[f"{m}_cv"] = _cv(std, mean)
            row[f"{m}_mean_std"] = mean_std_text(mean, std, ".4f", std_optional=True)
        records.append(row)
    return pd.DataFrame.from_records(records, columns=cols)


def variance_by_config(runs: pd.DataFrame, metric: str, ddof: int = 1) -> pd.DataFrame:
    """Variance analysis of one metric per configuration (seed 003's V_rest table).

    One row per (model, sparsity, configuration) with at least one ``ok`` run with a finite
    value: ``metric``, ``config``, ``n_runs``, ``runs`` (``N62, N81``), ``values``
    (``0.559, 0.264``, 3 decimals), ``range`` (max - min; NaN for one run), ``mean``, ``std``
    (``ddof``), ``cv``.  Ordered by model, filling factor (descending), mean (descending).
    """
    cols = ["model", "sparsity", "filling_factor", "metric", "config", "n_runs", "runs"]
    cols += ["values", "range", "mean", "std", "cv"]
    if runs.empty or metric not in runs.columns:
        return pd.DataFrame(columns=cols)
    keys, labels = _config_groups(runs)
    value = numeric(runs, metric)
    ok = is_ok(runs) & value.notna()
    names = _run_labels(runs)
    records = []
    for model, sparsity, ff, key, label in _sorted_groups(keys, labels):
        sel = keys["model"].eq(model) & keys["sparsity"].eq(sparsity) & keys["ckey"].eq(key)
        sel = sel & ok
        if not sel.any():
            continue
        v = value[sel].to_numpy()
        mean = float(v.mean())
        std = _std(v, ddof)
        records.append(
            {
                "model": model,
                "sparsity": sparsity,
                "filling_factor": ff,
                "metric": metric,
                "config": label,
                "n_runs": int(len(v)),
                "runs": ", ".join(names[sel]),
                "values": ", ".join(f"{x:.3f}" for x in v),
                "range": float(v.max() - v.min()) if len(v) > 1 else math.nan,
                "mean": mean,
                "std": std,
                "cv": _cv(std, mean),
            }
        )
    out = pd.DataFrame.from_records(records, columns=cols)
    if not out.empty:
        out = (
            out.assign(_ff=-out["filling_factor"].fillna(-np.inf))
            .sort_values(
                ["model", "_ff", "sparsity", "mean"], ascending=[1, 1, 1, 0], kind="stable"
            )
            .drop(columns="_ff")
            .reset_index(drop=True)
        )
    return out


def pareto_front(
    runs: pd.DataFrame,
    metrics: Sequence[str] = PARETO_METRICS,
    by: Sequence[str] = ("model",),
) -> pd.DataFrame:
    """The non-dominated ``ok`` runs per ``by`` group, maximising every metric.

    Only the metrics of ``metrics`` present in ``runs`` (with a finite value somewhere) are
    used; a run lacking a finite value of one of them is left out.  A run is dominated when
    another is >= on every metric and > on one; equal runs are all kept.  Columns: the ``by``
    keys, ``sparsity``, ``filling_factor``, ``cfg``, ``seed`` (and ``node_id`` when
    present), ``config``, the metrics and ``best_in`` (the metrics on which the run is the
    best of its group, as seed 003's "Best conn" / "Best V_rest" rows).  ``attrs["metrics"]``
    lists the metrics used.  Ordered by group, then the first metric (descending).
    """
    used = [m for m in metrics if m in runs.columns and numeric(runs, m).notna().any()]
    ident = [c for c in ("sparsity", "filling_factor", "cfg", "seed", "node_id") if c in runs]
    ident = [c for c in ident if c not in by]
    cols = [*by, *ident, "config", *used, "best_in"]
    if runs.empty or not used:
        out = pd.DataFrame(columns=cols)
        out.attrs["metrics"] = used
        return out
    labels = config_labels(runs)
    vals = pd.DataFrame({m: numeric(runs, m) for m in used}, index=runs.index)
    # an optional metric (field_R2: runs that learn their input) that some ok runs lack is
    # ignored in their group's comparison, rather than leaving those runs out
    ok = is_ok(runs)
    for m in OPTIONAL_METRICS:
        if m in used:
            lacking = (ok & vals[m].isna()).groupby([runs[b] for b in by], dropna=False)
            vals.loc[lacking.transform("any").to_numpy(), m] = -np.inf
    keep = ok & vals.notna().all(axis=1)
    pool = runs[keep]
    records = []
    groups = pool.groupby(list(by), sort=True, dropna=False) if len(pool) else []
    for _, group in groups:
        x = vals.loc[group.index].to_numpy()
        n = len(x)
        dominated = np.zeros(n, dtype=bool)
        for i in range(n):
            ge = (x >= x[i]).all(axis=1)
            gt = (x > x[i]).any(axis=1)
            dominated[i] = bool((ge & gt).any())
        best = x.max(axis=0)
        for i in np.flatnonzero(~dominated):
            idx = group.index[i]
            row = {c: runs.at[idx, c] for c in (*by, *ident)}
            row["config"] = labels[idx]
            row.update(
                {m: float(x[i, j]) if x[i, j] > -np.inf else np.nan for j, m in enumerate(used)}
            )
            row["best_in"] = ", ".join(
                m for j, m in enumerate(used) if x[i, j] == best[j] and best[j] > -np.inf
            )
            records.append(row)
    out = pd.DataFrame.from_records(records, columns=cols)
    if not out.empty:
        out = out.sort_values(
            [*by, used[0]], ascending=[True] * len(by) + [False], kind="stable"
        ).reset_index(drop=True)
    out.attrs["metrics"] = used
    return out


def sparsity_landscape(
    runs: pd.DataFrame,
    score_weights: Mapping[str, float] | None = None,
    params: Sequence[str] = ("lr_W", "coeff_W_L1"),
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Best metrics per (model, filling factor) - seed 004's Sparsity Comparison Table.

    Columns: ``model``, ``sparsity``, ``filling_factor``, ``sparsity_pct`` (``50%``),
    ``n_runs``, ``n_ok``, ``n_converged``, ``best_<m>`` (max over ok runs) for each metric
    (default :data:`PARETO_METRICS` present), then the best-scoring run
    (:func:`.tables.best_runs`): ``best_score``, ``best_cfg``, ``best_config`` and
    ``best_<param>`` for ``params`` present (the seed's "Optimal L1", "Optimal lr_W").
    Ordered by model, then filling factor from dense to sparse.
    """
    metrics = metrics_present(runs, metrics)
    params = [p for p in params if p in runs.columns or f"param_{p}" in runs.columns]
    cols = ["model", "sparsity", "filling_factor", "sparsity_pct", "n_runs", "n_ok"]
    cols += ["n_converged", *[f"best_{m}" for m in metrics], "best_score", "best_cfg"]
    cols += ["best_config", *[f"best_{p}" for p in params]]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    best = best_configs(runs, score_weights)
    ok = is_ok(runs)
    conv = _converged(runs)
    ff = filling_factors(runs)
    records = []
    keys = pd.DataFrame({"model": runs["model"].astype(str), "sparsity": runs["sparsity"]})
    keys = keys.assign(filling_factor=ff).drop_duplicates(["model", "sparsity"])
    keys = keys.assign(_ff=-keys["filling_factor"].fillna(-np.inf)).sort_values(
        ["model", "_ff"], kind="stable"
    )
    for key in keys.itertuples(index=False):
        sel = runs["model"].astype(str).eq(key.model) & runs["sparsity"].eq(key.sparsity)
        f = key.filling_factor
        row = {
            "model": key.model,
            "sparsity": key.sparsity,
            "filling_factor": f,
            "sparsity_pct": f"{f * 100:g}%" if math.isfinite(f) else "",
            "n_runs": int(sel.sum()),
            "n_ok": int((sel & ok).sum()),
            "n_converged": int((sel & ok & conv).sum()),
        }
        for m in metrics:
            v = numeric(runs, m)[sel & ok].dropna()
            row[f"best_{m}"] = float(v.max()) if len(v) else math.nan
        b = best[best["model"].astype(str).eq(key.model) & best["sparsity"].eq(key.sparsity)]
        b = b.iloc[0] if len(b) else None
        has = b is not None and b.get("status") == "ok"
        row["best_score"] = float(b["score"]) if has else math.nan
        row["best_cfg"] = b["cfg"] if has else None
        row["best_config"] = b.get("config") if has else None
        for p in params:
            col = f"param_{p}" if f"param_{p}" in runs.columns else p
            row[f"best_{p}"] = b[col] if has else None
        records.append(row)
    return pd.DataFrame.from_records(records, columns=cols)


def _type_columns(runs: pd.DataFrame) -> list[str]:
    cols = [c for c in runs.columns if str(c).startswith(PER_TYPE_PREFIX)]
    return sorted(cols, key=lambda c: natural_key(c[len(PER_TYPE_PREFIX) :]))


def per_type_recovery(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model and neuron type: statistics of the per-type R2 over the ``ok`` runs.

    From the ``per_type_R2_<type>`` columns.  Columns: ``model``, ``type`` (text),
    ``n_runs`` (ok runs with a finite value), ``mean``, ``std`` (ddof 1), ``min``, ``max``,
    ``rank`` (1 = hardest type of the model, by mean; ties share the lowest rank).
    """
    cols = ["model", "type", "n_runs", "mean", "std", "min", "max", "rank"]
    types = _type_columns(runs)
    if runs.empty or not types:
        return pd.DataFrame(columns=cols)
    ok = is_ok(runs)
    records = []
    for model in sorted(runs["model"].astype(str).unique()):
        sel = runs["model"].astype(str).eq(model) & ok
        rows = []
        for col in types:
            v = numeric(runs, col)[sel].dropna().to_numpy()
            if not len(v):
                continue
            rows.append(
                {
                    "model": model,
                    "type": col[len(PER_TYPE_PREFIX) :],
                    "n_runs": int(len(v)),
                    "mean": float(v.mean()),
                    "std": _std(v, 1),
                    "min": float(v.min()),
                    "max": float(v.max()),
                }
            )
        ranks = pd.Series([r["mean"] for r in rows]).rank(method="min")
        for r, rank in zip(rows, ranks, strict=True):
            r["rank"] = int(rank)
        records += rows
    out = pd.DataFrame.from_records(records, columns=cols)
    if not out.empty:
        out["rank"] = out["rank"].astype("int64")
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    return float((da * db).sum()) / denom if denom > 0 else math.nan


def type_difficulty_correlation(runs: pd.DataFrame) -> pd.DataFrame:
    """Are the same neuron types hard in every model? (seed 000)

    For each pair of models (``model_a`` < ``model_b``), the Pearson and Spearman
    correlations of their per-type mean R2 (:func:`per_type_recovery`) over the types both
    have (``n_types``).  NaN with fewer than 2 common types or a constant profile.
    """
    cols = ["model_a", "model_b", "n_types", "pearson", "spearman"]
    table = per_type_recovery(runs)
    if table.empty:
        return pd.DataFrame(columns=cols)
    wide = table.pivot(index="type", columns="model", values="mean")
    models = sorted(wide.columns)
    records = []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            pair = wide[[a, b]].dropna()
            x, y = pair[a].to_numpy(float), pair[b].to_numpy(float)
            rx = pair[a].rank(method="average").to_numpy(float)
            ry = pair[b].rank(method="average").to_numpy(float)
            records.append(
                {
                    "model_a": a,
                    "model_b": b,
                    "n_types": int(len(pair)),
                    "pearson": _pearson(x, y),
                    "spearman": _pearson(rx, ry),
                }
            )
    return pd.DataFrame.from_records(records, columns=cols)
