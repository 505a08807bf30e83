"""Scalar metrics that compare learned quantities with the ground truth (pure numpy/scipy).

Conventions
-----------
- Connectivity is ``W[post, pre]``.  Connectivity metrics take 1-D arrays over one common set of
  entries (the edges of a sparse model, or all ``N*N`` entries of a dense one) together with the
  ``post`` / ``pre`` neuron index of every entry.
- In fits, ``x`` is the ground truth and ``y`` the learned value; R² is
  ``1 - SS_res / SS_tot`` with ``SS_tot`` taken around ``mean(y)`` (the reference's definition,
  which for a least-squares line with intercept equals the squared Pearson correlation).
- Every function returns plain Python ``float``/``int`` values (``nan`` where a quantity is
  undefined) so the results can go straight into ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NAN = float("nan")


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ``x`` and ``y`` to float64 and keep only the pairs where both are finite."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same number of entries ({x.size} != {y.size})")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def linear_fit_r2(x, y) -> tuple[float, float, float]:
    """Least-squares line ``y = slope * x + intercept`` and its R².

    Parameters
    ----------
    x : array_like
        True values.
    y : array_like
        Learned values (same number of entries as ``x``).

    Returns
    -------
    (slope, intercept, r2)
        ``r2 = 1 - SS_res / SS_tot`` with ``SS_tot = sum((y - mean(y))**2)``.  Pairs where either
        value is non-finite are ignored.  With fewer than 2 finite pairs all three are ``nan``;
        when ``x`` is constant the line is undefined (slope, r2 ``nan``, intercept ``mean(y)``);
        when ``y`` is constant ``r2`` is ``nan`` (the fitted slope, 0, is still returned).
    """
    x, y = _finite_pairs(x, y)
    if x.size < 2:
        return NAN, NAN, NAN
    dx = x - x.mean()
    dy = y - y.mean()
    sxx = float(np.dot(dx, dx))
    syy = float(np.dot(dy, dy))
    if sxx == 0.0:
        return NAN, float(y.mean()), NAN
    slope = float(np.dot(dx, dy)) / sxx
    intercept = float(y.mean() - slope * x.mean())
    if syy == 0.0:
        return slope, intercept, NAN
    resid = y - (slope * x + intercept)
    r2 = 1.0 - float(np.dot(resid, resid)) / syy
    return slope, intercept, r2


def pearson(x, y) -> float:
    """Pearson correlation of ``x`` and ``y`` over the finite pairs.

    ``nan`` if fewer than 2 finite pairs remain or either series is constant.
    """
    x, y = _finite_pairs(x, y)
    if x.size < 2:
        return NAN
    dx = x - x.mean()
    dy = y - y.mean()
    sxx = float(np.dot(dx, dx))
    syy = float(np.dot(dy, dy))
    if sxx == 0.0 or syy == 0.0:
        return NAN
    r = float(np.dot(dx, dy)) / np.sqrt(sxx * syy)
    return float(np.clip(r, -1.0, 1.0))


def connectivity_metrics(
    w_true,
    w_learned,
    w_raw,
    post,
    pre,
    n_neurons: int,
    sign_threshold: float | None = None,
) -> dict:
    """Compare learned and true connectivity entry by entry.

    Parameters
    ----------
    w_true, w_learned, w_raw : array_like, shape (M,)
        True weights, learned weights after the family's correction, and the raw learned weights.
    post, pre : array_like of int, shape (M,)
        Postsynaptic (row) and presynaptic (column) neuron index of each entry.
    n_neurons : int
        Number of neurons N (length of the per-neuron sums).
    sign_threshold : float, optional
        An entry is *significant* when ``|w_true| > sign_threshold``.  Default:
        ``0.1 * std(w_true[w_true != 0])`` (0 when ``w_true`` has no non-zero entry).

    Returns
    -------
    dict
        ``connectivity_R2``, ``connectivity_slope`` (fit of ``w_learned`` against ``w_true``),
        ``connectivity_R2_raw`` (R² of ``w_raw`` against ``w_true``), ``W_pearson``,
        ``sign_match`` (percentage, 0..100, of significant entries whose learned sign equals the
        true sign; ``nan`` without significant entries), ``MagRatio`` (``mean|w_learned| /
        mean|w_true|`` over the significant entries), ``in_sum_pearson`` / ``out_sum_pearson``
        (Pearson over neurons of the summed incoming / outgoing weights, true vs learned) and
        ``n_entries``.
    """
    w_true = np.asarray(w_true, dtype=np.float64).ravel()
    w_learned = np.asarray(w_learned, dtype=np.float64).ravel()
    w_raw = np.asarray(w_raw, dtype=np.float64).ravel()
    post = np.asarray(post, dtype=np.int64).ravel()
    pre = np.asarray(pre, dtype=np.int64).ravel()
    m = w_true.size
    for name, arr in (("w_learned", w_learned), ("w_raw", w_raw), ("post", post), ("pre", pre)):
        if arr.size != m:
            raise ValueError(f"{name} has {arr.size} entries, w_true has {m}")

    slope, _, r2 = linear_fit_r2(w_true, w_learned)
    _, _, r2_raw = linear_fit_r2(w_true, w_raw)

    if sign_threshold is None:
        nonzero = w_true[np.isfinite(w_true) & (w_true != 0)]
        sign_threshold = 0.1 * float(np.std(nonzero)) if nonzero.size else 0.0
    sig = np.isfinite(w_true) & np.isfinite(w_learned) & (np.abs(w_true) > sign_threshold)
    if np.any(sig):
        wt, wl = w_true[sig], w_learned[sig]
        same = ((wt > 0) & (wl > 0)) | ((wt < 0) & (wl < 0))
        sign_match = 100.0 * float(np.mean(same))
        mean_true = float(np.mean(np.abs(wt)))
        mag_ratio = float(np.mean(np.abs(wl))) / mean_true if mean_true > 0 else NAN
    else:
        sign_match = NAN
        mag_ratio = NAN

    def _sums(index: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=weights, minlength=n_neurons)

    in_sum_pearson = pearson(_sums(post, w_true), _sums(post, w_learned))
    out_sum_pearson = pearson(_sums(pre, w_true), _sums(pre, w_learned))

    return {
        "connectivity_R2": r2,
        "connectivity_slope": slope,
        "connectivity_R2_raw": r2_raw,
        "W_pearson": pearson(w_true, w_learned),
        "sign_match": sign_match,
        "MagRatio": mag_ratio,
        "in_sum_pearson": in_sum_pearson,
        "out_sum_pearson": out_sum_pearson,
        "n_entries": int(m),
    }


def per_type_r2(w_true, w_learned, group_types) -> dict[str, float]:
    """R² (as in :func:`linear_fit_r2`) of learned vs true weights within each group.

    ``group_types`` gives an integer type per entry (the caller passes the type of the
    postsynaptic neuron).  Keys are ``str(type)`` in increasing type order; groups with fewer than
    2 finite entries or constant values get ``nan``.
    """
    w_true = np.asarray(w_true, dtype=np.float64).ravel()
    w_learned = np.asarray(w_learned, dtype=np.float64).ravel()
    group_types = np.asarray(group_types).ravel()
    if not (w_true.size == w_learned.size == group_types.size):
        raise ValueError("w_true, w_learned and group_types must have the same length")
    out: dict[str, float] = {}
    for t in np.unique(group_types):
        sel = group_types == t
        key = str(t.item()) if hasattr(t, "item") else str(t)
        out[key] = linear_fit_r2(w_true[sel], w_learned[sel])[2]
    return out


def _frame_r2(u_true: np.ndarray, u_pred: np.ndarray) -> np.ndarray:
    """Cross-neuron R² per frame (no fitted line); ``nan`` where the true frame is constant."""
    ss_res = np.sum((u_true - u_pred) ** 2, axis=1)
    ss_tot = np.sum((u_true - u_true.mean(axis=1, keepdims=True)) ** 2, axis=1)
    r2 = np.full(u_true.shape[0], np.nan)
    ok = ss_tot > 0
    r2[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    return r2


def rollout_metrics(u_true, u_pred) -> dict:
    """Compare a predicted rollout with the true one, both of shape (T, N).

    Returns
    -------
    dict
        ``test_R2``: mean over frames of ``1 - sum((u_true - u_pred)**2) / sum((u_true -
        mean(u_true))**2)`` computed across neurons (can be negative; frames with constant
        ``u_true`` are skipped).
        ``test_pearson``: mean over neurons of the Pearson correlation across time of
        ``u_true[:, i]`` and ``u_pred[:, i]`` (neurons with a constant true or predicted series are
        skipped).
        ``test_rmse``: RMSE over all evaluated frames and neurons.
        ``rollout_diverged_at``: index of the first frame where ``u_pred`` has a non-finite value,
        else ``None``.  When the rollout diverged, all three scores above are computed on the
        finite prefix ``[0, rollout_diverged_at)`` (``nan`` when that prefix is empty).
        ``n_rollout_frames``: T, the length of the rollout.
    """
    u_true = np.asarray(u_true, dtype=np.float64)
    u_pred = np.asarray(u_pred, dtype=np.float64)
    if u_true.ndim == 1:
        u_true = u_true[:, None]
    if u_pred.ndim == 1:
        u_pred = u_pred[:, None]
    if u_true.shape != u_pred.shape or u_true.ndim != 2:
        raise ValueError(f"u_true {u_true.shape} and u_pred {u_pred.shape} must both be (T, N)")
    n_frames = u_true.shape[0]

    bad_rows = np.flatnonzero(~np.all(np.isfinite(u_pred), axis=1))
    diverged_at = int(bad_rows[0]) if bad_rows.size else None
    stop = diverged_at if diverged_at is not None else n_frames
    ut, up = u_true[:stop], u_pred[:stop]

    test_r2 = test_pearson = test_rmse = NAN
    if stop > 0 and ut.shape[1] > 0:
        r2 = _frame_r2(ut, up)
        r2 = r2[np.isfinite(r2)]
        if r2.size:
            test_r2 = float(np.mean(r2))
        rs = np.array([pearson(ut[:, i], up[:, i]) for i in range(ut.shape[1])])
        rs = rs[np.isfinite(rs)]
        if rs.size:
            test_pearson = float(np.mean(rs))
        err = (ut - up)[np.isfinite(ut)]
        if err.size:
            test_rmse = float(np.sqrt(np.mean(err**2)))

    return {
        "test_R2": test_r2,
        "test_pearson": test_pearson,
        "test_rmse": test_rmse,
        "rollout_diverged_at": diverged_at,
        "n_rollout_frames": int(n_frames),
    }


def svd_rank(matrix, fractions: Sequence[float] = (0.9, 0.99)) -> dict:
    """Number of singular values needed to reach each fraction of the total variance.

    The variance is the sum of squared singular values; for every ``f`` in ``fractions`` the
    smallest ``k`` with ``sum(s[:k]**2) >= f * sum(s**2)`` is returned under the key
    ``rank_<round(100 f)>`` (``rank_90``, ``rank_99`` by default).  A zero matrix gives 0 for every
    fraction; a matrix with non-finite entries gives ``nan``.
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {a.shape}")
    keys = [f"rank_{round(100 * f)}" for f in fractions]
    if a.size == 0:
        return dict.fromkeys(keys, 0)
    if not np.all(np.isfinite(a)):
        return dict.fromkeys(keys, NAN)
    s2 = np.linalg.svd(a, compute_uv=False) ** 2
    total = float(s2.sum())
    if total == 0.0:
        return dict.fromkeys(keys, 0)
    frac = np.cumsum(s2) / total
    out = {}
    for key, f in zip(keys, fractions, strict=True):
        # small tolerance so that exact fractions are not missed by rounding of the cumsum
        k = int(np.searchsorted(frac, f - 1e-12, side="left")) + 1
        out[key] = min(k, s2.size)
    return out


