"""The per-receiver W solver of the FlyVis family (train/receiver_solver.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from connectome_gnn.config import validate
from connectome_gnn.errors import ConfigError
from connectome_gnn.models.flyvis import FlyVisGNN, in_degree_groups
from connectome_gnn.simulate.data import Simulation
from connectome_gnn.simulate.flyvis.dynamics import FlyVisDynamics
from connectome_gnn.train import receiver_solver as rs
from connectome_gnn.train.solver import DEFAULTS


def _circuit(n=12, self_synapse_of=None, seed=0, orphans=0):
    """A random sparse circuit (2-5 inputs per neuron, every neuron its own tau and V_rest),
    optionally with a self-synapse on one neuron, and ``orphans`` neurons without inputs."""
    rng = np.random.default_rng(seed)
    pre, post = [], []
    for i in range(orphans, n):
        senders = rng.choice([j for j in range(n) if j != i], rng.integers(2, 6), replace=False)
        pre += senders.tolist()
        post += [i] * len(senders)
    if self_synapse_of is not None:
        pre.append(self_synapse_of)
        post.append(self_synapse_of)
    w = rng.normal(0.0, 0.5, len(pre))
    tau = rng.uniform(0.05, 0.5, n)
    v_rest = rng.uniform(-0.5, 1.0, n)
    return np.array(pre), np.array(post), w, tau, v_rest


def _frames(dyn, n_frames, seed=1, lift=None):
    """Random voltages (crossing 0) and inputs, with the exact derivative."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n_frames, dyn.n_neurons, generator=g, dtype=torch.float64)
    if lift is not None:  # this neuron never goes below 0
        v[:, lift] = 1.0 + v[:, lift].abs()
    x = torch.zeros_like(v)
    x[:, :3] = torch.randn(n_frames, 3, generator=g, dtype=torch.float64)  # 3 input neurons
    du = dyn.double()(v, x)
    return v, du, x


def _model(pre, post, n, **kw):
    return FlyVisGNN(
        torch.from_numpy(pre), torch.from_numpy(post), n, lin_edge_positive=False, **kw
    ).double()


def test_in_degree_groups_cover_every_edge_once_sorted_by_sender():
    pre, post, *_ = _circuit(20)
    groups = in_degree_groups(torch.from_numpy(pre), torch.from_numpy(post), 20)
    edges = torch.cat([e.reshape(-1) for _, e in groups]).sort().values
    assert torch.equal(edges, torch.arange(len(pre)))
    for recv, e in groups:
        assert (torch.from_numpy(post)[e] == recv[:, None]).all()
        assert (torch.from_numpy(pre)[e].diff(dim=1) > 0).all()


def test_solve_with_the_true_edge_function_recovers_w_tau_and_v_rest_exactly():
    """Neurons 0 and 1 have no inputs (their leak and offset are solved all the same), 0-2
    have an external input."""
    pre, post, w, tau, v_rest = _circuit(12, orphans=2)
    dyn = FlyVisDynamics(pre, post, w, tau, v_rest, dt=0.01)
    v, du, x = _frames(dyn, 400)
    model = _model(pre, post, 12)
    sol = rs.solve_receivers(torch.relu, model, v, du, x, torch.arange(400), 1e-12)
    tau_hat = -1.0 / sol.a.numpy()
    order = dyn.source.numpy(), dyn.target.numpy()  # the dynamics sort its edges
    w_sorted = dict(zip(zip(*order, strict=True), dyn.weight.double().numpy(), strict=True))
    w_true = np.array([w_sorted[(j, i)] for j, i in zip(pre, post, strict=True)])
    np.testing.assert_allclose(sol.W.numpy() * tau_hat[post], w_true, atol=1e-4)
    np.testing.assert_allclose(tau_hat, tau, rtol=1e-5)
    np.testing.assert_allclose(-sol.c.numpy() / sol.a.numpy(), v_rest, atol=1e-4)
    # input gain = 1 / tau on the three input neurons, 0 (no input) elsewhere
    np.testing.assert_allclose(sol.h.numpy()[:3], 1.0 / tau[:3], rtol=1e-5)
    np.testing.assert_allclose(sol.h.numpy()[3:], 0.0, atol=1e-9)
    assert float(sol.mse.max() / du.var()) < 1e-10  # exact up to round-off


