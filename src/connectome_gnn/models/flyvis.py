"""Learned model of the FlyVis family: a sparse GNN on the known connectome edges.

dv_i/dt ~ lin_phi([v_i, a_i, msg_i, x_i]),   msg_i = sum_{e = (j -> i)} W_e lin_edge([v_j, a_j])

W is one learnable weight per known edge (zeros at the start, as in the reference).  lin_edge
depends on the sender only, so it is evaluated once per neuron (B x N calls) and the messages are
gathered along the E edges and summed per receiver with torch_geometric's scatter: O(B E) memory,
never an N x N matrix.  With ``lin_edge_positive`` the output of lin_edge is squared.

``W_basis="eigen"``: the per-receiver analogue of the signal family's eigenbasis.  The inputs of
one neuron are strongly correlated (at extent 3 the median neuron has 17 inputs whose messages
have 99 % of their variance in 8 directions), which makes plain Adam on the edge weights slow
along the weak directions.  The parameter ``W`` then holds, for each receiver i, the coordinates
of its incoming weights in an orthonormal basis Q_i of its d_i inputs (block-diagonal Q over the
edges; effective weights = Q W); the trainer re-aligns each Q_i with the eigenvectors of the
second moment of that neuron's input messages (:meth:`FlyVisGNN.refresh_basis`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from ..errors import ConfigError
from .base import ConnectomeGNN
from .mlp import MLP
from .spline import SplineEdge


def in_degree_groups(
    pre: torch.Tensor, post: torch.Tensor, n_neurons: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The receivers grouped by in-degree d: per group (receivers (n_d,), edge ids (n_d, d)),
    each receiver's edges sorted by sender.  Batched per-receiver work (a basis per receiver,
    a least-squares problem per receiver) runs as one batched operation per group."""
    order = torch.argsort(post * n_neurons + pre)
    deg = torch.bincount(post, minlength=n_neurons)
    start = torch.cumsum(deg, 0) - deg
    groups = []
    for d in torch.unique(deg[deg > 0]).tolist():
        recv = torch.nonzero(deg == d).squeeze(1)
        groups.append((recv, order[start[recv].unsqueeze(1) + torch.arange(d, device=pre.device)]))
    return groups


class PassiveUpdate(nn.Module):
    """lin_phi of a passive point neuron (``lin_phi_form: passive``): on the inputs
    [v, a, msg, x] that :meth:`FlyVisGNN.phi` stacks,

        lin_phi = exp(k0(a)) (k1(a) - v + k3(a) x) + k2(a) msg

    with (k0, k1, k2, k3) = an MLP of the embedding a: the log rate 1 / tau, the resting
    voltage, the gain of the message and the relative gain of the input.  The simulator's update
    (V_rest - v + msg + x) / tau is of this form, and tau, V_rest and d lin_phi / d msg are
    then smooth functions of the embedding (what the readouts measure)."""

    def __init__(self, embedding_dim: int, hidden_dim: int, n_layers: int):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.coef = MLP(embedding_dim, 4, hidden_dim, n_layers)

    def coefficients(self, a: torch.Tensor) -> torch.Tensor:
        """(k0, k1, k2, k3) for embeddings a (..., embedding_dim) -> (..., 4)."""
        return self.coef(a)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        e = self.embedding_dim
        k = self.coef(inp[..., 1 : 1 + e])
        v, msg, x = inp[..., 0], inp[..., 1 + e], inp[..., 2 + e]
        rate = torch.exp(k[..., 0].clamp(max=20.0))
        return (rate * (k[..., 1] - v + k[..., 3] * x) + k[..., 2] * msg).unsqueeze(-1)


