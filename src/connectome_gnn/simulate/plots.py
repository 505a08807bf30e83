"""Quick-look figure of a simulation: a few activity traces and the connectivity matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import read_zarr_array, save_png  # noqa: E402
from . import data as layout  # noqa: E402


def plot_simulation(sim_dir: Path, W: np.ndarray, types: np.ndarray, n_traces: int = 8) -> None:
    sim_dir = Path(sim_dir)
    u = read_zarr_array(sim_dir / layout.ACTIVITY, "u", 0, 2000)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.6, 1]})
    picks = np.linspace(0, u.shape[1] - 1, n_traces).astype(int)
    for i in picks:
        ax0.plot(u[:, i], lw=0.8, label=f"neuron {i} (type {types[i]})")
    ax0.set(xlabel="frame", ylabel="u", title="activity (first frames)")
    ax0.legend(fontsize=6, ncol=2)
    lim = float(np.percentile(np.abs(W[W != 0]), 99)) if np.any(W != 0) else 1.0
    im = ax1.imshow(W, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
    ax1.set(title="W_true [post, pre]", xlabel="presynaptic j", ylabel="postsynaptic i")
    fig.colorbar(im, ax=ax1, fraction=0.046)
    fig.tight_layout()
    save_png(fig, sim_dir / layout.PLOT, dpi=110)
    plt.close(fig)
