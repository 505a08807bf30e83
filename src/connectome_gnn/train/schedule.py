"""How long a training runs and how its rates change: iterations, learning rates, time budget,
and when the W basis is re-aligned."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


def iterations_per_epoch(n_frames: int, cfg: dict) -> int:
    """The reference formula: int(n_frames * data_augmentation_loop // batch_size * 0.2)."""
    n = int(n_frames * cfg["data_augmentation_loop"] // cfg["batch_size"] * cfg["iteration_factor"])
    if cfg.get("max_iterations"):
        n = min(n, int(cfg["max_iterations"]))
    return max(n, 1)


def training_seed(cfg_seed: int, replicate_seed: int) -> int:
    """The seed of one run: the training config's seed combined with the replicate seed."""
    return int(np.random.SeedSequence([int(cfg_seed), int(replicate_seed)]).generate_state(1)[0])


def make_optimizer(model, cfg: dict) -> torch.optim.Optimizer:
    """One Adam over the model's parameter groups, each at its configured learning rate."""
    groups = model.parameter_groups()
    return torch.optim.Adam(
        [
            {"params": params, "lr": cfg[model.LR_KEYS[name]], "name": name}
            for name, params in groups.items()
            if params
        ]
    )


def set_lr(optimizer: torch.optim.Optimizer, cfg: dict, progress: float, lr_keys: dict) -> None:
    """Cosine decay of every group to lr_final_fraction of its rate as ``progress`` goes 0 -> 1
    (lr_schedule: cosine); constant rates otherwise."""
    if cfg["lr_schedule"] != "cosine":
        return
    floor = cfg["lr_final_fraction"]
    factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    for group in optimizer.param_groups:
        group["lr"] = cfg[lr_keys[group["name"]]] * factor


def refresh_schedule(iteration: int, every: int) -> bool:
    """Re-align the W basis early (lin_edge changes fast at first), then every ``every``
    iterations."""
    return iteration in (200, 1000) or (iteration > 0 and iteration % every == 0)


class TimeBudget:
    """The max_minutes budget of a run, counting the time before a resume (``before_s``)."""

    def __init__(self, minutes: float | None, before_s: float, clock: Callable[[], float]):
        self.budget_s = 60.0 * float(minutes or 0.0)
        self.before_s = before_s
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        """Seconds trained in all, including before the resume."""
        return self.before_s + self.clock() - self.start

    def spent(self) -> float:
        """Fraction of the budget used (0 without a budget)."""
        if not self.budget_s:
            return 0.0
        return self.elapsed() / self.budget_s
