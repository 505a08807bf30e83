"""Unknown inputs (issue 17): the signal simulator's external input, the SIREN and its
initialisation, field_R2, the line-spectrum pursuit, a tiny learned-input run, resume and bad
knobs."""

import math

import numpy as np
import pytest
import torch

from connectome_gnn.analysis import analyze_run
from connectome_gnn.analysis.metrics import field_metrics
from connectome_gnn.config import ConfigError, validate
from connectome_gnn.models.siren import InputField, Siren, build_field, input_settings
from connectome_gnn.simulate.data import Simulation
from connectome_gnn.stages import run_simulation
from connectome_gnn.train import field_fit, train_run

N, N_INPUT = 100, 20


def _model_cfg(kind: str, **over) -> dict:
    spec = {"kind": kind, "n_input_neurons": N_INPUT, **over}
    return validate(
        {"family": "signal", "n_neurons": N, "n_frames": 5000, "external_input": spec},
        "signal.model",
    )


@pytest.fixture(scope="module")
def input_sim(tmp_path_factory):
    """N = 50, dense, an oscillatory input (f = 0.5, dt 0.01: 18 cycles over the 3,600
    training frames) on 10 neurons."""
    path = tmp_path_factory.mktemp("input") / "sim"
    run_simulation(_model_cfg("oscillatory"), 1.0, 0, path)
    return Simulation(path)


def _learned_cfg(**over) -> dict:
    cfg = {
        "lin_edge_form": "spline",
        "lin_edge_knots": 24,
        "lin_edge_knot_scale": 0.15,
        "edge_fit_coarse_knots": 24,
        "edge_fit_frames": 2000,
        "edge_fit_receivers": 40,
        "W_solve": "lstsq",
        "W_solve_frames": 5000,
        "edge_fit": "varpro",
        "phi_fit_steps": 300,
        "lr": 2.0e-3,
        "lr_emb": 1.0e-3,
        "n_epochs": 1,
        "max_iterations": 40,
        "input": "learned",
        "omega_f": 80.0,
        "nnr_f_T_period": 1000.0,
        "hidden_dim_nnr_f": 64,
        "lr_siren": 1.0e-7,
        "field_fit_steps": 600,
        **over,
    }
    return validate(cfg, "train")


# ------------------------------------------------------------------ the simulator's input
def test_oscillatory_input_drives_the_simulation(input_sim):
    meta = input_sim.meta
    neurons = np.asarray(meta["input"]["neurons"])
    assert meta["input"]["kind"] == "oscillatory" and neurons.size == N_INPUT
    x = input_sim.read("x", 0, input_sim.n_frames)
    others = np.setdiff1d(np.arange(N), neurons)
    assert np.all(x[:, others] == 0)
    # A_i cos(2 pi f t + phi_i): one frequency, amplitudes in [0.5, 1] x 2
    t = np.arange(input_sim.n_frames) * input_sim.dt
    for i in neurons[:3]:
        design = np.stack([np.cos(math.pi * t), np.sin(math.pi * t)], 1)
        coef, res, *_ = np.linalg.lstsq(design, x[:, i], rcond=None)
        assert 1.0 - 1e-6 <= np.hypot(*coef) <= 2.0 + 1e-6
        assert np.allclose(design @ coef, x[:, i], atol=1e-5)
    # du is the true dynamics plus the input
    from connectome_gnn.families import get_family

    f = get_family("signal").true_dynamics(input_sim)  # PDEN2 with the simulation's parameters
    u = torch.from_numpy(input_sim.read("u", 100, 110))
    du = input_sim.read("du", 100, 110)
    with torch.no_grad():
        pred = f(u, torch.from_numpy(x[100:110])).numpy()
    np.testing.assert_allclose(pred, du, rtol=1e-4, atol=1e-4)


def test_moving_pattern_places_neurons_on_a_grid(tmp_path):
    path = tmp_path / "sim"
    cfg = _model_cfg("moving_pattern")
    cfg["n_frames"] = 300
    run_simulation(cfg, 1.0, 0, path)
    sim = Simulation(path)
    pos = sim.neurons[["x", "y"]].to_numpy()
    assert pos.shape == (N, 2) and pos.min() > 0 and pos.max() < 1
    assert len(np.unique(pos.round(6), axis=0)) == N  # distinct grid places
    x = sim.read("x", 0, 300)[:, sim.meta["input"]["neurons"]]
    assert np.isfinite(x).all() and x.std(0).min() > 0  # every input neuron sees it move


