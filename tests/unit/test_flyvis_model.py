import numpy as np
import pytest
import torch

from connectome_gnn.models.flyvis import FlyVisGNN
from connectome_gnn.train.regularizers import regularization


def _model(positive=True):
    # 4 neurons; edges j -> i: 0->1, 2->1, 1->3, 3->3 (autapse), 1->0
    pre = torch.tensor([0, 2, 1, 3, 1])
    post = torch.tensor([1, 1, 3, 3, 0])
    gen = torch.Generator().manual_seed(0)
    model = FlyVisGNN(
        pre,
        post,
        4,
        hidden_dim=8,
        n_layers=2,
        lin_edge_positive=positive,
        W_init_std=1.0,
        embedding_init="randn",
        generator=gen,
    )
    return model, pre, post


def test_messages_equal_explicit_per_edge_sum():
    model, pre, post = _model()
    v = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    msg = model.message(model.edge(v))
    expected = torch.zeros(3, 4)
    for b in range(3):
        for e in range(len(pre)):
            j, i = int(pre[e]), int(post[e])
            inp = torch.cat([v[b, j].view(1), model.a[j]]).view(1, -1)
            g = model.lin_edge(inp).squeeze() ** 2  # lin_edge_positive squares
            expected[b, i] += model.W[e] * g
    torch.testing.assert_close(msg, expected, rtol=1e-5, atol=1e-6)
    assert float(msg[0, 2].detach()) == 0.0  # neuron 2 receives nothing


def test_forward_uses_input_and_matches_phi_of_message():
    model, *_ = _model(positive=False)
    v = torch.randn(2, 4, generator=torch.Generator().manual_seed(2))
    x = torch.zeros(2, 4)
    x[:, 0] = 1.0
    out = model(v, x)
    manual = model.phi(v, model.message(model.edge(v)), x)
    torch.testing.assert_close(out, manual)
    assert not torch.allclose(model(v), out)  # x enters lin_phi
    torch.testing.assert_close(model(v[0], x[0]), out[0])  # unbatched call


def test_zero_initial_W_gives_no_messages_and_regularisers_run():
    model = FlyVisGNN(torch.tensor([0, 1]), torch.tensor([1, 0]), 2)
    v = torch.randn(5, 2)
    assert torch.count_nonzero(model.message(model.edge(v))) == 0
    cfg = {
        k: 0.0
        for k in (
            "coeff_W_L1",
            "coeff_W_L2",
            "coeff_edge_weight_L1",
            "coeff_edge_weight_L2",
            "coeff_phi_weight_L1",
            "coeff_phi_weight_L2",
            "coeff_lin_phi_zero",
        )
    }
    cfg.update(coeff_edge_diff=1.0, coeff_edge_norm=1.0)
    terms = regularization(model, v, cfg, xnorm=1.0)
    # edge_norm: RMS over neurons of lin_edge([2 xnorm, a_j]) - 2 xnorm
    out = model.edge(torch.full((1, 2), 2.0))
    expected = float(torch.sqrt(((out - 2.0) ** 2).mean()))
    assert np.isclose(float(terms["edge_norm"].detach()), expected, rtol=1e-6)
    assert float(terms["edge_diff"].detach()) >= 0.0


def test_eigen_basis_preserves_weights_and_forward():
    torch.manual_seed(0)
    n = 7
    post = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 5, 6])
    pre = torch.tensor([1, 2, 3, 0, 4, 1, 0, 1, 2, 5, 6, 5])
    plain = FlyVisGNN(pre, post, n, W_init_std=1.0, generator=torch.Generator().manual_seed(1))
    eig = FlyVisGNN(pre, post, n, W_init_std=1.0, W_basis="eigen")
    eig.load_state_dict({**plain.state_dict(), "W_basis": eig.W_basis})
    torch.testing.assert_close(eig.effective_W(), plain.W)  # identity basis at first
    v = torch.randn(50, n)
    opt = torch.optim.Adam(eig.parameters(), lr=1e-2)
    (eig(v) ** 2).sum().backward()
    opt.step()  # Adam moments exist before the refresh
    before_w, before_out = eig.effective_W().detach().clone(), eig(v).detach()
    eig.refresh_basis(opt, v, 50, torch.Generator().manual_seed(0))
    torch.testing.assert_close(eig.effective_W(), before_w, atol=1e-5, rtol=0)
    torch.testing.assert_close(eig(v), before_out, atol=1e-5, rtol=0)
    # every receiver's block is orthonormal and the W coordinates have moved off the identity
    for d, gi, offset in eig._groups:
        q = eig._block(eig.W_basis, d, gi, offset)
        torch.testing.assert_close(
            q.transpose(1, 2) @ q, torch.eye(d).expand_as(q), atol=1e-5, rtol=0
        )
    assert not torch.allclose(eig.W, before_w)
    with pytest.raises(ValueError, match="W_basis"):
        FlyVisGNN(pre, post, n, W_basis="nope")


def test_activity_embedding_separates_neurons_by_their_statistics():
    from connectome_gnn.models.embedding import activity_embedding

    gen = torch.Generator().manual_seed(0)
    t = torch.arange(3000, dtype=torch.float64).unsqueeze(1) * 0.02
    # two "types" of 5 neurons: slow large oscillation vs fast small noise, per-neuron jitter
    slow = 2.0 * torch.sin(t * (1.0 + 0.01 * torch.arange(5))) + 1.0
    fast = 0.1 * torch.randn(3000, 5, generator=gen, dtype=torch.float64)
    u = torch.cat([slow, fast], dim=1)
    du = torch.diff(u, dim=0, append=u[-1:]) / 0.02
    emb = activity_embedding(u, du, 3)
    assert emb.shape == (10, 3) and emb.dtype == torch.float32
    assert torch.allclose(emb.mean(0), torch.ones(3), atol=1e-5)
    # components beyond the first are not all zero, and the two groups fall apart on the first
    first = emb[:, 0]
    gap = (first[:5].mean() - first[5:].mean()).abs()
    spread = max(first[:5].std(), first[5:].std())
    assert gap > 5 * spread, (gap, spread)
    # deterministic (signs included) and shape-checked
    assert torch.equal(emb, activity_embedding(u, du, 3))
    assert activity_embedding(u, du, 8)[:, 6:].eq(1.0).all()  # only 6 features
    with pytest.raises(ValueError, match="same shape"):
        activity_embedding(u, du[:, :3], 2)


def test_activity_features_streamed_equal_the_direct_statistics():
    from connectome_gnn.models.embedding import activity_features

    gen = torch.Generator().manual_seed(1)
    u = torch.cumsum(torch.randn(503, 4, generator=gen, dtype=torch.float64), 0) * 0.1
    du = torch.randn(503, 4, generator=gen, dtype=torch.float64)
    f = activity_features(u, du, chunk=50)  # chunks that do not divide the frames
    uc, dc = u - u.mean(0), du - du.mean(0)
    var = (uc * uc).mean(0)
    lag1 = (u[1:] * u[:-1]).mean(0) - u.mean(0) ** 2
    lag5 = (u[5:] * u[:-5]).mean(0) - u.mean(0) ** 2
    slope = (uc * dc).mean(0) / var
    expected = torch.stack(
        [
            u.mean(0),
            0.5 * torch.log(var),
            torch.log(dc.pow(2).mean(0).sqrt()),
            lag1 / var,
            lag5 / var,
            torch.sign(slope) * torch.log1p(slope.abs()),
        ],
        dim=1,
    )
    torch.testing.assert_close(f, expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(activity_features(u, du, chunk=4096), f, rtol=1e-9, atol=1e-9)