def test_a_self_synapse_the_data_cannot_separate_goes_to_zero_and_the_leak_takes_it():
    """Neuron 4 never goes below 0: ReLU(v_4) = v_4, so only (1 - w_44) / tau_4 is determined;
    the ridge on the weights puts the self-weight at 0, not an arbitrary split."""
    pre, post, w, tau, v_rest = _circuit(8, self_synapse_of=4)
    w[-1] = 0.3
    dyn = FlyVisDynamics(pre, post, w, tau, v_rest, dt=0.01)
    v, du, x = _frames(dyn, 300, lift=4)
    model = _model(pre, post, 8)
    sol = rs.solve_receivers(torch.relu, model, v, du, x, torch.arange(300), 1e-8)
    self_edge = len(pre) - 1
    leak = -(1 - 0.3) / tau[4]
    assert abs(float(sol.W[self_edge])) < 1e-3 * abs(leak)
    assert float(sol.a[4]) == pytest.approx(leak, rel=1e-3)
    assert np.isfinite(sol.W.numpy()).all()


def test_a_silent_sender_gets_weight_zero_not_a_weight_fitted_to_round_off():
    """Neuron 5 never crosses the threshold: its edge values are zero up to a round-off-sized
    remainder of a fitted edge function (1e-9 v).  Its outgoing weights must come out 0, not
    large values fitted to that remainder; the others are still exact."""
    pre, post, w, tau, v_rest = _circuit(10, seed=4)
    dyn = FlyVisDynamics(pre, post, w, tau, v_rest, dt=0.01)
    v, du, x = _frames(dyn, 300, seed=5)
    v[:, 5] = -1.0 - v[:, 5].abs()
    du = dyn.double()(v, x)
    model = _model(pre, post, 10)
    remainder = torch.randn(
        300, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )

    def edge(vk):  # a fitted rectifier: exact above 0, round-off below
        return torch.relu(vk) + 1e-9 * remainder[: len(vk)] * (vk < 0)

    sol = rs.solve_receivers(edge, model, v, du, x, torch.arange(300), 1e-10)
    silent = torch.from_numpy(pre == 5)
    assert silent.any()
    assert float(sol.W[silent].abs().max()) < 1e-6
    tau_hat = -1.0 / sol.a.numpy()
    np.testing.assert_allclose(tau_hat, tau, rtol=1e-3)


def test_edge_fit_finds_the_rectifier_from_the_data():
    pre, post, w, tau, v_rest = _circuit(16, seed=3)
    dyn = FlyVisDynamics(pre, post, w, tau, v_rest, dt=0.01)
    v, du, x = _frames(dyn, 600, seed=2)
    model = _model(pre, post, 16, lin_edge_form="spline", lin_edge_knots=32, edge_range=(4.0, 0.3))
    cfg = DEFAULTS | {"W_solve": "lstsq", "edge_fit_frames": 600, "edge_fit_receivers": 16}
    info = rs.fit_receiver_edge(model, v, du, x, cfg, seed=0)
    assert info["edge_fit_loss"] < 1e-4  # relative residual
    grid = torch.linspace(-3, 3, 200, dtype=torch.float64)
    with torch.no_grad():
        f = model.edge(grid)
    slope_neg = np.polyfit(grid[grid < -0.5].numpy(), f[grid < -0.5].numpy(), 1)[0]
    slope_pos = np.polyfit(grid[grid > 0.5].numpy(), f[grid > 0.5].numpy(), 1)[0]
    assert abs(slope_neg) < 0.02 * abs(slope_pos)  # flat below 0, a line above


def test_bad_settings_are_named():
    pre, post, *_ = _circuit(6)
    with pytest.raises(ConfigError, match="lin_edge_positive"):
        FlyVisGNN(torch.from_numpy(pre), torch.from_numpy(post), 6, lin_edge_form="spline")
    model = _model(pre, post, 6)
    v = torch.randn(50, 6, dtype=torch.float64)
    for bad, field in (({"W_solve": "lasso"}, "W_solve"), ({"W_solve_every": 10}, "W_solve_every")):
        cfg = DEFAULTS | {"W_solve": "lstsq"} | bad
        with pytest.raises(ConfigError, match=field):
            rs.prepare_receivers(model, v, v, None, cfg, 0, None)
    cfg = DEFAULTS | {"W_solve": "lstsq", "edge_fit": "varpro"}
    with pytest.raises(ConfigError, match="edge_fit"):
        rs.fit_receiver_edge(model, v, v, None, cfg, 0)


@pytest.fixture(scope="module")
def small_sim(flyvis_sim_dir):
    return Simulation(flyvis_sim_dir)


def _small_solver_cfg(**over) -> dict:
    """The solver recipe for the FlyVis extent-1 circuit."""
    return validate(
        {
            "lin_edge_form": "spline",
            "lin_edge_positive": False,
            "lin_edge_knots": 64,
            "lin_edge_knot_scale": 0.1,
            "lin_phi_form": "passive",
            "embedding_dim": 4,
            "hidden_dim_update": 32,
            "W_solve": "lstsq",
            "W_solve_frames": 2000,
            "edge_fit": "varpro",
            "edge_fit_frames": 600,
            "edge_fit_receivers": 200,
            "edge_fit_iterations": 15,
            "phi_fit_steps": 1000,
            "lr": 2e-3,
            "batch_size": 4,
            "n_epochs": 1,
            "data_augmentation_loop": 1,
            "seed": 0,
            **over,
        },
        "train",
    )


