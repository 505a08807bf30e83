import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_model_cfg():
    from connectome_gnn.config import validate

    return validate(
        {"family": "signal", "n_neurons": 40, "n_frames": 1500, "burn_in": 200}, "signal.model"
    )
