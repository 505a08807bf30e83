"""Regularisation terms, named as in the reference code and the exploration logs.

The model is expected to expose ``W`` (learnable connectivity), ``lin_edge``, ``lin_phi``,
``edge(u)`` (lin_edge applied to activity) and ``phi(u)`` (lin_phi with the embeddings).
Norms follow the reference: L1 = sum of |x|, L2 = the (unsquared) Euclidean norm.
"""

from __future__ import annotations

import torch


def _params_norm(module: torch.nn.Module, p: int) -> torch.Tensor:
    return sum(param.norm(p) for name, param in module.named_parameters() if "weight" in name)


def regularization(model, u: torch.Tensor, cfg: dict, xnorm: float) -> dict[str, torch.Tensor]:
    """All active regularisation terms for a batch of activity ``u`` (B x N); zeros are skipped."""
    terms: dict[str, torch.Tensor] = {}
    if cfg["coeff_W_L1"] > 0 or cfg["coeff_W_L2"] > 0:
        W = model.effective_W()
        if cfg["coeff_W_L1"] > 0:
            terms["W_L1"] = cfg["coeff_W_L1"] * W.abs().sum()
        if cfg["coeff_W_L2"] > 0:
            terms["W_L2"] = cfg["coeff_W_L2"] * W.norm(2)
    if cfg["coeff_edge_diff"] > 0:
        # lin_edge must not decrease: penalise lin_edge(u) > lin_edge(u + delta)
        x = u.detach().reshape(-1)
        msg0 = model.edge(x)
        msg1 = model.edge(x + xnorm / 150.0)
        terms["edge_diff"] = cfg["coeff_edge_diff"] * torch.relu(msg0 - msg1).norm(2)
    if cfg["coeff_edge_norm"] > 0:
        ref = torch.full((1,), 2.0 * xnorm, device=u.device, dtype=u.dtype)
        terms["edge_norm"] = cfg["coeff_edge_norm"] * (model.edge(ref) - 1.0).norm(2)
    if cfg["coeff_edge_weight_L1"] > 0:
        terms["edge_weight_L1"] = cfg["coeff_edge_weight_L1"] * _params_norm(model.lin_edge, 1)
    if cfg["coeff_edge_weight_L2"] > 0:
        terms["edge_weight_L2"] = cfg["coeff_edge_weight_L2"] * _params_norm(model.lin_edge, 2)
    if cfg["coeff_phi_weight_L1"] > 0:
        terms["phi_weight_L1"] = cfg["coeff_phi_weight_L1"] * _params_norm(model.lin_phi, 1)
    if cfg["coeff_phi_weight_L2"] > 0:
        terms["phi_weight_L2"] = cfg["coeff_phi_weight_L2"] * _params_norm(model.lin_phi, 2)
    if cfg["coeff_lin_phi_zero"] > 0:
        zero = torch.zeros((1, model.a.shape[0]), device=u.device, dtype=u.dtype)
        terms["lin_phi_zero"] = cfg["coeff_lin_phi_zero"] * model.phi(zero).norm(2)
    return terms
