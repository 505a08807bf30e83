"""A 1-D edge function as a cubic B-spline (``lin_edge_form: spline``).

lin_edge of the signal family is one function of one variable, shared by every sender.  An MLP
of ReLUs represents it piecewise linearly, with an error of ~1e-3 that the W regression of a
sparse circuit amplifies (a 0.15 % rms error in the edge function costs connectivity_R2 0.08 at
5 % filling, N = 1000).  A cubic B-spline with ~100 coefficients is accurate to ~3e-5 on the same
range, and it is *linear* in its coefficients, which the W solver of the training uses.

The knots are uniform in z = asinh(u / scale): dense where the activity is (|u| below the
activity std ``scale``), sparser in the tails.  Outside [-u_max, u_max] the function is held at
its end values.  The coefficients are called ``weight`` so that the lin_edge weight penalties
(coeff_edge_weight_L1/L2) act on them.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SplineEdge(nn.Module):
    """psi(u) = sum_k weight_k B_k(asinh(u / scale)); input (..., 1), output (..., 1)."""

    def __init__(self, n_knots: int, u_max: float, scale: float):
        super().__init__()
        if n_knots < 4:
            raise ValueError(f"a cubic spline needs at least 4 coefficients, got {n_knots}")
        if not (u_max > 0 and scale > 0):
            raise ValueError(f"u_max and scale must be positive, got {u_max}, {scale}")
        z_max = math.asinh(u_max / scale)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("z_lo", torch.tensor(-z_max))
        self.register_buffer("h", torch.tensor(2 * z_max / (n_knots - 3)))
        # start: the identity scaled to [-1, 1] (coefficient k ~ the function at its centre)
        centres = torch.arange(n_knots, dtype=torch.float64) - 1.0
        u_c = scale * torch.sinh(-z_max + centres * (2 * z_max / (n_knots - 3)))
        self.weight = nn.Parameter((u_c / u_max).float())

    @property
    def n_knots(self) -> int:
        return self.weight.numel()

    def coordinates(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First coefficient index (long) and the 4 basis values (..., 4) at activity ``u``."""
        z = torch.asinh(u / self.scale)
        t = ((z - self.z_lo) / self.h).clamp(0.0, float(self.n_knots - 3))
        i0 = t.floor().clamp(max=self.n_knots - 4)
        f = t - i0
        f2, f3 = f * f, f * f * f
        basis = torch.stack(
            [
                (1 - f) ** 3 / 6,
                (3 * f3 - 6 * f2 + 4) / 6,
                (-3 * f3 + 3 * f2 + 3 * f + 1) / 6,
                f3 / 6,
            ],
            dim=-1,
        )
        return i0.long(), basis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i0, basis = self.coordinates(x.squeeze(-1))
        idx = i0.unsqueeze(-1) + torch.arange(4, device=x.device)
        return (self.weight[idx] * basis.to(self.weight.dtype)).sum(-1, keepdim=True)

    def design(self, u: torch.Tensor) -> torch.Tensor:
        """The basis matrix (..., n_knots) at ``u``: psi(u) = design(u) @ weight."""
        i0, basis = self.coordinates(u)
        out = torch.zeros(*u.shape, self.n_knots, dtype=basis.dtype, device=u.device)
        idx = i0.unsqueeze(-1) + torch.arange(4, device=u.device)
        return out.scatter_(-1, idx, basis)
