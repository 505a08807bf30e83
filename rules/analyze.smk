rule analyze:
    input:
        settings=simulation_file(SETTINGS),
        activity=simulation_file(ACTIVITY),
        model=train_file(MODEL),
        info=train_file(TRAIN_INFO),
    output:
        metrics=run_file(METRICS),
        plots=report(
            directory(run_file(PLOTS)),
            patterns=["{name}.png"],
            caption="../report/run_plots.rst",
            category="Runs",
            subcategory="{model}, filling factor {sparsity}",
            labels={"cfg": "{cfg}", "seed": "{seed}", "plot": "{name}"},
        ),
    log:
        results_path(run_log_pattern("analyze")),
    group:
        "analyze"
    conda:
        "../envs/cpu.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        run_id=get_run_id,
    script:
        "../scripts/analyze.py"
