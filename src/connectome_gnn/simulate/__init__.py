"""Stage 1: simulate circuits whose connectome is known."""

from __future__ import annotations

from pathlib import Path

from ..config import format_sparsity
from ..families import get_family
from ..io import remove_stale_temps
from .data import Simulation


def run_simulation(model_cfg: dict, sparsity: float | str, seed: int, out_dir: str | Path) -> dict:
    """Simulate one (model, sparsity, seed) with the model's family and write ``out_dir``."""
    family = get_family(model_cfg["family"])
    remove_stale_temps(out_dir)
    return family.simulate(model_cfg, float(format_sparsity(sparsity)), int(seed), Path(out_dir))


__all__ = ["Simulation", "run_simulation"]
