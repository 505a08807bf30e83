"""Regularisation terms, named as in the reference code and the exploration logs.

The model is a :class:`~connectome_gnn.models.base.ConnectomeGNN`: the terms use its
``effective_W()``, ``edge(u)``, ``phi(u)``, ``edge_norm_target(xnorm)`` and the weights of its
``lin_edge`` and ``lin_phi`` modules.
Norms follow the reference: L1 = sum of |x|, L2 = the (unsquared) Euclidean norm.
"""

from __future__ import annotations

import math

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
        # lin_edge must not decrease: penalise lin_edge(u) > lin_edge(u + delta); on the first
        # edge_reg_frames frames of the batch only, if set (the norm rescaled to the batch size)
        x = u.detach()
        rescale = 1.0
        if cfg.get("edge_reg_frames") and cfg["edge_reg_frames"] < x.shape[0]:
            rescale = math.sqrt(x.shape[0] / cfg["edge_reg_frames"])
            x = x[: cfg["edge_reg_frames"]]
        msg0 = model.edge(x)
        msg1 = model.edge(x + xnorm / 150.0)
        terms["edge_diff"] = cfg["coeff_edge_diff"] * rescale * torch.relu(msg0 - msg1).norm(2)
    if cfg["coeff_edge_norm"] > 0:
        # pin lin_edge(2 xnorm) to 1 (signal) or to 2 xnorm (a rectifying edge, FlyVis); the
        # RMS over neurons equals the single value when lin_edge ignores the neuron (signal)
        out = model.edge(torch.full_like(u[:1], 2.0 * xnorm))
        target = model.edge_norm_target(xnorm)
        rms = (out - target).norm(2) / math.sqrt(out.numel())
        terms["edge_norm"] = cfg["coeff_edge_norm"] * rms
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