def field_map(x_true, x_learned) -> np.ndarray:
    """The learned field mapped onto the true one by field_R2's map (one offset per unit, one
    global scale; see :func:`field_metrics`): T x M."""
    t = np.asarray(x_true, dtype=np.float64)
    y = np.asarray(x_learned, dtype=np.float64)
    tc, yc = t - t.mean(0), y - y.mean(0)
    alpha = float((tc * yc).sum()) / (float((yc * yc).sum()) or 1.0)
    return alpha * yc + t.mean(0)


def field_metrics(x_true, x_learned) -> dict:
    """How well a learned input field matches the true input: ``field_R2`` and
    ``field_pearson`` over frames x units (T x M arrays, one column per field unit).

    The field is determined up to what the learned lin_phi absorbs, so the map allowed is
    x_true ~ alpha x_learned + b_m: one offset per unit (lin_phi(u_i, a_i) takes up a constant
    per neuron) and one global scale alpha, by least squares.  Both series are centred per unit;
    field_R2 = 1 - SS_res / SS_tot with SS_tot the per-unit-centred variance of the truth
    (which equals the squared pooled Pearson correlation, the reference's R² convention), and
    field_pearson is that correlation, whose sign shows a flipped field.  ``nan`` when either
    is constant within every unit.
    """
    t = np.asarray(x_true, dtype=np.float64)
    y = np.asarray(x_learned, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 2:
        raise ValueError(f"field_metrics: expected two T x M arrays, got {t.shape} and {y.shape}")
    keep = np.isfinite(t).all(1) & np.isfinite(y).all(1)
    t, y = t[keep], y[keep]
    if t.shape[0] < 2:
        return {"field_R2": NAN, "field_pearson": NAN}
    t = t - t.mean(0)
    y = y - y.mean(0)
    stt, syy = float((t * t).sum()), float((y * y).sum())
    if stt == 0.0 or syy == 0.0:
        return {"field_R2": NAN, "field_pearson": NAN}
    alpha = float((t * y).sum()) / syy
    resid = t - alpha * y
    r = float(np.clip(float((t * y).sum()) / np.sqrt(stt * syy), -1.0, 1.0))
    return {"field_R2": 1.0 - float((resid * resid).sum()) / stt, "field_pearson": r}
