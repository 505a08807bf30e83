"""Snakemake adapter of rule train."""

from pathlib import Path

from connectome_gnn.train import train_run
from connectome_gnn.workflow import run_logged

run_logged(
    snakemake.log[0],
    train_run,
    Path(snakemake.input.settings).parent,
    snakemake.params.train_cfg,
    Path(snakemake.output.info).parent,
    replicate_seed=int(snakemake.wildcards.seed),
    device=snakemake.params.device,
    run_id=snakemake.params.run_id,
    threads=snakemake.threads,
    attempt=int(snakemake.resources.get("attempt", 1)),
)
