"""Aggregate per-run ``metrics.json`` files into summary tables (no torch needed).

Modules, each importing only those above it:

- :mod:`.columns`: the key columns and metric names of a runs table, column helpers;
- :mod:`.scores`: the score of a run, with the weights of its family;
- :mod:`.output`: parquet / CSV / markdown writing;
- :mod:`.tables`: :func:`load_runs` and the tables of rule aggregate (``best``,
  ``replicates``, ``classification``; the table layouts are described there);
- :mod:`.stats` and :mod:`.plots`: the exploration statistics and plots of a set of runs
  (:mod:`.exploration` gathers their public names);
- :mod:`.report`: :func:`aggregate` (rule aggregate) and ``exploration_summary``.
"""

from .columns import CORE_METRICS, KNOWN_METRICS
from .output import to_markdown, write_table
from .report import aggregate, exploration_summary
from .scores import family_score_weights, row_scores
from .tables import (
    CLASSIFICATIONS,
    best_runs,
    classification_counts,
    classify,
    default_replicate_metrics,
    load_runs,
    replicate_stats,
)

__all__ = [
    "CLASSIFICATIONS",
    "CORE_METRICS",
    "KNOWN_METRICS",
    "aggregate",
    "best_runs",
    "classification_counts",
    "classify",
    "default_replicate_metrics",
    "exploration_summary",
    "family_score_weights",
    "load_runs",
    "replicate_stats",
    "row_scores",
    "to_markdown",
    "write_table",
]