class FlyVisGNN(ConnectomeGNN):
    #: coeff_edge_norm pins lin_edge(2 xnorm) to 2 xnorm (the true edge function is ReLU)
    edge_norm_to_input = True
    W_solver = "per_receiver"

    def __init__(
        self,
        pre: torch.Tensor,
        post: torch.Tensor,
        n_neurons: int,
        embedding_dim: int = 2,
        hidden_dim: int = 64,
        n_layers: int = 3,
        hidden_dim_update: int = 64,
        n_layers_update: int = 3,
        lin_edge_positive: bool = True,
        W_init_std: float = 0.0,
        embedding_init: str = "ones",
        W_basis: str = "standard",
        lin_edge_form: str = "mlp",
        lin_edge_knots: int = 96,
        lin_phi_form: str = "mlp",
        edge_range: tuple[float, float] = (3.0, 1.0),
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if lin_edge_form not in ("mlp", "spline"):
            raise ConfigError(f"field 'lin_edge_form': {lin_edge_form!r} is not mlp or spline")
        if lin_phi_form not in ("mlp", "passive"):
            raise ConfigError(f"field 'lin_phi_form': {lin_phi_form!r} is not mlp or passive")
        if lin_edge_form == "spline" and lin_edge_positive:
            raise ConfigError(
                "field 'lin_edge_positive': a spline lin_edge (lin_edge_form: spline) is not "
                "squared; set lin_edge_positive: false"
            )
        pre = torch.as_tensor(pre, dtype=torch.long)
        post = torch.as_tensor(post, dtype=torch.long)
        if pre.shape != post.shape or pre.dim() != 1:
            raise ValueError("pre and post must be 1-D index tensors of the same length")
        if len(pre) and (int(pre.max()) >= n_neurons or int(post.max()) >= n_neurons):
            raise ValueError(f"edge indices outside [0, {n_neurons - 1}]")
        self.n_neurons = int(n_neurons)
        self.lin_edge_positive = lin_edge_positive
        self.register_buffer("pre", pre)
        self.register_buffer("post", post)
        self.W = nn.Parameter(torch.randn(len(pre), generator=generator) * W_init_std)
        self.a = nn.Parameter(
            self.initial_embedding(n_neurons, embedding_dim, embedding_init, generator)
        )
        # spline: one function of v_j shared by every sender (the simulator's ReLU is), fitted
        # by the per-receiver solver (train/receiver_solver.py); mlp: lin_edge([v_j, a_j])
        self.lin_edge = (
            SplineEdge(lin_edge_knots, *edge_range)
            if lin_edge_form == "spline"
            else MLP(1 + embedding_dim, 1, hidden_dim, n_layers)
        )
        self.lin_phi = (
            PassiveUpdate(embedding_dim, hidden_dim_update, n_layers_update)
            if lin_phi_form == "passive"
            else MLP(3 + embedding_dim, 1, hidden_dim_update, n_layers_update)
        )
        self.check_basis(W_basis)
        if W_basis == "eigen":
            self._init_blocks()
        else:
            self.W_basis = None

    def _init_blocks(self) -> None:
        """Group the receivers by in-degree d; per group the edge ids (n_d x d) of their inputs,
        and the basis entries (one d x d block per receiver, identity at first) flattened."""
        n_edges = self.pre.numel()
        self._groups: list[tuple[int, int, int]] = []  # (degree, group index, value offset)
        offset, edge_lists, eye = 0, [], []
        for k, (recv, idx) in enumerate(in_degree_groups(self.pre, self.post, self.n_neurons)):
            d = idx.shape[1]
            self.register_buffer(f"_block_edges_{k}", idx, persistent=False)
            edge_lists.append(idx.reshape(-1))
            eye.append(torch.eye(d).expand(len(recv), d, d).reshape(-1))
            self._groups.append((d, k, offset))
            offset += len(recv) * d * d
        order_cat = torch.cat(edge_lists) if edge_lists else torch.zeros(0, dtype=torch.long)
        inverse = torch.empty_like(order_cat)
        inverse[order_cat] = torch.arange(order_cat.numel())
        self.register_buffer("_block_inverse", inverse, persistent=False)
        self.register_buffer("W_basis", torch.cat(eye) if eye else torch.zeros(0))  # saved
        assert self.W_basis.numel() == offset and order_cat.numel() == n_edges

    def _block(self, values: torch.Tensor, d: int, k: int, offset: int) -> torch.Tensor:
        n_d = getattr(self, f"_block_edges_{k}").shape[0]
        return values[offset : offset + n_d * d * d].view(n_d, d, d)

    def effective_W(self) -> torch.Tensor:
        """The weights, one per edge (regularisers act on these): W itself, or Q W."""
        if self.W_basis is None:
            return self.W
        # one small batched matmul per in-degree group, then back to edge order
        parts = []
        for d, gi, offset in self._groups:
            idx = getattr(self, f"_block_edges_{gi}")
            q = self._block(self.W_basis, d, gi, offset)
            parts.append((q @ self.W[idx].unsqueeze(-1)).reshape(-1))
        return torch.cat(parts)[self._block_inverse]

    @torch.no_grad()
    def set_effective_W(self, W: torch.Tensor) -> None:
        """One weight per edge (edge order); in the eigenbasis, its coordinates Q_i^T w_i."""
        if self.W_basis is None:
            self.W.copy_(W)
            return
        for d, gi, offset in self._groups:
            idx = getattr(self, f"_block_edges_{gi}")
            q = self._block(self.W_basis, d, gi, offset)
            self.W[idx] = (q.transpose(1, 2) @ W[idx].unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def refresh_basis(
        self,
        optimizer: torch.optim.Optimizer,
        u: torch.Tensor,
        n_frames: int,
        generator: torch.Generator,
    ) -> None:
        """Align each receiver's basis with the eigenvectors of the second moment of its input
        messages lin_edge(v_j) over ``n_frames`` random frames of ``u``; the coordinates and
        Adam's moments are carried over (second moments through the squared rotation)."""
        if self.W_basis is None:
            return
        k = torch.randint(u.shape[0], (min(n_frames, u.shape[0]),), generator=generator)
        k = k.to(u.device)
        new_vals = torch.empty_like(self.W_basis)
        state = optimizer.state.get(self.W, {})
        moments = [state[m] for m in ("exp_avg", "exp_avg_sq") if m in state]
        covs = {gi: 0.0 for _, gi, _ in self._groups}
        for c0 in range(0, len(k), 256):  # frame chunks: bounded memory at any extent
            e = self.edge(u[k[c0 : c0 + 256]]).double()  # (F, N) messages of every sender
            for _, gi, _ in self._groups:
                x = e[:, self.pre[getattr(self, f"_block_edges_{gi}")]]  # (F, n_d, d)
                covs[gi] = covs[gi] + torch.einsum("fna,fnb->nab", x, x)
        for d, gi, offset in self._groups:
            idx = getattr(self, f"_block_edges_{gi}")
            _, q_new = torch.linalg.eigh(covs[gi] / len(k))
            q_new = q_new.to(self.W_basis.dtype)
            q_old = self._block(self.W_basis, d, gi, offset)
            rot = q_old.transpose(1, 2) @ q_new  # old coordinates -> new: z_new = rot^T z_old
            self.W[idx] = (rot.transpose(1, 2) @ self.W[idx].unsqueeze(-1)).squeeze(-1)
            for j, m in enumerate(moments):
                r = rot if j == 0 else rot * rot
                m[idx] = (r.transpose(1, 2) @ m[idx].unsqueeze(-1)).squeeze(-1)
            new_vals[offset : offset + q_new.numel()] = q_new.reshape(-1)
        self.W_basis.copy_(new_vals)

    def _with_embedding(self, values: list[torch.Tensor]) -> torch.Tensor:
        """Stack per-neuron inputs (each B x N) with a_i into a (B, N, k) tensor."""
        batch = values[0].shape[0]
        a = self.a.unsqueeze(0).expand(batch, -1, -1)
        cols = [v.unsqueeze(-1) for v in values]
        return torch.cat([cols[0], a, *cols[1:]], dim=-1)

    def edge(self, v: torch.Tensor) -> torch.Tensor:
        """lin_edge([v_j, a_j]) (a spline: lin_edge(v_j)) for voltages v of shape (B, N) (or
        (N,)); same shape out."""
        squeeze = v.dim() == 1
        v2 = v.unsqueeze(0) if squeeze else v
        if isinstance(self.lin_edge, SplineEdge):
            out = self.lin_edge(v2.unsqueeze(-1)).squeeze(-1)
        else:
            out = self.lin_edge(self._with_embedding([v2])).squeeze(-1)
        if self.lin_edge_positive:
            out = out * out
        return out.squeeze(0) if squeeze else out

    def message(self, e: torch.Tensor) -> torch.Tensor:
        """msg_i = sum over edges j -> i of W_e e_j, for sender values e of shape (B, N)."""
        vals = e[:, self.pre] * self.effective_W()
        return scatter(vals, self.post, dim=1, dim_size=self.n_neurons, reduce="sum")

    def phi(
        self,
        v: torch.Tensor,
        msg: torch.Tensor | None = None,
        x: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """lin_phi([v_i, a_i, msg_i, x_i]) for (B, N) tensors; msg and x default to zero."""
        zero = torch.zeros_like(v)
        return self.lin_phi(
            self._with_embedding([v, zero if msg is None else msg, zero if x is None else x])
        ).squeeze(-1)

    def forward(self, v: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        squeeze = v.dim() == 1
        if squeeze:
            v = v.unsqueeze(0)
            x = None if x is None else x.unsqueeze(0)
        out = self.phi(v, self.message(self.edge(v)), x)
        return out.squeeze(0) if squeeze else out
