import json

import numpy as np
import pytest
import torch

from connectome_gnn.analysis import analyze_run
from connectome_gnn.config import ConfigError, load_train_config, validate
from connectome_gnn.train import iterations_per_epoch, train_run
from connectome_gnn.train import trainer as trainer_mod


def _cfg(**over):
    return validate(
        {"W_init_std": 0.0, "lr_W": 3e-3, "lr": 1e-3, "lr_emb": 1.5e-3, **over}, "train"
    )


def test_iterations_per_epoch_reference_formula():
    cfg = validate({"batch_size": 8, "data_augmentation_loop": 50}, "train")
    assert iterations_per_epoch(100_000, cfg) == 125_000  # the paper's fig. 2 setting
    assert iterations_per_epoch(100_000, {**cfg, "max_iterations": 10}) == 10


def test_short_training_recovers_connectivity(tmp_path, sim_dir, repo_root):
    cfg = load_train_config(repo_root / "config/train/default.yaml")
    cfg["max_iterations"] = 6000
    info = train_run(sim_dir, cfg, tmp_path / "train", replicate_seed=0, progress=False)
    assert info["status"] == "ok" and info["iterations_done"] == 6000
    metrics = analyze_run(sim_dir, tmp_path / "train", tmp_path / "run", device="cpu")
    # 6000 iterations (~7 s) reach R2 ~0.95; the full default run (workflow test) reaches > 0.99
    assert metrics["connectivity_R2"] > 0.93, metrics["connectivity_R2"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "ok"
    for name in ("model.pt", "checkpoint.pt", "loss.csv", "train_info.json", "run_config.json"):
        assert (tmp_path / "train" / name).is_file()


def test_same_seed_same_weights(tmp_path, sim_dir):
    cfg = _cfg(max_iterations=200)
    train_run(sim_dir, cfg, tmp_path / "a", replicate_seed=1, progress=False)
    train_run(sim_dir, cfg, tmp_path / "b", replicate_seed=1, progress=False)
    train_run(sim_dir, cfg, tmp_path / "c", replicate_seed=2, progress=False)
    load = lambda d: torch.load(tmp_path / d / "model.pt", weights_only=True)["W"]  # noqa: E731
    assert torch.equal(load("a"), load("b"))
    assert not torch.equal(load("a"), load("c"))


def test_divergence_ends_cleanly_with_failed_status(tmp_path, sim_dir):
    info = train_run(sim_dir, _cfg(divergence_threshold=1e-6), tmp_path / "t", 0, progress=False)
    assert info["status"] == "failed" and "divergence_threshold" in info["reason"]
    metrics = analyze_run(sim_dir, tmp_path / "t", tmp_path / "run", device="cpu")
    assert metrics["status"] == "failed" and metrics["reason"] == info["reason"]


def test_exploding_learning_rate_is_failed_not_crash(tmp_path, sim_dir):
    info = train_run(
        sim_dir, _cfg(lr_W=1e6, lr=1e6, max_iterations=300), tmp_path / "t", 0, progress=False
    )
    assert info["status"] == "failed"
    state = torch.load(tmp_path / "t" / "model.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values())  # last finite state kept


def test_resume_after_interruption_matches_uninterrupted(tmp_path, sim_dir, preempted):
    cfg = _cfg(n_epochs=2, max_iterations=150)
    train_run(sim_dir, cfg, tmp_path / "full", 0, progress=False)
    preempted(1, sim_dir, cfg, tmp_path / "resumed", 0, progress=False)  # after epoch 0
    assert not (tmp_path / "resumed" / "model.pt").exists()
    info = train_run(sim_dir, cfg, tmp_path / "resumed", 0, progress=False)
    assert info["resumed_from_iteration"] == 150 and info["iterations_done"] == 300
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, rtol=0)


def test_a_checkpoint_of_another_configuration_is_named_and_training_starts_afresh(
    tmp_path, sim_dir, preempted, capsys
):
    cfg = _cfg(n_epochs=2, max_iterations=20)
    preempted(1, sim_dir, cfg, tmp_path / "t", 0, progress=False)  # a checkpoint at epoch 0
    capsys.readouterr()
    info = train_run(sim_dir, {**cfg, "lr": 2e-3}, tmp_path / "t", 0, progress=False)
    assert "belongs to another configuration" in capsys.readouterr().err
    assert info.get("resumed_from_iteration") is None and info["iterations_done"] == 40


def test_corrupted_checkpoint_is_reported(tmp_path, sim_dir):
    from connectome_gnn.io import DataError

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="checkpoint.pt: corrupted checkpoint"):
        train_run(sim_dir, _cfg(max_iterations=10), tmp_path / "t", 0, progress=False)


