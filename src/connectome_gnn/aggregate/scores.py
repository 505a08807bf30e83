"""The score of a run: ``sum(weight * metric)`` with the weights of the run's family.

Each family declares its ``score_weights`` (:mod:`connectome_gnn.families`; signal and flyvis:
``0.6 connectivity_R2 + 0.4 cluster_accuracy``).  A row of a runs table is scored with the
weights of the family in its ``family`` column (every ``metrics.json`` records it), so a grid
mixing families scores each run by its own family.  Explicit ``score_weights`` (an
experiment's, say) replace them for every row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..families import family_declaration
from ..text import as_float
from .columns import is_ok, numeric

__all__ = ["family_score_weights", "row_scores", "weighted_metrics", "weighted_score"]


def family_score_weights(family: str, source: str = "family") -> dict[str, float]:
    """``{metric: weight}`` of a family (its ``score_weights``); ConfigError naming ``source``
    for an unknown family."""
    return {
        str(k): float(v) for k, v in family_declaration(family, "score_weights", source).items()
    }


def weighted_score(metrics: Mapping[str, Any], weights: Mapping[str, float]) -> float:
    """``sum(weight * metric)``; NaN when a weighted metric is missing or not finite."""
    total = 0.0
    for name, weight in weights.items():
        x = as_float(metrics.get(name))
        if math.isnan(x):
            return math.nan
        total += float(weight) * x
    return total


def _check(weights: Mapping[str, float]) -> dict[str, float]:
    weights = dict(weights)
    if not weights:
        raise ValueError("score_weights must name at least one metric")
    return weights


def _where(rows: pd.DataFrame) -> str:
    """The first of ``rows``, for an error message: its run directory, else its identity."""
    row = rows.iloc[0]
    if "run_dir" in rows and isinstance(row["run_dir"], str):
        return row["run_dir"]
    return ", ".join(f"{k} {row[k]}" for k in ("model", "sparsity", "cfg", "seed") if k in rows)


def _families(df: pd.DataFrame) -> pd.Series:
    """The ``family`` of each ok row (None for the others); DataError for an ok row without."""
    ok = is_ok(df)
    family = df["family"] if "family" in df else pd.Series(None, index=df.index, dtype=object)
    missing = ok & family.isna()
    if missing.any():
        raise DataError(
            f"{_where(df[missing])}: no 'family' recorded for this run, so no score weights "
            f"(every metrics.json names its family; {int(missing.sum())} run(s) without one)"
        )
    return family.astype(object).where(ok, None)


def _weights_by_family(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    families = _families(df)
    out = {}
    for family in pd.unique(families.dropna()):
        rows = df[families.eq(family)]
        out[family] = _check(family_score_weights(str(family), f"{_where(rows)}: field 'family'"))
    return out


def row_scores(df: pd.DataFrame, score_weights: Mapping[str, float] | None = None) -> pd.Series:
    """The score of every row: NaN where the status is not ``ok`` or a weighted metric is
    missing.  ``score_weights`` None: each ok row by its family's weights (an unknown family
    raises ConfigError, an ok row without family DataError, both naming the run)."""
    ok = is_ok(df)
    if score_weights is not None:
        groups = {None: (pd.Series(True, index=df.index), _check(score_weights))}
    else:
        families = _families(df)
        groups = {f: (families.eq(f), w) for f, w in _weights_by_family(df).items()}
    score = pd.Series(np.nan, index=df.index, dtype="float64")
    for sel, weights in groups.values():
        total = pd.Series(0.0, index=df.index)
        for metric, weight in weights.items():
            total = total + float(weight) * numeric(df, metric)
        score = score.where(~sel, total)
    return score.where(ok)


def weighted_metrics(
    df: pd.DataFrame, score_weights: Mapping[str, float] | None = None
) -> list[str]:
    """The metrics the scores of ``df``'s ok rows weigh (every family's, in first-seen order)."""
    if score_weights is not None:
        return list(_check(score_weights))
    names: dict[str, None] = {}
    for weights in _weights_by_family(df).values():
        names.update(dict.fromkeys(weights))
    return list(names)
