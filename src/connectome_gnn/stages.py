"""Stage entry points called by the workflow's scripts (``scripts/*.py``).

This module sits at the top of the stage order, beside :mod:`connectome_gnn.cli`::

    io / config / errors / layout / text / progress -> simulate -> models -> families
    -> train -> analysis -> aggregate -> explore -> cli / stages

A module may import only from its own stage or an earlier one.  An entry point that dispatches
on the model family (through :mod:`connectome_gnn.families`) therefore lives here rather than
in the package of the stage it runs.
"""

from __future__ import annotations

import time
from pathlib import Path

from .config import format_sparsity
from .families import get_family
from .io import remove_stale_temps
from .progress import log_summary

#: simulation.json keys of the simulate log's summary line
SUMMARY_KEYS = ("n_neurons", "n_frames", "n_edges", "filling_factor_measured", "activity_std")


def run_simulation(model_cfg: dict, sparsity: float | str, seed: int, out_dir: str | Path) -> dict:
    """Simulate one (model, sparsity, seed) with the model's family and write ``out_dir``."""
    family = get_family(model_cfg["family"])
    remove_stale_temps(out_dir)
    filling = float(format_sparsity(sparsity))
    t0 = time.perf_counter()
    meta = family.simulate(model_cfg, filling, int(seed), Path(out_dir))
    fields = {"family": model_cfg["family"], "filling_factor": filling}
    fields.update({k: meta[k] for k in SUMMARY_KEYS if k in meta})
    fields.update(time_s=time.perf_counter() - t0, outputs=str(out_dir))
    log_summary("simulate", fields)
    return meta


__all__ = ["run_simulation"]


def plot_exploration(directory: str | Path, out_png: str | Path) -> Path:
    """The tree plot of the exploration in ``directory`` (its ``nodes.yaml``): finished nodes
    coloured by score, failed ones marked.  Raises :class:`~connectome_gnn.errors.ConfigError`
    when no node has finished (there is nothing to plot)."""
    from .aggregate.plots import plot_exploration_tree
    from .errors import ConfigError
    from .explore import ExplorationTree

    tree = ExplorationTree.load(directory)
    nodes = tree.to_frame(include_unfinished=False)
    title = f"exploration {Path(directory).name} (colour: score; x: failed)"
    out = plot_exploration_tree(nodes, out_png, title=title)
    if out is None:
        raise ConfigError(f"{tree.path}: no finished node to plot")
    n_ok = int(nodes["status"].astype(str).eq("ok").sum()) if "status" in nodes else len(nodes)
    log_summary("exploration_tree", {"nodes": len(nodes), "ok": n_ok, "outputs": str(out)})
    return out
