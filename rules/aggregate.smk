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
        runs=report(summary_csv("runs"), caption="../report/runs.rst", category="Summary"),
        best=report(summary_csv("best"), caption="../report/best.rst", category="Summary"),
        replicates=report(
            summary_csv("replicates"), caption="../report/replicates.rst", category="Summary"
        ),
        classification=report(
            summary_csv("classification"),
            caption="../report/classification.rst",
            category="Summary",
        ),
        analysis=report(
            directory(summary_file(ANALYSIS)),
            patterns=["{name}.png", "{name}.csv"],
            caption="../report/analysis.rst",
            category="Analysis",
        ),
    log:
        results_path(AGGREGATE_LOG),
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/aggregate.py"
