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


def activity_features(u: torch.Tensor, du: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Per-neuron statistics (N x 6) of voltages ``u`` and derivatives ``du`` (frames x N):
    mean and log-std of u, log-std of du, lag-1 and lag-5 autocorrelations of u and the
    regression slope of du on u (for a neuron driven slowly through its input, about -1/tau).
    Streamed over chunks of frames in float64 (bounded memory at any extent)."""
    n_frames, n = u.shape
    lags = (1, 5)
    zeros = lambda: torch.zeros(n, dtype=torch.float64, device=u.device)  # noqa: E731
    s_u, s_uu, s_d, s_dd, s_ud = zeros(), zeros(), zeros(), zeros(), zeros()
    s_lag = {lag: zeros() for lag in lags}
    for c0 in range(0, n_frames, chunk):
        c1 = min(c0 + chunk, n_frames)
        block = u[c0 : min(c1 + max(lags), n_frames)].double()  # + the frames the lags reach
        b = block[: c1 - c0]
        d = du[c0:c1].double()
        s_u += b.sum(0)
        s_uu += (b * b).sum(0)
        s_d += d.sum(0)
        s_dd += (d * d).sum(0)
        s_ud += (b * d).sum(0)
        for lag in lags:
            m = min(c1 - c0, block.shape[0] - lag)  # pairs (t, t + lag) starting in this chunk
            if m > 0:
                s_lag[lag] += (block[:m] * block[lag : lag + m]).sum(0)
    mean_u, mean_d = s_u / n_frames, s_d / n_frames
    var_u = (s_uu / n_frames - mean_u * mean_u).clamp(min=1e-12)
    var_d = (s_dd / n_frames - mean_d * mean_d).clamp(min=1e-24)
    slope = (s_ud / n_frames - mean_u * mean_d) / var_u

    def autocorr(lag: int) -> torch.Tensor:
        if n_frames <= lag:
            return zeros()
        return (s_lag[lag] / (n_frames - lag) - mean_u * mean_u) / var_u

    feats = [
        mean_u,
        0.5 * torch.log(var_u),
        0.5 * torch.log(var_d),
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
    out = torch.ones(u.shape[1], dim, dtype=torch.float64, device=u.device)
    if u.shape[1] < 2:
        return out.float()  # nothing to tell apart
    f = activity_features(u, du)
    f = (f - f.mean(0)) / f.std(0).clamp(min=1e-9)
    f = f.clamp(-5.0, 5.0)  # a few extreme neurons must not own a component
    _, _, vh = torch.linalg.svd(f - f.mean(0), full_matrices=False)
    k = min(dim, vh.shape[0])
    z = f @ vh[:k].T
    z = (z - z.mean(0)) / z.std(0).clamp(min=1e-9)
    # a deterministic sign per component (SVD signs are arbitrary)
    z = z * torch.sign(z[0]).where(z[0] != 0, torch.ones_like(z[0]))
    out[:, :k] += z
    return out.float()
