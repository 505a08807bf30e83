import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# 2 threads (CI's cores); CONNECTOME_GNN_TEST_THREADS=1 when another process holds a core (two
# threads on one free core make every parallel op wait for a descheduled thread)
torch.set_num_threads(
    int(os.environ.get("CONNECTOME_GNN_TEST_THREADS", min(2, os.cpu_count() or 1)))
)

# One FlyVis cache (built connectomes, accepted parameter sets) for the whole test session: the
# unit tests and the Snakemake runs of the workflow tests (subprocesses inherit the variable)
# share it, so that each parameter set is drawn and checked once (~10-40 s each).  A cache the
# user set is left alone.
if "CONNECTOME_GNN_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="connectome-gnn-test-cache-")
    os.environ["CONNECTOME_GNN_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_model_cfg():
    from connectome_gnn.config import validate

    return validate(
        {"family": "signal", "n_neurons": 40, "n_frames": 1500, "burn_in": 200}, "signal.model"
    )
