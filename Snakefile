# connectome-gnn: simulate -> train (GPU) -> analyze -> aggregate.
# Targets: all (default), simulate_all, train_all, analyze_all, aggregate.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/train.smk"
include: "rules/analyze.smk"
include: "rules/aggregate.smk"


localrules:
    all,
    simulate_all,
    train_all,
    analyze_all,
    aggregate,


rule all:
    default_target: True
    input:
        summary_targets(),


rule simulate_all:
    input:
        simulation_targets(),


rule train_all:
    input:
        run_targets(f"{TRAIN}/{TRAIN_INFO}"),


rule analyze_all:
    input:
        run_targets(METRICS),
