# Reads only metrics.json (+ run_config.json) files; each run is scored with the weights of the
# family its metrics.json names (connectome_gnn.aggregate.scores). Regenerate every table, plot
# and the report without retraining (mtime triggers: edits of training code or configs do not
# force reruns):
#   snakemake aggregate --forcerun aggregate --rerun-triggers mtime --cores 1
#   snakemake --report results/report.html
rule aggregate:
    input:
        metrics=run_targets(METRICS),
    output:
        summary_outputs(),
        **report_tables(),
        analysis=report(
            directory(summary_file(ANALYSIS)),
            patterns=["{name}.png", "{name}.html"],
            caption="../report/analysis.rst",
            category="Analysis",
        ),
    log:
        results_path(AGGREGATE_LOG),
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/aggregate.py"


# The tree of an exploration (connectome-gnn explore) for the report; the explorer writes the
# same plot after every batch, so this reruns only when nodes.yaml is newer.
rule exploration_tree:
    input:
        nodes=exploration_file(NODES),
    output:
        plot=report(
            exploration_file(f"{SUMMARY}/{EXPLORATION_TREE_PLOT}"),
            caption="../report/exploration_tree.rst",
            category="Explorations",
            labels={"exploration": "{name}"},
        ),
    log:
        results_path(EXPLORATION_TREE_LOG_PATTERN),
    wildcard_constraints:
        name=r"[^/]+",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/exploration_tree.py"
