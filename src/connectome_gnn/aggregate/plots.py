"""Plots of an exploration (or of any set of runs): PNG files written atomically (Agg backend).

Like :mod:`.stats`, every function takes a runs table (or a table of :mod:`.stats`).  A plot
with nothing to show (no nodes, no varied parameter, no metric) writes no file and returns None:
no placeholder image ends up in a report.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import save_png
from .columns import is_ok, numeric
from .stats import filling_factors, param_label, value_text, varying_params
from .tables import CLASSIFICATIONS

__all__ = [
    "plot_exploration_tree",
    "plot_metric_vs_params",
    "plot_pareto_front",
    "plot_sparsity_landscape",
]


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:

    plt = _plt()
    path = Path(path)
    try:
        fig.tight_layout()
        save_png(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return path


def _nothing(path: str | os.PathLike) -> None:
    """Nothing to plot: no file (no placeholder image), and none left from an earlier call."""
    Path(path).unlink(missing_ok=True)


def _tree_layout(nodes: pd.DataFrame) -> dict[int, tuple[float, float]]:
    """Layered layout: x = depth in the block's tree, y = depth-first order; blocks stacked."""
    pos: dict[int, tuple[float, float]] = {}
    y = 0.0
    blocks = nodes["block"] if "block" in nodes else pd.Series(0, index=nodes.index)
    for block in sorted(blocks.unique()):
        part = nodes[blocks.eq(block)]
        ids = [int(i) for i in part["node_id"]]
        members = set(ids)
        parent = {
            int(i): (int(p) if pd.notna(p) and int(p) in members else None)
            for i, p in zip(part["node_id"], part["parent"], strict=True)
        }
        kids: dict[int | None, list[int]] = {}
        for i in sorted(ids):
            kids.setdefault(parent[i], []).append(i)
        stack = [(r, 0) for r in reversed(kids.get(None, []))]
        while stack:
            node, depth = stack.pop()
            pos[node] = (float(depth), -y)
            y += 1.0
            stack += [(c, depth + 1) for c in reversed(kids.get(node, []))]
        y += 1.0  # gap between blocks
    return pos


def plot_exploration_tree(
    nodes: pd.DataFrame, path: str | os.PathLike, title: str | None = None
) -> Path | None:
    """The exploration tree, nodes coloured by score (failed: red x, pending: grey).

    ``nodes`` needs ``node_id`` and ``parent`` (optional ``score``, ``status``, ``block``),
    e.g. ``ExplorationTree.to_frame()``.  x is the depth in the block's tree, nodes of one
    block are listed depth-first, blocks below each other.
    """
    plt = _plt()
    if nodes.empty or "node_id" not in nodes:
        return _nothing(path)
    pos = _tree_layout(nodes)
    n = len(pos)
    depth = max(p[0] for p in pos.values()) + 1
    fig, ax = plt.subplots(figsize=(min(4 + 1.2 * depth, 24), min(2.5 + 0.28 * n, 60)))
    for child, parent in zip(nodes["node_id"], nodes["parent"], strict=True):
        if pd.notna(parent) and int(parent) in pos and int(child) in pos:
            (x0, y0), (x1, y1) = pos[int(parent)], pos[int(child)]
            ax.plot([x0, x0, x1], [y0, y1, y1], color="0.6", lw=0.8, zorder=1)
    status = nodes["status"].astype(str) if "status" in nodes else pd.Series("ok", nodes.index)
    score = numeric(nodes, "score")
    ids = nodes["node_id"].astype(int)
    xy = np.array([pos[i] for i in ids])
    okm = status.eq("ok").to_numpy() & score.notna().to_numpy()
    if okm.any():
        sc = ax.scatter(
            xy[okm, 0], xy[okm, 1], c=score[okm], cmap="viridis", s=60, zorder=2,
            edgecolors="k", linewidths=0.5,
        )  # fmt: skip
        fig.colorbar(sc, ax=ax, label="score")
    fail = status.eq("failed").to_numpy()
    if fail.any():
        ax.scatter(xy[fail, 0], xy[fail, 1], marker="x", color="tab:red", s=50, zorder=2)
    other = ~(okm | fail)
    if other.any():
        ax.scatter(xy[other, 0], xy[other, 1], facecolors="none", edgecolors="0.5", s=60, zorder=2)
    for i, (x, y) in zip(ids, xy, strict=True):
        ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(6, 3), fontsize=7)
    if "block" in nodes and "parent" in nodes:
        for _, row in nodes.iterrows():
            block_ids = set(nodes.loc[nodes["block"].eq(row["block"]), "node_id"].astype(int))
            is_root = pd.isna(row["parent"]) or int(row["parent"]) not in block_ids
            if is_root and int(row["node_id"]) == min(i for i in block_ids if pos[i][0] == 0.0):
                x0, y0 = pos[int(row["node_id"])]
                ax.annotate(
                    f"block {row['block']}", (x0, y0), textcoords="offset points",
                    xytext=(-8, 10), fontsize=8, ha="left", color="0.3",
                )  # fmt: skip
    ax.set_xlabel("depth")
    ax.set_xticks(range(int(depth)))
    ax.set_yticks([])
    ax.set_xlim(-0.5, depth - 0.3)
    ax.set_title(title or "exploration tree (colour: score; x: failed)")
    return _save(fig, path)