def test_device_selection():
    from connectome_gnn.train import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        from connectome_gnn.config import ConfigError

        with pytest.raises(ConfigError, match="field 'device'.*CUDA is not available"):
            resolve_device("cuda")


_TRAIN_IN_SUBPROCESS = """
import json, sys
from connectome_gnn.train import train_run
from connectome_gnn.workflow import run_logged
sim, cfg, out, log = sys.argv[1:5]
run_logged(log, train_run, sim, json.loads(cfg), out, 0, progress=False, threads=1)
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGUSR1"])
def test_signal_mid_training_checkpoints_and_resume_is_exact(tmp_path, sim_dir, signame):
    """A job killed by the scheduler (time limit / preemption) resumes to the same result."""
    import signal
    import subprocess
    import sys
    import time

    cfg = _cfg(n_epochs=2, max_iterations=600, checkpoint_every=50)
    full = train_run(sim_dir, cfg, tmp_path / "full", 0, progress=False, threads=1)
    out, log = tmp_path / "killed", tmp_path / "train.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", _TRAIN_IN_SUBPROCESS, str(sim_dir), json.dumps(cfg), str(out), log]
    )
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint written"
        time.sleep(0.05)
    proc.send_signal(getattr(signal, signame))
    assert proc.wait(timeout=120) == 128 + getattr(signal, signame)
    text = log.read_text()
    assert f"INTERRUPTED: {signame} received at epoch" in text and "Traceback" not in text
    assert not (out / "model.pt").exists() and not (out / "train_info.json").exists()
    stopped_at = torch.load(out / "checkpoint.pt", weights_only=True)
    position = int(stopped_at["epoch"]) * 600 + int(stopped_at["iteration"])
    assert 0 < position < 1200, position

    info = train_run(sim_dir, cfg, out, 0, progress=False, threads=1)
    assert info["status"] == "ok" and info["resumed_from_iteration"] == position
    assert info["iterations_done"] == full["iterations_done"] == 1200
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(out / "model.pt", weights_only=True)
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, rtol=0)
    assert info["final_loss"] == pytest.approx(full["final_loss"], abs=1e-6)


def test_time_based_checkpoint(tmp_path, sim_dir, monkeypatch):
    saves = []
    original = trainer_mod._save_checkpoint

    def spy(path, model, optimizer, gen, state):
        saves.append((state["epoch"], state["iteration"]))
        original(path, model, optimizer, gen, state)

    monkeypatch.setattr(trainer_mod, "_save_checkpoint", spy)
    train_run(sim_dir, _cfg(max_iterations=40, checkpoint_minutes=0), tmp_path / "a", 0)
    assert saves == [(1, 0)]  # epoch end only
    saves.clear()
    # a tiny interval: a checkpoint after (nearly) every iteration, each at the right position
    train_run(sim_dir, _cfg(max_iterations=40, checkpoint_minutes=1e-9), tmp_path / "b", 0)
    assert saves[:3] == [(0, 1), (0, 2), (0, 3)] and saves[-1] == (1, 0)


def test_training_a_finished_run_again_starts_afresh(tmp_path, sim_dir):
    cfg = _cfg(max_iterations=40)
    first = train_run(sim_dir, cfg, tmp_path / "t", 0, progress=False)
    again = train_run(sim_dir, cfg, tmp_path / "t", 0, progress=False)
    assert again["resumed_from_iteration"] is None and again["iterations_done"] == 40
    assert again["final_loss"] == pytest.approx(first["final_loss"], abs=1e-6)


def test_a_retry_finishes_a_finished_run_from_its_final_checkpoint(tmp_path, sim_dir, capfd):
    """Snakemake's retry of a failed pack deletes every member's outputs: a member that had
    finished writes them again from its final checkpoint (attempt 2), not by training again."""
    cfg = _cfg(max_iterations=40)
    out = tmp_path / "t"
    first = train_run(sim_dir, cfg, out, 0, progress=False)
    weights = torch.load(out / "model.pt", weights_only=True)
    loss = (out / "loss.csv").read_text()
    for name in ("model.pt", "train_info.json", "loss.csv"):
        (out / name).unlink()
    capfd.readouterr()
    retry = train_run(sim_dir, cfg, out, 0, progress=False, attempt=2)
    assert "without training again" in capfd.readouterr().err
    assert retry["status"] == "ok" and retry["resumed_from_iteration"] == 40
    assert retry["iterations_done"] == 40 and retry["final_loss"] == first["final_loss"]
    # the time is the training's it reuses (as saved at its end), not the retry's
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["elapsed_s"]
    assert saved <= retry["wall_time_s"] < saved + 0.1
    again = torch.load(out / "model.pt", weights_only=True)
    assert again.keys() == weights.keys()
    assert all(torch.equal(again[k], weights[k]) for k in weights)
    assert (out / "loss.csv").read_text() == loss
    # a run stopped by its time budget keeps saying so when finished from its checkpoint
    budget = _cfg(max_iterations=40, max_minutes=1e-9)
    stopped = train_run(sim_dir, budget, tmp_path / "b", 0, progress=False)
    assert stopped["stopped_by"] == "max_minutes 1e-09"
    retry = train_run(sim_dir, budget, tmp_path / "b", 0, progress=False, attempt=3)
    assert retry["stopped_by"] == stopped["stopped_by"]


def test_recurrent_training_rollout_targets(sim_dir):
    """The recurrent rollout of the true dynamics reproduces the recorded frames: its loss is 0
    for any time_step, and time_step 1 equals the derivative loss."""
    from connectome_gnn.families import get_family
    from connectome_gnn.simulate.data import Simulation

    sim = Simulation(sim_dir)
    u = torch.from_numpy(sim.read("u", 0, 200))
    du = torch.from_numpy(sim.read("du", 0, 200))
    truth = get_family(sim.family).true_dynamics(sim)
    k = torch.tensor([0, 17, 150])
    one = _cfg(recurrent_training=True, time_step=1)
    pred, target = trainer_mod._rollout_pred(truth, u, du, None, k, one, sim.dt)
    torch.testing.assert_close(target, du[k], rtol=0, atol=2e-3)
    torch.testing.assert_close(pred, du[k], rtol=0, atol=2e-3)
    for steps in (3, 10):
        cfg = _cfg(recurrent_training=True, time_step=steps)
        pred, target = trainer_mod._rollout_pred(truth, u, du, None, k, cfg, sim.dt)
        torch.testing.assert_close(pred, target, rtol=0, atol=2e-3)
        assert target.abs().max() > 0.05  # not trivially zero
    # a model off by a constant drift c: error exactly c over one step, and still seen (though
    # changed by the dynamics it sets off) over ten
    drift = lambda v: truth(v) + 0.5  # noqa: E731
    pred, target = trainer_mod._rollout_pred(drift, u, du, None, k, one, sim.dt)
    torch.testing.assert_close(pred - target, torch.full_like(pred, 0.5), rtol=0, atol=2e-3)
    pred, target = trainer_mod._rollout_pred(drift, u, du, None, k, cfg, sim.dt)
    assert (pred - target).abs().mean() > 0.1


def test_recurrent_training_runs_and_rejects_too_long_rollouts(tmp_path, sim_dir):
    cfg = _cfg(max_iterations=50, recurrent_training=True, time_step=4)
    info = train_run(sim_dir, cfg, tmp_path / "r", replicate_seed=0, progress=False)
    assert info["status"] == "ok" and info["iterations_done"] == 50
    with pytest.raises(trainer_mod.ConfigError, match="field 'time_step'"):
        train_run(sim_dir, _cfg(recurrent_training=True, time_step=10**6), tmp_path / "x", 0)


def test_config_missing_newer_keys_gets_their_defaults(tmp_path, sim_dir):
    cfg = _cfg(max_iterations=20)
    for key in ("recurrent_training", "time_step", "W_basis"):
        cfg.pop(key)  # as validated by an older schema
    info = train_run(sim_dir, cfg, tmp_path / "t", replicate_seed=0, progress=False)
    assert info["status"] == "ok" and info["iterations_done"] == 20


def test_max_minutes_stops_on_time_and_anneals_by_time(tmp_path, sim_dir, monkeypatch):
    class Clock:  # every reading of the clock advances it by one second
        now = 0.0

        def perf_counter(self):
            Clock.now += 1.0
            return Clock.now

    progress, saves = [], []
    monkeypatch.setattr(trainer_mod, "time", Clock())
    real_set_lr, real_save = trainer_mod._set_lr, trainer_mod._save_checkpoint
    monkeypatch.setattr(
        trainer_mod, "_set_lr", lambda opt, cfg, p: (progress.append(p), real_set_lr(opt, cfg, p))
    )
    monkeypatch.setattr(
        trainer_mod,
        "_save_checkpoint",
        lambda path, *a: (saves.append((a[-1]["epoch"], a[-1]["iteration"])), real_save(path, *a)),
    )
    cfg = _cfg(max_iterations=2000, max_minutes=0.5, lr_schedule="cosine")
    info = train_run(sim_dir, cfg, tmp_path / "t", 0, progress=False)
    assert info["status"] == "ok" and info["stopped_by"] == "max_minutes 0.5"
    # 30 "seconds" at a few clock readings per iteration: a handful of iterations, not 2000
    assert 3 <= info["iterations_done"] < 30
    assert info["wall_time_s"] >= 30
    assert progress[-1] > 0.9 and progress == sorted(progress)  # the schedule ran to its end
    assert saves[-1] == (1, 0)  # saved as finished: a rerun trains afresh, does not resume
    # without a budget the same config trains every iteration and reports no stop
    info = train_run(sim_dir, _cfg(max_iterations=40), tmp_path / "u", 0, progress=False)
    assert info["stopped_by"] is None and info["iterations_done"] == 40
    with pytest.raises(ConfigError, match="max_minutes"):
        validate({"max_minutes": 0}, "train")


def test_activity_embedding_start(tmp_path, sim_dir):
    cfg = _cfg(max_iterations=1, embedding_init="activity", embedding_dim=3, lr_emb=1e-9)
    train_run(sim_dir, cfg, tmp_path / "s", 0, progress=False)
    a = torch.load(tmp_path / "s" / "model.pt", weights_only=True)["a"]
    # 1 + unit-variance principal components of the activity statistics (one tiny step)
    torch.testing.assert_close(a.mean(0), torch.ones(3), rtol=0, atol=1e-4)
    torch.testing.assert_close(a.std(0), torch.ones(3), rtol=0, atol=1e-2)
    with pytest.raises(ConfigError, match="embedding_init"):
        validate({"embedding_init": "pca"}, "train")


def test_config_hash_tracks_the_flyvis_parameter_generator():
    import hashlib

    train = {"lr": 1e-3, "batch_size": 4}
    meta = {"model_config": {"family": "signal", "n_neurons": 40}, "seed": 0}
    # without a generator version (signal runs, older simulations) the hash is the earlier one,
    # so their checkpoints still resume
    blob = json.dumps(
        {"train": train, "sim": meta["model_config"], "seed": 0}, sort_keys=True, default=str
    )
    assert trainer_mod._config_hash(train, meta) == hashlib.sha256(blob.encode()).hexdigest()[:16]
    # regenerated FlyVis data (another parameter-set version) does not resume an old checkpoint
    v2 = trainer_mod._config_hash(train, {**meta, "params_version": 2})
    v3 = trainer_mod._config_hash(train, {**meta, "params_version": 3})
    assert len({v2, v3, trainer_mod._config_hash(train, meta)}) == 3
