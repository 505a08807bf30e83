"""Analysis figures (PNG, Agg backend).

Every function writes one PNG at ``path`` (parent directories are created; the file appears
atomically) and closes its figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..io import atomic_path  # noqa: E402

MAX_LEGEND_TYPES = 20


def _save(fig, path: str | Path) -> None:
    """Save ``fig`` as PNG at ``path`` atomically and close it."""
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)


def _message(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _subsample(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(n, k)`` of ``range(n)``, chosen deterministically from ``seed``."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _type_palette(types: np.ndarray) -> dict:
    uniq = np.unique(types)
    colors = sns.color_palette("tab10" if uniq.size <= 10 else "husl", uniq.size)
    return {t: colors[i] for i, t in enumerate(uniq)}


def plot_w_scatter(
    w_true,
    w_learned,
    path: str | Path,
    r2: float | None = None,
    slope: float | None = None,
    max_points: int = 50000,
    seed: int = 0,
) -> None:
    """Scatter of learned vs true weights with the identity line; R²/slope in the title.

    Non-finite pairs are dropped; more than ``max_points`` points are subsampled
    deterministically (``seed``).
    """
    x = np.asarray(w_true, dtype=np.float64).ravel()
    y = np.asarray(w_learned, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    idx = _subsample(x.size, max_points, seed)
    x, y = x[idx], y[idx]

    fig, ax = plt.subplots(figsize=(5, 5))
    if x.size == 0:
        _message(ax, "no finite weights")
    else:
        ax.scatter(x, y, s=2, alpha=0.4, color="k", edgecolors="none", rasterized=True)
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        if hi == lo:
            lo, hi = lo - 1.0, hi + 1.0
        ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1, label="identity")
        ax.legend(loc="upper left", fontsize=8)
        ax.set(xlabel="true W", ylabel="learned W")
    parts = []
    if r2 is not None:
        parts.append(f"R²={r2:.3f}")
    if slope is not None:
        parts.append(f"slope={slope:.3f}")
    ax.set_title("learned vs true W" + (" (" + ", ".join(parts) + ")" if parts else ""))
    _save(fig, path)


def plot_embeddings(embeddings, types, path: str | Path) -> None:
    """Scatter of the first two embedding dimensions coloured by true type.

    One-dimensional embeddings are plotted against the neuron index.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim == 1:
        emb = emb[:, None]
    types = np.asarray(types).ravel()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if emb.shape[0] == 0 or emb.shape[1] == 0:
        _message(ax, "no embeddings")
        _save(fig, path)
        return
    if emb.shape[1] == 1:
        x, y = np.arange(emb.shape[0]), emb[:, 0]
        xlabel, ylabel = "neuron index", "embedding 0"
    else:
        x, y = emb[:, 0], emb[:, 1]
        xlabel, ylabel = "embedding 0", "embedding 1"
    uniq = np.unique(types)
    df = pd.DataFrame(
        {
            "x": x,
            "y": y,
            "type": pd.Categorical([str(t) for t in types], categories=[str(t) for t in uniq]),
        }
    )
    sns.scatterplot(
        data=df,
        x="x",
        y="y",
        hue="type",
        s=12,
        linewidth=0,
        palette="tab10" if uniq.size <= 10 else "husl",
        legend=uniq.size <= MAX_LEGEND_TYPES,
        ax=ax,
    )
    if uniq.size <= MAX_LEGEND_TYPES and ax.get_legend() is not None:
        ax.legend(title="type", fontsize=7, markerscale=1.5)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=f"embeddings ({uniq.size} types)")
    _save(fig, path)


def plot_mlp_curves(grid, phi_curves, edge_curves, types, path: str | Path) -> None:
    """Two panels: the lin_phi curves (one line per neuron, coloured by type, at most 200 neurons
    chosen deterministically) and the lin_edge curves (one line each) against ``grid``."""
    grid = np.asarray(grid, dtype=np.float64).ravel()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))

    phi = None if phi_curves is None else np.asarray(phi_curves, dtype=np.float64)
    if phi is None or phi.size == 0:
        _message(ax0, "no lin_phi curves")
    else:
        phi = np.atleast_2d(phi)
        types = np.asarray(types).ravel()
        palette = _type_palette(types)
        for i in _subsample(phi.shape[0], 200, seed=0):
            ax0.plot(grid, phi[i], color=palette[types[i]], lw=0.6, alpha=0.6)
        uniq = list(palette)
        if len(uniq) <= MAX_LEGEND_TYPES:
            handles = [plt.Line2D([], [], color=palette[t], label=str(t)) for t in uniq]
            ax0.legend(handles=handles, title="type", fontsize=7)
        ax0.set(xlabel="u", ylabel="lin_phi", title="lin_phi (per neuron)")

    edge = None if edge_curves is None else np.asarray(edge_curves, dtype=np.float64)
    if edge is None or edge.size == 0:
        _message(ax1, "no lin_edge curves")
    else:
        edge = np.atleast_2d(edge)
        for j in range(edge.shape[0]):
            ax1.plot(grid, edge[j], lw=1.0, label=f"curve {j}")
        if edge.shape[0] <= 10:
            ax1.legend(fontsize=7)
        ax1.set(xlabel="u", ylabel="lin_edge", title="lin_edge")
    _save(fig, path)


def plot_loss(loss_df: pd.DataFrame, path: str | Path) -> None:
    """Training loss against iteration on a log y-axis.

    Non-finite losses are dropped; a linear axis is used if some loss is not positive.  An empty
    table gives a figure that says "no loss recorded".
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    df = pd.DataFrame() if loss_df is None else loss_df
    if df.empty or "loss" not in df.columns:
        _message(ax, "no loss recorded")
        _save(fig, path)
        return
    loss = pd.to_numeric(df["loss"], errors="coerce").to_numpy(dtype=np.float64)
    if "iteration" in df.columns:
        it = pd.to_numeric(df["iteration"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        it = np.arange(loss.size, dtype=np.float64)
    keep = np.isfinite(loss) & np.isfinite(it)
    if not np.any(keep):
        _message(ax, "no loss recorded")
        _save(fig, path)
        return
    it, loss = it[keep], loss[keep]
    ax.plot(it, loss, lw=1.0)
    if np.all(loss > 0):
        ax.set_yscale("log")
    ax.set(xlabel="iteration", ylabel="loss", title="training loss")
    _save(fig, path)