def test_training_with_the_solver_recovers_the_connectome(small_sim, tmp_path):
    """A FlyVis extent-1 training (443 neurons, 1,800 training frames, intrinsic noise) with the
    solver recipe recovers W, tau, V_rest and the types in seconds (measured: connectivity_R2
    0.979, tau_R2 0.996, V_rest_R2 0.997, cluster_accuracy 0.93)."""
    from connectome_gnn.analysis.run import analyze_run
    from connectome_gnn.train import train_run

    cfg = _small_solver_cfg()
    out = tmp_path / "run"
    train_run(small_sim.path, cfg, out, replicate_seed=0, device="cpu")
    metrics = analyze_run(small_sim.path, out, tmp_path / "analysis", device="cpu")
    assert metrics["connectivity_R2"] > 0.95
    assert metrics["tau_R2"] > 0.95
    assert metrics["V_rest_R2"] > 0.95
    assert metrics["cluster_accuracy"] > 0.85
    assert metrics["data_mse_rel"] < 0.1


class _ReluOfVoltage(torch.nn.Module):
    """The true FlyVis edge function, as a lin_edge of [v, embedding]."""

    def forward(self, inp):
        return torch.relu(inp[..., :1])


def test_an_unknown_input_shared_by_units_is_estimated_by_alternation(monkeypatch):
    """Six neurons read two units (targets listed type by type: neurons 0, 2, 4 read unit 0,
    1, 3, 5 unit 1); the estimate recovers the units' input from du alone."""
    from connectome_gnn.analysis.metrics import field_metrics
    from connectome_gnn.models.siren import InputField, input_settings
    from connectome_gnn.train.field_fit import estimate_receiver_input

    pre, post, w, tau, v_rest = _circuit(12)
    dyn = FlyVisDynamics(pre, post, w, tau, v_rest, dt=0.01)
    g = torch.Generator().manual_seed(3)
    v = torch.randn(600, 12, generator=g, dtype=torch.float64)
    xu = torch.randn(600, 2, generator=g, dtype=torch.float64)
    targets, units = np.arange(6), np.array([0, 1, 0, 1, 0, 1])
    x = torch.zeros_like(v)
    x[:, targets] = xu[:, units]
    du = dyn.double()(v, x)
    model = _model(pre, post, 12)
    model.lin_edge = _ReluOfVoltage()
    model.field = InputField("siren_t", 12, targets, units, 2, 100.0, 30.0, 8, 1)
    cfg = {
        **DEFAULTS,
        **input_settings({"input": "learned", "field_fit_rounds": 300}),
        "W_solve_frames": 600,
        "W_solve_ridge": 1e-12,
    }
    found = estimate_receiver_input(model, v.float(), du.float(), cfg)
    assert found["values"].shape == (600, 2)
    assert field_metrics(xu.numpy(), found["values"].numpy())["field_R2"] > 0.99
    assert found["info"]["field_als_residual"] < 1e-4
    # an estimate that would not fit in memory is refused, naming the knob that shrinks it
    from connectome_gnn.train import field_fit

    monkeypatch.setattr(field_fit, "ESTIMATE_BYTES", 1e4)
    with pytest.raises(ConfigError, match="field 'W_solve_frames'.*W_solve_frames <= "):
        estimate_receiver_input(model, v.float(), du.float(), cfg)


def test_training_with_a_learned_input_recovers_it(small_sim, tmp_path):
    """The same circuit with its photoreceptors' input unknown: estimated per column by
    alternation, a SIREN fitted to it, then the solve and training with the field."""
    from connectome_gnn.analysis.run import analyze_run
    from connectome_gnn.train import train_run

    cfg = _small_solver_cfg(
        input="learned",
        hidden_dim_nnr_f=64,
        omega_f=30.0,
        nnr_f_T_period=100.0,
        field_fit_rounds=60,
        field_fit_steps=800,
        lr_siren=1e-8,
    )
    out = tmp_path / "run"
    info = train_run(small_sim.path, cfg, out, replicate_seed=0, device="cpu")
    assert info["solver"]["field_als_rounds"] >= 1
    metrics = analyze_run(small_sim.path, out, tmp_path / "analysis", device="cpu")
    assert metrics["field_R2"] > 0.8, metrics["field_R2"]
    assert metrics["connectivity_R2"] > 0.9, metrics["connectivity_R2"]
    assert (tmp_path / "analysis" / "plots" / "field_images.png").is_file()
