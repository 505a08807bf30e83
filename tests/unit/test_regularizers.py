import math

import pytest
import torch

from connectome_gnn.config import validate
from connectome_gnn.models import SignalGNN
from connectome_gnn.train.regularizers import regularization


@pytest.fixture
def linear_model():
    """lin_edge(u) = slope*u + 0.5 and lin_phi([u, a]) = u + 2 a_0 - a_1 + 0.25 (single layers)."""
    m = SignalGNN(3, embedding_dim=2, n_layers=1, n_layers_update=1, W_init_std=0.0)
    with torch.no_grad():
        m.W.copy_(torch.tensor([[0.0, 1.0, -2.0], [0.5, 0.0, 0.0], [0.0, -3.0, 0.0]]))
        m.lin_edge.layers[0].weight.fill_(2.0)
        m.lin_edge.layers[0].bias.fill_(0.5)
        m.lin_phi.layers[0].weight.copy_(torch.tensor([[1.0, 2.0, -1.0]]))
        m.lin_phi.layers[0].bias.fill_(0.25)
        m.a.copy_(torch.tensor([[1.0, 1.0], [0.0, 2.0], [1.0, 0.0]]))
    return m


def _cfg(**coeffs):
    return validate(coeffs, "train")


def test_no_terms_by_default(linear_model):
    assert regularization(linear_model, torch.zeros(2, 3), _cfg(), 1.0) == {}


def test_W_norms(linear_model):
    t = regularization(linear_model, torch.zeros(1, 3), _cfg(coeff_W_L1=0.1, coeff_W_L2=2.0), 1.0)
    assert t["W_L1"].item() == pytest.approx(0.1 * 6.5)  # |1|+|-2|+|0.5|+|-3|
    assert t["W_L2"].item() == pytest.approx(2.0 * math.sqrt(1 + 4 + 0.25 + 9))


def test_edge_diff_zero_for_increasing_and_hinge_for_decreasing(linear_model):
    u = torch.tensor([[0.0, 1.0, -1.0], [2.0, 3.0, 4.0]])
    cfg = _cfg(coeff_edge_diff=10.0)
    assert regularization(linear_model, u, cfg, 1.5)["edge_diff"].item() == 0.0
    with torch.no_grad():
        linear_model.lin_edge.layers[0].weight.fill_(-2.0)
    # each of the 6 entries drops by 2 * xnorm / 150 = 0.02 -> L2 norm 0.02 * sqrt(6)
    value = regularization(linear_model, u, cfg, 1.5)["edge_diff"].item()
    assert value == pytest.approx(10.0 * 0.02 * math.sqrt(6), rel=1e-5)


def test_edge_diff_on_fewer_frames_is_rescaled_to_the_batch(linear_model):
    u = torch.tensor([[0.0, 1.0, -1.0], [2.0, 3.0, 4.0], [5.0, 6.0, 7.0], [1.0, 1.0, 1.0]])
    with torch.no_grad():
        linear_model.lin_edge.layers[0].weight.fill_(-2.0)
    seen = []
    real_edge = linear_model.edge
    linear_model.edge = lambda x: (seen.append(x.shape[0]), real_edge(x))[1]
    cfg = _cfg(coeff_edge_diff=10.0, edge_reg_frames=1)
    value = regularization(linear_model, u, cfg, 1.5)["edge_diff"].item()
    # one frame of 3 entries, each dropping by 0.02, rescaled by sqrt(4 / 1): same as all 12
    assert seen == [1, 1]
    assert value == pytest.approx(10.0 * 0.02 * math.sqrt(3) * 2.0, rel=1e-5)
    full = regularization(linear_model, u, _cfg(coeff_edge_diff=10.0), 1.5)["edge_diff"].item()
    assert full == pytest.approx(value, rel=1e-5) and seen[2:] == [4, 4]


def test_edge_norm_pins_lin_edge_at_two_xnorm(linear_model):
    # lin_edge(2 * 1.5) = 2 * 3 + 0.5 = 6.5 -> |6.5 - 1| = 5.5
    t = regularization(linear_model, torch.zeros(1, 3), _cfg(coeff_edge_norm=0.5), 1.5)
    assert t["edge_norm"].item() == pytest.approx(0.5 * 5.5)


def test_lin_phi_zero(linear_model):
    # lin_phi(0, a_i) = 2 a0 - a1 + 0.25 -> [1.25, -1.75, 2.25]
    t = regularization(linear_model, torch.zeros(1, 3), _cfg(coeff_lin_phi_zero=1.0), 1.0)
    assert t["lin_phi_zero"].item() == pytest.approx(math.sqrt(1.25**2 + 1.75**2 + 2.25**2))


def test_mlp_weight_norms(linear_model):
    t = regularization(
        linear_model,
        torch.zeros(1, 3),
        _cfg(
            coeff_edge_weight_L1=1.0,
            coeff_edge_weight_L2=1.0,
            coeff_phi_weight_L1=1.0,
            coeff_phi_weight_L2=1.0,
        ),
        1.0,
    )
    assert t["edge_weight_L1"].item() == pytest.approx(2.0)  # weights only, not biases
    assert t["edge_weight_L2"].item() == pytest.approx(2.0)
    assert t["phi_weight_L1"].item() == pytest.approx(4.0)
    assert t["phi_weight_L2"].item() == pytest.approx(math.sqrt(6.0))
