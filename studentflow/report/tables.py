"""HTML tables people can read: whole numbers as whole numbers, pesos in whole pesos with
thousands separators, every table in a box that scrolls sideways inside the page.

:func:`readable` formats a frame's numbers as text (``1,234`` not ``1234.00``); columns
whose name speaks of pesos (``cost``, ``pesos``, ``₱``, ``budget``, ``subsidy``) are whole
pesos; other non-whole numbers keep ``float_format`` (default: pandas'). :func:`table_html`
escapes every text (``escape=True``), masks LRNs and wraps the table in
``<div class="table-wrap">`` (CSS ``overflow-x: auto``: :data:`TABLE_CSS`).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from studentflow.report.files import mask_lrns

__all__ = ["TABLE_CSS", "readable", "table_html", "is_pesos"]

#: CSS of the scrolling wrapper (added to the report's and the optimizer page's style).
TABLE_CSS = ".table-wrap{overflow-x:auto;max-width:100%}.table-wrap table{margin:0}"

_PESO_WORDS = ("cost", "pesos", "₱", "budget", "subsidy")


def is_pesos(column) -> bool:
    """True for a column holding pesos (by its name)."""
    name = str(column).lower()
    return any(w in name for w in _PESO_WORDS)


def _cell(v, pesos: bool, float_format):
    if isinstance(v, (bool, np.bool_)) or v is None or isinstance(v, str):
        return v
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if isinstance(v, numbers.Real):
        x = float(v)
        if not np.isfinite(x):
            return "" if np.isnan(x) else str(x)
        if pesos or (abs(x - round(x)) < 1e-9 and abs(x) < 1e15):
            return f"{x:,.0f}"
        return float_format(x) if float_format is not None else v
    return v


def readable(frame: pd.DataFrame, float_format=None) -> pd.DataFrame:
    """Copy of ``frame`` with its numbers formatted as text (see the module text)."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_bool_dtype(values) or not (pd.api.types.is_numeric_dtype(values)
                                                       or values.dtype == object):
            continue
        pesos = is_pesos(col)
        out[col] = pd.Series([_cell(v, pesos, float_format) for v in values.to_numpy()], index=out.index,
                             dtype=object)
    return out


def table_html(frame: pd.DataFrame, *, index: bool = False, float_format=None) -> str:
    """``frame`` as an escaped HTML table in a sideways-scrolling wrapper."""
    shown = frame.reset_index().rename(columns={"index": ""}) if index else frame
    html = readable(mask_lrns(shown), float_format).to_html(index=False, border=0, na_rep="", escape=True)
    return f"<div class='table-wrap'>{html}</div>"