def _log_axis(values: pd.Series) -> bool:
    v = values.dropna()
    return len(v) > 1 and (v > 0).all() and v.max() / v.min() >= 20


def plot_metric_vs_params(
    runs: pd.DataFrame,
    path: str | os.PathLike,
    metric: str = "connectivity_R2",
    params: Sequence[str] | None = None,
) -> Path | None:
    """One scatter panel per parameter: ``metric`` of every ok run against the parameter
    value (log x-axis for wide positive ranges), coloured by classification."""
    plt = _plt()
    params = varying_params(runs) if params is None else list(params)
    params = [p for p in params if p in runs.columns]
    if runs.empty or not params or metric not in runs.columns:
        return _nothing(path)
    y = numeric(runs, metric)
    ok = is_ok(runs) & y.notna()
    ncol = min(3, len(params))
    nrow = math.ceil(len(params) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
    colors = dict(zip(CLASSIFICATIONS, plt.get_cmap("tab10").colors, strict=False))
    labels = runs["classification"] if "classification" in runs else pd.Series("", runs.index)
    for ax, p in zip(axes.ravel(), params, strict=False):
        x = pd.to_numeric(runs[p], errors="coerce")
        sel = ok & x.notna()
        if not sel.any():  # text parameter: categorical positions
            cats = sorted(runs.loc[ok, p].map(value_text).unique())
            x = runs[p].map(value_text).map({c: i for i, c in enumerate(cats)})
            sel = ok & x.notna()
            ax.set_xticks(range(len(cats)), cats, rotation=30)
        for label in CLASSIFICATIONS:
            m = sel & labels.eq(label)
            if m.any():
                ax.scatter(x[m], y[m], s=22, color=colors[label], label=label, alpha=0.8)
        if _log_axis(x[sel]):
            ax.set_xscale("log")
        ax.set_xlabel(param_label(p))
        ax.set_ylabel(metric)
    for ax in axes.ravel()[len(params) :]:
        ax.set_axis_off()
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    if handles:
        axes.ravel()[0].legend(handles, names, fontsize=7)
    fig.suptitle(f"{metric} vs parameters")
    return _save(fig, path)


def plot_pareto_front(
    runs: pd.DataFrame,
    front: pd.DataFrame,
    path: str | os.PathLike,
    x: str = "connectivity_R2",
    y: str = "cluster_accuracy",
) -> Path | None:
    """Ok runs in the (x, y) plane, coloured by filling factor (one marker per model), with the
    Pareto-optimal runs (all metrics) circled."""
    plt = _plt()
    if runs.empty or x not in runs or y not in runs:
        return _nothing(path)
    from matplotlib.colors import LogNorm, Normalize

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ok = is_ok(runs)
    ff = filling_factors(runs)
    finite = ff[np.isfinite(ff) & (ff > 0)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (1.0, 1.0)
    norm = LogNorm(lo, hi) if hi > lo else Normalize(lo - 0.5, hi + 0.5)
    markers = ["o", "s", "^", "v", "D", "P", "X"]
    sc = None
    for i, model in enumerate(sorted(runs["model"].astype(str).unique())):
        sel = ok & runs["model"].astype(str).eq(model)
        sc = ax.scatter(
            numeric(runs, x)[sel], numeric(runs, y)[sel], c=ff[sel], cmap="viridis", norm=norm,
            s=22, alpha=0.7, marker=markers[i % len(markers)], label=model,
        )  # fmt: skip
        if not front.empty and x in front and y in front:
            f = front[front["model"].astype(str).eq(model)].sort_values(x)
            ax.scatter(f[x], f[y], s=80, facecolors="none", edgecolors="k", linewidths=1.2)
            ax.plot(f[x], f[y], color="k", lw=0.8, ls="--")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="filling factor")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title("Pareto front (circled: non-dominated on all metrics)")
    ax.legend(fontsize=7, title="model")
    return _save(fig, path)


def plot_sparsity_landscape(
    landscape: pd.DataFrame,
    path: str | os.PathLike,
    metrics: Sequence[str] = ("connectivity_R2", "cluster_accuracy"),
) -> Path | None:
    """Best metric per filling factor (log x-axis), one line per model and metric."""
    plt = _plt()
    cols = [m for m in metrics if f"best_{m}" in landscape]
    if landscape.empty or not cols:
        return _nothing(path)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    styles = ["-o", "--s", ":^", "-.v", "-d"]
    for i, model in enumerate(sorted(landscape["model"].astype(str).unique())):
        part = landscape[landscape["model"].astype(str).eq(model)].sort_values("filling_factor")
        for j, m in enumerate(cols):
            ax.plot(
                part["filling_factor"], part[f"best_{m}"], styles[j % len(styles)],
                color=plt.get_cmap("tab10")(i % 10), label=f"{model}: {m}",
            )  # fmt: skip
    ff = pd.to_numeric(landscape["filling_factor"], errors="coerce")
    if _log_axis(ff):
        ax.set_xscale("log")
    ax.axhline(0.9, color="0.5", lw=0.8, ls=":", label="0.9")
    ax.set_xlabel("filling factor")
    ax.set_ylabel("best value")
    ax.set_title("sparsity landscape: best value per filling factor")
    ax.legend(fontsize=7)
    return _save(fig, path)
