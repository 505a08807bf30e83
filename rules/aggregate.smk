# Reads only metrics.json (+ run_config.json) files: regenerate with
#   snakemake aggregate --forcerun aggregate --cores 1
rule aggregate:
    input:
        metrics=run_targets("metrics.json"),
    output:
        summary_outputs(),
    log:
        f"{RESULTS}/logs/aggregate/aggregate.log",
    conda:
        "../envs/cpu.yaml"
    params:
        score_weights=get_score_weights(),
    script:
        "../scripts/aggregate.py"
