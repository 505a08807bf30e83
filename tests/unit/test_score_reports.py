"""Score reports at checkpoints and pruning, on real tiny trainings (no mock)."""

import json

import pandas as pd
import pytest
import torch

from connectome_gnn.aggregate.scores import weighted_score
from connectome_gnn.analysis import analyze_run
from connectome_gnn.cli import failed_runs
from connectome_gnn.config import validate
from connectome_gnn.explore.checkpoint_score import read_curve, write_request
from connectome_gnn.explore.pruning import resolve_settings
from connectome_gnn.train import train_run

WEIGHTS = {"connectivity_R2": 0.6, "cluster_accuracy": 0.4}
MEDIAN = resolve_settings({"rule": "median", "report_every": 0.5, "warmup_fraction": 0.0})


def _cfg():
    return validate(
        {"W_init_std": 0.0, "lr_W": 3e-3, "lr": 1e-3, "lr_emb": 1.5e-3, "max_iterations": 200},
        "train",
    )


def _request(train_dir, sim_dir, pruning, references, fractions=(0.5, 1.0)):
    return write_request(
        train_dir,
        node=2,
        sim_dir=sim_dir,
        score_weights=WEIGHTS,
        pruning=pruning,
        fractions=fractions,
        references=references,
    )


def test_pruned_run_stops_keeps_its_checkpoint_and_resumes_to_the_unpruned_end(tmp_path, sim_dir):
    cfg = _cfg()
    # a reference that scored 2.0 (impossible to reach) half-way: the run is below the median
    run = tmp_path / "results/m/1/c/seed0"
    _request(run / "train", sim_dir, MEDIAN, {1: {0.5: 2.0, 1.0: 2.0}}, fractions=[0.5])
    info = train_run(sim_dir, cfg, run / "train", replicate_seed=0, progress=False)
    assert info["status"] == "pruned" and info["iterations_done"] == 100
    assert "below the median 2 of 1 reference node(s)" in info["reason"]
    saved = json.loads((run / "train/train_info.json").read_text())
    assert saved["status"] == "pruned"
    ckpt = torch.load(run / "train/checkpoint.pt", weights_only=True)
    assert (int(ckpt["epoch"]), int(ckpt["iteration"])) == (0, 100)
    decision = json.loads((run / "train/prune_decision.json").read_text())
    assert decision["iteration"] == 100 and decision["fraction"] == 0.5
    scores = pd.read_csv(run / "train/scores.csv")
    assert scores["iteration"].tolist() == [100] and scores["decision"].tolist() == ["prune"]
    assert 0 <= scores["score"].iloc[0] < 1
    # a pruned run is not a failed one
    assert failed_runs(tmp_path / "results") == []
    assert json.loads((run / "train/score_request.json").read_text())["node"] == 2

    # its analysis keeps the status, and scores exactly what the training reported
    metrics = analyze_run(sim_dir, run / "train", run, device="cpu")
    assert metrics["status"] == "pruned"
    assert weighted_score(metrics, WEIGHTS) == pytest.approx(scores["score"].iloc[0], abs=1e-9)
    assert read_curve(run / "train") == {0.5: pytest.approx(scores["score"].iloc[0])}

    # resumed to its end (report only): the same weights as a run never pruned nor reported
    _request(run / "train", sim_dir, None, {}, fractions=[1.0])
    info = train_run(sim_dir, cfg, run / "train", replicate_seed=0, progress=False)
    assert info["status"] == "ok" and info["resumed_from_iteration"] == 100
    assert info["iterations_done"] == 200
    assert not (run / "train/prune_decision.json").exists()
    scores = pd.read_csv(run / "train/scores.csv")
    assert scores["iteration"].tolist() == [100, 200]
    assert scores["decision"].tolist() == ["prune", "continue"]
    plain = tmp_path / "plain"
    assert train_run(sim_dir, cfg, plain, replicate_seed=0, progress=False)["status"] == "ok"
    assert not (plain / "scores.csv").exists()
    a = torch.load(run / "train/model.pt", weights_only=True)
    b = torch.load(plain / "model.pt", weights_only=True)
    for key in b:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_a_run_above_the_median_is_not_pruned(tmp_path, sim_dir):
    train = tmp_path / "train"
    _request(train, sim_dir, MEDIAN, {1: {0.5: -1.0}, 3: {0.5: -2.0}}, fractions=[0.5])
    info = train_run(sim_dir, _cfg(), train, replicate_seed=0, progress=False)
    assert info["status"] == "ok" and info["iterations_done"] == 200
    scores = pd.read_csv(train / "scores.csv")
    assert scores["iteration"].tolist() == [100]
    assert scores["fraction"].tolist() == [0.5]
    assert scores["decision"].tolist() == ["continue"]
    assert "not below the median -1.5 of 2" in scores["reason"].iloc[0]
    assert not (train / "prune_decision.json").exists()


def test_flyvis_checkpoint_scores_are_the_analysis_scores(tmp_path, flyvis_sim_dir):
    """The FlyVis family's score at its checkpoints, per-neuron parameters included, is what the
    analysis of the same weights scores."""
    weights = {"connectivity_R2": 0.4, "cluster_accuracy": 0.3, "tau_R2": 0.2, "V_rest_R2": 0.1}
    cfg = validate({"max_iterations": 60, "batch_size": 4}, "train")
    run = tmp_path / "results/m/1/c/seed0"
    write_request(
        run / "train",
        node=1,
        sim_dir=flyvis_sim_dir,
        score_weights=weights,
        pruning=None,
        fractions=[0.5, 1.0],
        references={},
    )
    info = train_run(flyvis_sim_dir, cfg, run / "train", replicate_seed=0, progress=False)
    assert info["status"] == "ok" and info["iterations_done"] == 60
    scores = pd.read_csv(run / "train/scores.csv")
    assert scores["iteration"].tolist() == [30, 60]
    assert scores["decision"].tolist() == ["continue", "continue"]
    metrics = analyze_run(flyvis_sim_dir, run / "train", run, device="cpu")
    assert weighted_score(metrics, weights) == pytest.approx(scores["score"].iloc[-1], abs=1e-9)
    assert read_curve(run / "train") == pytest.approx(
        {0.5: scores["score"].iloc[0], 1.0: scores["score"].iloc[1]}
    )
