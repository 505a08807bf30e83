rule analyze:
    input:
        settings=f"{RESULTS}/{{model}}/{{sparsity}}/simulation/seed{{seed}}/simulation.json",
        activity=f"{RESULTS}/{{model}}/{{sparsity}}/simulation/seed{{seed}}/activity.zarr",
        model=f"{RESULTS}/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}/train/model.pt",
        info=f"{RESULTS}/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}/train/train_info.json",
    output:
        metrics=f"{RESULTS}/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}/metrics.json",
        plots=report(
            directory(f"{RESULTS}/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}/plots"),
            patterns=["{name}.png"],
            caption="../report/run_plots.rst",
            category="Runs",
            subcategory="{model} sparsity {sparsity}",
            labels={"cfg": "{cfg}", "seed": "{seed}", "plot": "{name}"},
        ),
    log:
        f"{RESULTS}/logs/analyze/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}.log",
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
