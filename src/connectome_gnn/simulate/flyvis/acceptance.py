"""Acceptance of a drawn FlyVis parameter set: the check simulation and the calibration.

- :func:`check_params`: a short simulation at extent 3 under grey, flashes and the stimulus mix;
  ``ok`` when the grey state settles, the activity stays bounded, enough neurons and every cell
  type respond and at least half of W is observable;
- :func:`calibrate_responses`: raises the input gain of the cell types that barely respond;
- :func:`weight_failure`: the extent-8 weight statistics of a set against the accepted ranges.

:func:`.params.make_params` runs them on every drawn attempt.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .connectome import Connectome, build_connectome
from .integrate import cpu_threads_for, integrate_chunks
from .paramset import (
    EULER_DT,
    REBALANCED_MAGNITUDE_MAX,
    RHO_EXC_RANGE,
    W_SMALL,
    FlyVisParams,
    rest_and_tau,
)
from .spectral import linear_abscissa, rho_exc, stabilize, type_structure
from .statistics import (
    activity_svd_rank,
    observable_w_share,
    reference_weight_statistics,
    type_response_std,
)
from .stimuli import StimulusSequence, column_positions, flash

CHECK_EXTENT = 3
CHECK_FRAMES = 1200
CHECK_BURN_IN = 300
MAX_ABS_V = 30.0
MIN_RESPONSIVE_FRACTION = 0.6  # neurons whose temporal std exceeds RESPONSIVE_STD
RESPONSIVE_STD = 0.01
GREY_SETTLE_TOL = 1e-3  # max |dV| per step at the end of the grey burn-in
MIN_OBSERVABLE_W_SHARE = 0.5
# version 3: every cell type must respond (a type whose voltage does not move hides its tau)
TYPE_RESPONSE_TARGET = 0.08  # calibration aims the median voltage std of each type above this
MIN_TYPE_RESPONSE_STD = 0.05  # ... and the check requires it above this for every type
#: voltage std from which a neuron counts as active: a neuron that moves less does not pin its
#: time constant, whatever the method (also the analysis' tau_R2_active threshold)
ACTIVE_STD = 0.05
TYPE_GAIN_MAX = 2.0  # per calibration round
CALIBRATION_ROUNDS = 6
# accepted extent-8 weight statistics of a set, before and after the calibration
W_STD_ACCEPT = (0.25, 0.36)
W_SMALL_FRACTION_ACCEPT = (0.30, 0.42)


def _check_activity(
    params: FlyVisParams, extent: int, n_frames: int, burn_in: int, dt: float, json_path
) -> tuple[float, np.ndarray, Connectome]:
    """Grey burn-in, full-field OFF and ON flashes at full contrast, then ``n_frames`` of the
    default stimulus mix at ``extent``: (max |dV| at the end of the burn-in, the voltages after
    it, the connectome)."""
    con = build_connectome(extent, json_path=json_path)
    dyn = params.dynamics(con, dt=dt)
    seq = StimulusSequence(con.column_u, con.column_v, dt, seed=12345)
    pos = column_positions(con.column_u, con.column_v)
    grey = np.full((2, con.n_columns), 0.5, dtype=np.float32)
    flashes = np.concatenate(
        [flash(pos, dt, level, t_pre=0.5, t_stim=1.0, t_post=1.0) for level in (0.0, 1.0)]
    )
    with torch.no_grad(), cpu_threads_for(dyn):
        frames = [grey, np.concatenate([flashes, seq.frames(n_frames)])]
        chunks = [v.numpy() for v, _, _ in integrate_chunks(dyn, con.input_index, frames, burn_in)]
    settle = float(np.abs(chunks[0][1] - chunks[0][0]).max())
    return settle, chunks[1], con


def _settled(settle: float, u: np.ndarray) -> bool:
    """The grey burn-in settled and the activity stayed finite and within MAX_ABS_V."""
    return (
        bool(np.isfinite(settle))
        and settle < GREY_SETTLE_TOL
        and bool(np.all(np.isfinite(u)))
        and float(np.abs(u).max()) <= MAX_ABS_V
    )


def check_params(
    params: FlyVisParams,
    extent: int = CHECK_EXTENT,
    n_frames: int = CHECK_FRAMES,
    burn_in: int = CHECK_BURN_IN,
    dt: float = EULER_DT,
    json_path: str | None = None,
) -> dict:
    """Short simulation at ``extent`` (:func:`_check_activity`): statistics and ``ok``.

    ``ok``: the grey burn-in settles (max |V_k+1 - V_k| < GREY_SETTLE_TOL), the activity stays
    finite with max |V| <= MAX_ABS_V, at least MIN_RESPONSIVE_FRACTION of the neurons have a
    temporal std > RESPONSIVE_STD, every cell type responds (median voltage std of its neurons
    >= MIN_TYPE_RESPONSE_STD) and at least MIN_OBSERVABLE_W_SHARE of W is observable
    (:func:`observable_w_share`).
    """
    settle, u, con = _check_activity(params, extent, n_frames, burn_in, dt, json_path)
    finite = bool(np.all(np.isfinite(u))) and np.isfinite(settle)
    max_abs = float(np.abs(u).max()) if finite else float("inf")
    sd = u.std(0) if finite else None
    responsive = float(np.mean(sd > RESPONSIVE_STD)) if finite else 0.0
    type_std = type_response_std(u, con.node_type, con.n_types) if finite else np.zeros(1)
    ranks = activity_svd_rank(u) if finite else {"rank_90": 0, "rank_99": 0}
    observable = observable_w_share(u, params.edge_weights(con), con.edge_source) if finite else 0.0
    ok = (
        _settled(settle, u)
        and responsive >= MIN_RESPONSIVE_FRACTION
        and float(np.nanmin(type_std)) >= MIN_TYPE_RESPONSE_STD
        and observable >= MIN_OBSERVABLE_W_SHARE
    )
    return {
        "ok": bool(ok),
        "check_extent": int(extent),
        "check_grey_settle": settle,
        "check_max_abs_v": max_abs,
        "check_responsive_fraction": responsive,
        "check_min_type_std": float(np.nanmin(type_std)),
        "check_fraction_std_0.05": float(np.mean(sd >= ACTIVE_STD)) if finite else 0.0,
        "check_active_fraction": float(np.mean((u > 0).any(0))) if finite else 0.0,
        "check_svd_rank_90": ranks["rank_90"],
        "check_svd_rank_99": ranks["rank_99"],
        "check_observable_W_share": observable,
    }


def calibrate_responses(
    params: FlyVisParams,
    rounds: int = CALIBRATION_ROUNDS,
    extent: int = CHECK_EXTENT,
    n_frames: int = CHECK_FRAMES,
    burn_in: int = CHECK_BURN_IN,
    dt: float = EULER_DT,
    json_path: str | None = None,
) -> FlyVisParams:
    """Raise the input gain of the cell types that barely respond to the stimulus mix.

    Up to ``rounds`` times: simulate as :func:`check_params`; every type whose median voltage std
    is below TYPE_RESPONSE_TARGET gets its incoming pairs of mean |w| >= W_SMALL (all of them if
    none is) multiplied by ``clip(TYPE_RESPONSE_TARGET / std, 1, TYPE_GAIN_MAX)`` (capped at
    REBALANCED_MAGNITUDE_MAX); the excitatory loops are scaled back if rho(W+) exceeds the set's
    target, the grey state is re-stabilised (:func:`.spectral.stabilize`), V_rest is recomputed
    so that the grey operating voltages V* stay where they were drawn, and tau is raised to the
    Euler bound of the new input (:func:`.paramset.rest_and_tau`).  A round whose gains break
    the grey state (or cannot be stabilised) is undone and ends the calibration;
    ``info["calibration_settled"]`` is False when the drawn set itself does not settle.  A time
    constant and the incoming weights of a neuron whose voltage does not move are not
    observable in its activity; this makes every type move.  Deterministic (no random draw).
    """
    st = type_structure(json_path)
    v_star = np.asarray(params.info["v_star"])
    tar = st.pair_target
    rho_cap = float(params.info.get("rho_exc_target", RHO_EXC_RANGE[1]))
    gains = np.ones(st.n_types)
    previous = None
    for r in range(rounds + 1):
        settle, u, con = _check_activity(params, extent, n_frames, burn_in, dt, json_path)
        if r == 0:
            settled = _settled(settle, u)
        if not _settled(settle, u):
            if previous is not None:  # the last gains broke the grey state: undo them, stop
                params, gains = previous
            break
        type_std = type_response_std(u, con.node_type, con.n_types)
        low = np.isfinite(type_std) & (type_std < TYPE_RESPONSE_TARGET)
        if r == rounds or not low.any():
            break
        gain = np.where(
            low,
            np.clip(TYPE_RESPONSE_TARGET / np.maximum(type_std, 1e-6), 1.0, TYPE_GAIN_MAX),
            1.0,
        )
        previous = (params, gains)
        gains = gains * gain
        mags = params.strength * st.pair_mean_n_syn
        # the small pairs keep their strength (the share of |w| < W_SMALL is a target
        # statistic), except in a type whose inputs are all small
        strongest = np.zeros(st.n_types)
        np.maximum.at(strongest, tar, mags)
        eligible = (mags >= W_SMALL) | (strongest[tar] < W_SMALL)
        mags = np.where(eligible, np.minimum(mags * gain[tar], REBALANCED_MAGNITUDE_MAX), mags)
        rho = rho_exc(st, mags)
        if rho > rho_cap:
            mags = np.where(st.recurrent_exc, mags * (rho_cap / rho), mags)
        try:
            mags, _ = stabilize(st, mags, v_star)
        except RuntimeError:  # these gains cannot be made stable: keep the previous set
            params, gains = previous
            break
        V_rest, tau, _ = rest_and_tau(st, mags, v_star, params.tau)
        params = dataclasses.replace(
            params,
            tau=tau,
            V_rest=V_rest,
            strength=mags / st.pair_mean_n_syn,
            info=dict(params.info),
        )
    mags = params.strength * st.pair_mean_n_syn
    params.info["rho_exc"] = rho_exc(st, mags)
    params.info["linear_abscissa"] = linear_abscissa(st, mags, v_star)
    params.info["calibration_settled"] = settled
    params.info["type_gain_range"] = [float(gains.min()), float(gains.max())]
    params.info["n_types_gained"] = int((gains > 1).sum())
    return params


def _weights_ok(stats: dict) -> bool:
    return (
        W_STD_ACCEPT[0] <= stats["W_std"] <= W_STD_ACCEPT[1]
        and W_SMALL_FRACTION_ACCEPT[0] <= stats["W_small_fraction"] <= W_SMALL_FRACTION_ACCEPT[1]
    )


def weight_failure(params: FlyVisParams, stage: str, json_path: str | None) -> dict | None:
    """Record the extent-8 weight statistics of ``params`` in its info; None when they are in
    the accepted ranges, else the failure entry of ``stage``."""
    wstats = reference_weight_statistics(params, json_path)
    params.info.update({f"e8_{k}": v for k, v in wstats.items()})
    if _weights_ok(wstats):
        return None
    return {
        "stage": stage,
        "W_std": wstats["W_std"],
        "W_small_fraction": wstats["W_small_fraction"],
    }
