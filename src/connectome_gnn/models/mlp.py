"""Multi-layer perceptron used for lin_edge and lin_phi."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """``n_layers`` Linear layers with ReLU between them.

    As in the reference, every layer after the first is initialised with N(0, 0.1) weights and
    zero bias (the first keeps torch's default init).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, n_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        for layer in list(self.layers)[1:]:
            nn.init.normal_(layer.weight, std=0.1)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x
