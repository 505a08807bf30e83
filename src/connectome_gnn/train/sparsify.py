"""The reference's embedding cluster-median replacement (``embedding_sparsity: replace_embedding_function``).

At the end of some epochs (:func:`~connectome_gnn.train.schedule.replaces_after`) the reference
evaluates every neuron's update function lin_phi(u, a_i) on a grid of u, clusters the neurons by
these curves, replaces each embedding a_i by the median of its cluster's embeddings and then
fits lin_phi for a few full-batch Adam steps to the cluster-median curves: neurons that behave
alike are pulled onto one embedding and one function.

Differences from the reference, on purpose:

- the reference clusters a 2-D UMAP projection of the curves (min-max normalised, single-linkage
  hierarchical clustering cut at ``cluster_distance_threshold``); here the curves themselves are
  clustered (no UMAP dependency), scaled so that the distance between two curves is their RMS
  difference in units of the range of all curves: ``cluster_method: distance`` cuts a
  single-linkage tree at ``cluster_distance_threshold``, ``kmeans`` makes ``n_clusters``;
- the reference's target curves are grouped by the clusters matched to the *true* types; here by
  the clusters themselves (training never sees the truth);
- the curves span [-xnorm, xnorm] (the analysis' range, 1.5 x the std of u) instead of the plot
  limits of the reference config, on :data:`CURVE_POINTS` points instead of 1,000.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage

#: points of the grid of u on which the lin_phi curves are compared and fitted
CURVE_POINTS = 200


def phi_curves(model, grid: torch.Tensor) -> torch.Tensor:
    """lin_phi of every neuron on ``grid`` (P values of u): N x P (differentiable)."""
    u = grid.unsqueeze(1).expand(-1, model.a.shape[0])  # P x N: every neuron sees the grid
    return model.phi(u).T


def cluster_curves(curves: np.ndarray, phases: dict, seed: int) -> np.ndarray:
    """Cluster labels 0..k-1 of the rows of ``curves`` (N x P), see the module docstring."""
    lo, hi = float(curves.min()), float(curves.max())
    x = (curves - lo) / (hi - lo + 1e-12) / math.sqrt(curves.shape[1])
    if phases["cluster_method"] == "kmeans":
        from sklearn.cluster import KMeans

        k = min(int(phases["n_clusters"]), x.shape[0])
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x).labels_.astype(int)
    if x.shape[0] < 2:
        return np.zeros(x.shape[0], dtype=int)
    tree = linkage(x, method="single")
    labels = fcluster(tree, t=float(phases["cluster_distance_threshold"]), criterion="distance")
    return np.unique(labels, return_inverse=True)[1].astype(int)


def cluster_medians(values: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """``values`` (N x D) with every row replaced by the elementwise median of its cluster's
    rows (torch.median: the lower middle value of an even count, as the reference)."""
    out = values.detach().clone()
    index = torch.as_tensor(labels, device=values.device)
    for label in torch.unique(index):
        rows = index == label
        out[rows] = values[rows].median(dim=0).values
    return out


def replace_embedding_function(model, xnorm: float, phases: dict, lr: float, seed: int) -> dict:
    """Replace the embeddings by their cluster medians and fit lin_phi (``sparsity_fit_steps``
    Adam steps at rate ``lr``, full batch, the L2-norm loss of the reference) to the
    cluster-median curves.  Returns what it did (clusters, fit loss before / after)."""
    grid = torch.linspace(-xnorm, xnorm, CURVE_POINTS, device=model.a.device, dtype=model.a.dtype)
    with torch.no_grad():
        curves = phi_curves(model, grid)
    labels = cluster_curves(curves.double().cpu().numpy(), phases, seed)
    targets = cluster_medians(curves, labels)
    with torch.no_grad():
        model.a.copy_(cluster_medians(model.a, labels))
    params = list(model.lin_phi.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(int(phases["sparsity_fit_steps"])):
        loss = (phi_curves(model, grid) - targets).norm(2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.a.grad = None  # phi's backward reached the embeddings; they are not stepped here
    with torch.no_grad():
        end = float((phi_curves(model, grid) - targets).norm(2))
    return {
        "clusters": int(labels.max()) + 1 if labels.size else 0,
        "fit_loss_start": losses[0] if losses else end,
        "fit_loss_end": end,
    }
