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

from ..io import save_png  # noqa: E402
from .metrics import field_map, linear_fit_r2  # noqa: E402

MAX_LEGEND_TYPES = 20


def _save(fig, path: str | Path) -> None:
    """Save ``fig`` as PNG at ``path`` atomically and close it."""
    try:
        fig.tight_layout()
        save_png(fig, path, dpi=120)
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
    """Scatter of learned vs true weights: true edges (w_true != 0) and non-edges in two colours,
    the identity line and the least-squares line whose R² and slope the title shows.

    Non-finite pairs are dropped; more than ``max_points`` points are subsampled
    deterministically (``seed``); the fitted line uses all finite pairs.
    """
    x = np.asarray(w_true, dtype=np.float64).ravel()
    y = np.asarray(w_learned, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    fit_slope, fit_intercept, _ = linear_fit_r2(x, y) if x.size >= 2 else (np.nan, np.nan, np.nan)
    idx = _subsample(x.size, max_points, seed)
    xs, ys = x[idx], y[idx]

    fig, ax = plt.subplots(figsize=(5, 5))
    if x.size == 0:
        _message(ax, "no finite weights")
    else:
        edge = xs != 0
        for mask, color, label in ((~edge, "0.6", "non-edge (true W = 0)"), (edge, "k", "edge")):
            if mask.any():
                ax.scatter(
                    xs[mask],
                    ys[mask],
                    s=2,
                    alpha=0.4,
                    color=color,
                    edgecolors="none",
                    rasterized=True,
                    label=f"{label}: {int(mask.sum())}",
                    zorder=3,
                )
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        if hi == lo:
            lo, hi = lo - 1.0, hi + 1.0
        ax.plot([lo, hi], [lo, hi], color="tab:red", lw=1, label="identity", zorder=2)
        if np.isfinite(fit_slope):
            line = fit_slope * np.array([lo, hi]) + fit_intercept
            ax.plot(
                [lo, hi],
                line,
                color="tab:blue",
                lw=1.2,
                ls="--",
                label="least-squares fit",
                zorder=4,
            )
        ax.legend(loc="upper left", fontsize=7, markerscale=4)
        ax.set(xlabel="true W", ylabel="learned W")
    parts = []
    if r2 is not None:
        parts.append(f"R²={r2:.4g}")
    if slope is not None:
        parts.append(f"slope={slope:.3f}")
    ax.set_title("learned vs true W" + (" (" + ", ".join(parts) + ")" if parts else ""))
    _save(fig, path)


def _embedding_panel(ax, x, y, labels, title: str, legend_title: str) -> None:
    uniq = np.unique(labels)
    cats = [str(t) for t in uniq]
    df = pd.DataFrame(
        {"x": x, "y": y, "label": pd.Categorical([str(t) for t in labels], categories=cats)}
    )
    sns.scatterplot(
        data=df,
        x="x",
        y="y",
        hue="label",
        s=12,
        linewidth=0,
        palette="tab10" if uniq.size <= 10 else "husl",
        legend=uniq.size <= MAX_LEGEND_TYPES,
        ax=ax,
    )
    if uniq.size <= MAX_LEGEND_TYPES and ax.get_legend() is not None:
        ax.legend(title=legend_title, fontsize=7, markerscale=1.5)
    ax.set_title(title)


def plot_embeddings(
    embeddings,
    types,
    path: str | Path,
    predicted=None,
    accuracy: float | None = None,
) -> None:
    """The first two embedding dimensions coloured by true type and, with ``predicted`` (the
    clusters matched to types, :func:`~.clustering.matched_clusters`), a second panel coloured
    by predicted type; ``accuracy`` (cluster_accuracy) in the title.

    One-dimensional embeddings are plotted against the neuron index.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim == 1:
        emb = emb[:, None]
    types = np.asarray(types).ravel()
    panels = 1 if predicted is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 5), squeeze=False)
    axes = axes[0]
    if emb.shape[0] == 0 or emb.shape[1] == 0:
        for ax in axes:
            _message(ax, "no embeddings")
        _save(fig, path)
        return
    if emb.shape[1] == 1:
        x, y = np.arange(emb.shape[0]), emb[:, 0]
        xlabel, ylabel = "neuron index", "embedding 0"
    else:
        x, y = emb[:, 0], emb[:, 1]
        xlabel, ylabel = "embedding 0", "embedding 1"
    n_types = np.unique(types).size
    acc = "" if accuracy is None else f", cluster_accuracy {accuracy:.3f}"
    _embedding_panel(axes[0], x, y, types, f"true types ({n_types}){acc}", "type")
    if predicted is not None:
        pred = np.asarray(predicted).ravel()
        _embedding_panel(axes[1], x, y, pred, "predicted types (matched clusters)", "predicted")
    for ax in axes:
        ax.set(xlabel=xlabel, ylabel=ylabel)
    _save(fig, path)


def _scaled_to(true: np.ndarray, learned: np.ndarray) -> np.ndarray:
    """``true`` times the least-squares factor onto ``learned`` (an edge function is learned up
    to a scale that W absorbs)."""
    den = float(np.dot(true, true))
    return true * (float(np.dot(true, learned)) / den if den > 0 else 1.0)


def plot_mlp_curves(
    grid,
    phi_curves,
    edge_curves,
    types,
    path: str | Path,
    phi_true=None,
    edge_true=None,
    edge_labels=None,
    grid_label: str = "u",
) -> None:
    """Two panels against ``grid``: the lin_phi curves (one line per neuron, coloured by type,
    at most 200 neurons chosen deterministically) and the lin_edge curves.

    ``phi_true`` (same shape as ``phi_curves``) and ``edge_true`` (as ``edge_curves``): the
    simulator's functions, drawn dashed (lin_phi: one neuron per type; lin_edge: scaled by the
    least-squares factor onto the learned curve).  ``edge_labels``: a legend label per edge
    curve."""
    grid = np.asarray(grid, dtype=np.float64).ravel()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
    types = np.asarray(types).ravel()

    phi = None if phi_curves is None else np.asarray(phi_curves, dtype=np.float64)
    if phi is None or phi.size == 0:
        _message(ax0, "no lin_phi curves")
    else:
        phi = np.atleast_2d(phi)
        palette = _type_palette(types)
        for i in _subsample(phi.shape[0], 200, seed=0):
            ax0.plot(grid, phi[i], color=palette[types[i]], lw=0.6, alpha=0.6)
        uniq = list(palette)
        handles = []
        if len(uniq) <= MAX_LEGEND_TYPES:
            handles = [plt.Line2D([], [], color=palette[t], label=f"type {t}") for t in uniq]
        if phi_true is not None:
            true = np.atleast_2d(np.asarray(phi_true, dtype=np.float64))
            for t in uniq:
                i = int(np.flatnonzero(types == t)[0])
                ax0.plot(grid, true[i], color="k", lw=1.0, ls="--")
            handles.append(plt.Line2D([], [], color="k", ls="--", label="true (one per type)"))
        if handles:
            ax0.legend(handles=handles, fontsize=7)
        ax0.set(xlabel=grid_label, ylabel="lin_phi", title="lin_phi (learned, per neuron)")

    edge = None if edge_curves is None else np.asarray(edge_curves, dtype=np.float64)
    if edge is None or edge.size == 0:
        _message(ax1, "no lin_edge curves")
    else:
        edge = np.atleast_2d(edge)
        labels = list(edge_labels) if edge_labels is not None else [None] * edge.shape[0]
        true = None if edge_true is None else np.atleast_2d(np.asarray(edge_true, np.float64))
        for j in range(edge.shape[0]):
            (line,) = ax1.plot(grid, edge[j], lw=1.0, label=labels[j])
            if true is not None:
                ax1.plot(grid, _scaled_to(true[j], edge[j]), color=line.get_color(), ls="--")
        handles, _ = ax1.get_legend_handles_labels()
        if true is not None:
            handles.append(plt.Line2D([], [], color="k", ls="--", label="true (best scale)"))
        if handles and edge.shape[0] <= 10:
            ax1.legend(handles=handles, fontsize=7)
        ax1.set(xlabel=grid_label, ylabel="lin_edge", title="lin_edge (learned)")
    _save(fig, path)


def plot_loss(loss_df: pd.DataFrame, path: str | Path) -> None:
    """Training loss against iteration on a log y-axis.

    Non-finite losses are dropped; a linear axis is used if some loss is not positive.  Without
    any finite loss (a run that diverged at once) no file is written, and an earlier one is
    removed: no placeholder image in the report.
    """
    df = pd.DataFrame() if loss_df is None else loss_df
    if df.empty or "loss" not in df.columns:
        Path(path).unlink(missing_ok=True)
        return
    loss = pd.to_numeric(df["loss"], errors="coerce").to_numpy(dtype=np.float64)
    if "iteration" in df.columns:
        it = pd.to_numeric(df["iteration"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        it = np.arange(loss.size, dtype=np.float64)
    keep = np.isfinite(loss) & np.isfinite(it)
    if not np.any(keep):
        Path(path).unlink(missing_ok=True)
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    it, loss = it[keep], loss[keep]
    ax.plot(it, loss, lw=1.0)
    if np.all(loss > 0):
        ax.set_yscale("log")
    ax.set(xlabel="iteration", ylabel="loss", title="training loss")
    _save(fig, path)


def plot_per_type_r2(per_type: dict, path: str | Path, threshold: float = 0.9) -> None:
    """connectivity_R2 within each receiver type, one bar per type (``per_type_R2``), with the
    ``threshold`` line; missing (nan) values are drawn as empty slots."""
    names = list(per_type)
    values = np.array([float(per_type[k]) for k in names], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(max(4.0, min(14.0, 0.22 * len(names) + 2.5)), 3.6))
    if not names:
        _message(ax, "no per-type R²")
        _save(fig, path)
        return
    shown = np.nan_to_num(values, nan=0.0)
    colors = ["tab:green" if v >= threshold else "tab:orange" for v in shown]
    ax.bar(np.arange(len(names)), shown, color=colors)
    ax.axhline(threshold, color="0.4", lw=0.8, ls=":", label=f"{threshold:g}")
    ax.set_xticks(np.arange(len(names)), names, rotation=90 if len(names) > 12 else 0, fontsize=7)
    finite = values[np.isfinite(values)]
    ax.set_ylim(min(0.0, float(finite.min())) if finite.size else 0.0, 1.02)
    ax.set(xlabel="receiver type", ylabel="connectivity_R2", title="W recovery per receiver type")
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def plot_field_traces(
    x_true, x_learned, t, path: str | Path, r2: float | None = None, n_traces: int = 4
) -> None:
    """A learned input against the true one: ``n_traces`` units (the most variable), true solid,
    learned dashed after field_R2's map (one offset per unit, one global scale), over the
    first ~10 % of the frames given and over all of them."""
    x_true = np.asarray(x_true, dtype=np.float64)
    mapped = field_map(x_true, x_learned)
    t = np.asarray(t, dtype=np.float64)
    order = np.argsort(-np.nan_to_num(x_true.std(0)))[:n_traces]
    colors = sns.color_palette("tab10", len(order))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    spans = (slice(0, max(2, len(t) // 10)), slice(None))
    for ax, span, label in zip(axes, spans, ("first frames", "all training frames"), strict=True):
        for c, i in zip(colors, order, strict=True):
            ax.plot(t[span], x_true[span, i], color=c, lw=1.0)
            ax.plot(t[span], mapped[span, i], color=c, lw=1.0, ls="--")
        ax.set(xlabel="time", ylabel="input x", title=label)
    handles = [
        plt.Line2D([], [], color="k", label="true"),
        plt.Line2D([], [], color="k", ls="--", label="learned (mapped)"),
    ]
    axes[0].legend(handles=handles, fontsize=7)
    if r2 is not None:
        fig.suptitle(f"learned input field (field_R2 {r2:.3f})")
    _save(fig, path)


def plot_field_images(positions, x_true, x_learned, t, path: str | Path, n_frames: int = 4) -> None:
    """The input field as images of the units at their places (hexagons: FlyVis columns, or a
    signal model's grid) at ``n_frames`` frames of high contrast: true, learned (after
    field_R2's map) and their difference, one row each."""
    pos = np.asarray(positions, dtype=np.float64)
    x_true = np.asarray(x_true, dtype=np.float64)
    mapped = field_map(x_true, x_learned)
    spread = x_true.std(1)
    picks = np.linspace(0, len(spread) - 1, 4 * n_frames).round().astype(int)
    picks = np.sort(picks[np.argsort(-spread[picks])[:n_frames]])
    lo, hi = float(np.nanmin(x_true)), float(np.nanmax(x_true))
    lim = float(np.nanmax(np.abs(mapped - x_true))) or 1.0
    fig, axes = plt.subplots(3, len(picks), figsize=(2.6 * len(picks), 7.2), squeeze=False)
    size = 2.2e4 / max(len(pos), 1)
    for j, k in enumerate(picks):
        rows = (
            (x_true[k], "viridis", lo, hi, "true"),
            (mapped[k], "viridis", lo, hi, "learned"),
            (mapped[k] - x_true[k], "RdBu_r", -lim, lim, "learned - true"),
        )
        for i, (val, cmap, vmin, vmax, label) in enumerate(rows):
            ax = axes[i, j]
            ax.scatter(
                pos[:, 0],
                pos[:, 1],
                c=val,
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                marker="h",
                s=size,
                linewidths=0,
            )
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
            if i == 0:
                ax.set_title(f"t = {t[k]:.3g}", fontsize=9)
    _save(fig, path)


def plot_rollout(
    u_true, u_pred, dt: float, path: str | Path, r2: float | None = None, n_traces: int = 6
) -> None:
    """The held-out rollout: ``n_traces`` neurons (the most active, true solid, model dashed)
    against time, and the model-minus-truth heatmap (at most 100 neurons and ~200 time
    columns: a compact PNG)."""
    u_true = np.asarray(u_true, dtype=np.float64)
    u_pred = np.asarray(u_pred, dtype=np.float64)
    t = np.arange(u_true.shape[0]) * dt
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    order = np.argsort(-np.nan_to_num(u_true.std(0)))[:n_traces]
    colors = sns.color_palette("tab10", len(order))
    for c, i in zip(colors, order, strict=True):
        ax0.plot(t, u_true[:, i], color=c, lw=1.0)
        ax0.plot(t, u_pred[:, i], color=c, lw=1.0, ls="--")
    handles = [
        plt.Line2D([], [], color="k", label="true"),
        plt.Line2D([], [], color="k", ls="--", label="model"),
    ]
    ax0.legend(handles=handles, fontsize=7)
    title = "rollout on held-out frames" + ("" if r2 is None else f" (test_R2 {r2:.3f})")
    ax0.set(xlabel="time", ylabel="u", title=title)
    idx = _subsample(u_true.shape[1], 100, seed=0)
    step = max(1, u_true.shape[0] // 200)  # at most ~200 columns: a compact PNG
    diff = (u_pred - u_true)[::step, idx].T
    finite = diff[np.isfinite(diff)]
    lim = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    im = ax1.imshow(
        diff,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-lim or -1.0,
        vmax=lim or 1.0,
        extent=(t[0], t[-1] if t.size > 1 else 1.0, len(idx), 0),
        interpolation="nearest",
    )
    fig.colorbar(im, ax=ax1, label="model − true")
    ax1.set(xlabel="time", ylabel="neuron", title="rollout error")
    _save(fig, path)
