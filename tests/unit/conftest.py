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
