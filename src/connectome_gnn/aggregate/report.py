"""The summaries: every table of a set of runs written to a directory, with markdown and plots.

:func:`aggregate` is rule aggregate (``results/summary/``: the tables of :mod:`.tables`, and
with ``analysis_dir`` the exploration summary of the same runs); :func:`exploration_summary`
writes the tables of :mod:`.stats` and the plots of :mod:`.plots` (an exploration's
``summary/``, or ``results/summary/analysis/``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..layout import EXPLORATION_TREE_PLOT, SUMMARY_MARKDOWN
from ..progress import log_summary
from . import stats
from .columns import CELL_KEYS, HEADLINE_METRICS, PARETO_METRICS, REPLICATE_KEYS, is_ok
from .output import display_view, to_markdown, write_table, write_text
from .plots import (
    plot_exploration_tree,
    plot_metric_vs_params,
    plot_pareto_front,
    plot_sparsity_landscape,
)
from .tables import (
    CLASSIFICATIONS,
    best_runs,
    classification_counts,
    load_runs,
    replicate_stats,
)

__all__ = ["aggregate", "exploration_summary"]


def _write_tables(
    out_dir: Path,
    tables: Mapping[str, pd.DataFrame],
    views: Mapping[str, Sequence[str] | None],
    headings: Mapping[str, str],
    intro: Sequence[str],
) -> None:
    """Each table as ``<name>.{parquet,csv,md,html}`` (markdown and HTML: its view, when it has
    one, titled with its heading) and ``summary.md``: ``intro`` then every markdown table under
    its heading."""
    sections = list(intro)
    for name, table in tables.items():
        view = views.get(name)
        title = headings[name].lstrip("# ")
        note = f"{len(table)} rows; every column is in {name}.csv / {name}.parquet."
        write_table(table, out_dir / name, markdown_columns=view, title=title, note=note)
        sections += ["", headings[name], "", to_markdown(display_view(table, view))]
    write_text(out_dir / SUMMARY_MARKDOWN, "\n".join(sections) + "\n")


# --------------------------------------------------------------------------------------------
# rule aggregate: results/summary/
# --------------------------------------------------------------------------------------------


def _markdown_views(tables: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Readable column subsets for the markdown files (parquet/CSV keep everything)."""
    runs = tables["runs"]
    metric_cols = [m for m in HEADLINE_METRICS if m in runs]
    ident = ["model", "sparsity", "cfg", "seed", "status", "classification"]
    replicates = tables["replicates"]
    return {
        "runs": [*ident, *metric_cols, "reason"],
        "best": [*ident, "score", "n_runs", "n_ok", *metric_cols, "reason"],
        "replicates": [
            *REPLICATE_KEYS,
            "n_runs",
            "n_ok",
            *[f"{m}_mean_std" for m in HEADLINE_METRICS if f"{m}_mean_std" in replicates],
        ],
        "classification": [*CELL_KEYS, *CLASSIFICATIONS, "n_runs"],
    }


_SUMMARY_HEADINGS = {
    "runs": "## All runs",
    "best": "## Best run per (model, filling factor)",
    "replicates": "## Replicates (mean ± std)",
    "classification": "## Classification",
}


