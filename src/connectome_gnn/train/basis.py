"""Eigenbasis refresh for models trained with ``W_basis: eigen``.

The W regression du_i = sum_j W_ij e(u_j) is badly conditioned on large circuits: the covariance
of the messages e(u) has eigenvalues spanning ~6 orders of magnitude at N = 1000, and Adam, which
rescales each *entry* of W, cannot undo correlations between presynaptic neurons.  Rotating W's
columns into the eigenbasis Q of that covariance (W = V Q^T) lets Adam rescale each principal
direction separately.  Q follows the learned lin_edge, so it is re-estimated during training; the
coordinates and Adam's moments are carried over to the new basis.
"""

from __future__ import annotations

import torch


def refresh_schedule(iteration: int, every: int) -> bool:
    """Refresh early (lin_edge changes fast at first), then every ``every`` iterations."""
    return iteration in (200, 1000) or (iteration > 0 and iteration % every == 0)


@torch.no_grad()
def refresh_basis(
    model,
    optimizer: torch.optim.Optimizer,
    u: torch.Tensor,
    n_frames: int,
    generator: torch.Generator,
) -> None:
    k = torch.randint(u.shape[0], (min(n_frames, u.shape[0]),), generator=generator).to(u.device)
    e = model.edge(u[k]).double()
    cov = e.T @ e / e.shape[0]
    _, q_new = torch.linalg.eigh(cov)
    q_new = q_new.to(model.W.dtype)
    rot = model.W_basis.T @ q_new  # old coordinates -> new coordinates
    model.W.copy_(model.W @ rot)
    state = optimizer.state.get(model.W)
    if state:
        state["exp_avg"].copy_(state["exp_avg"] @ rot)
        # second moments do not rotate exactly; mixing them with the squared rotation keeps
        # their scale per direction
        state["exp_avg_sq"].copy_(state["exp_avg_sq"] @ (rot * rot))
    model.W_basis.copy_(q_new)
