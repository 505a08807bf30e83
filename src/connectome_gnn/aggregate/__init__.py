"""Aggregate per-run ``metrics.json`` files into summary tables (no torch needed).

See :mod:`connectome_gnn.aggregate.tables` for the table layouts.
"""

from .tables import (
    CLASSIFICATIONS,
    CORE_METRICS,
    DEFAULT_SCORE_WEIGHTS,
    KNOWN_METRICS,
    aggregate,
    best_runs,
    classification_counts,
    classify,
    default_replicate_metrics,
    load_runs,
    replicate_stats,
    to_markdown,
    write_table,
)

__all__ = [
    "CLASSIFICATIONS",
    "CORE_METRICS",
    "DEFAULT_SCORE_WEIGHTS",
    "KNOWN_METRICS",
    "aggregate",
    "best_runs",
    "classification_counts",
    "classify",
    "default_replicate_metrics",
    "load_runs",
    "replicate_stats",
    "to_markdown",
    "write_table",
]
