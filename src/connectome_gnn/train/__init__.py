"""Stage 2: train a family's GNN on a simulation."""

from ..device import resolve_device
from .trainer import iterations_per_epoch, train_run

__all__ = ["iterations_per_epoch", "resolve_device", "train_run"]
