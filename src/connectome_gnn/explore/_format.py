"""Number formatting shared by the exploration log, the UCB file and the summary tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def format_value(value: Any) -> str:
    """Compact text of a parameter value, as the exploration logs write it.

    ``6e-4 -> "6E-4"``, ``1.25e-3 -> "1.25E-3"``, ``750.0 -> "750"``, ``0.5 -> "0.5"``,
    ``True -> "true"``, ``None -> "none"``.  Magnitudes below 1e-2 or from 1e5 up use the
    ``<mantissa>E<exponent>`` form with at most 4 significant digits.
    """
    if value is None:
        return "none"
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0:
            return "0"
        if abs(x) < 1e-2 or abs(x) >= 1e5:
            mantissa, exponent = f"{x:.3e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}E{int(exponent)}"
        if x.is_integer():
            return str(int(x))
        return f"{x:.4g}"
    return str(value)


def format_metric(value: Any, digits: int = 4) -> str:
    """A metric with ``digits`` decimals; ``n/a`` when missing or not a number."""
    x = as_float(value)
    if math.isnan(x):
        return "n/a"
    return f"{x:.{digits}f}"


def as_float(value: Any) -> float:
    """``value`` as a float; NaN for None, booleans, text and non-finite values."""
    if value is None or isinstance(value, bool | np.bool_ | str):
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def format_mutation(mutation: Sequence[Mapping[str, Any]]) -> str:
    """``[{param, old, new}, ...]`` as ``"lr_W: 1E-3 -> 2E-3, batch_size: 8 -> 4"``."""
    return ", ".join(
        f"{m['param']}: {format_value(m.get('old'))} -> {format_value(m.get('new'))}"
        for m in mutation
    )


def plain(value: Any) -> Any:
    """A YAML/JSON-safe copy: numpy scalars to Python, tuples to lists, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        x = float(value)
        return x if math.isfinite(x) else None
    return value
