"""FlyVis family: readouts on an exact model, and the tiny chain simulate -> train -> analyze."""

import numpy as np
import pytest
import torch

from connectome_gnn.config import ConfigError, validate
from connectome_gnn.families import get_family
from connectome_gnn.families.workflow_config import load_workflow_config
from connectome_gnn.simulate import Simulation
from connectome_gnn.stages import run_simulation


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory):
    cfg = validate(
        {"family": "flyvis", "extent": 1, "n_frames": 400, "burn_in": 50}, "flyvis.model"
    )
    path = tmp_path_factory.mktemp("fv") / "sim"
    run_simulation(cfg, 1.0, 0, path)
    return Simulation(path)


class ExactModel(torch.nn.Module):
    """The true FlyVis right-hand side written in the learned model's interface."""

    def __init__(self, sim, scale_edge=1.0):
        super().__init__()
        c, nrn = sim.connectivity, sim.neurons
        self.pre = torch.from_numpy(c["pre"].astype(np.int64))
        self.post = torch.from_numpy(c["post"].astype(np.int64))
        # lin_edge = scale * ReLU, so the raw W must be w / scale: the correction undoes it
        self.W = torch.nn.Parameter(torch.from_numpy(c["weight"]).float() / scale_edge)
        self.scale = scale_edge
        self.tau = torch.tensor(nrn["tau"].to_numpy(), dtype=torch.float32)
        self.v_rest = torch.tensor(nrn["V_rest"].to_numpy(), dtype=torch.float32)
        self.a = torch.nn.Parameter(torch.tensor(nrn[["u", "v"]].to_numpy(), dtype=torch.float32))
        self.n = sim.n_neurons

    def effective_W(self):
        return self.W

    def edge(self, v):
        return self.scale * torch.relu(v)

    def message(self, e):
        out = torch.zeros(e.shape[0], self.n)
        return out.index_add_(1, self.post, e[:, self.pre] * self.W)

    def phi(self, v, msg=None, x=None):
        msg = torch.zeros_like(v) if msg is None else msg
        x = torch.zeros_like(v) if x is None else x
        return (-v + self.v_rest + msg + x) / self.tau


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_readouts_of_an_exact_model_recover_everything(tiny_sim, scale):
    family = get_family("flyvis")
    ro = family.readouts(ExactModel(tiny_sim, scale), tiny_sim)
    for key in ("tau", "tau_msg0"):
        np.testing.assert_allclose(ro[f"{key}_learned"], ro["tau_true"], rtol=1e-4)
    for key in ("V_rest", "V_rest_msg0"):
        np.testing.assert_allclose(ro[f"{key}_learned"], ro["V_rest_true"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ro["w_learned"], ro["w_true"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ro["w_raw"] * scale, ro["w_true"], rtol=1e-5, atol=1e-7)
    # the true curves drawn beside the learned ones: the exact model's lin_phi is the truth, its
    # lin_edge the truth times the scale
    np.testing.assert_allclose(ro["phi_curves"], ro["phi_true"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ro["edge_curves"], ro["edge_true"] * scale, rtol=1e-4, atol=1e-5)
    assert len(ro["edge_labels"]) == len(ro["edge_curves"])
    # the neurons counted by tau_R2_active: voltage std over the training frames >= ACTIVE_STD
    from connectome_gnn.families.flyvis import ACTIVE_STD, activity_stats

    u = tiny_sim.read("u", 0, tiny_sim.n_train_frames).astype(np.float64)
    _, sigma, above = activity_stats(tiny_sim)
    np.testing.assert_allclose(sigma, u.std(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ro["active"], sigma >= ACTIVE_STD)
    assert 0 < ro["active"].sum() < len(ro["active"])
    # tau_R2_identifiable: active, and no self-synapse whose neuron stays above 0 (>= 99 %)
    pre, post = ro["pre"], ro["post"]
    loop = np.isin(np.arange(tiny_sim.n_neurons), post[pre == post])
    np.testing.assert_allclose(above, (u > 0).mean(0))
    confounded = loop & ((u > 0).mean(0) > 0.99)
    assert confounded.any() and (loop & ~confounded).any()  # both cases occur at extent 1
    np.testing.assert_array_equal(ro["identifiable"], ro["active"] & ~confounded)


def test_self_synapse_confounding_by_hand():
    from connectome_gnn.families.flyvis import confounded_by_self_synapse

    pre = np.array([0, 1, 2, 2, 3])
    post = np.array([0, 2, 2, 1, 3])
    # 0: self-synapse, always above 0; 1: none; 2: self-synapse, below 0 half the time;
    # 3: self-synapse, below 0 on 0.5 % of the frames (< 1 %: still confounded)
    above = np.array([1.0, 1.0, 0.5, 0.995])
    np.testing.assert_array_equal(
        confounded_by_self_synapse(pre, post, above), [True, False, False, True]
    )
    np.testing.assert_array_equal(
        confounded_by_self_synapse(pre, post, above, crossing=0.001), [True, False, False, False]
    )


class FarFromDataModel(ExactModel):
    """Exact wherever the message is within the data's range, wrong (a changed slope in v and
    offset) where it is near 0 but the data's is not: the reference's msg = 0 readout is fooled,
    the operating-point readout is not."""

    def __init__(self, sim):
        super().__init__(sim)
        with torch.no_grad():
            v = torch.from_numpy(sim.read("u", 0, sim.n_train_frames))
            self.m_lo = self.message(self.edge(v)).min(0).values

    def phi(self, v, msg=None, x=None):
        msg = torch.zeros_like(v) if msg is None else msg
        below = torch.relu(self.m_lo - msg)  # > 0 only below the smallest message in the data
        return super().phi(v, msg, x) + below * (0.5 * v + 1.0)


def test_operating_point_readout_is_not_fooled_by_extrapolation(tiny_sim):
    model = FarFromDataModel(tiny_sim)
    assert float((model.m_lo > 0.5).float().mean()) > 0.05  # neurons whose msg never nears 0
    ro = get_family("flyvis").readouts(model, tiny_sim)
    np.testing.assert_allclose(ro["tau_learned"], ro["tau_true"], rtol=1e-4)
    np.testing.assert_allclose(ro["V_rest_learned"], ro["V_rest_true"], rtol=1e-4, atol=1e-4)
    far = (model.m_lo > 0.5).numpy()
    assert not np.allclose(ro["tau_msg0_learned"][far], ro["tau_true"][far], rtol=1e-2)


def test_true_dynamics_reproduce_the_stored_derivative(tiny_sim):
    f = get_family("flyvis").true_dynamics(tiny_sim)
    u = torch.from_numpy(tiny_sim.read("u", 0, 20))
    x = torch.from_numpy(tiny_sim.read_input(0, 20))
    du = torch.from_numpy(tiny_sim.read("du", 0, 20))
    torch.testing.assert_close(f(u, x), du, rtol=1e-4, atol=1e-5)


def test_learned_model_is_sparse_on_the_connectome(tiny_sim):
    train = validate({"W_init_std": 0.0, "lin_edge_positive": True}, "train")
    model = get_family("flyvis").build_model(tiny_sim, train)
    assert model.W.shape == (len(tiny_sim.connectivity["pre"]),) == (8174,)
    assert float(model.W.detach().abs().sum()) == 0.0
    assert model.a.shape == (443, 2)


def test_flyvis_grid_rejects_filling_factors_below_one():
    cfg = {
        "models": {"fv": {"family": "flyvis", "extent": 1}},
        "grid": {"model": ["fv"], "sparsity": [1.0, 0.5], "cfg": ["default"], "seed": [0]},
    }
    with pytest.raises(ConfigError, match=r"field 'grid.sparsity': model 'fv' \(family flyvis\)"):
        load_workflow_config(cfg, source="cfg.yaml")
