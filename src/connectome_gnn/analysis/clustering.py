"""Neuron-type recovery: how well do the learned embeddings cluster by true type?

Two accuracies are reported:

- :func:`cluster_accuracy_kmeans` (``cluster_accuracy``): KMeans with as many clusters as true
  types, then the best one-to-one matching of clusters to types (Hungarian algorithm on the
  contingency table).
- :func:`cluster_accuracy_single_linkage`: the reference variant: single-linkage clustering with a
  distance threshold on globally min-max normalised embeddings, and each type mapped to the
  (rounded) median cluster label of its neurons.

Degenerate inputs never raise: see the individual functions for what they return.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fclusterdata
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.metrics.cluster import contingency_matrix


def _as_2d(embeddings) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {x.shape}")
    return x


def _encode_types(true_types, n: int) -> np.ndarray:
    """Map the true types to 0..K-1 (in sorted order of the original values)."""
    t = np.asarray(true_types).ravel()
    if t.size != n:
        raise ValueError(f"{t.size} types for {n} embeddings")
    return np.unique(t, return_inverse=True)[1].ravel()


def _majority_fraction(codes: np.ndarray) -> float:
    return float(np.bincount(codes).max() / codes.size) if codes.size else float("nan")


def hungarian_accuracy(true_codes, pred_labels) -> float:
    """Fraction of samples correctly labelled under the best one-to-one cluster↔type matching.

    The contingency table may be rectangular (number of clusters different from number of types);
    clusters or types left unmatched count as wrong.
    """
    true_codes = np.asarray(true_codes).ravel()
    pred_labels = np.asarray(pred_labels).ravel()
    if true_codes.size == 0:
        return float("nan")
    table, rows, cols = _matching(true_codes, pred_labels)
    return float(table[rows, cols].sum() / true_codes.size)


def _matching(codes: np.ndarray, labels: np.ndarray):
    """The contingency table (types x sorted cluster labels) and its best one-to-one matching
    (rows = type codes, cols = indices into the sorted labels)."""
    table = contingency_matrix(codes, labels)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return table, rows, cols


def cluster_accuracy_kmeans(
    embeddings, true_types, n_clusters: int | None = None, seed: int = 0
) -> float:
    """KMeans clustering of the embeddings + Hungarian matching to the true types.

    Parameters
    ----------
    embeddings : array_like, shape (N, D) or (N,)
    true_types : array_like, shape (N,)
    n_clusters : int, optional
        Default: the number of distinct true types.
    seed : int
        ``random_state`` of KMeans (``n_init=10``).

    Returns
    -------
    float
        Matched count / N.  If KMeans cannot run because there are fewer samples than clusters,
        the majority-class fraction is returned (what assigning everyone to one cluster gives).
        Identical embeddings are passed to KMeans as they are (its "fewer distinct points than
        clusters" warning is silenced); it puts every sample in one cluster, which again scores
        the majority-class fraction.  Non-finite embeddings give ``nan``; an empty input ``nan``.
    """
    return kmeans_types(embeddings, true_types, n_clusters, seed).accuracy


def _kmeans_labels(x: np.ndarray, codes: np.ndarray, n_clusters: int | None, seed: int):
    """KMeans cluster labels, or None when there are fewer samples than clusters."""
    k = int(n_clusters) if n_clusters is not None else int(codes.max()) + 1
    if k < 1 or x.shape[0] < k:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


@dataclass(frozen=True)
class KMeansTypes:
    """One KMeans clustering of the embeddings matched to the true types.

    ``accuracy``: :func:`cluster_accuracy_kmeans`; ``predicted``: the type each neuron is
    predicted to have (its cluster's matched type; -1 for unmatched clusters, and for every
    neuron when KMeans cannot run)."""

    accuracy: float
    predicted: np.ndarray


def kmeans_types(
    embeddings, true_types, n_clusters: int | None = None, seed: int = 0
) -> KMeansTypes:
    """KMeans + Hungarian matching once, for both the accuracy and the predicted types."""
    x = _as_2d(embeddings)
    t = np.asarray(true_types).ravel()
    codes = _encode_types(t, x.shape[0])
    values = np.unique(t)
    predicted = np.full(x.shape[0], -1, dtype=object if values.dtype.kind in "OUS" else np.int64)
    if x.shape[0] == 0 or not np.all(np.isfinite(x)):
        return KMeansTypes(float("nan"), predicted)
    labels = _kmeans_labels(x, codes, n_clusters, seed)
    if labels is None:
        return KMeansTypes(_majority_fraction(codes), predicted)
    table, rows, cols = _matching(codes, labels)
    clusters = np.unique(labels)
    for r, c in zip(rows, cols, strict=True):
        predicted[labels == clusters[c]] = values[r]
    return KMeansTypes(float(table[rows, cols].sum() / x.shape[0]), predicted)


def matched_clusters(embeddings, true_types, seed: int = 0) -> np.ndarray:
    """The type each neuron is predicted to have (:attr:`KMeansTypes.predicted`)."""
    return kmeans_types(embeddings, true_types, seed=seed).predicted


def cluster_accuracy_single_linkage(embeddings, true_types, threshold: float = 0.1) -> float:
    """Reference single-linkage clustering accuracy.

    1. Min-max normalise the whole embedding array to [0, 1] with one global min and max (all
       zeros if the array is constant).
    2. ``scipy.cluster.hierarchy.fclusterdata(X, t=threshold, criterion='distance',
       method='single')``.
    3. For each true type ``n`` (in sorted order), ``label_n = round(median(cluster labels of the
       neurons of type n))``.  Every neuron whose cluster label equals some ``label_n`` is
       predicted as type ``n``; when several types map to the same label, the first type in sorted
       order wins.  Other neurons get an invalid label.
    4. Return ``accuracy_score(true_types, predicted)``.

    ``fclusterdata`` computes all pairwise distances (O(N²) memory and time): fine up to ~20k
    neurons, slow beyond ~5k.  No subsampling is done.  Fewer than 2 samples: the single sample
    forms one cluster (accuracy 1.0).  Non-finite embeddings give ``nan``.
    """
    x = _as_2d(embeddings)
    codes = _encode_types(true_types, x.shape[0])
    n = x.shape[0]
    if n == 0 or not np.all(np.isfinite(x)):
        return float("nan")
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if n < 2:
        labels = np.ones(n, dtype=np.int64)
    else:
        labels = fclusterdata(x, t=threshold, criterion="distance", method="single")
    predicted = np.full(n, -1, dtype=np.int64)
    taken: set[int] = set()
    for code in range(int(codes.max()) + 1):
        members = labels[codes == code]
        if members.size == 0:
            continue
        label_n = int(np.round(np.median(members)))
        if label_n in taken:
            continue
        taken.add(label_n)
        predicted[labels == label_n] = code
    return float(accuracy_score(codes, predicted))


def cluster_metrics(
    embeddings, true_types, seed: int = 0, kmeans: KMeansTypes | None = None
) -> dict:
    """``cluster_accuracy`` (KMeans + Hungarian; ``kmeans``: that clustering when already done,
    :func:`kmeans_types` with the same seed), ``cluster_accuracy_single_linkage`` and
    ``n_types`` (number of distinct true types)."""
    x = _as_2d(embeddings)
    n_types = int(np.unique(np.asarray(true_types).ravel()).size)
    if kmeans is None:
        kmeans = kmeans_types(x, true_types, seed=seed)
    return {
        "cluster_accuracy": kmeans.accuracy,
        "cluster_accuracy_single_linkage": cluster_accuracy_single_linkage(x, true_types),
        "n_types": n_types,
    }
