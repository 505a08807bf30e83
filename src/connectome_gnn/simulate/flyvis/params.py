"""Seeded ground-truth parameter sets ("models") of the FlyVis network.

No trained flyvis parameters are available offline, so every model id (``flyvis_049`` -> 49)
deterministically defines its own parameter set, with flyvis' sharing: ``tau`` and ``V_rest`` per
cell type (65), a synaptic ``strength`` >= 0 per type pair (605), ``w_ij = sign * n_syn * strength``.
The sets are built to resemble trained flyvis networks as seen by the reference study (W std
0.27-0.33 over the extent-8 edges, ~35 % of |w| < 0.01, 96-98 % non-zero, V_rest over neurons
in about [-1, 2.6]) and to give bounded, responsive, smooth activity at dt = 0.02.  Their V_rest
mean (~0.35) is not matched: our operating voltages sit higher (V_rest mean 0.6-1.1, std
0.8-0.9 over neurons) so that the activity makes W and tau observable.

Generative model of one attempt (random generator seeded by :func:`.paramset.param_seed`); a pair's
*magnitude* m_p is its mean |w| over its (hull-filled) filter, ``strength_p = m_p / mean n_syn``:

1. **Input budget per cell type.**  A neuron of type t receives a total |w| of
   ``B_t = exp(a + 0.5 g_t)`` (g_t standard normal), split between its excitatory and its
   inhibitory input pairs, and within each sign among the pairs in proportion to their synapse
   count onto one target neuron times ``exp(b z_p)`` (z_p standard normal clipped to +-3; 3 % of
   the pairs pruned to 0); within a pair by the connectome's per-offset synapse counts.  ``b``
   sets how concentrated a neuron's inputs are.  Pair magnitudes are capped at 2.
2. **Balanced operating point.**  Each type gets a grey-stimulus operating voltage
   ``V*_t`` (split normal: mode 0.8, std 0.3 below and 0.55 above) and a net synaptic input there
   ``I_t ~ N(0, 0.2)``; its excitatory share is solved so that the input at V* (presynaptic
   ReLU(V*)) equals I_t (clipped to [0.05, 0.95]), as training would balance a network.
3. **Bounded by construction.**  Excitatory pairs inside strongly connected components of the
   excitatory type graph (the only ones that close positive loops) are scaled by one factor so
   that the spectral radius of W+ on the infinite lattice (Perron root of the k = 0 Bloch matrix
   of a 3 x 2-column unit cell; it bounds every finite extent) is at most ``rho_exc``, drawn in
   [0.8, 0.95].  With rho(W+) < 1 and tau >= dt, V stays bounded for any bounded input
   (comparison with the monotone system driven by W+ alone) at every extent.
4. **Re-balancing.**  The inhibitory inputs of each type are rescaled (x0.1 to x10, which leaves
   rho(W+) unchanged) so that the net input at V* is I_t again; where that is not enough the
   excitatory inputs are weakened (which can only lower rho(W+)).  Magnitudes capped at 4.
5. ``a`` and ``b`` are solved (grid + bisection) so that |w| < 0.01 for a drawn fraction in
   [0.33, 0.39] of the extent-8 edges and std(w) is a drawn value in [0.27, 0.33].
6. **Stable operating point** (version 3).  rho(W+) < 1 keeps V bounded but not V* stable:
   loops of mutual inhibition with a gain above 1 make it a saddle, and every set drawn by
   version 2 had a linear abscissa (largest real part of the eigenvalues of W diag(ReLU'(V*)) on
   the k = 0 Bloch matrix) between 1.4 and 10.  The network then left V* for a state in which a
   quarter of the neurons barely moved.  :func:`.spectral.stabilize` weakens the pairs of the
   unstable modes along d lambda / d log(strength) until the abscissa is at most 0.9.
7. ``V_rest_t = V*_t - (net input at V*) - x_grey`` (x_grey = 0.5 on R1-R8), clipped to
   [-1.5, 3]: V* is then the grey steady state on the infinite lattice.
8. ``tau_t`` log-uniform in [0.03, 0.2] s, raised where needed to ``dt (1 + B_t) / 2``
   (dt = 0.02, at most 0.3) so that explicit Euler cannot flip the sign of a perturbation every
   step (Gershgorin bound on the Euler map).

:func:`make_params` accepts an attempt when its extent-8 W std is in [0.25, 0.36] and its small
fraction in [0.30, 0.42] (before and after the calibration below), and a short simulation at
extent 3 (:func:`.acceptance.check_params`) shows that the grey state settles, the activity
under the stimulus mix stays within ``MAX_ABS_V``, at least 60 % of the neurons respond, every
cell type responds (median voltage std of its neurons >= 0.05) and at least half of W is
observable in the activity (:func:`.statistics.observable_w_share`); otherwise it draws the next
attempt (sub-seed), deterministically.  Before the check, :func:`.acceptance.calibrate_responses`
raises the input gain of the types that barely respond (version 3): a time constant is not
observable in a neuron whose voltage does not move.  About a third of the attempts pass.

This module draws the sets and caches the accepted ones (:func:`draw_params`,
:func:`make_params`).  The rest lives beside it: :mod:`.paramset` (:class:`FlyVisParams`, model
ids, seeds, shared constants), :mod:`.spectral` (type structure, spectral radii, stabilisation),
:mod:`.statistics` (weight and activity statistics) and :mod:`.acceptance` (check simulation,
calibration).  The names that the tests and :mod:`connectome_gnn.families.flyvis` import from
here are re-exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...io import atomic_path
from .acceptance import (
    ACTIVE_STD,
    MAX_ABS_V,
    MIN_OBSERVABLE_W_SHARE,
    MIN_RESPONSIVE_FRACTION,
    MIN_TYPE_RESPONSE_STD,
    RESPONSIVE_STD,
    calibrate_responses,
    check_params,
    weight_failure,
)
from .connectome import connectome_json_path, file_sha256
from .paramset import (
    EULER_DT,
    REBALANCED_MAGNITUDE_MAX,
    RHO_EXC_RANGE,
    TAU_MAX,
    W_SMALL,
    FlyVisParams,
    model_name,
    param_seed,
    parse_model_id,
    rest_and_tau,
)
from .spectral import (
    LINEAR_ABSCISSA_MAX,
    PerronSolver,
    TypeStructure,
    excitatory_spectral_radius,
    linear_abscissa,
    perron_root,
    rho_exc,
    stabilize,
    type_structure,
)
from .statistics import (
    activity_svd_rank,
    observable_w_share,
    reference_weight_statistics,
    type_response_std,
    weight_statistics,
)

#: bump when the generative model changes (invalidates cached parameter files)
PARAMS_VERSION = 3
TAU_RANGE = (0.03, 0.2)
W_STD_RANGE = (0.27, 0.33)
W_SMALL_FRACTION_RANGE = (0.33, 0.39)
PRUNED_FRACTION = 0.03
BUDGET_LOG_STD = 0.5
# mode, lower and upper std of the grey operating voltage per type.  Version 1 used a mode of 0.3:
# ~20 % of the neurons then sat below the ReLU threshold and most others barely moved, which left
# about half of W unobservable in the activity (a neuron that never crosses 0, or whose ReLU
# output is nearly constant, says nothing about its outgoing weights).  With 0.8 most neurons
# operate in the linear part of the ReLU and the stimulus propagates through the layers.
V_STAR = (0.8, 0.3, 0.55)
NET_INPUT_STD = 0.2
SHARE_CLIP = (0.05, 0.95)
SYNAPSE_COUNT_EXPONENT = 1.0
PAIR_MAGNITUDE_MAX = 2.0  # cap on a pair's mean |w| (reference: max w 2.3, min w -5.3)
INHIBITION_REBALANCE_CLIP = (0.1, 10.0)
EXCITATION_REBALANCE_MIN = 0.05
MAX_ATTEMPTS = 40


# ----------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class _Draws:
    """The random draws of one attempt, in the order they are taken from its generator."""

    target_small: float  # fraction of |w| < W_SMALL over the extent-8 edges
    target_std: float  # std(w) over the extent-8 edges
    rho_target: float  # spectral radius of W+ on the infinite lattice
    z: np.ndarray  # (n_pairs,) log-scale of a pair's share in its target's input
    pruned: np.ndarray  # (n_pairs,) bool
    g: np.ndarray  # (n_types,) log input budget
    v_star: np.ndarray  # (n_types,) grey operating voltage
    i_net: np.ndarray  # (n_types,) net synaptic input at v_star
    tau: np.ndarray  # (n_types,) time constant before the Euler bound

    @classmethod
    def take(cls, rng: np.random.Generator, n_pairs: int, n_types: int) -> _Draws:
        target_small = float(rng.uniform(*W_SMALL_FRACTION_RANGE))
        target_std = float(rng.uniform(*W_STD_RANGE))
        rho_target = float(rng.uniform(*RHO_EXC_RANGE))
        z = np.clip(rng.standard_normal(n_pairs), -3.0, 3.0)
        pruned = rng.random(n_pairs) < PRUNED_FRACTION
        g = rng.standard_normal(n_types)
        zv = rng.standard_normal(n_types)
        v_star = V_STAR[0] + np.where(zv < 0, V_STAR[1], V_STAR[2]) * zv
        i_net = NET_INPUT_STD * rng.standard_normal(n_types)
        tau = np.exp(rng.uniform(np.log(TAU_RANGE[0]), np.log(TAU_RANGE[1]), n_types))
        return cls(target_small, target_std, rho_target, z, pruned, g, v_star, i_net, tau)


class _Budgets:
    """Steps 1-4 of the generative model (module doc): the per-pair magnitudes of an attempt
    for the budget location ``a`` and the split scale ``b`` (:meth:`magnitudes`)."""

    def __init__(self, st: TypeStructure, d: _Draws):
        self.st, self.d = st, d
        tar = st.pair_target
        self.r_star = np.maximum(d.v_star, 0.0)
        live = st.recurrent_exc & ~d.pruned  # the pairs that can close excitatory loops
        self.live_cells = live[st.cell_pair]
        self.solver = PerronSolver(
            st.cell_rows[self.live_cells], st.cell_cols[self.live_cells], st.n_cell
        )
        # prior share of a pair in its target's input: its synapse count onto one target neuron
        self.syn_prior = (
            st.pair_mean_n_syn * st.pair_fanin
        ) ** SYNAPSE_COUNT_EXPONENT / np.maximum(st.pair_fanin, 1e-12)
        self.exc, self.inh = st.pair_sign > 0, st.pair_sign < 0
        self.has_exc = np.bincount(tar[self.exc & ~d.pruned], minlength=st.n_types) > 0
        self.has_inh = np.bincount(tar[self.inh & ~d.pruned], minlength=st.n_types) > 0

    def _rho_exc_live(self, mags: np.ndarray) -> float:
        st, live = self.st, self.live_cells
        return self.solver(mags[st.cell_pair[live]] * st.cell_coef[live])

    def magnitudes(self, a: float, b: float) -> np.ndarray:
        st, d = self.st, self.d
        tar, src, n_types = st.pair_target, st.pair_source, st.n_types
        exc, inh, r_star, i_net = self.exc, self.inh, self.r_star, d.i_net
        raw = np.where(d.pruned, 0.0, np.exp(b * d.z)) * st.pair_fanin * self.syn_prior
        budget = np.exp(a + BUDGET_LOG_STD * d.g)
        split, drive = {}, {}
        for name, sel in (("exc", exc), ("inh", inh)):
            den = np.bincount(tar[sel], weights=raw[sel], minlength=n_types)
            safe = np.where(den > 0, den, 1.0)
            split[name] = np.where(sel, raw / safe[tar], 0.0)  # fraction of the sign's budget
            drive[name] = (
                np.bincount(tar[sel], weights=(raw * r_star[src])[sel], minlength=n_types) / safe
            )
        e, h = drive["exc"], drive["inh"]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(e + h > 0, (i_net / budget + h) / (e + h), 0.5)
        share = np.clip(share, *SHARE_CLIP)
        share = np.where(self.has_inh, np.where(self.has_exc, share, 0.0), 1.0)
        per_edge = budget[tar] * (share[tar] * split["exc"] + (1 - share[tar]) * split["inh"])
        mags = per_edge / np.where(st.pair_fanin > 0, st.pair_fanin, 1.0)
        mags = np.minimum(mags, PAIR_MAGNITUDE_MAX)
        rho = self._rho_exc_live(mags)
        if rho > d.rho_target:
            mags = np.where(st.recurrent_exc, mags * (d.rho_target / rho), mags)
        # re-balance so that the net input at V* is i_net again: first with the inhibitory
        # inputs (they do not change rho(W+)), then, where inhibition cannot, by weakening the
        # excitatory inputs (which can only lower rho(W+))
        flow = mags * st.pair_fanin * r_star[src]
        e_act = np.bincount(tar[exc], weights=flow[exc], minlength=n_types)
        h_act = np.bincount(tar[inh], weights=flow[inh], minlength=n_types)
        with np.errstate(divide="ignore", invalid="ignore"):
            fix_inh = np.where(h_act > 0, (e_act - i_net) / h_act, 1.0)
        fix_inh = np.clip(np.nan_to_num(fix_inh, nan=1.0), *INHIBITION_REBALANCE_CLIP)
        h_new = fix_inh * h_act
        with np.errstate(divide="ignore", invalid="ignore"):
            fix_exc = np.where(e_act > i_net + h_new, (i_net + h_new) / e_act, 1.0)
        fix_exc = np.clip(np.nan_to_num(fix_exc, nan=1.0), EXCITATION_REBALANCE_MIN, 1.0)
        mags = mags * np.where(inh, fix_inh[tar], fix_exc[tar])
        return np.minimum(mags, REBALANCED_MAGNITUDE_MAX)


def _solve_budgets(st: TypeStructure, budgets: _Budgets) -> tuple[float, float]:
    """Step 5: ``(a, b)`` whose magnitudes have the attempt's target small fraction and std(w)
    over the extent-8 edges."""
    gw = st.group_weight
    magnitudes = budgets.magnitudes
    target_small, target_std = budgets.d.target_small, budgets.d.target_std

    def small_fraction(m):
        return float((gw * (m[st.group_pair] * st.group_ratio < W_SMALL)).sum())

    def w_std(m):
        w = st.group_sign * m[st.group_pair] * st.group_ratio
        return float(np.sqrt((gw * (w - (gw * w).sum()) ** 2).sum()))

    def solve_a(b: float) -> float:
        lo, hi = -8.0, 8.0
        while hi - lo > 2e-3:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if small_fraction(magnitudes(mid, b)) > target_small else (lo, mid)
        return 0.5 * (lo + hi)

    # std(w) is not monotone in b everywhere (caps, re-balancing): coarse grid, then bisection
    # inside the first bracket that crosses the target
    grid = np.linspace(0.0, 4.0, 17)
    stds = np.array([w_std(magnitudes(solve_a(b), b)) for b in grid])
    above = np.flatnonzero(stds >= target_std)
    if above.size == 0 or above[0] == 0:
        b = float(grid[int(np.argmin(np.abs(stds - target_std)))])
    else:
        lo, hi = float(grid[above[0] - 1]), float(grid[above[0]])
        while hi - lo > 2e-3:
            b = 0.5 * (lo + hi)
            lo, hi = (lo, b) if w_std(magnitudes(solve_a(b), b)) > target_std else (b, hi)
        b = 0.5 * (lo + hi)
    return solve_a(b), b


def draw_params(
    model_id: str | int, attempt: int = 0, json_path: str | None = None
) -> FlyVisParams:
    """Attempt ``attempt`` of parameter set ``model_id`` (see the module doc), unchecked."""
    index = parse_model_id(model_id)
    seed = param_seed(index, attempt)
    st = type_structure(json_path)
    d = _Draws.take(np.random.default_rng(seed), st.pair_sign.size, st.n_types)
    budgets = _Budgets(st, d)
    a, b = _solve_budgets(st, budgets)
    mags = budgets.magnitudes(a, b)
    abscissa_drawn = linear_abscissa(st, mags, d.v_star)
    mags, n_stabilize = stabilize(st, mags, d.v_star)  # step 6

    V_rest, tau, abs_in = rest_and_tau(st, mags, d.v_star, d.tau)  # steps 7 and 8
    info = {
        "target_W_std": d.target_std,
        "target_W_small_fraction": d.target_small,
        "rho_exc_target": d.rho_target,
        "rho_exc": rho_exc(st, mags),
        "budget_log_loc": float(a),
        "split_log_scale": float(b),
        "input_budget_range": [float(abs_in.min()), float(abs_in.max())],
        "n_tau_raised": int(np.sum(EULER_DT * (1.0 + abs_in) / 2.0 > TAU_RANGE[0])),
        "v_star": [float(v) for v in d.v_star],
        "linear_abscissa_drawn": abscissa_drawn,
        "linear_abscissa": linear_abscissa(st, mags, d.v_star),
        "stabilize_iterations": n_stabilize,
    }
    return FlyVisParams(
        model_id=model_name(index),
        index=index,
        attempt=int(attempt),
        seed=seed,
        tau=tau,
        V_rest=V_rest,
        strength=mags / st.pair_mean_n_syn,
        info=info,
    )


def _params_cache_file(cache_dir: Path, index: int, sha: str) -> Path:
    return Path(cache_dir) / f"params_{model_name(index)}_{sha[:16]}_v{PARAMS_VERSION}.npz"


def make_params(
    model_id: str | int,
    check: bool = True,
    json_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> FlyVisParams:
    """The accepted parameter set of ``model_id``: the first attempt that, once calibrated
    (:func:`calibrate_responses`), passes the checks.  ``check=False`` returns the first drawn
    attempt as drawn (stabilised, neither calibrated nor checked).

    Deterministic: the same id always gives the same set (for the same connectome file).  With
    ``cache_dir`` the accepted set is stored there as .npz (atomically) and reused.
    """
    index = parse_model_id(model_id)
    jp = str(json_path) if json_path is not None else None
    cached = None
    if check and cache_dir is not None:
        sha = file_sha256(jp if jp is not None else connectome_json_path())
        cached = _params_cache_file(Path(cache_dir), index, sha)
        if cached.is_file():
            try:
                with np.load(cached, allow_pickle=False) as npz:
                    return FlyVisParams.from_arrays({k: npz[k] for k in npz.files})
            except Exception:  # corrupt: recompute below
                pass
    failures = []
    for attempt in range(MAX_ATTEMPTS):
        params = draw_params(index, attempt, json_path=jp)
        if not check:
            return params
        # the weight statistics must hold before (cheap rejection) and after the calibration,
        # and the drawn set's grey state must settle for the calibration to start
        failure = weight_failure(params, "drawn", jp)
        if failure is None:
            params = calibrate_responses(params, json_path=jp)
            if params.info["calibration_settled"]:
                failure = weight_failure(params, "calibrated", jp)
            else:
                failure = {"stage": "calibrated", "grey_settled": False}
        if failure is not None:
            failures.append(failure)
            continue
        result = check_params(params, json_path=jp)
        params.info.update(result)
        if result["ok"]:
            params.info["rejected_attempts"] = failures
            if cached is not None:
                with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
                    np.savez(fh, **params.to_arrays())
            return params
        failures.append(
            {
                k: result[k]
                for k in (
                    "check_grey_settle",
                    "check_max_abs_v",
                    "check_responsive_fraction",
                    "check_min_type_std",
                    "check_observable_W_share",
                )
            }
        )
    raise RuntimeError(
        f"FlyVis model {model_id!r}: no acceptable parameter set in {MAX_ATTEMPTS} attempts "
        f"(last: {failures[-3:]})"
    )


# the names tests and other modules import from here (the first two under their old private names)
_structure = type_structure
_stabilize = stabilize
__all__ = [
    "ACTIVE_STD",
    "LINEAR_ABSCISSA_MAX",
    "MAX_ABS_V",
    "MIN_OBSERVABLE_W_SHARE",
    "MIN_RESPONSIVE_FRACTION",
    "MIN_TYPE_RESPONSE_STD",
    "PARAMS_VERSION",
    "RESPONSIVE_STD",
    "TAU_MAX",
    "FlyVisParams",
    "PerronSolver",
    "activity_svd_rank",
    "calibrate_responses",
    "check_params",
    "draw_params",
    "excitatory_spectral_radius",
    "linear_abscissa",
    "make_params",
    "model_name",
    "observable_w_share",
    "param_seed",
    "parse_model_id",
    "perron_root",
    "reference_weight_statistics",
    "type_response_std",
    "weight_statistics",
]
