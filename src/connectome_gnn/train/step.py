"""One optimisation step: batch loss, regularisers, divergence check, Adam update."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .regularizers import regularization


def data_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """mse, or the reference's l2_norm (the unsquared norm over the batch)."""
    if kind == "mse":
        return torch.mean((pred - target) ** 2)
    return (pred - target).norm(2)


@dataclass
class StepResult:
    loss: float
    data_loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    diverged: str | None = None  # why the loss was rejected (the step was not taken)


def divergence(value: float, threshold: float) -> str | None:
    """Why a loss value ends the run (non-finite or above the threshold), or None."""
    if not math.isfinite(value):
        return f"non-finite ({value:.4g})"
    if value > threshold:
        return f"above divergence_threshold {threshold:g} ({value:.4g})"
    return None


def train_step(model, optimizer, data, k: torch.Tensor, cfg: dict) -> StepResult:
    """Loss of the batch starting at frames ``k``; one optimizer step unless it diverged."""
    pred, target = data.batch(model, k, cfg)
    loss_data = data_loss(pred, target, cfg["loss"])
    terms = regularization(model, data.u[k], cfg, data.xnorm)
    loss = loss_data + sum(terms.values()) if terms else loss_data
    value = float(loss.detach())
    why = divergence(value, float(cfg["divergence_threshold"]))
    if why is not None:
        return StepResult(value, loss_data, terms, diverged=why)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return StepResult(value, loss_data, terms)
