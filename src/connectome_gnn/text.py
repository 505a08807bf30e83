"""Text of numbers and values, shared by the summary tables (aggregate) and the exploration
files (explore): parameter values as the exploration logs write them, compact numbers,
``mean ± std`` cells, natural sort keys, and YAML/JSON-safe copies."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_float",
    "format_mutation",
    "format_number",
    "format_value",
    "mean_std_text",
    "natural_key",
    "plain",
]


def as_float(value: Any) -> float:
    """``value`` as a float; NaN for None, booleans, text, non-numbers and non-finite values."""
    if value is None or isinstance(value, bool | np.bool_ | str):
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


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


def format_number(x: float | None) -> str:
    """Compact number: 4 decimals, scientific for very small or large magnitudes; ``n/a``
    when missing or not finite."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4f}"
    return f"{x:.3e}"


def mean_std_text(
    mean: float | None, std: float | None, spec: str | None = None, std_optional: bool = False
) -> str:
    """``"<mean> ± <std>"``, each number as :func:`format_number` writes it or with the format
    ``spec`` (e.g. ``".4f"``); ``n/a`` when the mean is missing.  A missing std reads ``n/a``
    (``0.9900 ± n/a``), or with ``std_optional`` is left out (``0.9900``)."""

    def text(x: float | None) -> str:
        if spec is None or x is None or not math.isfinite(x):
            return format_number(x)
        return format(x, spec)

    if mean is None or not math.isfinite(mean):
        return "n/a"
    if std_optional and (std is None or not math.isfinite(std)):
        return text(mean)
    return f"{text(mean)} ± {text(std)}"


def natural_key(text: Any) -> tuple:
    """Sort key putting ``t2`` before ``t10`` (digit runs compare as numbers)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", str(text))
        if part
    )


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
