"""Stage 3: compare what a trained model learned with the ground truth.

``analyze_run`` is imported on first use (PEP 562), so that ``analysis.metrics`` and
``analysis.clustering`` can be imported without the training stack (torch_geometric) and
matplotlib: the exploration's checkpoint scorer, a process started at every score report,
needs only those two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import analyze_run

__all__ = ["analyze_run"]


def __getattr__(name: str):
    if name == "analyze_run":
        from .run import analyze_run

        return analyze_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
