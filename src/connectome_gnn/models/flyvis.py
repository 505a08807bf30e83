"""Learned model of the FlyVis family: a sparse GNN on the known connectome edges.

dv_i/dt ~ lin_phi([v_i, a_i, msg_i, x_i]),   msg_i = sum_{e = (j -> i)} W_e lin_edge([v_j, a_j])

W is one learnable weight per known edge (zeros at the start, as in the reference).  lin_edge
depends on the sender only, so it is evaluated once per neuron (B x N calls) and the messages are
gathered along the E edges and summed per receiver with torch_geometric's scatter: O(B E) memory,
never an N x N matrix.  With ``lin_edge_positive`` the output of lin_edge is squared.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from .mlp import MLP, gnn_kwargs


class FlyVisGNN(nn.Module):
    #: coeff_edge_norm pins lin_edge(2 xnorm) to 2 xnorm (the true edge function is ReLU)
    edge_norm_to_input = True

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
        generator: torch.Generator | None = None,
    ):
        super().__init__()
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
        a = torch.ones(n_neurons, embedding_dim)
        if embedding_init == "randn":
            a = a + 0.1 * torch.randn(n_neurons, embedding_dim, generator=generator)
        self.a = nn.Parameter(a)
        self.lin_edge = MLP(1 + embedding_dim, 1, hidden_dim, n_layers)
        self.lin_phi = MLP(3 + embedding_dim, 1, hidden_dim_update, n_layers_update)

    @classmethod
    def from_config(
        cls, pre, post, n_neurons: int, cfg: dict, generator: torch.Generator | None = None
    ):
        return cls(pre, post, n_neurons, **gnn_kwargs(cfg), generator=generator)

    def effective_W(self) -> torch.Tensor:
        """The learnable weights, one per edge (regularisers act on these)."""
        return self.W

    def _with_embedding(self, values: list[torch.Tensor]) -> torch.Tensor:
        """Stack per-neuron inputs (each B x N) with a_i into a (B, N, k) tensor."""
        batch = values[0].shape[0]
        a = self.a.unsqueeze(0).expand(batch, -1, -1)
        cols = [v.unsqueeze(-1) for v in values]
        return torch.cat([cols[0], a, *cols[1:]], dim=-1)

    def edge(self, v: torch.Tensor) -> torch.Tensor:
        """lin_edge([v_j, a_j]) for voltages v of shape (B, N) (or (N,)); same shape out."""
        squeeze = v.dim() == 1
        v2 = v.unsqueeze(0) if squeeze else v
        out = self.lin_edge(self._with_embedding([v2])).squeeze(-1)
        if self.lin_edge_positive:
            out = out * out
        return out.squeeze(0) if squeeze else out

    def message(self, e: torch.Tensor) -> torch.Tensor:
        """msg_i = sum over edges j -> i of W_e e_j, for sender values e of shape (B, N)."""
        vals = e[:, self.pre] * self.W
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
