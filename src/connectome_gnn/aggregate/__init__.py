"""Aggregate per-run ``metrics.json`` files into summary tables (no torch needed).

See :mod:`connectome_gnn.aggregate.tables` for the table layouts and the public names.
"""

from . import tables
from .tables import *  # noqa: F403 - the public API is tables.__all__

__all__ = tables.__all__
