"""Writing tables: parquet + CSV + markdown + HTML, each atomically, and markdown summaries.

Parquet and CSV hold every column under its data name (``sparsity`` is the wildcard of the run
layout); the markdown and HTML files are for people: a readable column subset, and the labels
of :data:`COLUMN_LABELS` (``sparsity`` is shown as "filling factor").
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import atomic_path
from ..layout import TABLE_FORMATS

__all__ = ["COLUMN_LABELS", "display_view", "to_html", "to_markdown", "write_table", "write_text"]

#: Column names as people read them (markdown and HTML views; the data files keep the keys).
COLUMN_LABELS = {"sparsity": "filling factor", "sparsity_pct": "filling factor (%)"}

_HTML_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 0.6em; color: #222; }
h1 { font-size: 15px; margin: 0 0 0.3em 0; }
p.note { margin: 0 0 0.6em 0; color: #555; }
table { border-collapse: collapse; }
th, td { padding: 2px 8px; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { position: sticky; top: 0; background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
"""


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


def display_view(df: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The columns of ``df`` people should see (``columns``, those present, in that order; all
    when None), renamed with :data:`COLUMN_LABELS`; the numeric ``filling_factor`` is left out
    beside ``sparsity``, which shows the same filling factor as the run layout writes it."""
    view = df if columns is None else df[[c for c in columns if c in df]]
    if "sparsity" in view and "filling_factor" in view:  # the same value as a number
        view = view.drop(columns="filling_factor")
    return view.rename(columns=COLUMN_LABELS)


def to_html(df: pd.DataFrame, title: str = "", note: str = "", floatfmt: str = ".4f") -> str:
    """A standalone HTML page with ``df`` as a plain table (no index, no scripts).

    Cells are formatted as in :func:`to_markdown` (floats via ``floatfmt``, missing values
    blank, text verbatim and escaped); numeric columns are right-aligned.  ``title`` and
    ``note`` are shown above the table.
    """
    numeric = [
        pd.api.types.is_numeric_dtype(df.iloc[:, i])
        and not pd.api.types.is_bool_dtype(df.iloc[:, i])
        for i in range(df.shape[1])
    ]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for values in df.itertuples(index=False, name=None):
        cells = (
            f'<td class="num">{html.escape(_cell(v, floatfmt))}</td>'
            if num
            else f"<td>{html.escape(_cell(v, floatfmt))}</td>"
            for v, num in zip(values, numeric, strict=True)
        )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_HTML_STYLE}</style></head><body>",
    ]
    if title:
        parts.append(f"<h1>{html.escape(title)}</h1>")
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts += [
        f"<table><thead><tr>{head}</tr></thead><tbody>",
        *rows,
        "</tbody></table></body></html>",
    ]
    return "\n".join(parts) + "\n"


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
    title: str = "",
    note: str = "",
) -> dict[str, Path]:
    """Write ``<stem>.parquet``, ``<stem>.csv``, ``<stem>.md`` and ``<stem>.html``, each
    atomically.

    Each file is written to a temporary sibling first and renamed into place, so readers never
    see a half-written table.  ``markdown_columns`` restricts the markdown and HTML views (the
    parquet and CSV files always hold every column), which also show the column labels of
    :data:`COLUMN_LABELS`; the HTML page has ``title`` and ``note`` above its table.  Returns
    the written paths by suffix.
    """
    stem = Path(stem)
    paths = {ext: stem.with_name(f"{stem.name}.{ext}") for ext in TABLE_FORMATS}
    safe = _parquet_safe(df)
    safe.attrs = {}  # keep parquet metadata small and JSON-clean
    with atomic_path(paths["parquet"]) as tmp:
        safe.to_parquet(tmp, index=False, engine="pyarrow")
    with atomic_path(paths["csv"]) as tmp:
        df.to_csv(tmp, index=False)
    view = display_view(df, markdown_columns)
    write_text(paths["md"], to_markdown(view, floatfmt=floatfmt) + "\n")
    write_text(paths["html"], to_html(view, title, note, floatfmt=floatfmt))
    return paths
