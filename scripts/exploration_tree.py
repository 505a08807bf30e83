"""Snakemake adapter of rule exploration_tree (reads the exploration's nodes.yaml only)."""

from pathlib import Path

from connectome_gnn.stages import plot_exploration
from connectome_gnn.workflow import run_logged

run_logged(
    snakemake.log[0],
    plot_exploration,
    Path(snakemake.input.nodes).parent,
    snakemake.output.plot,
)
