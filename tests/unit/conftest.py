import pytest

from connectome_gnn.config import validate
from connectome_gnn.stages import run_simulation


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory):
    """The tiny default circuit (signal, N = 100, 5000 frames), simulated once per session for
    the training tests; much smaller ones may settle on a limit cycle or give too few
    informative frames to pin W down in a short test.  Tests only read it."""
    cfg = validate({"family": "signal", "n_neurons": 100, "n_frames": 5000}, "signal.model")
    path = tmp_path_factory.mktemp("sim") / "sim"
    run_simulation(cfg, 1.0, 0, path)
    return path


@pytest.fixture(scope="session")
def flyvis_sim_dir(tmp_path_factory):
    """A small FlyVis circuit (extent 1, 2000 frames, intrinsic noise 0.5), simulated once per
    session for the FlyVis training tests.  Tests only read it."""
    cfg = validate(
        {"family": "flyvis", "extent": 1, "n_frames": 2000, "burn_in": 50, "intrinsic_noise": 0.5},
        "flyvis.model",
    )
    path = tmp_path_factory.mktemp("flyvis_sim") / "sim"
    run_simulation(cfg, 1.0, 0, path)
    return path


@pytest.fixture
def preempted(monkeypatch):
    """``preempted(after_saves, *args, **kwargs)`` runs ``train_run(*args, **kwargs)`` and
    stops it with a KeyboardInterrupt (a simulated preemption) right after its
    ``after_saves``-th checkpoint save, then undoes the patch."""
    from connectome_gnn.train import trainer as trainer_mod

    def run(after_saves: int, *args, **kwargs) -> None:
        original = trainer_mod._save_checkpoint
        calls = {"n": 0}

        def save_then_die(*a, **k):
            original(*a, **k)
            calls["n"] += 1
            if calls["n"] == after_saves:
                raise KeyboardInterrupt("simulated preemption")

        monkeypatch.setattr(trainer_mod, "_save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            trainer_mod.train_run(*args, **kwargs)
        monkeypatch.setattr(trainer_mod, "_save_checkpoint", original)

    return run