def test_a_model_without_input_simulates_as_before(tmp_path):
    cfg = validate({"family": "signal", "n_neurons": 20, "n_frames": 50}, "signal.model")
    run_simulation(cfg, 1.0, 0, tmp_path / "a")
    cfg_none = {**cfg, "external_input": {"kind": "none"}}
    run_simulation(validate(cfg_none, "signal.model"), 1.0, 0, tmp_path / "b")
    a, b = Simulation(tmp_path / "a"), Simulation(tmp_path / "b")
    assert not a.has_input and "input" not in a.meta
    np.testing.assert_array_equal(a.read("u", 0, 50), b.read("u", 0, 50))


# ------------------------------------------------------------------ the SIREN
def test_siren_initialisation_follows_its_formula():
    omega, hidden = 30.0, 256
    net = Siren(3, 2, hidden, 3, omega, torch.Generator().manual_seed(0))
    first, *rest = net.layers
    assert first.weight.abs().max() <= 1.0 / 3 and first.weight.abs().max() > 0.99 / 3
    # uniform in +-b has standard deviation b / sqrt(3)
    assert first.weight.std().item() == pytest.approx((1.0 / 3) / math.sqrt(3), rel=0.25)
    for layer in rest:
        bound = math.sqrt(6.0 / layer.in_features) / omega
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.98 * bound
        assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def _fit(net_fn, inputs, target, steps, lr=1e-4):
    net = net_fn()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        loss = ((net(inputs) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = net(inputs)
    return 1.0 - float(((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def test_siren_fits_a_1d_signal():
    torch.manual_seed(0)
    t = torch.linspace(0, 1, 1000).unsqueeze(-1)
    y = torch.sin(2 * math.pi * 7 * t) + 0.5 * torch.cos(2 * math.pi * 19 * t + 1.0)
    r2 = _fit(lambda: Siren(1, 1, 64, 3, 30.0, torch.Generator().manual_seed(1)), t, y, 800)
    assert r2 >= 0.99, r2


def test_siren_fits_a_2d_signal():
    g = torch.linspace(-1, 1, 40)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    inp = torch.stack([xx.ravel(), yy.ravel()], -1)
    target = (torch.sin(3 * math.pi * inp[:, :1]) * torch.cos(2 * math.pi * inp[:, 1:])).float()
    r2 = _fit(lambda: Siren(2, 1, 64, 3, 30.0, torch.Generator().manual_seed(1)), inp, target, 800)
    assert r2 >= 0.99, r2


def test_input_field_forms():
    gen = torch.Generator().manual_seed(0)
    targets, units = np.array([1, 4, 5]), np.array([0, 1, 1])  # neurons 4 and 5 share unit 1
    f = InputField("siren_t", 7, targets, units, 2, 100.0, 30.0, 16, 2, None, gen)
    x = f(torch.arange(5))
    assert x.shape == (5, 7)
    assert torch.all(x[:, [0, 2, 3, 6]] == 0) and torch.equal(x[:, 4], x[:, 5])
    pos = np.array([[0.0, 0.5], [-0.5, 0.0]], dtype=np.float32)
    fx = InputField("siren_x", 7, targets, units, 2, 100.0, 30.0, 16, 2, pos, gen)
    assert fx.unit_values(torch.arange(5)).shape == (5, 2)
    assert fx.net.layers[0].in_features == 3 and fx.net.layers[-1].out_features == 1


def test_bad_field_knobs_name_the_field(input_sim):
    for key, value in (("omega_f", 0.0), ("omega_f", -1.0), ("nnr_f_T_period", 0.0)):
        with pytest.raises(ConfigError, match=f"field '{key}'"):
            validate({key: value}, "train")
        with pytest.raises(ConfigError, match=f"field '{key}'"):
            input_settings({"input": "learned", key: value})
    with pytest.raises(ConfigError, match="field 'input'"):
        validate({"input": "guessed"}, "train")
    # siren_x needs positions: the oscillatory input has none
    from connectome_gnn.families import get_family

    fam = get_family("signal")
    with pytest.raises(ConfigError, match="field 'input_form'.*positions"):
        fam.build_model(input_sim, _learned_cfg(input_form="siren_x"))
    # a learned input on a simulation without one
    units = (np.array([0]), np.array([0]), 1, None)
    assert build_field(_learned_cfg(input="known"), N, units) is None


def test_learned_input_without_an_input_in_the_simulation(tmp_path, sim_dir):
    with pytest.raises(ConfigError, match="field 'input'.*no external input"):
        train_run(sim_dir, _learned_cfg(), tmp_path / "t", 0, progress=False)


# ------------------------------------------------------------------ field_R2
def test_field_metrics_by_hand():
    truth = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 2.0]])
    # any per-unit offset and one global scale: perfect
    m = field_metrics(truth, 0.5 * truth + np.array([3.0, -7.0]))
    assert m["field_R2"] == pytest.approx(1.0) and m["field_pearson"] == pytest.approx(1.0)
    flipped = field_metrics(truth, -truth)
    assert flipped["field_R2"] == pytest.approx(1.0) and flipped["field_pearson"] == -1.0
    # a different scale per unit is not allowed: centred truth (-1,0,1 | -1,1,0), learned
    # (-1,0,1 | -2,2,0): alpha = 6/10, SS_res = 0.32 + 0.08 = 0.4 of SS_tot 4: R2 = 0.9
    learned = np.array([[0.0, 0.0], [1.0, 4.0], [2.0, 2.0]])
    t = truth - truth.mean(0)
    y = learned - learned.mean(0)
    alpha = (t * y).sum() / (y * y).sum()
    assert alpha == pytest.approx(6.0 / 10.0)
    expected = 1.0 - ((t - alpha * y) ** 2).sum() / (t * t).sum()
    assert expected == pytest.approx(1.0 - 0.4 / 4.0)
    assert field_metrics(truth, learned)["field_R2"] == pytest.approx(expected)
    assert math.isnan(field_metrics(truth, np.ones_like(truth))["field_R2"])
    with pytest.raises(ValueError):
        field_metrics(truth, truth[:, :1])


# ------------------------------------------------------------------ the pursuit and a run
def test_pursuit_finds_the_frequency_with_the_true_edge(input_sim):
    from connectome_gnn.models.signal import SignalGNN

    u = torch.from_numpy(input_sim.read("u", 0, input_sim.n_train_frames))
    du = torch.from_numpy(input_sim.read("du", 0, input_sim.n_train_frames))
    model = SignalGNN(N, W_init_std=0.0)
    model.lin_edge = torch.nn.Tanh()
    neurons = np.asarray(input_sim.meta["input"]["neurons"])
    units = (neurons, np.arange(neurons.size), neurons.size, None)
    model.field = build_field(_learned_cfg(), N, units)
    from connectome_gnn.train import solver

    cfg = _learned_cfg()
    settings = {**cfg, **solver.settings(cfg), **input_settings(cfg)}
    found = field_fit.pursue_lines(model, u, du, settings)
    # f = 0.5 cycles per unit of time, dt = 0.01: 0.005 cycles per frame
    assert len(found["frequencies"]) == 1
    assert found["frequencies"][0] == pytest.approx(0.005, abs=1e-7)
    assert found["info"]["field_pursuit_residual"] < 1e-6
    x = input_sim.read_frames("x", found["frames"].numpy())[:, neurons]
    assert field_metrics(x, found["values"].numpy())["field_R2"] > 0.9999


def test_tiny_learned_input_run_recovers_input_and_W(tmp_path, input_sim):
    train_run(input_sim.path, _learned_cfg(), tmp_path / "train", 0, progress=False)
    metrics = analyze_run(input_sim.path, tmp_path / "train", tmp_path / "analysis")
    assert metrics["field_R2"] >= 0.95, metrics["field_R2"]
    assert metrics["field_pearson"] > 0.97
    assert metrics["connectivity_R2"] >= 0.95, metrics["connectivity_R2"]
    assert (tmp_path / "analysis" / "plots" / "field_traces.png").is_file()


def test_resume_with_a_learned_field_matches_uninterrupted(tmp_path, input_sim, preempted):
    cfg = _learned_cfg(max_iterations=20, n_epochs=2, lr_siren=1e-4, field_fit_steps=100)
    train_run(input_sim.path, cfg, tmp_path / "full", 0, progress=False)
    # stopped after the solver's start and epoch 0
    preempted(2, input_sim.path, cfg, tmp_path / "resumed", 0, progress=False)
    info = train_run(input_sim.path, cfg, tmp_path / "resumed", 0, progress=False)
    assert info["resumed_from_iteration"] == 20
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert any(k.startswith("field.") for k in a)
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, rtol=0)
