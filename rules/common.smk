# Shared helpers: config validation, the run grid, input/resource functions. No rules here.
import itertools
from pathlib import Path

from connectome_gnn.config import ConfigError, load_train_config
from connectome_gnn.families.workflow_config import load_workflow_config
from connectome_gnn.layout import (
    ACTIVITY,
    AGGREGATE_LOG,
    ANALYSIS,
    CONNECTIVITY,
    LOSS,
    METRICS,
    MODEL,
    NEURONS,
    PLOTS,
    RUN_CONFIG,
    RUN_PATTERN,
    SETTINGS,
    SIMULATION_LOG_PATTERN,
    SIMULATION_PATTERN,
    SIMULATION_PLOT,
    SUMMARY,
    SUMMARY_MARKDOWN,
    SUMMARY_TABLES,
    TABLE_FORMATS,
    TRAIN,
    TRAIN_BENCHMARK_PATTERN,
    TRAIN_INFO,
    TRAIN_PATTERN,
    format_sparsity,
    run_log_pattern,
)

try:
    config = load_workflow_config(config, source="workflow config")
except ConfigError as err:
    raise WorkflowError(str(err)) from None

RESULTS = config["results_dir"]
GRID = config["grid"]
SPARSITIES = [format_sparsity(s) for s in GRID["sparsity"]]


def _load_train_configs():
    configs = {}
    for name in GRID["cfg"]:
        path = Path(config["train_config_dir"]) / f"{name}.yaml"
        try:
            configs[name] = load_train_config(path)
        except ConfigError as err:
            raise WorkflowError(f"training config {name!r}: {err}") from None
    return configs


TRAIN_CONFIGS = _load_train_configs()


def runs():
    """Every (model, sparsity, cfg, seed) of the grid."""
    return list(itertools.product(GRID["model"], SPARSITIES, GRID["cfg"], GRID["seed"]))


def results_path(pattern):
    """A path template of connectome_gnn.layout (Snakemake wildcards) under the results dir."""
    return f"{RESULTS}/{pattern}"


def simulation_file(name):
    return results_path(f"{SIMULATION_PATTERN}/{name}")


def run_file(name):
    return results_path(f"{RUN_PATTERN}/{name}")


def train_file(name):
    return results_path(f"{TRAIN_PATTERN}/{name}")


def simulation_targets():
    return sorted(
        {
            simulation_file(SETTINGS).format(model=m, sparsity=s, seed=seed)
            for m, s, _, seed in runs()
        }
    )


def run_targets(name):
    """``name`` (a file of the run directory, e.g. metrics.json) of every run of the grid."""
    return [
        run_file(name).format(model=m, sparsity=s, cfg=c, seed=seed) for m, s, c, seed in runs()
    ]


def summary_file(name):
    return results_path(f"{SUMMARY}/{name}")


def summary_outputs():
    """Summary files besides the CSV tables and the analysis directory (see summary_targets)."""
    formats = [ext for ext in TABLE_FORMATS if ext != "csv"]  # CSV: see rule aggregate
    out = [summary_file(f"{t}.{ext}") for t in SUMMARY_TABLES for ext in formats]
    return out + [summary_file(SUMMARY_MARKDOWN)]


def summary_csv(table):
    return summary_file(f"{table}.csv")


def summary_targets():
    """Everything rule aggregate writes."""
    return summary_outputs() + [summary_csv(t) for t in SUMMARY_TABLES] + [summary_file(ANALYSIS)]


def get_model_config(wildcards):
    return config["models"][wildcards.model]


def get_train_config(wildcards):
    return TRAIN_CONFIGS[wildcards.cfg]


def get_run_id(wildcards):
    return {
        "model": wildcards.model,
        "sparsity": wildcards.sparsity,
        "cfg": wildcards.cfg,
        "seed": int(wildcards.seed),
    }


def train_mem_mb(wildcards, attempt):
    return 8000 * attempt


def train_runtime(wildcards, attempt):
    """Minutes: 4 h per attempt, or a time-budgeted config's max_minutes plus a quarter and
    15 min for loading and saving."""
    budget = TRAIN_CONFIGS[wildcards.cfg].get("max_minutes") or 0
    return max(240 * attempt, int(budget * 1.25) + 15)


wildcard_constraints:
    model="|".join(GRID["model"]),
    sparsity="|".join(s.replace(".", r"\.") for s in SPARSITIES),
    cfg="|".join(GRID["cfg"]),
    seed=r"\d+",
