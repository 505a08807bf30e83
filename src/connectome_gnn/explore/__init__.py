"""UCB-guided exploration of training parameters (library part; no Snakemake, no training).

Only JSON/YAML files are read, and torch is never imported: a family's default score weights
(when an experiment does not give ``score_weights``) and parameter space are its declarations,
read by :func:`connectome_gnn.families.family_declaration` (the resolved weights and space are
then stored in ``nodes.yaml``).

An exploration lives in ``results/explorations/{name}/``: :mod:`.tree` keeps the books of its
nodes (:mod:`.node`), :mod:`.store` keeps them in ``nodes.yaml`` and :mod:`.frame` exports
them as a runs table; :mod:`.propose` proposes the next batch (UCB/PUCT parent selection in
:mod:`.ucb`, mutations in :mod:`.mutate`), :mod:`.log` writes the iteration log.  The summary
tables and plots are in :mod:`connectome_gnn.aggregate.exploration`.

Typical driver loop::

    tree = ExplorationTree.open(f"results/explorations/{name}", "config/explore/x.yaml")
    nodes = propose_batch(tree)           # [] once every block is done
    write_configs(tree, nodes); tree.save()
    ... train and analyse each node's configuration ...
    tree.update_from_file(node.node_id, metrics_path); tree.save()
    write_ucb_scores(tree); write_log(tree)
"""

from .experiment import family_score_weights, load_experiment, space_of
from .log import config_params, format_log, iteration_table, write_log
from .mutate import (
    SIGNAL_SPACE,
    ParamSpec,
    default_space,
    mutate,
    mutate_value,
    resolve_space,
    slot_rng,
)
from .node import (
    SOURCES,
    STATUSES,
    ExplorationError,
    Node,
    compute_score,
    compute_visits,
    config_diff,
)
from .propose import propose_batch, write_configs
from .store import NODES_FILE
from .tree import ExplorationTree
from .ucb import (
    bonus_score,
    format_ucb_lines,
    puct_score,
    select_parents,
    ucb_score,
    ucb_table,
    write_ucb_scores,
)

__all__ = [
    "NODES_FILE",
    "SIGNAL_SPACE",
    "SOURCES",
    "STATUSES",
    "ExplorationError",
    "ExplorationTree",
    "Node",
    "ParamSpec",
    "bonus_score",
    "compute_score",
    "compute_visits",
    "config_diff",
    "config_params",
    "default_space",
    "family_score_weights",
    "format_log",
    "format_ucb_lines",
    "iteration_table",
    "load_experiment",
    "mutate",
    "mutate_value",
    "propose_batch",
    "puct_score",
    "resolve_space",
    "select_parents",
    "slot_rng",
    "space_of",
    "ucb_score",
    "ucb_table",
    "write_configs",
    "write_log",
    "write_ucb_scores",
]
