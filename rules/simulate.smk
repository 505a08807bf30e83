rule simulate:
    output:
        activity=directory(simulation_file(ACTIVITY)),
        connectivity=simulation_file(CONNECTIVITY),
        neurons=simulation_file(NEURONS),
        settings=simulation_file(SETTINGS),
        plot=report(
            simulation_file(SIMULATION_PLOT),
            caption="../report/simulation.rst",
            category="Simulations",
            subcategory="{model}",
            labels={"filling factor": "{sparsity}", "seed": "{seed}"},
        ),
    log:
        results_path(SIMULATION_LOG_PATTERN),
    conda:
        "../envs/cpu.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        model_cfg=get_model_config,
    script:
        "../scripts/simulate.py"
