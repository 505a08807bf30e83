"""Learned model of the signal family.

du_i/dt ~ lin_phi([u_i, a_i]) + sum_j W_ij lin_edge(u_j) [+ x_i, the external input, when the
simulation has one: known, or learned by the model's input field]

lin_edge depends on the sender only, so it is evaluated once per neuron and aggregated with a
dense matmul against the (diagonal-masked) learnable W: O(B N) MLP calls + one B x N x N matmul,
never N^2 per-edge messages.  :class:`SignalGNNEdgewise` computes the same function with explicit
per-edge message passing (torch_geometric) for tests and benchmarks.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import ConnectomeGNN
from .mlp import MLP
from .spline import SplineEdge


class SignalGNN(ConnectomeGNN):
    def __init__(
        self,
        n_neurons: int,
        embedding_dim: int = 2,
        hidden_dim: int = 64,
        n_layers: int = 3,
        hidden_dim_update: int = 64,
        n_layers_update: int = 3,
        lin_edge_positive: bool = False,
        W_init_std: float = 1.0,
        embedding_init: str = "ones",
        W_basis: str = "standard",
        lin_edge_form: str = "mlp",
        lin_edge_knots: int = 96,
        lin_phi_form: str = "mlp",
        edge_range: tuple[float, float] = (10.0, 2.0),
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if lin_phi_form != "mlp":
            raise ConfigError(
                f"field 'lin_phi_form': {lin_phi_form!r} is for the FlyVis family; the signal "
                "update lin_phi([u_i, a_i]) is an MLP"
            )
        self.n_neurons = n_neurons
        self.lin_edge_positive = lin_edge_positive
        W = torch.randn(n_neurons, n_neurons, generator=generator) * W_init_std
        W.fill_diagonal_(0.0)
        self.W = nn.Parameter(W)
        self.register_buffer("mask", 1.0 - torch.eye(n_neurons))
        # With W_basis="eigen" the parameter W holds the coordinates V of the connectivity in an
        # orthonormal basis Q (effective W = V Q^T) that the trainer aligns with the eigenvectors
        # of the covariance of lin_edge(u): Adam then steps along the activity's principal axes,
        # which removes most of the ill-conditioning of the W regression (see train.basis).
        self.check_basis(W_basis)
        self.register_buffer("W_basis", torch.eye(n_neurons) if W_basis == "eigen" else None)
        self.a = nn.Parameter(
            self.initial_embedding(n_neurons, embedding_dim, embedding_init, generator)
        )
        if lin_edge_form == "spline":  # edge_range: (u_max, scale) of the activity
            self.lin_edge = SplineEdge(lin_edge_knots, *edge_range)
        elif lin_edge_form == "mlp":
            self.lin_edge = MLP(1, 1, hidden_dim, n_layers)
        else:
            raise ValueError(f"unknown lin_edge_form {lin_edge_form!r} (mlp or spline)")
        self.lin_phi = MLP(1 + embedding_dim, 1, hidden_dim_update, n_layers_update)

    def effective_W(self) -> torch.Tensor:
        """The connectivity W[post, pre] with its diagonal masked."""
        if self.W_basis is None:
            return self.W * self.mask
        return (self.W @ self.W_basis.T) * self.mask

    @torch.no_grad()
    def refresh_basis(
        self,
        optimizer: torch.optim.Optimizer,
        u: torch.Tensor,
        n_frames: int,
        generator: torch.Generator,
    ) -> None:
        """Rotate the coordinates into the eigenbasis of the covariance of lin_edge(u) over
        ``n_frames`` random frames of ``u``; Adam's moments follow (see below)."""
        if self.W_basis is None:
            return
        k = torch.randint(u.shape[0], (min(n_frames, u.shape[0]),), generator=generator)
        e = self.edge(u[k.to(u.device)]).double()
        _, q_new = torch.linalg.eigh(e.T @ e / e.shape[0])
        q_new = q_new.to(self.W.dtype)
        rot = self.W_basis.T @ q_new  # old coordinates -> new coordinates
        self.W.copy_(self.W @ rot)
        state = optimizer.state.get(self.W)
        if state:
            state["exp_avg"].copy_(state["exp_avg"] @ rot)
            # second moments do not rotate exactly; mixing them with the squared rotation keeps
            # their scale per direction
            state["exp_avg_sq"].copy_(state["exp_avg_sq"] @ (rot * rot))
        self.W_basis.copy_(q_new)

    @torch.no_grad()
    def set_effective_W(self, W: torch.Tensor) -> None:
        """W[post, pre] (its diagonal is ignored: the model masks it)."""
        W = W * self.mask
        self.W.copy_(W if self.W_basis is None else W @ self.W_basis)

    def message(self, e: torch.Tensor) -> torch.Tensor:
        """sum_{j != i} W_ij e_j for lin_edge outputs e of shape (B, N), as dense matmuls."""
        if self.W_basis is None:
            return e @ self.effective_W().T
        # (e Q) V^T costs two B x N x N products; subtract the diagonal term W_ii e_i
        diag = (self.W * self.W_basis).sum(dim=1)
        return (e @ self.W_basis) @ self.W.T - e * diag

    def edge(self, u: torch.Tensor) -> torch.Tensor:
        """lin_edge applied elementwise to activity u (any shape)."""
        out = self.lin_edge(u.reshape(-1, 1)).reshape(u.shape)
        return out * out if self.lin_edge_positive else out

    def phi(self, u: torch.Tensor) -> torch.Tensor:
        """lin_phi([u_i, a_i]) for u of shape (B, N)."""
        a = self.a.unsqueeze(0).expand(u.shape[0], -1, -1)
        return self.lin_phi(torch.cat([u.unsqueeze(-1), a], dim=-1)).squeeze(-1)

    def forward(self, u: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        squeeze = u.dim() == 1
        if squeeze:
            u = u.unsqueeze(0)
            x = None if x is None else x.unsqueeze(0)
        out = self.phi(u) + self.message(self.edge(u))
        if x is not None:
            out = out + x
        return out.squeeze(0) if squeeze else out


class SignalGNNEdgewise(nn.Module):
    """The same function as :class:`SignalGNN`, with one explicit message per edge (reference style).

    Shares parameters with a :class:`SignalGNN`; a torch_geometric MessagePassing layer evaluates
    lin_edge once per edge of every frame of the batch (disjoint graph copies), as the reference
    code does.  Used to check the factorised forward and as the baseline of
    bench/train_throughput.py.
    """

    def __init__(self, base: SignalGNN, edge_index: torch.Tensor | None = None):
        super().__init__()
        from torch_geometric.nn import MessagePassing

        class _EdgeMessages(MessagePassing):
            def __init__(self, edge_fn):
                super().__init__(aggr="add")
                self.edge_fn = edge_fn

            def forward(self, x, edge_index, weight):
                return self.propagate(edge_index, x=x, weight=weight)

            def message(self, x_j, weight):
                return weight.unsqueeze(-1) * self.edge_fn(x_j)

        self.base = base
        n = base.n_neurons
        if edge_index is None:
            idx = torch.arange(n)
            post, pre = torch.meshgrid(idx, idx, indexing="ij")
            keep = pre != post
            edge_index = torch.stack([pre[keep], post[keep]])  # row 0 = source j, row 1 = target i
        self.register_buffer("edge_index", edge_index)
        self.layer = _EdgeMessages(base.edge)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        b, n = u.shape
        n_e = self.edge_index.shape[1]
        offsets = (torch.arange(b, device=u.device) * n).repeat_interleave(n_e)
        ei = self.edge_index.repeat(1, b) + offsets
        src, dst = self.edge_index
        weight = self.base.effective_W()[dst, src].repeat(b)
        msg = self.layer(u.reshape(-1, 1), ei, weight)
        return self.base.phi(u) + msg.reshape(b, n)
