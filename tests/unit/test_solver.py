"""The W solver of the signal family (train/solver.py): exact solves, L1 zeros, the edge fit,
a tiny sparse training, resume between solves and bad settings."""

import numpy as np
import pytest
import torch

from connectome_gnn.analysis import analyze_run
from connectome_gnn.analysis.metrics import linear_fit_r2
from connectome_gnn.config import ConfigError, validate
from connectome_gnn.models.signal import SignalGNN
from connectome_gnn.models.spline import SplineEdge
from connectome_gnn.simulate.data import Simulation
from connectome_gnn.stages import run_simulation
from connectome_gnn.train import solver, train_run


@pytest.fixture(scope="module")
def sparse_sim(tmp_path_factory):
    """N = 50 neurons at 10 % filling (246 edges), 4,000 frames."""
    cfg = validate(
        {"family": "signal", "n_neurons": 50, "n_frames": 4000, "burn_in": 500}, "signal.model"
    )
    path = tmp_path_factory.mktemp("sparse") / "sim"
    run_simulation(cfg, 0.1, 0, path)
    return Simulation(path)


def _frames(sim):
    u = torch.from_numpy(sim.read("u", 0, sim.n_train_frames))
    du = torch.from_numpy(sim.read("du", 0, sim.n_train_frames))
    return u, du


def _true_w(sim):
    return sim.dense_W().astype(np.float64) * sim.neurons["g"].to_numpy()[:, None]


class _Tanh(torch.nn.Module):
    def forward(self, x):
        return torch.tanh(x)


def _exact_edge_model(sim):
    model = SignalGNN(sim.n_neurons, W_init_std=0.0)
    model.lin_edge = _Tanh()
    return model


def _settings(**over):
    return {**validate({}, "train"), **over, **solver.settings({"W_solve": "lstsq", **over})}


def test_solve_recovers_W_exactly_with_the_true_edge_function(sparse_sim):
    u, du = _frames(sparse_sim)
    model = _exact_edge_model(sparse_sim)
    # joint with a per-neuron basis of u_i: lin_phi is not needed at all
    info = solver.solve_W(model, u, du, _settings(W_solve_phi_basis=6, phi_fit_steps=0))
    W = model.effective_W().detach().double().numpy()
    _, _, r2 = linear_fit_r2(_true_w(sparse_sim).ravel(), W.ravel())
    assert r2 > 0.9999, r2
    assert info["W_solve_mse"] < 1e-8 * float(du.var())
    assert np.all(np.diag(W) == 0)  # the self term went to lin_phi
    # given the true update instead (no basis): the same W
    nrn = sparse_sim.neurons
    g, s, c = (torch.tensor(nrn[k].to_numpy(), dtype=torch.float32) for k in "gsc")

    class TruePhi(torch.nn.Module):
        def forward(self, x):  # x = [u, a]
            v = x[..., :1]
            return -c[:, None] * v + s[:, None] * torch.tanh(v)

    model.lin_phi = TruePhi()
    solver.solve_W(model, u, du, _settings(W_solve_phi_basis=0))
    W0 = model.effective_W().detach().double().numpy()
    _, _, r2 = linear_fit_r2(_true_w(sparse_sim).ravel(), W0.ravel())
    assert r2 > 0.9999, r2


def test_joint_solve_by_hand():
    """Two senders, one receiver, a 4-function basis: y = 2 e_0 - e_1 + (1 + u_r) exactly."""
    gen = torch.Generator().manual_seed(0)
    e = torch.randn(400, 2, generator=gen, dtype=torch.float64)
    u_r = torch.linspace(-1, 1, 400, dtype=torch.float64)[:, None]
    y = 2 * e[:, :1] - e[:, 1:] + 1 + u_r
    cb = solver.column_basis(u_r, torch.tensor([-1.1]).double(), torch.tensor([1.1]).double(), 4)
    W, beta, mse = solver.joint_solve(solver.chunk_stats(e, y, cb))
    torch.testing.assert_close(W, torch.tensor([[2.0, -1.0]], dtype=torch.float64))
    fitted = torch.einsum("tik,ik->ti", cb, beta)
    torch.testing.assert_close(fitted, 1 + u_r)
    assert float(mse) < 1e-9  # (from the statistics: rounding of y^T y - x^T b)


def test_lasso_sets_exact_zeros_where_W_is_zero():
    """A hand-made sparse W (12 % of 30 x 30, |w| in [0.5, 1.5]) behind independent senders and
    a per-receiver basis term: the L1 solve keeps every edge and zeroes every other entry."""
    gen = torch.Generator().manual_seed(3)
    n, t = 30, 3000
    e = torch.randn(t, n, generator=gen, dtype=torch.float64)
    mask = torch.rand(n, n, generator=gen) < 0.12
    signs = torch.where(torch.rand(n, n, generator=gen) < 0.5, -1.0, 1.0)
    W_true = (mask * signs * (0.5 + torch.rand(n, n, generator=gen))).double()
    u = torch.randn(t, n, generator=gen, dtype=torch.float64)
    lo, hi = u.min(0).values - 0.1, u.max(0).values + 0.1
    cb = solver.column_basis(u, lo, hi, 4)
    y = e @ W_true.T + 0.3 * u  # the basis term: a line in u_i
    stats = solver.chunk_stats(e, y, cb)
    W_ls, _, _ = solver.joint_solve(stats)
    assert not (W_ls == 0).any()  # least squares: no exact zeros
    W, _, mse = solver.lasso_solve(stats, l1=1e-3, steps=2000, W0=W_ls)
    assert torch.equal(W != 0, mask)  # exactly the true support
    assert float((W - W_true)[mask].abs().max()) < 0.1  # shrunk a little, not much
    # no penalty: the least-squares solution again
    W0, _, _ = solver.lasso_solve(stats, l1=0.0, steps=2000, W0=W_ls)
    torch.testing.assert_close(W0, W_ls, atol=1e-8, rtol=0)


