"""Statistics of FlyVis weights and activity (simulation.json, the acceptance checks).

- :func:`weight_statistics` of edge weights, and :func:`reference_weight_statistics` of a
  parameter set over the extent-8 edges (the reference models' statistics);
- :func:`activity_svd_rank`: the effective rank of an activity matrix;
- :func:`observable_w_share`: how much of W an activity can reveal;
- :func:`type_response_std`: how much each cell type responds.
"""

from __future__ import annotations

import numpy as np

from .paramset import W_SMALL, FlyVisParams
from .spectral import type_structure

OBSERVABLE_STD = 0.03  # a presynaptic neuron whose ReLU(V) varies less hides its outgoing w


def weight_statistics(w: np.ndarray) -> dict:
    """Statistics of edge weights as reported for the reference models."""
    w = np.asarray(w, dtype=np.float64)
    a = np.abs(w)
    return {
        "W_mean": float(w.mean()),
        "W_std": float(w.std()),
        "W_min": float(w.min()),
        "W_max": float(w.max()),
        "W_nonzero_fraction": float(np.mean(w != 0)),
        "W_small_fraction": float(np.mean(a < W_SMALL)),  # |w| < 0.01
        "W_large_fraction": float(np.mean(a > 0.1)),  # |w| > 0.1
        "W_excitatory_fraction": float(np.mean(w > 0)),
    }


def reference_weight_statistics(params: FlyVisParams, json_path: str | None = None) -> dict:
    """:func:`weight_statistics` of ``params`` over the extent-8 edges (fast, from the groups)."""
    st = type_structure(json_path)
    gw = st.group_weight
    w = st.group_sign * (params.strength * st.pair_mean_n_syn)[st.group_pair] * st.group_ratio
    mean = float((gw * w).sum())
    return {
        "W_mean": mean,
        "W_std": float(np.sqrt((gw * (w - mean) ** 2).sum())),
        "W_small_fraction": float((gw * (np.abs(w) < W_SMALL)).sum()),
        "W_large_fraction": float((gw * (np.abs(w) > 0.1)).sum()),
        "W_nonzero_fraction": float((gw * (w != 0)).sum()),
    }


def activity_svd_rank(u: np.ndarray, center: bool = True, fractions=(0.9, 0.99)) -> dict:
    """Effective rank of an activity matrix (frames x neurons): the number of singular values
    needed for 90 % and 99 % of the variance (``rank_90``, ``rank_99``).

    With ``center`` each neuron's temporal mean is removed first, so the ranks measure the
    stimulus-driven dynamics rather than the resting offsets.  Low ranks mean few independent
    activity patterns (W harder to identify).  Computed through the smaller Gram matrix, so pass
    a few thousand frames at most.
    """
    a = np.asarray(u)
    if a.ndim != 2:
        raise ValueError(f"activity must be 2-D (frames x neurons), got shape {a.shape}")
    keys = [f"rank_{round(100 * f)}" for f in fractions]
    if a.size == 0:
        return dict.fromkeys(keys, 0)
    if not np.all(np.isfinite(a)):
        return dict.fromkeys(keys, float("nan"))
    mean = a.mean(0, dtype=np.float64) if center else np.zeros(a.shape[1])
    # Gram matrix of the smaller side, accumulated over blocks in float64 (bounded memory)
    frames_side = a.shape[0] <= a.shape[1]
    k = a.shape[0] if frames_side else a.shape[1]
    gram = np.zeros((k, k))
    step = 2048
    if frames_side:
        for c0 in range(0, a.shape[1], step):
            blk = a[:, c0 : c0 + step].astype(np.float64) - mean[c0 : c0 + step]
            gram += blk @ blk.T
    else:
        for r0 in range(0, a.shape[0], step):
            blk = a[r0 : r0 + step].astype(np.float64) - mean
            gram += blk.T @ blk
    s2 = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
    total = float(s2.sum())
    if total <= 0:
        return dict.fromkeys(keys, 0)
    frac = np.cumsum(s2) / total
    return {
        k: int(min(np.searchsorted(frac, f - 1e-12) + 1, s2.size))
        for k, f in zip(keys, fractions, strict=True)
    }


def observable_w_share(
    u: np.ndarray, w: np.ndarray, pre: np.ndarray, threshold: float = OBSERVABLE_STD
) -> float:
    """Share of the variance of the weights ``w`` (about their mean) carried by edges whose
    presynaptic neuron's ReLU(V) has a temporal std of at least ``threshold`` in ``u`` (frames x
    neurons).  The other edges are (nearly) invisible in the activity: their presynaptic output
    is constant, so w_ij times it cannot be told apart from V_rest.  1 - this share bounds the
    connectivity R² any method can reach on that activity."""
    w = np.asarray(w, dtype=np.float64)
    dev = (w - w.mean()) ** 2
    total = float(dev.sum())
    if total == 0:
        return float("nan")
    seen = np.maximum(np.asarray(u, dtype=np.float64), 0.0).std(0) >= threshold
    return float(dev[seen[np.asarray(pre)]].sum() / total)


def type_response_std(u: np.ndarray, node_type: np.ndarray, n_types: int) -> np.ndarray:
    """Per type, the median over its neurons of the temporal std of the voltage ``u``
    (frames x neurons); NaN for a type without neurons."""
    sd = np.asarray(u, dtype=np.float64).std(0)
    out = np.full(n_types, np.nan)
    for t in np.unique(node_type):
        out[t] = float(np.median(sd[node_type == t]))
    return out
