"""Data-driven start for the neuron embeddings (``embedding_init: activity``).

Neurons of one cell type share their time constant, resting potential and inputs, so simple
statistics of their recorded activity are alike.  :func:`activity_embedding` summarises each
neuron's voltage trace by a few such statistics, standardises them and keeps the leading
principal components as the initial embedding.  Only the activity is used (no cell types, no
ground truth): a head start for the embeddings, which otherwise begin identical (``ones``) and
must separate 65 cell types before lin_phi can tell them apart.
"""

from __future__ import annotations

import torch


def activity_features(u: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
    """Per-neuron statistics (N x 6) of voltages ``u`` and derivatives ``du`` (frames x N):
    mean and log-std of u, log-std of du, lag-1 and lag-5 autocorrelations of u and the
    regression slope of du on u (for a neuron driven slowly through its input, about -1/tau)."""
    u = u.double()
    du = du.double()
    uc = u - u.mean(0)
    dc = du - du.mean(0)
    var_u = (uc * uc).mean(0).clamp(min=1e-12)
    std_du = (dc * dc).mean(0).sqrt().clamp(min=1e-12)

    def autocorr(lag: int) -> torch.Tensor:
        if u.shape[0] <= lag:
            return torch.zeros(u.shape[1], dtype=u.dtype, device=u.device)
        return (uc[lag:] * uc[:-lag]).mean(0) / var_u

    slope = (uc * dc).mean(0) / var_u
    feats = [
        u.mean(0),
        0.5 * torch.log(var_u),
        torch.log(std_du),
        autocorr(1),
        autocorr(5),
        torch.sign(slope) * torch.log1p(slope.abs()),
    ]
    return torch.stack(feats, dim=1)


def activity_embedding(u: torch.Tensor, du: torch.Tensor, dim: int) -> torch.Tensor:
    """Initial embeddings (N x dim, float32): 1 + the leading ``dim`` principal components of
    the standardised :func:`activity_features`, each scaled to unit standard deviation
    (components beyond the 6 features are 0)."""
    if u.shape != du.shape or u.dim() != 2 or u.shape[0] < 2:
        raise ValueError("activity_embedding needs u and du of the same shape (frames >= 2, N)")
    f = activity_features(u, du)
    f = (f - f.mean(0)) / f.std(0).clamp(min=1e-9)
    f = f.clamp(-5.0, 5.0)  # a few extreme neurons must not own a component
    _, _, vh = torch.linalg.svd(f - f.mean(0), full_matrices=False)
    k = min(dim, vh.shape[0])
    z = f @ vh[:k].T
    z = (z - z.mean(0)) / z.std(0).clamp(min=1e-9)
    # a deterministic sign per component (SVD signs are arbitrary)
    z = z * torch.sign(z[0]).where(z[0] != 0, torch.ones_like(z[0]))
    out = torch.ones(u.shape[1], dim, dtype=torch.float64, device=u.device)
    out[:, :k] += z
    return out.float()
