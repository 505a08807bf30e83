"""Hand-computed cases for connectome_gnn.analysis.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from connectome_gnn.analysis.metrics import (
    connectivity_metrics,
    linear_fit_r2,
    pearson,
    per_type_r2,
    rollout_metrics,
    svd_rank,
)

# --- linear_fit_r2 / pearson ------------------------------------------------------------------


def test_linear_fit_exact_line():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    slope, intercept, r2 = linear_fit_r2(x, 2 * x + 1)
    assert slope == pytest.approx(2.0)
    assert intercept == pytest.approx(1.0)
    assert r2 == pytest.approx(1.0)


def test_linear_fit_noisy_four_points():
    # x = [0,1,2,3], y = [1,3,2,5]; mean x = 1.5, mean y = 2.75
    # Sxx = 5, Sxy = 2.625 - 0.125 - 0.375 + 3.375 = 5.5, Syy = 8.75
    # slope = 5.5/5 = 1.1, intercept = 2.75 - 1.1*1.5 = 1.1
    # SS_res = Syy - Sxy^2/Sxx = 8.75 - 6.05 = 2.7  ->  r2 = 1 - 2.7/8.75 = 121/175
    slope, intercept, r2 = linear_fit_r2([0, 1, 2, 3], [1, 3, 2, 5])
    assert slope == pytest.approx(1.1)
    assert intercept == pytest.approx(1.1)
    assert r2 == pytest.approx(121 / 175)


def test_linear_fit_ignores_non_finite_pairs():
    slope, intercept, r2 = linear_fit_r2([0, 1, np.nan, 2, 3, 7], [1, 3, 5, 2, 5, np.inf])
    assert (slope, intercept) == pytest.approx((1.1, 1.1))
    assert r2 == pytest.approx(121 / 175)


def test_linear_fit_degenerate():
    assert math.isnan(linear_fit_r2([1.0], [2.0])[2])
    assert math.isnan(linear_fit_r2([0, 1, 2], [3, 3, 3])[2])  # constant y
    assert math.isnan(linear_fit_r2([1, 1, 1], [0, 1, 2])[2])  # constant x
    assert math.isnan(linear_fit_r2([np.nan, 1], [0, 1])[2])


def test_pearson():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # same data as the 4-point fit: r^2 = 121/175
    assert pearson([0, 1, 2, 3], [1, 3, 2, 5]) == pytest.approx(math.sqrt(121 / 175))
    assert math.isnan(pearson([1, 2, 3], [5, 5, 5]))
    assert math.isnan(pearson([4, 4, 4], [1, 2, 3]))


# --- connectivity_metrics ----------------------------------------------------------------------


def _dense(w: np.ndarray):
    n = w.shape[0]
    post, pre = np.divmod(np.arange(n * n), n)
    return w.ravel(), post, pre


def test_sign_match_and_mag_ratio():
    w_true = np.array([1.0, -1.0, 2.0, -2.0, 0.0])
    w_learned = np.array([0.5, -0.3, -1.0, -4.0, 7.0])
    post = np.array([0, 1, 2, 0, 1])
    pre = np.array([1, 2, 0, 2, 0])
    # significant: the first four (|w_true| > 0.5); signs match for 1, 2 and 4 -> 75 %
    # MagRatio = mean(0.5, 0.3, 1, 4) / mean(1, 1, 2, 2) = 1.45 / 1.5 = 29/30
    m = connectivity_metrics(w_true, w_learned, w_learned, post, pre, 3, sign_threshold=0.5)
    assert m["sign_match"] == 75.0
    assert m["MagRatio"] == pytest.approx(29 / 30)
    assert m["n_entries"] == 5
    # default threshold: 0.1 * std([1, -1, 2, -2]) = 0.1 * sqrt(2.5) ~ 0.158: same entries
    m = connectivity_metrics(w_true, w_learned, w_learned, post, pre, 3)
    assert m["sign_match"] == 75.0
    assert m["MagRatio"] == pytest.approx(29 / 30)


def test_sign_match_nan_without_significant_entries():
    m = connectivity_metrics([0.1, -0.1], [1.0, 1.0], [1.0, 1.0], [0, 1], [1, 0], 2, 0.5)
    assert math.isnan(m["sign_match"])
    assert math.isnan(m["MagRatio"])


def test_in_out_sums_3x3():
    W = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])
    w_true, post, pre = _dense(W)
    # learned = W^T: incoming sums (rows) true [3, 7, 11] vs learned = column sums of W [8, 7, 6]
    # -> Pearson -1; outgoing sums (columns) true [8, 7, 6] vs learned [3, 7, 11] -> -1
    w_learned = W.T.ravel()
    m = connectivity_metrics(w_true, w_learned, 2 * w_true, post, pre, 3)
    assert m["in_sum_pearson"] == pytest.approx(-1.0)
    assert m["out_sum_pearson"] == pytest.approx(-1.0)
    assert m["connectivity_R2_raw"] == pytest.approx(1.0)
    assert m["n_entries"] == 9
    # learned = 2*W + 1: every fit is exact; sums are affine in the true sums
    m = connectivity_metrics(w_true, 2 * w_true + 1, w_true, post, pre, 3)
    assert m["connectivity_R2"] == pytest.approx(1.0)
    assert m["connectivity_slope"] == pytest.approx(2.0)
    assert m["W_pearson"] == pytest.approx(1.0)
    assert m["in_sum_pearson"] == pytest.approx(1.0)
    assert m["out_sum_pearson"] == pytest.approx(1.0)
    assert m["sign_match"] == 100.0


def test_in_out_sums_use_minlength():
    # neuron 3 has no edges: its sums are 0 for both true and learned
    # true in sums [1, 2, 3, 0], learned [2, 4, 6, 0] -> Pearson 1
    m = connectivity_metrics([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1, 1, 1], [0, 1, 2], [1, 2, 0], 4)
    assert m["in_sum_pearson"] == pytest.approx(1.0)
    assert m["out_sum_pearson"] == pytest.approx(1.0)
    assert math.isnan(m["connectivity_R2_raw"])  # constant raw weights


def test_connectivity_keys():
    w_true, post, pre = _dense(np.arange(16.0).reshape(4, 4))
    m = connectivity_metrics(w_true, w_true, w_true, post, pre, 4)
    assert set(m) == {
        "connectivity_R2",
        "connectivity_slope",
        "connectivity_R2_raw",
        "W_pearson",
        "sign_match",
        "MagRatio",
        "in_sum_pearson",
        "out_sum_pearson",
        "n_entries",
    }


# --- per_type_r2 -------------------------------------------------------------------------------


def test_per_type_r2():
    w_true = np.array([0, 1, 2, 0, 1, 2, 3, 5], dtype=float)
    w_learned = np.array([1, 3, 5, 1, 3, 2, 5, 9], dtype=float)
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    out = per_type_r2(w_true, w_learned, groups)
    assert list(out) == ["0", "1", "2"]
    assert out["0"] == pytest.approx(1.0)  # y = 2x + 1
    assert out["1"] == pytest.approx(121 / 175)  # the 4-point case above
    assert math.isnan(out["2"])  # single entry


# --- rollout_metrics ---------------------------------------------------------------------------


def test_rollout_identical():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(20, 5))
    m = rollout_metrics(u, u.copy())
    assert m["test_R2"] == pytest.approx(1.0)
    assert m["test_pearson"] == pytest.approx(1.0)
    assert m["test_rmse"] == 0.0
    assert m["rollout_diverged_at"] is None
    assert m["n_rollout_frames"] == 20


def test_rollout_constant_offset():
    u_true = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0], [1.0, 1.0, 1.0]])
    # offset 1: SS_res = 3 in every frame
    # frame 0: SS_tot = 2 -> R2 = -0.5; frame 1: SS_tot = 8 -> R2 = 0.625; frame 2 constant: skipped
    # test_R2 = (-0.5 + 0.625)/2 = 0.0625; every neuron's series is only shifted -> Pearson 1
    m = rollout_metrics(u_true, u_true + 1.0)
    assert m["test_R2"] == pytest.approx(0.0625)
    assert m["test_pearson"] == pytest.approx(1.0)
    assert m["test_rmse"] == pytest.approx(1.0)
    assert m["rollout_diverged_at"] is None
    assert m["n_rollout_frames"] == 3


def test_rollout_diverged():
    u_true = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    u_pred = u_true + 1.0
    u_pred[2, 1] = np.nan
    u_pred[3] = np.inf
    m = rollout_metrics(u_true, u_pred)
    assert m["rollout_diverged_at"] == 2
    assert m["n_rollout_frames"] == 4
    # computed on frames 0 and 1 only: R2 (-0.5 + 0.625)/2; neuron 0 is constant there (skipped)
    assert m["test_R2"] == pytest.approx(0.0625)
    assert m["test_pearson"] == pytest.approx(1.0)
    assert m["test_rmse"] == pytest.approx(1.0)


def test_rollout_diverged_at_first_frame():
    u_true = np.ones((3, 2))
    u_pred = np.full((3, 2), np.nan)
    m = rollout_metrics(u_true, u_pred)
    assert m["rollout_diverged_at"] == 0
    assert math.isnan(m["test_R2"]) and math.isnan(m["test_pearson"])


# --- svd_rank ----------------------------------------------------------------------------------


def test_svd_rank_diagonal():
    # squared singular values 9, 4, 1, 0 (total 14): cumulative 9/14 = 0.643, 13/14 = 0.929, 1
    # -> 2 values for 90 %, 3 for 99 %
    assert svd_rank(np.diag([3.0, 2.0, 1.0, 0.0])) == {"rank_90": 2, "rank_99": 3}


def test_svd_rank_edge_cases():
    assert svd_rank(np.zeros((3, 3))) == {"rank_90": 0, "rank_99": 0}
    # rank one: the first value carries everything
    assert svd_rank(np.outer([1.0, 2.0], [3.0, 4.0, 5.0])) == {"rank_90": 1, "rank_99": 1}
    # 50 % exactly reached by the first of two equal values
    assert svd_rank(np.eye(2), fractions=(0.5,)) == {"rank_50": 1}
