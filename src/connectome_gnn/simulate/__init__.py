"""Stage 1: simulate circuits whose connectome is known.

The simulators (:mod:`.signal`, :mod:`.flyvis`) write a simulation directory (:mod:`.data`);
the stage entry point that picks the simulator of a model family is
:func:`connectome_gnn.stages.run_simulation`.
"""

from __future__ import annotations

from .data import Simulation

__all__ = ["Simulation"]
