"""Snakemake adapter of rule aggregate (reads metrics files only)."""

from pathlib import Path

from connectome_gnn.aggregate import aggregate
from connectome_gnn.workflow import run_logged

run_logged(
    snakemake.log[0],
    aggregate,
    list(snakemake.input.metrics),
    Path(snakemake.output[0]).parent,
    analysis_dir=snakemake.output.analysis,
)