def test_spline_edge_represents_tanh_and_its_design_matrix():
    edge = SplineEdge(96, u_max=13.0, scale=2.4).double()
    u = torch.randn(20_000, dtype=torch.float64) * 2.4
    D = edge.design(u)
    torch.testing.assert_close(D.sum(-1), torch.ones_like(u))  # partition of unity
    theta = torch.linalg.pinv(D) @ torch.tanh(u)
    with torch.no_grad():
        edge.weight.copy_(theta)
    err = edge(u[:, None])[:, 0] - torch.tanh(u)
    assert float(err.pow(2).mean().sqrt()) < 1e-4
    torch.testing.assert_close(edge(u[:, None])[:, 0], D @ theta)
    fresh = SplineEdge(32, 10.0, 2.0)  # starts as the identity scaled to [-1, 1]
    grid = torch.linspace(-10, 10, 50)
    torch.testing.assert_close(fresh(grid[:, None])[:, 0], grid / 10, atol=1e-2, rtol=0)


def test_edge_fit_finds_the_edge_function(sparse_sim):
    from connectome_gnn.families.signal import edge_range

    u, du = _frames(sparse_sim)
    model = SignalGNN(
        sparse_sim.n_neurons,
        lin_edge_form="spline",
        lin_edge_knots=48,
        edge_range=edge_range(sparse_sim.meta),
    )
    cfg = _settings(edge_fit="varpro", edge_fit_frames=1500, edge_fit_receivers=50)
    info = solver.fit_edge(model, u, du, cfg, seed=0)
    assert info["edge_fit_loss"] < 1e-6 < info["edge_fit_loss_start"]
    grid = torch.linspace(-4, 4, 81)
    with torch.no_grad():
        psi = model.edge(grid).double().numpy()
    slope, _, r2 = linear_fit_r2(np.tanh(grid.double().numpy()), psi)
    assert r2 > 0.9999 and float(model.edge(torch.zeros(1))) == pytest.approx(0, abs=1e-6)


def _solver_cfg(**over):
    return validate(
        {
            "lin_edge_form": "spline",
            "lin_edge_knots": 48,
            "W_solve": "lstsq",
            "edge_fit": "varpro",
            "edge_fit_frames": 1500,
            "edge_fit_receivers": 50,
            "W_solve_frames": 3600,
            "phi_fit_steps": 600,
            "lr": 3e-3,
            "W_init_std": 0.0,
            "batch_size": 8,
            "data_augmentation_loop": 1,
            **over,
        },
        "train",
    )


def test_tiny_sparse_run_recovers_W(tmp_path, sparse_sim):
    info = train_run(sparse_sim.path, _solver_cfg(max_iterations=20), tmp_path / "t", 0)
    assert info["status"] == "ok" and info["solver"]["W_solves"] == 1
    assert "levenberg-marquardt" in info["solver"]["edge_fit_method"]
    metrics = analyze_run(sparse_sim.path, tmp_path / "t", tmp_path / "run", device="cpu")
    assert metrics["connectivity_R2"] >= 0.99, metrics["connectivity_R2"]
    # exact derivatives: the true model's data loss is rounding, the learned one's small
    assert metrics["data_mse_true"] < 1e-8 and metrics["data_mse_rel"] < 0.05


def test_resume_between_solves_matches_uninterrupted(tmp_path, sparse_sim, preempted):
    cfg = _solver_cfg(max_iterations=30, n_epochs=2, W_solve_every=20, phi_fit_steps=100)
    full = train_run(sparse_sim.path, cfg, tmp_path / "full", 0, progress=False)
    assert full["solver"]["W_solves"] == 1 + 2 + 1  # first, iterations 20 and 40, final

    # stopped between two solves: after the solver's start (1) and epoch 0 (2), iteration 30
    preempted(2, sparse_sim.path, cfg, tmp_path / "resumed", 0, progress=False)
    info = train_run(sparse_sim.path, cfg, tmp_path / "resumed", 0, progress=False)
    assert info["resumed_from_iteration"] == 30 and info["solver"]["W_solves"] == 4
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, rtol=0)


