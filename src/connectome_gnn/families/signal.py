"""The 'signal' family: PDE_N2 simulator + dense-W GNN (Allier et al., Fig. 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError
from .base import Family, edge_range


class SignalFamily(Family):
    name = "signal"
    model_schema = "signal.model"
    score_weights = {"connectivity_R2": 0.6, "cluster_accuracy": 0.4}
    #: the ranges of the seed-004 sparsity study (see connectome_gnn.explore.mutate)
    search_space = {
        "lr_W": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": 0.5},
        "lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True, "step": 0.5},
        "lr_emb": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True, "step": 0.5},
        "coeff_W_L1": {
            "type": "float",
            "low": 1e-10,
            "high": 1e-4,
            "log": True,
            "step": 1.0,
            "zero": True,
            "start": 1e-6,
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
        # the W solver's knobs (train.schema.yaml; recipes config/train/solver*.yaml)
        "W_solve": {"type": "choice", "choices": ("none", "lstsq", "lasso")},
        "lin_edge_knots": {"type": "int", "low": 8, "high": 96, "log": True, "step": 0.3},
        "lin_edge_knot_scale": {
            "type": "float",
            "low": 0.05,
            "high": 1.0,
            "log": True,
            "step": 0.5,
        },
        "W_solve_frames": {"type": "int", "low": 2000, "high": 50000, "log": True, "step": 0.5},
        "phi_fit_steps": {"type": "int", "low": 200, "high": 5000, "log": True, "step": 0.5},
    }

    def check_model(self, model_cfg: dict, source: str) -> None:
        n, k = model_cfg["n_neurons"], model_cfg["n_types"]
        if len(model_cfg["params"]) != k:
            raise ConfigError(
                f"{source}: field 'params': has {len(model_cfg['params'])} rows but n_types is {k}"
            )
        if k > n:
            raise ConfigError(f"{source}: field 'n_types': {k} types for only {n} neurons")
        if model_cfg["connectivity"] == "file":
            path = model_cfg.get("connectivity_file")
            if not path:
                raise ConfigError(
                    f"{source}: field 'connectivity_file': required when connectivity is 'file'"
                )
            if not Path(path).is_file():
                raise ConfigError(f"{source}: field 'connectivity_file': {path} does not exist")
        n_test = round(model_cfg["n_frames"] * model_cfg["test_fraction"])
        if model_cfg["test_fraction"] > 0 and n_test < 2:
            raise ConfigError(
                f"{source}: field 'test_fraction': leaves fewer than 2 held-out frames"
            )

    def simulate(self, model_cfg: dict, sparsity: float, seed: int, out_dir: Path) -> dict:
        from ..simulate.signal import simulate_signal

        return simulate_signal(model_cfg, sparsity, seed, out_dir)

    def true_dynamics(self, sim):
        from ..simulate.signal import PDEN2

        nrn = sim.neurons
        return PDEN2(sim.dense_W(), nrn["g"], nrn["s"], nrn["c"])

    def build_model(self, sim, train_cfg: dict, generator: torch.Generator | None = None):
        from ..models.signal import SignalGNN

        model = SignalGNN.from_config(
            sim.n_neurons,
            cfg=train_cfg,
            generator=generator,
            edge_range=edge_range(sim.meta, float(train_cfg.get("lin_edge_knot_scale", 1.0))),
        )
        return self.attach_field(model, sim, train_cfg, generator)

    def input_units(self, sim) -> tuple:
        """The input neurons of simulation.json's ``input``, one field unit each; their grid
        places (neurons.csv x, y, centred on 0) for a moving pattern."""
        spec = sim.meta.get("input")
        if not spec:
            raise ConfigError(
                f"field 'input': learned, but simulation {sim.path} has no external input "
                "(set the model's external_input)"
            )
        neurons = np.asarray(spec["neurons"], dtype=np.int64)
        positions = None
        if {"x", "y"} <= set(sim.neurons.columns):
            positions = 2.0 * sim.neurons.loc[neurons, ["x", "y"]].to_numpy(np.float32) - 1.0
        return neurons, np.arange(neurons.size), neurons.size, positions

    def readouts(self, model, sim, u_range: tuple[float, float] | None = None) -> dict:
        """Learned W (raw and corrected), embeddings and MLP curves, as numpy arrays.

        Correction (reference): the learned message is W_ij * lin_edge(u_j) while the truth is
        g_i W_ij tanh(u_j); W is rescaled per presynaptic neuron by the plateau of lin_edge
        (median of lin_edge over [0.8, 1] * xnorm) and divided by g of the postsynaptic neuron.
        """
        n = sim.n_neurons
        xnorm = float(u_range[1]) if u_range else 4.0
        with torch.no_grad():
            W = model.effective_W().detach().cpu().double().numpy()
            plateau_u = torch.linspace(0.8 * xnorm, xnorm, 1000, dtype=torch.float32)
            plateau = float(model.edge(plateau_u.to(model.W.device)).median().cpu())
            grid = torch.linspace(-xnorm, xnorm, 200)
            edge_curve = model.edge(grid.to(model.W.device)).cpu().numpy()
            phi_curves = (
                model.phi(grid.to(model.W.device).unsqueeze(1).expand(-1, n)).cpu().numpy().T
            )
        g, s, c = (sim.neurons[k].to_numpy(dtype=np.float64) for k in "gsc")
        u = grid.double().numpy()
        W_corr = W * plateau / g[:, None]
        post, pre = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        return {
            "post": post.ravel(),
            "pre": pre.ravel(),
            "w_true": sim.dense_W().astype(np.float64).ravel(),
            "w_raw": W.ravel(),
            "w_learned": W_corr.ravel(),
            "edge_correction": np.full(n, plateau),
            "embeddings": model.a.detach().cpu().numpy(),
            "grid": grid.numpy(),
            "edge_curves": edge_curve[None, :],
            "edge_labels": ["lin_edge (shared by all edges)"],
            "phi_curves": phi_curves,
            # the simulator's functions: du_i = -c_i u_i + s_i tanh(u_i) + g_i sum_j W_ij tanh(u_j)
            "edge_true": np.tanh(u)[None, :],
            "phi_true": -c[:, None] * u + s[:, None] * np.tanh(u),
        }
