"""HTML building blocks of the report: escaped text, tables from DataFrames, the one-line "absent" notice."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

MAX_ROWS = 300
"""Rows shown per table; a longer table says how many were left out (the Parquet file has them all)."""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<span class="na">-</span>'
    if isinstance(value, float):
        return esc(f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}")
    if isinstance(value, pd.Timestamp):
        return esc(value.strftime("%Y-%m-%d %H:%M:%S"))
    return esc(value)


def table(df: pd.DataFrame, columns: Sequence[str] | None = None, css: str = "") -> str:
    cols = list(columns) if columns is not None else [str(c) for c in df.columns]
    shown = df.head(MAX_ROWS)
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    rows = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in rec) + "</tr>"
        for rec in shown[cols].itertuples(index=False, name=None)
    )
    more = f'<p class="note">{len(df) - MAX_ROWS} more rows not shown.</p>' if len(df) > MAX_ROWS else ""
    return f'<table class="{esc(css)}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}'


def absent(what: str) -> str:
    """The one line a section shows instead of its content when its data is not there."""
    return f'<p class="absent">{esc(what)}</p>'


def figure(svg: str, caption: str) -> str:
    return f'<figure class="plot">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def notes(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in lines) + "</ul>"
