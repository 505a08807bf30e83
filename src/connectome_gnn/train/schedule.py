"""How long a training runs and how its rates change: iterations, learning rates, time budget,
when the W basis is re-aligned, and the reference's epoch phases (the two L1 phases and when the
embeddings are replaced by cluster medians)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..errors import ConfigError


def iterations_per_epoch(n_frames: int, cfg: dict) -> int:
    """The reference formula: int(n_frames * data_augmentation_loop // batch_size * 0.2)."""
    n = int(n_frames * cfg["data_augmentation_loop"] // cfg["batch_size"] * cfg["iteration_factor"])
    if cfg.get("max_iterations"):
        n = min(n, int(cfg["max_iterations"]))
    return max(n, 1)


def training_seed(cfg_seed: int, replicate_seed: int) -> int:
    """The seed of one run: the training config's seed combined with the replicate seed."""
    return int(np.random.SeedSequence([int(cfg_seed), int(replicate_seed)]).generate_state(1)[0])


def learning_rate(cfg: dict, key: str) -> float:
    """A learning rate of the config; lr_siren (an optional key) takes its default."""
    if key in cfg:
        return float(cfg[key])
    from ..models.siren import INPUT_DEFAULTS

    return float(INPUT_DEFAULTS[key])


def make_optimizer(model, cfg: dict) -> torch.optim.Optimizer:
    """One Adam over the model's parameter groups, each at its configured learning rate."""
    groups = model.parameter_groups()
    return torch.optim.Adam(
        [
            {"params": params, "lr": learning_rate(cfg, model.LR_KEYS[name]), "name": name}
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
        group["lr"] = learning_rate(cfg, lr_keys[group["name"]]) * factor


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


# -- the reference's epoch phases: two L1 phases, and the embedding cluster-median replacement.
# Their keys have no schema default (configs that leave them out keep their checkpoint hash);
# these are their values when absent (train.schema.yaml).
PHASE_DEFAULTS = {
    "n_epochs_init": 0,
    "first_coeff_L1": 0.0,
    "embedding_sparsity": "none",
    "sparsity_freq": 5,
    "cluster_method": "distance",
    "cluster_distance_threshold": 0.1,
    "n_clusters": 4,
    "fix_cluster_embedding": False,
    "sparsity_fit_steps": 20,
}


def phase_settings(cfg: dict) -> dict:
    """The phase settings of a training config (defaults filled), checked across fields."""
    out = {k: cfg.get(k, v) for k, v in PHASE_DEFAULTS.items()}
    n_init, n_epochs = int(out["n_epochs_init"]), int(cfg["n_epochs"])
    if n_init < 0:  # the schema says so too; configs built in code may skip it
        raise ConfigError(f"field 'n_epochs_init': {n_init} is less than the minimum of 0")
    if n_init > n_epochs:
        raise ConfigError(
            f"field 'n_epochs_init': {n_init} is more than n_epochs ({n_epochs}): phase 1 "
            "would never end"
        )
    if int(out["sparsity_freq"]) < 1:
        raise ConfigError(f"field 'sparsity_freq': {out['sparsity_freq']} is less than 1")
    return out


def epoch_config(cfg: dict, phases: dict, epoch: int) -> dict:
    """The training config of one epoch (the reference's two phases, when n_epochs_init > 0):
    in phase 1 (epoch < n_epochs_init) coeff_W_L1 is first_coeff_L1; in phase 2 coeff_W_L1 is
    itself and coeff_edge_diff is off."""
    n_init = int(phases["n_epochs_init"])
    if n_init <= 0:
        return cfg
    if epoch < n_init:
        return {**cfg, "coeff_W_L1": float(phases["first_coeff_L1"])}
    return {**cfg, "coeff_edge_diff": 0.0}


def replaces_after(phases: dict, epoch: int, n_epochs: int) -> bool:
    """Whether the embeddings are replaced by cluster medians at the end of ``epoch``: the
    reference's rule, epoch % sparsity_freq == sparsity_freq - 1 and epoch < n_epochs -
    sparsity_freq (10 epochs, freq 4: after epoch 3 only)."""
    if phases["embedding_sparsity"] == "none":
        return False
    freq = int(phases["sparsity_freq"])
    return epoch % freq == freq - 1 and epoch < n_epochs - freq


def frozen_epoch(phases: dict, epoch: int, n_epochs: int) -> bool:
    """fix_cluster_embedding: lin_edge and the embeddings stay fixed (lin_phi and W train) for
    the epoch after a replacement."""
    return (
        bool(phases["fix_cluster_embedding"])
        and epoch > 0
        and replaces_after(phases, epoch - 1, n_epochs)
    )
