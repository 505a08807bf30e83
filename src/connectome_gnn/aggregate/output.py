"""Writing tables: parquet + CSV + markdown, each atomically, and markdown summaries."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import atomic_path
from ..layout import TABLE_FORMATS

__all__ = ["to_markdown", "write_table", "write_text"]


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """GitHub-flavoured markdown table of ``df`` (no index), via ``DataFrame.to_markdown``.

    Floats are formatted with ``floatfmt``; text columns are shown verbatim (so a sparsity
    ``"0.5"`` stays ``0.5``) and missing values are left blank.  Numeric columns are
    right-aligned.  Needs ``tabulate``.
    """
    if df.columns.empty:
        return "_(no columns)_"
    if df.empty:
        return "| " + " | ".join(map(str, df.columns)) + " |\n" + "|---" * len(df.columns) + "|"
    cells = {}
    align = []
    for i in range(df.shape[1]):
        series = df.iloc[:, i]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        align.append("right" if numeric else "left")
        cells[i] = [_cell(v, floatfmt) for v in series.tolist()]
    view = pd.DataFrame(cells, index=range(len(df)))
    view.columns = [str(c) for c in df.columns]
    return view.to_markdown(index=False, disable_numparse=True, colalign=align)


def _cell(value: Any, floatfmt: str) -> str:
    """Text of one markdown cell: floats via ``floatfmt``, missing values blank."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else format(float(value), floatfmt)
    return str(value)


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` whose object columns pyarrow can store.

    Object columns holding only numbers become floats; columns mixing types (say a parameter
    that is a number in one run and text in another) become text.  Missing values stay missing.
    """
    out = df.copy()
    for col in out.columns:
        series = out[col]
        if series.dtype != object:
            continue
        present = series[series.notna()]
        kinds = {type(v) for v in present}
        if not kinds:
            continue
        if all(issubclass(k, int | float | np.integer | np.floating) for k in kinds) and not any(
            issubclass(k, bool | np.bool_) for k in kinds
        ):
            if len(kinds) > 1:
                out[col] = pd.to_numeric(series, errors="coerce")
            continue
        if len(kinds) > 1 or any(issubclass(k, Mapping | list | tuple) for k in kinds):
            out[col] = series.map(
                lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            ).astype(object)
    return out


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_table(
    df: pd.DataFrame,
    stem: str | os.PathLike,
    markdown_columns: Sequence[str] | None = None,
    floatfmt: str = ".4f",
) -> dict[str, Path]:
    """Write ``<stem>.parquet``, ``<stem>.csv`` and ``<stem>.md``, each atomically.

    Each file is written to a temporary sibling first and renamed into place, so readers never
    see a half-written table.  ``markdown_columns`` restricts the markdown view (the parquet and
    CSV files always hold every column).  Returns the written paths by suffix.
    """
    stem = Path(stem)
    paths = {ext: stem.with_name(f"{stem.name}.{ext}") for ext in TABLE_FORMATS}
    safe = _parquet_safe(df)
    safe.attrs = {}  # keep parquet metadata small and JSON-clean
    with atomic_path(paths["parquet"]) as tmp:
        safe.to_parquet(tmp, index=False, engine="pyarrow")
    with atomic_path(paths["csv"]) as tmp:
        df.to_csv(tmp, index=False)
    view = df if markdown_columns is None else df[[c for c in markdown_columns if c in df]]
    write_text(paths["md"], to_markdown(view, floatfmt=floatfmt) + "\n")
    return paths
