"""Stage 2: train a family's GNN on a simulation."""

from .trainer import iterations_per_epoch, resolve_device, train_run

__all__ = ["iterations_per_epoch", "resolve_device", "train_run"]
