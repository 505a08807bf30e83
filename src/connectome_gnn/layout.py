"""The run layout: where every stage reads and writes, in one module.

Under the results directory::

    {model}/{sparsity}/simulation/seed{seed}/    a simulation (shared by every training config)
        activity.zarr  connectivity.npz  neurons.csv  simulation.json  simulation.png
    {model}/{sparsity}/{cfg}/seed{seed}/         a run
        train/  model.pt  checkpoint.pt  loss.csv  train_info.json  run_config.json
                (explorations with score reports: score_request.json  scores.csv
                 prune_decision.json)
        metrics.json  plots/
    summary/                                     the aggregate tables
        {runs,best,replicates,classification}.{parquet,csv,md}  summary.md  analysis/
    logs/{stage}/...  benchmarks/train/...
    explorations/{name}/                         an exploration (connectome_gnn.explore)
        nodes.yaml  configs/{cfg}.yaml  workflow.yaml  ucb_scores.*  iteration_log.md
        iterations.*  summary/  optuna.journal (form optuna-tpe)

``sparsity`` is the filling factor as :func:`format_sparsity` writes it (``1``, ``0.5``).
:func:`simulation_dir`, :func:`run_dir` and :func:`train_dir` format these paths,
:func:`parse_run_dir` reads a run's identity back from its path; the ``*_PATTERN`` strings are
the same templates with Snakemake wildcards, for the rules.  :func:`set_aside_checkpoints`
renames the checkpoint of failed runs (``checkpoint.pt`` -> ``checkpoint.failed.pt``).
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

# -- files of a simulation directory
ACTIVITY = "activity.zarr"
CONNECTIVITY = "connectivity.npz"
NEURONS = "neurons.csv"
SETTINGS = "simulation.json"
SIMULATION_PLOT = "simulation.png"

# -- files of a run's train directory
TRAIN = "train"
MODEL = "model.pt"
CHECKPOINT = "checkpoint.pt"
FAILED_CHECKPOINT = "checkpoint.failed.pt"
LOSS = "loss.csv"
TRAIN_INFO = "train_info.json"
RUN_CONFIG = "run_config.json"
#: score reports at checkpoints (explorations): the request an exploration writes into the train
#: directory before the run, the scores the run reports, and the prune decision it then obeys
SCORE_REQUEST = "score_request.json"
SCORES = "scores.csv"
PRUNE_DECISION = "prune_decision.json"

# -- files of a run directory
METRICS = "metrics.json"
PLOTS = "plots"

# -- the aggregate summary (results/summary/) and the analysis of the same runs in it
SUMMARY = "summary"
SUMMARY_TABLES = ("runs", "best", "replicates", "classification")
TABLE_FORMATS = ("parquet", "csv", "md", "html")
SUMMARY_MARKDOWN = "summary.md"
ANALYSIS = "analysis"

# -- an exploration directory (results/explorations/{name}/)
EXPLORATIONS = "explorations"
NODES = "nodes.yaml"
EXPLORATION_CONFIGS = "configs"
EXPLORATION_WORKFLOW = "workflow.yaml"
UCB_SCORES = "ucb_scores"
OPTUNA_JOURNAL = "optuna.journal"
ITERATION_LOG = "iteration_log.md"
ITERATIONS = "iterations"
EXPLORATION_TREE_PLOT = "exploration_tree.png"  # in the exploration's summary/

LOGS = "logs"
BENCHMARKS = "benchmarks"

# -- templates with Snakemake wildcards (relative to the results directory)
SIMULATION_PATTERN = "{model}/{sparsity}/simulation/seed{seed}"
RUN_PATTERN = "{model}/{sparsity}/{cfg}/seed{seed}"
TRAIN_PATTERN = f"{RUN_PATTERN}/{TRAIN}"
SIMULATION_LOG_PATTERN = f"{LOGS}/simulate/{{model}}/{{sparsity}}/seed{{seed}}.log"
TRAIN_BENCHMARK_PATTERN = f"{BENCHMARKS}/train/{RUN_PATTERN}.tsv"
AGGREGATE_LOG = f"{LOGS}/aggregate/aggregate.log"
EXPLORATION_TREE_LOG_PATTERN = f"{LOGS}/explorations/{{name}}.log"
#: every run directory below the results directory (glob)
RUN_GLOB = "*/*/*/seed*"


def run_log_pattern(stage: str) -> str:
    """``logs/{stage}/{model}/{sparsity}/{cfg}/seed{seed}.log``: the log of a run's job."""
    return f"{LOGS}/{stage}/{RUN_PATTERN}.log"


_SEED_DIR = re.compile(r"^seed(-?\d+)$")


def format_sparsity(value: float | str) -> str:
    """Canonical text of a filling factor, used in paths: 1.0 -> '1', 0.50 -> '0.5'."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"sparsity {value!r} is not a number") from None
    if not (0 < f <= 1):
        raise ConfigError(f"sparsity {value!r} must be in (0, 1]")
    return f"{f:g}"


def simulation_dir(results: str | Path, model: str, sparsity: float | str, seed: int) -> Path:
    return Path(results) / model / format_sparsity(sparsity) / "simulation" / f"seed{int(seed)}"


def run_dir(results: str | Path, model: str, sparsity: float | str, cfg: str, seed: int) -> Path:
    return Path(results) / model / format_sparsity(sparsity) / cfg / f"seed{int(seed)}"


def train_dir(results: str | Path, model: str, sparsity: float | str, cfg: str, seed: int) -> Path:
    return run_dir(results, model, sparsity, cfg, seed) / TRAIN


def parse_run_dir(path: str | Path) -> dict | None:
    """``{model, sparsity, cfg, seed}`` of a run directory ``.../{model}/{sparsity}/{cfg}/
    seed{seed}`` (or of a file directly inside it, e.g. its metrics.json); None when the path
    does not have that shape.  ``sparsity`` stays the text of the path."""
    path = Path(path)
    if path.suffix:  # a file of the run directory
        path = path.parent
    parts = path.parts
    if len(parts) < 4:
        return None
    match = _SEED_DIR.match(parts[-1])
    if match is None:
        return None
    model, sparsity, cfg = parts[-4], parts[-3], parts[-2]
    return {"model": model, "sparsity": sparsity, "cfg": cfg, "seed": int(match.group(1))}


def set_aside_checkpoints(train_infos: list[Path]) -> list[Path]:
    """Rename the checkpoint.pt of failed runs to checkpoint.failed.pt (kept for inspection),
    so that their rerun trains from scratch instead of resuming towards the same failure."""
    moved = []
    for path in train_infos:
        ckpt = Path(path).parent / CHECKPOINT
        if ckpt.is_file():
            moved.append(ckpt.replace(ckpt.with_name(FAILED_CHECKPOINT)))
    return moved