def aggregate(
    metrics_paths: Iterable[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    score_weights: Mapping[str, float] | None = None,
    analysis_dir: str | os.PathLike | None = None,
) -> dict[str, pd.DataFrame]:
    """Load runs and write every summary table into ``out_dir``.

    With ``analysis_dir``, the exploration-style analysis of the same runs (parameter effects,
    replicate CV, variance per config, Pareto front, sparsity landscape, per-type recovery,
    type-difficulty correlation, and their plots; :func:`exploration_summary`) is written
    there too.

    Writes ``runs``, ``best``, ``replicates`` and ``classification`` as ``.parquet``, ``.csv``
    and ``.md`` (see :func:`.output.write_table`; the markdown files show a readable column subset)
    plus ``summary.md`` with all markdown tables under headings.  Only JSON files are read.

    Returns the four DataFrames keyed by table name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(metrics_paths)
    tables = {
        "runs": runs,
        "best": best_runs(runs, score_weights),
        "replicates": replicate_stats(runs),
        "classification": classification_counts(runs),
    }
    n_ok = int(is_ok(runs).sum()) if len(runs) else 0
    intro = ["# Aggregate summary", "", f"{len(runs)} runs, {n_ok} with status ok."]
    _write_tables(out_dir, tables, _markdown_views(tables), _SUMMARY_HEADINGS, intro)
    written = f"{', '.join(tables)} tables and summary.md in {out_dir}"
    if analysis_dir is not None:
        exploration_summary(runs, analysis_dir, score_weights)
        n_files = sum(1 for p in Path(analysis_dir).rglob("*") if p.is_file())
        written += f"; {n_files} analysis files in {analysis_dir}"
    fields = {"runs": len(runs), "ok": n_ok, "not_ok": len(runs) - n_ok, "outputs": written}
    log_summary("aggregate", fields)
    return tables


# --------------------------------------------------------------------------------------------
# exploration summary
# --------------------------------------------------------------------------------------------


_EXPLORATION_HEADINGS = {
    "best": "## Best configuration per (model, filling factor)",
    "parameter_effects": "## Parameter effects",
    "replicates": "## Replicates (per identical configuration)",
    "pareto": "## Pareto front",
    "classification": "## Classification",
    "sparsity_landscape": "## Sparsity landscape (best per filling factor)",
    "per_type_recovery": "## Per-type recovery",
    "type_difficulty": "## Cross-model type difficulty correlation",
}


def _views(tables: dict[str, pd.DataFrame]) -> dict[str, list[str] | None]:
    views: dict[str, list[str] | None] = {name: None for name in tables}
    best = tables["best"]
    metric_cols = [m for m in (*PARETO_METRICS, "test_pearson") if m in best]
    views["best"] = ["model", "sparsity", "cfg", "config", "score", "n_runs", "n_ok"]
    views["best"] += ["classification", *metric_cols]
    rep = tables["replicates"]
    views["replicates"] = ["model", "sparsity", "config", "n_runs", "n_ok", "runs"]
    views["replicates"] += [c for c in rep.columns if c.endswith(("_mean_std", "_cv"))]
    views["parameter_effects"] = [c for c in tables["parameter_effects"] if c != "value_num"]
    return views


def exploration_summary(
    runs: pd.DataFrame,
    out_dir: str | os.PathLike,
    score_weights: Mapping[str, float] | None = None,
    params: Sequence[str] | None = None,
    variance_metrics: Sequence[str] | None = None,
    plots: bool = True,
) -> dict[str, pd.DataFrame]:
    """Write every exploration table (parquet + csv + md), ``summary.md`` and the plots.

    ``runs``: a runs table (``load_runs`` or ``ExplorationTree.to_frame``; for the latter
    unfinished nodes are ignored by the statistics and the tree plot shows them).
    ``variance_metrics`` defaults to every :data:`PARETO_METRICS` metric present (one
    ``variance_<metric>`` table each).  Plots: ``exploration_tree.png`` (when ``runs`` has
    node columns), ``metric_vs_params_<metric>.png`` for connectivity_R2 and
    cluster_accuracy, ``pareto_front.png``, ``sparsity_landscape.png``.  Returns the tables.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finished = runs
    if "status" in runs.columns:
        finished = runs[runs["status"].astype(str).isin(["ok", "failed"])]
    params = stats.varying_params(finished) if params is None else list(params)
    present = stats.metrics_present(finished, None)
    variance_metrics = present if variance_metrics is None else list(variance_metrics)
    tables: dict[str, pd.DataFrame] = {
        "best": stats.best_configs(finished, score_weights),
        "parameter_effects": stats.parameter_effects(finished, params),
        "replicates": stats.replicate_cv(finished),
        "pareto": stats.pareto_front(finished),
        "classification": classification_counts(finished),
        "sparsity_landscape": stats.sparsity_landscape(finished, score_weights),
        "per_type_recovery": stats.per_type_recovery(finished),
        "type_difficulty": stats.type_difficulty_correlation(finished),
    }
    headings = dict(_EXPLORATION_HEADINGS)
    for m in variance_metrics:
        tables[f"variance_{m}"] = stats.variance_by_config(finished, m)
        headings[f"variance_{m}"] = f"## Variance of {m} per configuration"
    intro = [
        "# Exploration summary",
        "",
        f"{len(finished)} finished runs, {int(is_ok(finished).sum())} ok.",
    ]
    _write_tables(out_dir, tables, _views(tables), headings, intro)
    if plots:
        if "node_id" in runs.columns and "parent" in runs.columns:
            plot_exploration_tree(runs, out_dir / EXPLORATION_TREE_PLOT)
        for m in ("connectivity_R2", "cluster_accuracy"):
            if m in finished.columns:
                plot_metric_vs_params(finished, out_dir / f"metric_vs_params_{m}.png", m, params)
        plot_pareto_front(finished, tables["pareto"], out_dir / "pareto_front.png")
        plot_sparsity_landscape(tables["sparsity_landscape"], out_dir / "sparsity_landscape.png")
    return tables
