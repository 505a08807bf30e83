"""Snakemake adapter of rule simulate."""

from pathlib import Path

from connectome_gnn.stages import run_simulation
from connectome_gnn.workflow import run_logged

run_logged(
    snakemake.log[0],
    run_simulation,
    snakemake.params.model_cfg,
    snakemake.wildcards.sparsity,
    int(snakemake.wildcards.seed),
    Path(snakemake.output.settings).parent,
)
