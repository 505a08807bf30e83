# Shared helpers: config validation, the run grid, input/resource functions. No rules here.
import itertools
import os
import sys
from pathlib import Path

# This repository (None when the workflow is read from a remote module source). Parsing needs
# the library's light modules only (pyyaml + jsonschema, which Snakemake itself depends on): a
# Snakemake without the library installed (--sdm conda, or this workflow used as a module) reads
# them from src/ here. The jobs get the library from tools/install.sh's venv, the conda envs'
# post-deploy script (which installs CONNECTOME_GNN_SOURCE) or the container.
_RULES_DIR = workflow.current_basedir.get_path_or_uri(secret_free=True)
REPO_DIR = Path(_RULES_DIR).parent if os.path.isdir(_RULES_DIR) else None
try:
    import connectome_gnn
except ImportError:
    if REPO_DIR is None:
        raise
    sys.path.insert(0, str(REPO_DIR / "src"))
if REPO_DIR is not None:
    os.environ.setdefault("CONNECTOME_GNN_SOURCE", str(REPO_DIR))

from connectome_gnn.config import ConfigError, load_train_config
from connectome_gnn.families.workflow_config import load_workflow_config
from connectome_gnn.layout import (
    ACTIVITY,
    AGGREGATE_LOG,
    ANALYSIS,
    CONNECTIVITY,
    EXPLORATION_TREE_LOG_PATTERN,
    EXPLORATION_TREE_PLOT,
    EXPLORATIONS,
    LOSS,
    METRICS,
    MODEL,
    NEURONS,
    NODES,
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
    # in place, so that the report's global caption (workflow.config) sees the defaults too
    config.update(load_workflow_config(config, source="workflow config"))
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


# the formats of the summary tables that the aggregate step registers in the report
REPORT_TABLE_FORMATS = ("html", "csv")


def summary_outputs():
    """Summary files besides the report's tables and the analysis directory (summary_targets)."""
    formats = [ext for ext in TABLE_FORMATS if ext not in REPORT_TABLE_FORMATS]
    out = [summary_file(f"{t}.{ext}") for t in SUMMARY_TABLES for ext in formats]
    return out + [summary_file(SUMMARY_MARKDOWN)]


def summary_table(table, ext):
    return summary_file(f"{table}.{ext}")


def report_tables():
    """The summary tables as outputs of the aggregate step, registered in the report; each as
    an inline HTML table (category Summary) and as a CSV download."""
    out = {}
    for table in SUMMARY_TABLES:
        for ext, subcategory in zip(REPORT_TABLE_FORMATS, ("tables", "CSV downloads")):
            out[f"{table}_{ext}"] = report(
                summary_table(table, ext),
                caption=f"../report/{table}.rst",
                category="Summary",
                subcategory=subcategory,
                labels={"table": table, "format": ext},
            )
    return out


def summary_targets():
    """Everything rule aggregate writes."""
    tables = [summary_table(t, ext) for t in SUMMARY_TABLES for ext in REPORT_TABLE_FORMATS]
    return summary_outputs() + tables + [summary_file(ANALYSIS)]


def exploration_file(name):
    """A file of an exploration directory (results/explorations/{name}/...)."""
    return results_path(f"{EXPLORATIONS}/{{name}}/{name}")


def exploration_targets():
    """The tree plot of every exploration under results/explorations/ that has finished a batch
    (it has a summary/ folder), for the report (the exploration_tree step)."""
    root = Path(RESULTS) / EXPLORATIONS
    names = sorted(p.parent.name for p in root.glob(f"*/{NODES}") if (p.parent / SUMMARY).is_dir())
    plot = exploration_file(f"{SUMMARY}/{EXPLORATION_TREE_PLOT}")
    return [plot.format(name=n) for n in names]


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


def train_attempt(wildcards, attempt):
    """The job's attempt, for the training (a script sees no attempt but its resources): in a
    retry a run that had finished writes its outputs from its final checkpoint."""
    return attempt


def train_runtime(wildcards, attempt):
    """Minutes: 4 h per attempt, or a time-budgeted config's max_minutes plus a quarter and
    15 min for loading and saving."""
    budget = TRAIN_CONFIGS[wildcards.cfg].get("max_minutes") or 0
    return max(240 * attempt, int(budget * 1.25) + 15) * train_pack()


def train_pack():
    """Trainings per SLURM job when packed (config train_pack, profiles/slurm-packed). Snakemake
    takes a group's runtime as its longest member's (it assumes the members run side by side), but
    snakemake-executor-plugin-slurm 2.8.0 runs them one after another in the allocation, so each
    member asks for the time of the whole pack."""
    return int(config.get("train_pack", 1))


wildcard_constraints:
    model="|".join(GRID["model"]),
    sparsity="|".join(s.replace(".", r"\.") for s in SPARSITIES),
    cfg="|".join(GRID["cfg"]),
    seed=r"\d+",
