import torch

from connectome_gnn.models import SignalGNN, SignalGNNEdgewise


def _model(n=6, positive=False):
    gen = torch.Generator().manual_seed(0)
    m = SignalGNN(
        n,
        hidden_dim=8,
        hidden_dim_update=8,
        lin_edge_positive=positive,
        embedding_init="randn",
        generator=gen,
    )
    return m


def test_factorised_equals_explicit_per_edge_sum():
    m = _model()
    u = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    out = m(u)
    W = m.W.detach()
    for b in range(3):
        for i in range(6):
            msg = sum(
                W[i, j] * m.lin_edge(u[b, j].reshape(1, 1)).squeeze() for j in range(6) if j != i
            )
            phi = m.lin_phi(torch.cat([u[b, i].reshape(1), m.a[i]]).unsqueeze(0)).squeeze()
            torch.testing.assert_close(out[b, i], phi + msg, rtol=1e-5, atol=1e-5)


def test_factorised_equals_torch_geometric_message_passing():
    for positive in (False, True):
        m = _model(positive=positive)
        u = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(m(u), SignalGNNEdgewise(m)(u), rtol=1e-5, atol=1e-5)


def test_diagonal_of_W_is_masked():
    m = _model()
    with torch.no_grad():
        m.W.fill_diagonal_(100.0)
    u = torch.randn(2, 6)
    ref = _model()
    ref.load_state_dict(m.state_dict())
    with torch.no_grad():
        ref.W.fill_diagonal_(0.0)
    torch.testing.assert_close(m(u), ref(u))
    # and the gradient of a diagonal entry is zero
    m(u).sum().backward()
    assert torch.all(torch.diagonal(m.W.grad) == 0)


def test_single_frame_input():
    m = _model()
    u = torch.randn(6)
    torch.testing.assert_close(m(u), m(u.unsqueeze(0)).squeeze(0))


def test_eigen_basis_parametrisation_is_the_same_function():
    gen = torch.Generator().manual_seed(3)
    m = SignalGNN(6, hidden_dim=8, hidden_dim_update=8, W_basis="eigen", generator=gen)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen))
    with torch.no_grad():
        m.W.copy_(torch.randn(6, 6, generator=gen))
        m.W_basis.copy_(q)
    ref = SignalGNN(6, hidden_dim=8, hidden_dim_update=8)
    ref.load_state_dict(
        {k: v for k, v in m.state_dict().items() if k != "W_basis"}
        | {"W": m.effective_W().detach()}
    )
    u = torch.randn(3, 6, generator=gen)
    torch.testing.assert_close(m(u), ref(u), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m(u), SignalGNNEdgewise(m)(u), rtol=1e-5, atol=1e-5)


def test_basis_refresh_keeps_the_function(tmp_path):
    gen = torch.Generator().manual_seed(4)
    m = SignalGNN(
        8, hidden_dim=8, hidden_dim_update=8, W_basis="eigen", W_init_std=1.0, generator=gen
    )
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    u = torch.randn(50, 8, generator=gen)
    m(u).sum().backward()
    opt.step()
    before = m(u).detach()
    m.refresh_basis(opt, u, 50, gen)
    q = m.W_basis
    torch.testing.assert_close(q.T @ q, torch.eye(8), rtol=0, atol=1e-5)
    torch.testing.assert_close(m(u), before, rtol=1e-4, atol=1e-4)
