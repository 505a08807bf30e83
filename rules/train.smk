# The GPU job: profiles/slurm asks for one GPU (gpu: 1 -> --gpus) for this rule.
rule train:
    input:
        settings=f"{RESULTS}/{{model}}/{{sparsity}}/simulation/seed{{seed}}/simulation.json",
        activity=f"{RESULTS}/{{model}}/{{sparsity}}/simulation/seed{{seed}}/activity.zarr",
    output:
        model=f"{RESULTS}/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}/train/model.pt",
        info=f"{RESULTS}/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}/train/train_info.json",
        loss=f"{RESULTS}/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}/train/loss.csv",
        run_config=f"{RESULTS}/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}/train/run_config.json",
    log:
        f"{RESULTS}/logs/train/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}/{{sparsity}}/{{cfg}}/seed{{seed}}.tsv"
    conda:
        "../envs/gpu.yaml"
    threads: 2
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    params:
        train_cfg=get_train_config,
        run_id=get_run_id,
        device=config["device"],
    script:
        "../scripts/train.py"
