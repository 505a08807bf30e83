"""The 'flyvis' family: the fly visual-system connectome (flyvis lattice) + a sparse GNN.

Simulator: dV_i/dt = (-V_i + V_rest_i + sum_j w_ij ReLU(V_j) + x_i(t)) / tau_i on the known
edges (:mod:`connectome_gnn.simulate.flyvis`).  Learned model: :class:`FlyVisGNN`
(dv_i/dt ~ lin_phi([v_i, a_i, msg_i, x_i]), msg_i = sum_j W_ij lin_edge([v_j, a_j])).

Readouts (the reference's definitions):

- lin_phi(v, a_i, m_i, x_i) is fitted by a line over each neuron's activity range
  [mu_i - 2 sigma_i, mu_i + 2 sigma_i] at the neuron's operating point (m_i, x_i: its mean
  message and input over a few training frames): slope_i, offset_i -> tau_i = clip(-1/slope_i,
  0, 1) and V_rest_i = -(offset_i - g_i m_i - h_i x_i) / slope_i, with g_i, h_i the derivatives
  of lin_phi in msg and x (the true right-hand side (-v + V_rest + msg + x)/tau gives back tau
  and V_rest exactly).  The reference reads the line at msg = x = 0 instead (``tau_msg0``,
  ``V_rest_msg0``, also reported); that is the same for an exact model but an extrapolation
  for a learned one wherever a neuron's message never comes near 0 (on our data, messages
  range over about [-16, 5]), and it loses most of the signal: on one model, 0.14 against 0.48
  for tau_R2;
- lin_edge's slope per presynaptic neuron j over [max(mu_j - 2 sigma_j, 0), mu_j + 2 sigma_j],
  or [0, 2 sigma_j] for a neuron whose range lies below 0 (the reference sets such slopes to 1;
  their outgoing weights carry no signal through the ReLU, so neither choice is identifiable);
- d lin_phi / d msg per neuron (median over a few training frames);
- which neurons can pin tau and V_rest at all (``active``: voltage std >= 0.05 over the training
  frames; ``identifiable``: active and not :func:`confounded_by_self_synapse`), for
  tau_R2_active / tau_R2_identifiable and the same for V_rest;
- corrected weight W*_ij = -W_ij / slope_i * (d lin_phi_i / d msg) * edge_slope_j, which equals
  w_ij when lin_phi and lin_edge are exact; -1 / slope_i is taken as the clipped tau_i, so that a
  nearly flat (or rising) lin_phi cannot blow its incoming weights up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError
from ..simulate.flyvis.params import ACTIVE_STD  # over the training frames (tau_R2_active)
from .base import Family, edge_range

N_GRID = 64  # points per neuron of the lin_phi / lin_edge line fits
N_GRAD_FRAMES = 32  # frames of the operating point: mean msg and x, median derivatives
#: a neuron with a self-synapse pins its tau only if it is below 0 on at least this fraction of
#: the training frames (tau_R2_identifiable)
SELF_SYNAPSE_CROSSING = 0.01


def _line_fits(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares slope and offset of y against x, column by column (P x N inputs)."""
    xm, ym = x.mean(0), y.mean(0)
    dx = x - xm
    sxx = (dx * dx).sum(0)
    slope = (dx * (y - ym)).sum(0) / torch.clamp(sxx, min=1e-12)
    return slope, ym - slope * xm


def activity_stats(sim, stop: int | None = None, chunk: int = 4096) -> tuple[np.ndarray, ...]:
    """Per-neuron mean and standard deviation of the voltage over frames [0, stop), and the
    fraction of those frames in which it is above the ReLU threshold (> 0); streamed."""
    stop = sim.n_train_frames if stop is None else stop
    total = np.zeros(sim.n_neurons)
    total_sq = np.zeros(sim.n_neurons)
    n_above = np.zeros(sim.n_neurons)
    for start in range(0, stop, chunk):
        block = sim.read("u", start, min(start + chunk, stop)).astype(np.float64)
        total += block.sum(0)
        total_sq += (block * block).sum(0)
        n_above += (block > 0).sum(0)
    mu = total / max(stop, 1)
    sigma = np.sqrt(np.maximum(total_sq / max(stop, 1) - mu * mu, 0.0))
    return mu, sigma, n_above / max(stop, 1)


