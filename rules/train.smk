# The GPU job: profiles/slurm asks for one GPU (gpu: 1 -> --gpus) for this rule.
rule train:
    input:
        settings=simulation_file(SETTINGS),
        activity=simulation_file(ACTIVITY),
    output:
        model=train_file(MODEL),
        info=train_file(TRAIN_INFO),
        loss=train_file(LOSS),
        run_config=train_file(RUN_CONFIG),
    log:
        results_path(run_log_pattern("train")),
    benchmark:
        results_path(TRAIN_BENCHMARK_PATTERN)
    conda:
        "../envs/gpu.yaml"
    threads: 2
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        attempt=train_attempt,
    params:
        train_cfg=get_train_config,
        run_id=get_run_id,
        device=config["device"],
    script:
        "../scripts/train.py"
