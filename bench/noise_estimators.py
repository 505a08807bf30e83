"""Estimators of W under measurement noise, with the TRUE nonlinearity (signal family).

Takes a signal simulation with measurement noise (for example one cached by
``bench/recovery.py --measurement-noise 0.01``) and solves the least-squares problem
``r_i = (du_i + c_i u_i - s_i tanh(u_i)) / g_i = sum_j W_ij tanh(u_j)`` with the simulator's own
functions, for several estimates of (u, du) from the noisy u.  It measures the ceiling of a
solver that would know lin_edge and lin_phi exactly: what the derivative estimate alone costs.
Prints one JSON object (R² of the off-diagonal W per estimator) on stdout.

    .venv/bin/python bench/noise_estimators.py W/sim/N1000_F50000_mn0.07456/f1/seed0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.signal import savgol_filter

from connectome_gnn.analysis.metrics import linear_fit_r2
from connectome_gnn.simulate.data import Simulation


def _cumulative(a: torch.Tensor, dt: float) -> torch.Tensor:
    """Trapezoid cumulative integral over frames (first row 0)."""
    steps = 0.5 * dt * (a[1:] + a[:-1])
    return torch.cat([torch.zeros_like(a[:1]), torch.cumsum(steps, 0)])


def estimates(u: np.ndarray, dt: float, windows: list[int], spans: list[int]):
    """(name, regressor u_k, target du_k or None, integral span or None) per estimator."""
    t = torch.from_numpy(u)
    yield "forward difference", t[:-1], (t[1:] - t[:-1]) / dt, None
    yield "central difference", t[1:-1], (t[2:] - t[:-2]) / (2 * dt), None
    for w in windows:
        us = savgol_filter(u, w, 3, axis=0)
        dus = savgol_filter(u, w, 3, deriv=1, delta=dt, axis=0)
        keep = slice(w, len(u) - w)
        yield f"savgol {w}", torch.from_numpy(us[keep]), torch.from_numpy(dus[keep]), None
    for m in spans:
        yield f"integral {m} frames", t, None, m


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sim_dir", help="a signal simulation directory (simulation.json inside)")
    p.add_argument("--frames", type=int, default=20_000, help="training frames used")
    p.add_argument("--windows", default="21,41", help="Savitzky-Golay windows (cubic)")
    p.add_argument("--spans", default="10", help="frames per window of the integral form")
    p.add_argument("--ridges", default="0,1e-4,1e-3,1e-2", help="ridge / mean Gram diagonal")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sim = Simulation(args.sim_dir)
    n = min(args.frames, sim.n_train_frames)
    u = sim.read("u", 0, n).astype(np.float64)
    nrn = sim.neurons
    g, s, c = (torch.tensor(nrn[k].to_numpy(), dtype=torch.float64) for k in "gsc")
    w_true = sim.dense_W().astype(np.float64)
    off = ~np.eye(w_true.shape[0], dtype=bool)
    ridges = [float(x) for x in args.ridges.split(",")]
    out: dict = {
        "benchmark": "noise_estimators",
        "sim_dir": str(args.sim_dir),
        "measurement_noise": sim.meta.get("measurement_noise", 0.0),
        "activity_std": sim.meta.get("activity_std"),
        "frames": n,
        "R2": {},
    }
    t0 = time.perf_counter()
    windows = [int(x) for x in args.windows.split(",") if x]
    spans = [int(x) for x in args.spans.split(",") if x]
    for name, uk, du, span in estimates(u, sim.dt, windows, spans):
        if span is None:
            x = torch.tanh(uk)
            r = (du + c * uk - s * x) / g
        else:  # u(k+m) - u(k) = integral of the right-hand side over the window
            it, iu = _cumulative(torch.tanh(uk), sim.dt), _cumulative(uk, sim.dt)
            k = torch.arange(0, len(uk) - span)
            x = it[k + span] - it[k]
            r = (uk[k + span] - uk[k] + c * (iu[k + span] - iu[k]) - s * x) / g
        gram, rhs = x.T @ x, x.T @ r
        scale = float(gram.diagonal().mean())
        eye = torch.eye(gram.shape[0], dtype=gram.dtype)
        for lam in ridges:
            w_hat = torch.linalg.solve(gram + (lam or 1e-12) * scale * eye, rhs).T.numpy()
            out["R2"][f"{name}, ridge {lam:g}"] = linear_fit_r2(w_true[off], w_hat[off])[2]
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
