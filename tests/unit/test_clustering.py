"""Clustering accuracies and the analysis plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectome_gnn.analysis import plots
from connectome_gnn.analysis.clustering import (
    cluster_accuracy_kmeans,
    cluster_accuracy_single_linkage,
    cluster_metrics,
    hungarian_accuracy,
    matched_clusters,
)


def _blobs(per_blob: int = 5, seed: int = 0):
    """Four tight blobs at the corners of a 10x10 square; blob k has type [7, 3, 9, 1][k]."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    x = np.concatenate([c + 0.05 * rng.standard_normal((per_blob, 2)) for c in centers])
    types = np.repeat([7, 3, 9, 1], per_blob)
    # shuffle so that neither order nor labels line up with the cluster ids
    perm = rng.permutation(x.shape[0])
    return x[perm], types[perm]


def test_separated_blobs_both_methods_perfect():
    x, types = _blobs()
    assert cluster_accuracy_kmeans(x, types) == 1.0
    assert cluster_accuracy_single_linkage(x, types) == 1.0
    m = cluster_metrics(x, types, seed=3)
    assert m == {"cluster_accuracy": 1.0, "cluster_accuracy_single_linkage": 1.0, "n_types": 4}


def test_one_mislabeled_point_kmeans():
    x = np.array([[0.0], [0.1], [0.2], [0.3], [0.4], [5.0], [5.1], [5.2], [5.3], [5.4]])
    types = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])  # point 4 sits in blob 0 but has type 1
    # clusters {0..4}, {5..9}; best matching: 4 + 5 correct -> 0.9
    assert cluster_accuracy_kmeans(x, types) == pytest.approx(0.9)
    # single linkage: type 0 -> label of blob 0, type 1 -> median of labels (1 in blob 0, 5 in
    # blob 1) = blob 1's label; the mislabeled point is predicted as type 0 -> 0.9 as well
    assert cluster_accuracy_single_linkage(x / 5.4, types) == pytest.approx(0.9)


