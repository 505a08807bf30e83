"""Learned GNN models (one module per family) and their building blocks."""

from .mlp import MLP
from .signal import SignalGNN, SignalGNNEdgewise

__all__ = ["MLP", "SignalGNN", "SignalGNNEdgewise"]
