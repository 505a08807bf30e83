"""Uniform cubic B-splines: the four non-zero basis values at a point, and a per-column basis.

Shared by the spline edge function (:mod:`.spline`) and the per-neuron update basis of the W
solver (:mod:`connectome_gnn.train.solver`).  With ``K`` functions on [lo, hi] the knots are
``h = (hi - lo) / (K - 3)`` apart; every point of [lo, hi] sees four of them, whose values sum
to one, and the span reproduces every cubic polynomial (a constant and a line in particular).
"""

from __future__ import annotations

import torch


def span_and_basis(t: torch.Tensor, n_functions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For knot coordinates ``t`` (clamped to [0, K - 3]): the index of the first of the four
    functions that are non-zero there (long) and their values (..., 4)."""
    t = t.clamp(0.0, float(n_functions - 3))
    i0 = t.floor().clamp(max=n_functions - 4)
    f = t - i0
    f2, f3 = f * f, f * f * f
    basis = torch.stack(
        [(1 - f) ** 3 / 6, (3 * f3 - 6 * f2 + 4) / 6, (-3 * f3 + 3 * f2 + 3 * f + 1) / 6, f3 / 6],
        dim=-1,
    )
    return i0.long(), basis


def dense_basis(t: torch.Tensor, n_functions: int) -> torch.Tensor:
    """All ``n_functions`` basis values (..., K) at knot coordinates ``t``."""
    i0, basis = span_and_basis(t, n_functions)
    out = torch.zeros(*t.shape, n_functions, dtype=basis.dtype, device=t.device)
    idx = i0.unsqueeze(-1) + torch.arange(4, device=t.device)
    return out.scatter_(-1, idx, basis)


def column_basis(
    u: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n_functions: int
) -> torch.Tensor:
    """Cubic B-splines over each column's own range: ``u`` (T, M) with per-column bounds
    ``lo``, ``hi`` (M,) -> (T, M, K)."""
    h = (hi - lo) / (n_functions - 3)
    return dense_basis((u - lo) / h, n_functions)