def test_rectangular_assignment():
    x, types = _blobs()
    # 3 clusters for 4 blobs: two blobs merge, one of them is unmatched -> 15/20
    assert cluster_accuracy_kmeans(x, types, n_clusters=3) == pytest.approx(0.75)
    # more clusters than types: unmatched clusters count as wrong
    assert hungarian_accuracy([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(0.75)


def test_constant_embeddings_do_not_crash():
    x = np.ones((6, 3))
    types = np.array([0, 0, 0, 1, 1, 2])
    # one cluster for everything: the majority type (3 of 6) is right
    assert cluster_accuracy_kmeans(x, types) == pytest.approx(0.5)
    # all in one single-linkage cluster; type 0 (first in order) claims it
    assert cluster_accuracy_single_linkage(x, types) == pytest.approx(0.5)
    m = cluster_metrics(x, types)
    assert m["n_types"] == 3


def test_fewer_samples_than_clusters():
    x = np.array([[0.0], [1.0], [2.0]])
    types = np.array([0, 1, 1])
    assert cluster_accuracy_kmeans(x, types, n_clusters=5) == pytest.approx(2 / 3)
    assert cluster_accuracy_single_linkage(x[:1], types[:1]) == 1.0


def test_one_dimensional_embeddings():
    x = np.array([0.0, 0.01, 0.02, 1.0, 1.01, 1.02])
    types = np.array([2, 2, 2, 5, 5, 5])
    assert cluster_accuracy_kmeans(x, types) == 1.0
    assert cluster_accuracy_single_linkage(x, types) == 1.0


# --- plots -------------------------------------------------------------------------------------


def _assert_png(path):
    assert path.is_file()
    data = path.read_bytes()
    assert len(data) > 100 and data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save (written as usual, then kept for inspection)."""
    kept = []
    real = plots._save

    def keep(fig, path):
        kept.append(fig)
        real(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_w_scatter(tmp_path, figures):
    rng = np.random.default_rng(0)
    w = rng.normal(size=300) * (rng.random(300) < 0.5)  # half non-edges
    path = tmp_path / "sub" / "w.png"
    plots.plot_w_scatter(w, 2 * w + 1, path, r2=1.0, slope=2.0, max_points=100)
    _assert_png(path)
    ax = figures[-1].axes[0]
    labels = _legend(ax)
    assert labels[0].startswith("non-edge (true W = 0): ") and labels[1].startswith("edge: ")
    assert sum(int(t.rsplit(": ", 1)[1]) for t in labels[:2]) == 100  # the subsample
    assert labels[2:] == ["identity", "least-squares fit"]
    fit = [line for line in ax.get_lines() if line.get_linestyle() == "--"][0]
    np.testing.assert_allclose(fit.get_ydata(), 2 * np.asarray(fit.get_xdata()) + 1)
    assert ax.get_title() == "learned vs true W (R²=1, slope=2.000)"


def test_matched_clusters_and_the_embedding_plot(tmp_path, figures):
    x, types = _blobs()
    pred = matched_clusters(x, types)
    np.testing.assert_array_equal(pred, types)  # well separated blobs: every neuron matched
    named = np.array([{7: "L1", 3: "Mi1", 9: "T4a", 1: "R1"}[t] for t in types])
    np.testing.assert_array_equal(matched_clusters(x, named), named)
    assert (matched_clusters(np.full_like(x, np.nan), types) == -1).all()
    plots.plot_embeddings(x, types, tmp_path / "e2.png", predicted=pred, accuracy=1.0)
    _assert_png(tmp_path / "e2.png")
    ax_true, ax_pred = figures[-1].axes
    assert ax_true.get_title().endswith("cluster_accuracy 1.000")
    assert ax_pred.get_title() == "predicted types (matched clusters)"
    plots.plot_embeddings(x[:, 0], types, tmp_path / "e1.png")
    assert len(figures[-1].axes) == 1
    _assert_png(tmp_path / "e1.png")


def test_plot_mlp_curves_overlays_the_true_functions(tmp_path, figures):
    grid = np.linspace(-1, 1, 20)
    types = np.arange(250) % 3
    phi = np.tanh(np.outer(types + 1, grid))
    edge = np.stack([3 * np.tanh(grid), grid**2])
    true_edge = np.stack([np.tanh(grid), grid**2])
    plots.plot_mlp_curves(
        grid,
        phi,
        edge,
        types,
        tmp_path / "mlp.png",
        phi_true=phi,
        edge_true=true_edge,
        edge_labels=["type a", "type b"],
        grid_label="v",
    )
    _assert_png(tmp_path / "mlp.png")
    ax_phi, ax_edge = figures[-1].axes
    dashed = [line for line in ax_phi.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 3  # one true curve per type
    assert _legend(ax_phi) == ["type 0", "type 1", "type 2", "true (one per type)"]
    assert _legend(ax_edge) == ["type a", "type b", "true (best scale)"]
    true_lines = [line for line in ax_edge.get_lines() if line.get_linestyle() == "--"]
    np.testing.assert_allclose(true_lines[0].get_ydata(), edge[0])  # scaled by 3
    assert ax_phi.get_xlabel() == "v"
    plots.plot_mlp_curves(grid, phi, edge, types, tmp_path / "plain.png")  # no truth known
    _assert_png(tmp_path / "plain.png")


def test_plot_per_type_r2(tmp_path, figures):
    plots.plot_per_type_r2({"0": 0.99, "1": 0.5, "2": float("nan")}, tmp_path / "t.png")
    _assert_png(tmp_path / "t.png")
    ax = figures[-1].axes[0]
    bars = ax.patches
    assert [round(b.get_height(), 3) for b in bars] == [0.99, 0.5, 0.0]  # nan: an empty slot
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert bars[0].get_facecolor() != bars[1].get_facecolor()  # above / below the 0.9 line


def test_plot_rollout(tmp_path, figures):
    t = np.linspace(0, 1, 300)[:, None]
    u_true = np.sin(2 * np.pi * t * np.arange(1, 9))  # 300 frames x 8 neurons
    u_pred = u_true + 0.1
    plots.plot_rollout(u_true, u_pred, 0.01, tmp_path / "r.png", r2=0.95, n_traces=3)
    _assert_png(tmp_path / "r.png")
    ax_traces, ax_err = figures[-1].axes[:2]
    assert ax_traces.get_title() == "rollout on held-out frames (test_R2 0.950)"
    assert len(ax_traces.get_lines()) == 6  # 3 neurons, true and model
    err = ax_err.get_images()[0].get_array()
    assert err.shape == (8, 300) and np.allclose(err, 0.1)


def test_plot_loss(tmp_path):
    df = pd.DataFrame({"iteration": np.arange(10), "epoch": 0, "loss": np.geomspace(1, 1e-3, 10)})
    plots.plot_loss(df, tmp_path / "loss.png")
    _assert_png(tmp_path / "loss.png")
    # nothing to plot: no placeholder image, and an earlier plot is removed
    (tmp_path / "empty.png").write_bytes(b"old")
    plots.plot_loss(pd.DataFrame(columns=["iteration", "loss"]), tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
    plots.plot_loss(pd.DataFrame({"iteration": [0, 1], "loss": [np.nan, np.inf]}), tmp_path / "e")
    assert not (tmp_path / "e").exists()
