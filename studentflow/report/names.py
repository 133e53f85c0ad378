"""Names and places of schools in per-school outputs, and text made safe for spreadsheets.

Every per-school table the report writes carries, beside ``school_id``, the school's
name, municipality, province, region and sector from the bundle's ``schools`` table
(:data:`studentflow.schema.SCHOOLS`). These texts come from raw government files, so they
are treated as untrusted:

- in HTML they are escaped (``pandas.DataFrame.to_html(escape=True)``, :func:`html.escape`);
- in CSV a text cell a spreadsheet would run as a formula (first character ``=``, ``+``,
  ``-``, ``@``, tab or carriage return) is written with a leading apostrophe, which
  spreadsheets show as text (OWASP "CSV injection"). A text cell already starting with an
  apostrophe gets one more, so :func:`unsafe_text` restores every cell exactly. Numeric
  columns are never touched, so negative numbers stay numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PLACE_COLUMNS", "school_labels", "with_names", "spreadsheet_safe", "unsafe_text",
           "FORMULA_STARTS"]

#: Columns added beside ``school_id`` in per-school outputs, in this order.
PLACE_COLUMNS: tuple[str, ...] = ("name", "municipality", "province", "region", "sector")

#: First characters that make a spreadsheet evaluate a cell (plus the apostrophe itself,
#: escaped so that the escaping can be undone).
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r", "'")


def school_labels(bundle) -> pd.DataFrame:
    """Name and place of every school of ``bundle`` (index ``school_id``, :data:`PLACE_COLUMNS`).

    Columns the bundle's ``schools`` table lacks are filled with "" (e.g. a test bundle
    holding names only); ``None`` (no bundle) gives an empty table.
    """
    if bundle is None or getattr(bundle, "schools", None) is None:
        return pd.DataFrame(columns=list(PLACE_COLUMNS), index=pd.Index([], name="school_id"))
    s = bundle.schools
    out = pd.DataFrame(index=pd.Index(s.index.astype(str), name="school_id"))
    for col in PLACE_COLUMNS:
        out[col] = s[col].astype("string").fillna("").to_numpy() if col in s else ""
    return out


def with_names(frame: pd.DataFrame, labels: pd.DataFrame, *, id_column: str = "school_id",
               prefix: str = "", columns=PLACE_COLUMNS) -> pd.DataFrame:
    """Copy of ``frame`` with ``columns`` of ``labels`` inserted right after ``id_column``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Holds ``id_column`` (school ids).
    labels : pandas.DataFrame
        :func:`school_labels`. Empty: ``frame`` is returned unchanged.
    prefix : str
        Prefix of the new column names (e.g. ``"origin_"`` → ``origin_name``).
    """
    if labels is None or labels.empty or frame.empty or id_column not in frame:
        return frame
    out = frame.copy()
    at = out.columns.get_loc(id_column) + 1
    pos = labels.index.get_indexer(out[id_column].astype(str))  # each id looked up once, for every column
    for k, col in enumerate(columns):
        if f"{prefix}{col}" in out:
            continue
        known = labels[col]
        if isinstance(known.dtype, pd.StringDtype) and known.dtype.na_value is np.nan:  # school_labels' "str"
            cell = known.fillna("").array.take(pos, allow_fill=True, fill_value="")  # the same column, in C
        else:
            cell = np.full(len(pos), "", dtype=object)
            cell[pos >= 0] = known.to_numpy(dtype=object)[pos[pos >= 0]]
            cell[pd.isna(cell)] = ""
        out.insert(at + k, f"{prefix}{col}", cell)
    return out


def _text_columns(frame: pd.DataFrame) -> list:
    return [c for c in frame.columns
            if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` whose text cells cannot run as spreadsheet formulas.

    A text cell starting with one of :data:`FORMULA_STARTS` gets a leading apostrophe;
    numeric, boolean and missing cells are left alone (a negative number in a numeric
    column stays a number). :func:`unsafe_text` undoes it.
    """
    out = frame.copy()
    for col in _text_columns(out):
        values = out[col]
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_STARTS).fillna(False).astype(bool)
        if not risky.any():
            continue
        is_str = values.map(lambda v: isinstance(v, str)).astype(bool)
        hit = risky & is_str
        out[col] = values.astype(object).where(~hit, "'" + text.astype(object))
    return out


def unsafe_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`spreadsheet_safe` on a table read back from CSV (text columns only)."""
    out = frame.copy()
    for col in _text_columns(out):
        text = out[col].astype("string")
        quoted = text.str.startswith("'").fillna(False).astype(bool)
        if quoted.any():
            out[col] = out[col].where(~quoted, text.str.slice(1).astype(object))
    return out