def confounded_by_self_synapse(
    pre: np.ndarray, post: np.ndarray, above: np.ndarray, crossing: float = SELF_SYNAPSE_CROSSING
) -> np.ndarray:
    """Neurons whose time constant and resting potential the activity cannot pin: they have a
    self-synapse (an edge i -> i) and their voltage is below the ReLU threshold on fewer than a
    ``crossing`` fraction of the frames (``above``: fraction above 0, per neuron).  Above the
    threshold the leak -V_i / tau_i and the self-input w_ii ReLU(V_i) / tau_i are the same linear
    function of V_i, so only (1 - w_ii) / tau_i is determined, never tau_i itself."""
    pre, post = np.asarray(pre), np.asarray(post)
    loop = np.zeros(len(above), dtype=bool)
    loop[post[pre == post]] = True
    return loop & (np.asarray(above) > 1.0 - crossing)


class FlyVisFamily(Family):
    name = "flyvis"
    model_schema = "flyvis.model"
    score_weights = {"connectivity_R2": 0.6, "cluster_accuracy": 0.4}
    sparsity_options = (1.0,)  # the connectome fixes the connectivity
    neuron_parameters = ("tau", "V_rest")
    parameter_variants = ("msg0",)  # the reference's reading of lin_phi at msg = x = 0
    neuron_subsets = ("active", "identifiable")
    #: the neuron parameters read off lin_phi (see the module docstring)
    metric_names = (
        "tau_R2",
        "V_rest_R2",
        "tau_R2_active",
        "V_rest_R2_active",
        "tau_R2_identifiable",
        "V_rest_R2_identifiable",
    )
    headline_metrics = ("tau_R2", "V_rest_R2")
    pareto_metrics = ("tau_R2", "V_rest_R2")
    #: ranges around the shipped recipes (config/train/flyvis.yaml, flyvis_cpu.yaml)
    search_space = {
        "lr_W": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": 0.5},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": 0.5},
        "lr_emb": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True, "step": 0.5},
        "coeff_W_L1": {
            "type": "float",
            "low": 1e-7,
            "high": 1e-2,
            "log": True,
            "step": 0.5,
            "zero": True,
            "start": 5e-5,
        },
        "coeff_edge_diff": {
            "type": "float",
            "low": 1.0,
            "high": 2000.0,
            "log": True,
            "step": 0.5,
            "zero": True,
            "start": 100.0,
        },
        "batch_size": {"type": "choice", "choices": (1, 2, 4, 8)},
        "data_augmentation_loop": {"type": "int", "low": 10, "high": 400, "log": True, "step": 0.3},
        "n_epochs": {"type": "int", "low": 1, "high": 10, "step": 0.25},
        # the input field (input: learned only), seed 003's ranges: omega_f 2048-4096 works
        # (1024 crashed), hidden 2048 best (1536 viable), 3 layers (4 failed), T_period 64000
        # (halving destroyed the field), lr_siren 1e-8 (1e-5 destroyed it)
        # (each only in configurations with input: learned, its "requires")
        "omega_f": {
            "type": "float",
            "low": 2048.0,
            "high": 4096.0,
            "log": True,
            "requires": {"input": "learned"},
        },
        "hidden_dim_nnr_f": {
            "type": "choice",
            "choices": (1024, 1536, 2048),
            "requires": {"input": "learned"},
        },
        "n_layers_nnr_f": {
            "type": "choice",
            "choices": (2, 3),
            "requires": {"input": "learned"},
        },
        "nnr_f_T_period": {
            "type": "float",
            "low": 32000.0,
            "high": 128000.0,
            "log": True,
            "step": 0.3,
            "requires": {"input": "learned"},
        },
        "lr_siren": {
            "type": "float",
            "low": 1e-9,
            "high": 1e-6,
            "log": True,
            "requires": {"input": "learned"},
        },
    }

    def check_model(self, model_cfg: dict, source: str) -> None:
        from ..simulate.flyvis.params import parse_model_id

        try:
            parse_model_id(model_cfg["model_id"])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: field 'model_id': {exc}") from None
        n_test = round(model_cfg["n_frames"] * model_cfg["test_fraction"])
        if model_cfg["test_fraction"] > 0 and n_test < 2:
            raise ConfigError(
                f"{source}: field 'test_fraction': leaves fewer than 2 held-out frames"
            )

    def simulate(self, model_cfg: dict, sparsity: float, seed: int, out_dir: Path) -> dict:
        from ..simulate.flyvis.simulate import simulate_flyvis

        return simulate_flyvis(model_cfg, seed, out_dir, sparsity=sparsity)

    def true_dynamics(self, sim):
        from ..simulate.flyvis.dynamics import FlyVisDynamics

        c, nrn = sim.connectivity, sim.neurons
        return FlyVisDynamics(
            c["pre"], c["post"], c["weight"], nrn["tau"], nrn["V_rest"], dt=sim.dt
        )

    def build_model(self, sim, train_cfg: dict, generator: torch.Generator | None = None):
        from ..models.flyvis import FlyVisGNN

        c = sim.connectivity
        model = FlyVisGNN.from_config(
            torch.from_numpy(c["pre"].astype(np.int64)),
            torch.from_numpy(c["post"].astype(np.int64)),
            sim.n_neurons,
            cfg=train_cfg,
            generator=generator,
            edge_range=edge_range(sim.meta, float(train_cfg.get("lin_edge_knot_scale", 1.0))),
        )
        return self.attach_field(model, sim, train_cfg, generator)

    def input_units(self, sim) -> tuple:
        """The photoreceptors (role input) read the field of their column, one unit per column
        (the 8 photoreceptor types of a column share one luminance, as in the simulator); the
        columns' places are the hexagonal lattice's, in the plane, scaled into [-1, 1]."""
        nrn = sim.neurons
        targets = np.flatnonzero(nrn["role"].to_numpy() == "input")
        columns = nrn["column"].to_numpy()
        n_units = int(columns.max()) + 1
        places = nrn.groupby("column")[["u", "v"]].first().sort_index().to_numpy(np.float64)
        xy = np.stack([places[:, 0] + 0.5 * places[:, 1], places[:, 1] * np.sqrt(3) / 2], 1)
        xy = xy / max(float(np.abs(xy).max()), 1e-9)
        return targets, columns[targets], n_units, xy.astype(np.float32)

    def readouts(self, model, sim, u_range=None) -> dict:
        dev = model.W.device
        n = sim.n_neurons
        c, nrn = sim.connectivity, sim.neurons
        mu, sigma, above = activity_stats(sim)
        active = sigma >= ACTIVE_STD
        t = torch.linspace(-2.0, 2.0, N_GRID, dtype=torch.float32).unsqueeze(1)
        mu_t = torch.from_numpy(mu).float().unsqueeze(0)
        sig_t = torch.from_numpy(np.maximum(sigma, 1e-3)).float().unsqueeze(0)
        v_phi = (mu_t + t * sig_t).to(dev)  # P x N: each neuron's own activity range
        lo = torch.clamp(mu_t - 2 * sig_t, min=0.0)
        hi = torch.maximum(mu_t + 2 * sig_t, lo + 2 * sig_t)
        v_edge = (lo + (t + 2.0) / 4.0 * (hi - lo)).to(dev)
        op = self._operating_point(model, sim)
        grad_msg = op["grad_msg"]
        with torch.no_grad():
            phi0 = model.phi(v_phi)
            m_op = torch.from_numpy(op["msg"]).float().to(dev).expand_as(v_phi)
            x_op = torch.from_numpy(op["x"]).float().to(dev).expand_as(v_phi)
            phi = model.phi(v_phi, m_op, x_op)
            edge = model.edge(v_edge)
        slope_phi, offset_phi = _line_fits(v_phi, phi)
        slope_edge, _ = _line_fits(v_edge, edge)

        def _safe(slope):
            slope = slope.cpu().double().numpy()
            return np.where(np.abs(slope) > 1e-9, slope, np.nan)

        safe = _safe(slope_phi)
        tau = np.clip(-1.0 / safe, 0.0, 1.0)
        at_zero = offset_phi.cpu().double().numpy() - grad_msg * op["msg"] - op["grad_x"] * op["x"]
        v_rest = -at_zero / safe
        slope0, offset0 = _line_fits(v_phi, phi0)
        safe0 = _safe(slope0)

        post = c["post"].astype(np.int64)
        pre = c["pre"].astype(np.int64)
        W = model.effective_W().detach().cpu().double().numpy()
        edge_slope = slope_edge.cpu().double().numpy()
        # -1 / slope is the clipped tau: a neuron with a flat or rising v-slope (unphysical)
        # cannot amplify its weights without bound, it gets tau 0 and corrected weights 0
        w_corr = W * np.nan_to_num(tau)[post] * grad_msg[post] * edge_slope[pre]

        types = nrn["type"].to_numpy()
        first_of_type = np.unique(types, return_index=True)[1]
        with torch.no_grad():
            grid = torch.linspace(-2.0, 2.0, 200).unsqueeze(1)
            v = mu_t + grid * sig_t  # P x N: each neuron's own range
            phi_curves = model.phi(v.to(dev)).cpu().numpy().T
            edge_curves = model.edge(v.to(dev)).cpu().numpy().T
            v_grid = v.double().numpy().T  # N x P
        return {
            "post": post,
            "pre": pre,
            "w_true": c["weight"].astype(np.float64),
            "w_raw": W,
            "w_learned": w_corr,
            "embeddings": model.a.detach().cpu().numpy(),
            "grid": grid.squeeze(1).numpy(),
            "grid_label": "(v - mean) / std",
            "phi_curves": phi_curves,
            "edge_curves": edge_curves[first_of_type],
            "edge_labels": [f"type {t}" for t in types[first_of_type]],
            # the simulator's functions on the same grid: lin_phi at msg = x = 0 is
            # (V_rest - v) / tau, lin_edge is ReLU(v)
            "phi_true": (
                (nrn["V_rest"].to_numpy(dtype=np.float64)[:, None] - v_grid)
                / np.maximum(nrn["tau"].to_numpy(dtype=np.float64), sim.dt)[:, None]
            ),
            "edge_true": np.maximum(v_grid[first_of_type], 0.0),
            "tau_true": nrn["tau"].to_numpy(dtype=np.float64),
            "tau_learned": tau,
            "V_rest_true": nrn["V_rest"].to_numpy(dtype=np.float64),
            "V_rest_learned": v_rest,
            "tau_msg0_learned": np.clip(-1.0 / safe0, 0.0, 1.0),
            "V_rest_msg0_learned": -offset0.cpu().double().numpy() / safe0,
            "n_neurons": n,
            "active": active,
            "identifiable": active & ~confounded_by_self_synapse(pre, post, above),
        }

    @staticmethod
    def _operating_point(model, sim) -> dict[str, np.ndarray]:
        """Per neuron over a few evenly spaced training frames: mean message ``msg`` and input
        ``x``, and the median derivatives of lin_phi in msg (``grad_msg``) and x (``grad_x``)."""
        dev = model.W.device
        idx = np.linspace(0, sim.n_train_frames - 1, N_GRAD_FRAMES).astype(int)
        v = torch.from_numpy(sim.read_frames("u", idx)).to(dev)
        x = torch.zeros_like(v)
        if sim.has_input:
            x = torch.from_numpy(sim.read_frames("x", idx)).to(dev)
        with torch.no_grad():
            msg = model.message(model.edge(v))
        msg = msg.clone().requires_grad_(True)
        x = x.clone().requires_grad_(True)
        out = model.phi(v, msg, x)
        grad_m, grad_x = torch.autograd.grad(out.sum(), [msg, x])

        def np64(t):
            return t.detach().cpu().double().numpy()

        return {
            "msg": np64(msg.mean(0)),
            "x": np64(x.mean(0)),
            "grad_msg": np64(grad_m.median(dim=0).values),
            "grad_x": np64(grad_x.median(dim=0).values),
        }
