"""Stage entry points called by the workflow's scripts (``scripts/*.py``).

This module sits at the top of the stage order, beside :mod:`connectome_gnn.cli`::

    io / config / errors / layout -> simulate -> models -> families -> train -> analysis
    -> aggregate -> explore -> cli / stages

A module may import only from its own stage or an earlier one.  An entry point that dispatches
on the model family (through :mod:`connectome_gnn.families`) therefore lives here rather than
in the package of the stage it runs.
"""

from __future__ import annotations

from pathlib import Path

from .config import format_sparsity
from .families import get_family
from .io import remove_stale_temps


def run_simulation(model_cfg: dict, sparsity: float | str, seed: int, out_dir: str | Path) -> dict:
    """Simulate one (model, sparsity, seed) with the model's family and write ``out_dir``."""
    family = get_family(model_cfg["family"])
    remove_stale_temps(out_dir)
    return family.simulate(model_cfg, float(format_sparsity(sparsity)), int(seed), Path(out_dir))


__all__ = ["run_simulation"]
