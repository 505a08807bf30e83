"""Summary tables and plots of an exploration (or of any set of runs).

Every function takes a *runs table*: the DataFrame of :func:`.tables.load_runs` (one row per
``metrics.json``) or of ``ExplorationTree.to_frame`` (one row per node, same column
conventions plus the node columns).  Only ``ok`` runs enter statistics; failed runs are
counted.  Nothing here imports torch or reads anything but the table.

Tables (each written with :func:`.output.write_table` by :func:`.report.exploration_summary`):

``best``                :func:`best_configs`: best run per (model, sparsity) and its config
``parameter_effects``   :func:`parameter_effects`: per parameter value, runs and mean/min/max
                        of each metric (seed 003 "Parameter Effects")
``replicates``          :func:`replicate_cv`: mean, std, CV per identical configuration
                        (seed 001/002 "CV=1.15%")
``variance_<metric>``   :func:`variance_by_config`: values, range, mean of one metric per
                        configuration (seed 003 "V_rest Variance Analysis")
``pareto``              :func:`pareto_front` over connectivity_R2, cluster_accuracy, test_R2,
                        tau_R2, V_rest_R2 (those present), maximising all (seed 003)
``classification``      :func:`.tables.classification_counts` (seed-004 thresholds)
``sparsity_landscape``  :func:`sparsity_landscape`: best metrics per filling factor (seed 004)
``per_type_recovery``   :func:`per_type_recovery`: per model and neuron type (seed 000)
``type_difficulty``     :func:`type_difficulty_correlation`: cross-model correlation (seed 000)

The statistics are in :mod:`.stats` (which also says what a *configuration* is), the plots in :mod:`.plots` and the writing of it all in
:mod:`.report`; this module gathers their public names.
"""

from .columns import PARETO_METRICS
from .plots import (
    plot_exploration_tree,
    plot_metric_vs_params,
    plot_pareto_front,
    plot_sparsity_landscape,
)
from .report import exploration_summary
from .stats import (
    CONFIG_EXCLUDE,
    best_configs,
    config_labels,
    param_columns,
    parameter_effects,
    pareto_front,
    per_type_recovery,
    replicate_cv,
    sparsity_landscape,
    type_difficulty_correlation,
    variance_by_config,
    varying_params,
)

__all__ = [
    "CONFIG_EXCLUDE",
    "PARETO_METRICS",
    "best_configs",
    "config_labels",
    "exploration_summary",
    "param_columns",
    "parameter_effects",
    "pareto_front",
    "per_type_recovery",
    "plot_exploration_tree",
    "plot_metric_vs_params",
    "plot_pareto_front",
    "plot_sparsity_landscape",
    "replicate_cv",
    "sparsity_landscape",
    "type_difficulty_correlation",
    "variance_by_config",
    "varying_params",
]