def test_bad_solver_settings(tmp_path, sparse_sim):
    u, du = _frames(sparse_sim)
    with pytest.raises(ConfigError, match="W_solve_ridge"):
        validate({"W_solve_ridge": -1.0}, "train")
    with pytest.raises(ConfigError, match="field 'W_solve_phi_basis'"):
        solver.settings({"W_solve": "lstsq", "W_solve_phi_basis": 2})
    with pytest.raises(ConfigError, match="field 'edge_fit'"):
        solver.settings({"edge_fit": "varpro"})
    # more frames than exist: all of them (documented fallback)
    assert len(solver.solver_frames(100, 10**6)) == 100
    # a singular Gram matrix without a penalty: a clear error, no NaN weights
    model = SignalGNN(sparse_sim.n_neurons, W_init_std=0.0)
    model.lin_edge = torch.nn.Identity()
    dup = u.clone()
    dup[:, 1] = dup[:, 0]  # two identical senders
    before = model.W.detach().clone()
    with pytest.raises(ConfigError, match="W_solve_ridge.*singular"):
        solver.solve_W(model, dup, du, _settings(W_solve_ridge=0.0, W_solve_phi_basis=0))
    assert torch.equal(model.W.detach(), before)
    # with a penalty the same data solve to finite weights
    solver.solve_W(model, dup, du, _settings(W_solve_ridge=1e-8, W_solve_phi_basis=0))
    assert torch.isfinite(model.W).all()
    # the spline edge function is for the signal family only
    from connectome_gnn.models.flyvis import FlyVisGNN

    with pytest.raises(ConfigError, match="lin_edge_form"):
        FlyVisGNN(torch.tensor([0]), torch.tensor([1]), 2, lin_edge_form="spline")


class _LinearEdge(torch.nn.Module):
    """A stand-in model for the curve helpers: lin_edge(u) = u, no learned W."""

    W = torch.zeros(1)

    def edge(self, x):
        return x


def test_curve_neighbours_on_hand_made_curves():
    # four neurons with curves W_ii * u (the basis correction is zero): slopes 1, 1.1, 5, 5.2;
    # a fifth whose range is disjoint from the others' is nobody's neighbour
    slopes = torch.tensor([1.0, 1.1, 5.0, 5.2, 1.0], dtype=torch.float64)
    ranges = torch.tensor([[-1.0] * 4 + [10.0], [1.0] * 4 + [12.0]], dtype=torch.float64)
    beta = torch.zeros(5, 6, dtype=torch.float64)
    lo, hi = ranges[0], ranges[1]
    nb = solver.curve_neighbours(_LinearEdge(), ranges, slopes, beta, lo, hi, k=1)
    assert nb[:4, 0].tolist() == [1, 0, 3, 2]
    nb2 = solver.curve_neighbours(_LinearEdge(), ranges, slopes, beta, lo, hi, k=2)
    assert nb2[0].tolist() == [1, 2] and nb2[3].tolist() == [2, 1]
    assert 4 not in nb2[:4].flatten().tolist()
    # the curve values themselves: W_ii * u exactly
    pts = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None].expand(5, 5)
    vals = solver.curve_values(_LinearEdge(), pts, slopes, beta, lo, hi)
    torch.testing.assert_close(vals, pts * slopes)


def test_lin_edge_knot_scale_sets_the_spline_scale(sparse_sim):
    from connectome_gnn.families import get_family
    from connectome_gnn.families.signal import edge_range

    meta = {"activity_max_abs": 5.0, "activity_std": 2.0}
    assert edge_range(meta) == (6.0, 2.0)
    assert edge_range(meta, 0.25) == (6.0, 0.5)
    cfg = validate({"lin_edge_form": "spline", "lin_edge_knots": 16}, "train")
    fam = get_family("signal")
    wide = fam.build_model(sparse_sim, cfg)
    narrow = fam.build_model(sparse_sim, {**cfg, "lin_edge_knot_scale": 0.15})
    std = float(sparse_sim.meta["activity_std"])
    assert float(wide.lin_edge.scale) == pytest.approx(std, rel=1e-6)
    assert float(narrow.lin_edge.scale) == pytest.approx(0.15 * std, rel=1e-6)
    with pytest.raises(ConfigError, match="lin_edge_knot_scale"):
        validate({"lin_edge_knot_scale": 0.0}, "train")


def test_signal_readouts_carry_the_simulators_functions(sparse_sim):
    from connectome_gnn.families import get_family
    from connectome_gnn.simulate.signal import PDEN2

    model = _exact_edge_model(sparse_sim)
    ro = get_family("signal").readouts(model, sparse_sim, u_range=(-3.0, 3.0))
    np.testing.assert_allclose(ro["edge_curves"], ro["edge_true"], atol=1e-6)
    # lin_phi's truth is the simulator's update without the messages (W = 0)
    nrn = sparse_sim.neurons
    no_msg = PDEN2(np.zeros((sparse_sim.n_neurons,) * 2), nrn["g"], nrn["s"], nrn["c"])
    grid = torch.from_numpy(ro["grid"]).float()[:, None].expand(-1, sparse_sim.n_neurons)
    np.testing.assert_allclose(ro["phi_true"], no_msg(grid).numpy().T, rtol=1e-5, atol=1e-5)
    assert ro["phi_true"].shape == ro["phi_curves"].shape
