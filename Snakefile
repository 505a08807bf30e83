# connectome-gnn: simulate -> train (GPU) -> analyze -> aggregate.
# Targets: all (default: the summary, and the tree plot of every exploration in results/),
# simulate_all, train_all, analyze_all, aggregate.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# --sdm apptainer: every job runs in this image (config key `container`, README "Software
# environments"); unset, jobs run without a container
container: config.get("container")


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
    exploration_tree,


rule all:
    default_target: True
    input:
        summary_targets(),
        exploration_targets(),


rule simulate_all:
    input:
        simulation_targets(),


rule train_all:
    input:
        run_targets(f"{TRAIN}/{TRAIN_INFO}"),


rule analyze_all:
    input:
        run_targets(METRICS),
