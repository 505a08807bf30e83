"""Stage 3: compare what a trained model learned with the ground truth."""

from .run import analyze_run

__all__ = ["analyze_run"]
