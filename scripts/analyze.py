"""Snakemake adapter of rule analyze."""

from pathlib import Path

from connectome_gnn.analysis import analyze_run
from connectome_gnn.workflow import run_logged

run_logged(
    snakemake.log[0],
    analyze_run,
    Path(snakemake.input.settings).parent,
    Path(snakemake.input.info).parent,
    Path(snakemake.output.metrics).parent,
    run_id=snakemake.params.run_id,
)
