"""A tiny FlyVis model (extent 1: 443 neurons, 8,174 edges) through the whole DAG."""

import json

import pandas as pd
import pytest

from .conftest import edit_yaml, make_workdir, set_model


@pytest.mark.slow
def test_tiny_flyvis_through_the_dag(tmp_path, repo_root, run_snakemake):
    work = make_workdir(tmp_path, repo_root)
    set_model(
        work,
        "flyvis_tiny",
        family="flyvis",
        model_id="flyvis_049",
        extent=1,
        n_frames=1000,
        burn_in=50,
    )
    # the small-extent recipe: the reference-like flyvis.yaml (MLP-weight L1 sized for 13,741
    # neurons) flattens lin_edge to zero in 300 iterations on 443 neurons (all-NaN readouts)
    grid = {"model": ["flyvis_tiny"], "sparsity": [1.0], "cfg": ["flyvis_cpu"], "seed": [0]}
    edit_yaml(work / "config/config.yaml", grid=grid)
    edit_yaml(work / "config/train/flyvis_cpu.yaml", max_iterations=300)

    res = run_snakemake(work, "--cores", "2", "--resources", "gpu=1")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    run = work / "results/flyvis_tiny/1/flyvis_cpu/seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["family"] == "flyvis" and metrics["status"] == "ok"
    for key in ("connectivity_R2", "tau_R2", "V_rest_R2", "cluster_accuracy", "test_R2"):
        assert isinstance(metrics[key], float), key
    assert len(metrics["per_type_R2"]) == 65
    assert 0 < metrics["active_fraction"] < 1
    assert isinstance(metrics["tau_R2_active"], float)
    assert 0 < metrics["identifiable_fraction"] <= metrics["active_fraction"]
    assert isinstance(metrics["tau_R2_identifiable"], float)
    assert metrics["activity_rank_99"] >= metrics["activity_rank_90"] >= 1
    sim = json.loads((work / "results/flyvis_tiny/1/simulation/seed0/simulation.json").read_text())
    assert (sim["n_neurons"], sim["n_edges"]) == (443, 8174)
    runs = pd.read_csv(work / "results/summary/runs.csv")
    assert {"tau_R2", "V_rest_R2", "connectivity_R2"} <= set(runs.columns)
    assert "tau_R2" in (work / "results/summary/summary.md").read_text()
    assert (run / "plots/W_scatter.png").is_file()
