"""Raw tables: reading CSV / CSV.gz / XLSX as text, finding the header row under title
banners, and matching column names despite case, spacing, underscores and known typos.

Every table returned here has text cells only (IDs keep their written form) and a
``_row`` column holding the 1-based physical row of the raw file (title rows and the
header counted; for CSV the line number), which is what the ledger records.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
from studentflow.errors import DataError
from studentflow.ingest.headers import (  # noqa: F401  (re-exported: the readers' and tests' names)
    FUZZY_COLUMN_SCORE, HEADER_SCAN_ROWS, Col, Match, find_header, label_key, locate, match_columns, match_how,
    snake,
)

# ----------------------------------------------------------------------- raw reading
def _cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if np.isnan(v):
            return ""
        return repr(v)
    return str(v)


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


#: Integral numbers below this magnitude read as integers ("123"); at or above it as
#: ``repr`` ("1e+16"), as openpyxl gives them: Excel and openpyxl write 16 significant
#: digits, so only from 1e16 on does a workbook hold exponent notation (a float to openpyxl).
_INT_TEXT_LIMIT = 1e16


def _number_text(v: float) -> str:
    """Text of a numeric cell: integral values without ".0", others as ``repr``, NaN as ''."""
    if v.is_integer() and -_INT_TEXT_LIMIT < v < _INT_TEXT_LIMIT:
        return str(int(v))
    return repr(v) if v == v else ""


def _value_text(v) -> str:
    """Text of a calamine cell value, as :func:`_cell_text` gives openpyxl's value."""
    if v.__class__ is float:
        return _number_text(v)
    if v.__class__ is _dt.date:  # openpyxl gives a datetime at midnight
        return str(_dt.datetime(v.year, v.month, v.day))
    return str(v)  # bool, int, datetime, time, timedelta


class _FloatText(dict):
    """Memo float → text: a sheet repeats few distinct numbers (counts, years)."""

    def __missing__(self, v: float) -> str:
        text = self[v] = _number_text(v)
        return text


def _xlsx_rows(path: Path, sheet: str | None, name: str, info: dict | None = None) -> list[list[str]]:
    """Every physical row of one sheet (row 1 first) as text, read with calamine.

    Cells as openpyxl's values through :func:`_cell_text`, except where calamine has no
    way to know: a number written "14590.0" reads "14590" (calamine keeps only the float),
    and an error cell ("#N/A") reads '' (blank). Rows are padded to the last used column
    and end at the last used row. A workbook calamine cannot open goes to openpyxl, which
    reads it or raises the DataError naming the file. ``info["sheet"]`` receives the name
    of the sheet read.

    Raises
    ------
    DataError
        No sheet named ``sheet`` (the message lists the sheets), or the file cannot be
        read as an XLSX workbook.
    """
    values, text = _xlsx_values(path, sheet, name, info)
    return values if text else [_text_row(r, _FloatText()) for r in values]


def _text_row(r: list, floats: _FloatText) -> list[str]:
    """A calamine row as text (:func:`_xlsx_rows`)."""
    return [v if v.__class__ is str else floats[v] if v.__class__ is float else _value_text(v) for v in r]


def _xlsx_values(path: Path, sheet: str | None, name: str, info: dict | None = None) -> tuple[list[list], bool]:
    """The rows of :func:`_xlsx_rows` as calamine's values (``False``: turn each cell to
    text with :func:`_text_row`), or as openpyxl's text (``True``) when calamine fails."""
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception:  # not a zip, broken XML, encrypted: openpyxl reads it or says why
        return _xlsx_rows_openpyxl(path, sheet, name, info), True
    try:
        names = list(wb.sheet_names)
        if sheet is not None and sheet not in names:
            raise DataError(f"{name}: no sheet {sheet!r}; found {names}")
        if not names:
            raise DataError(f"{name}: the workbook has no sheets")
        if info is not None:
            info["sheet"] = names[0] if sheet is None else sheet
        try:
            values = wb.get_sheet_by_name(names[0] if sheet is None else sheet).to_python(skip_empty_area=False)
        except Exception:
            return _xlsx_rows_openpyxl(path, sheet, name, info), True
    finally:
        wb.close()
    return values, False


def _xlsx_rows_openpyxl(path: Path, sheet: str | None, name: str, info: dict | None = None) -> list[list[str]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zip / xml errors of every sort
        raise DataError(f"{name}: cannot read as an XLSX workbook ({type(exc).__name__}: {exc})") from None
    try:
        if sheet is not None:
            if sheet not in wb.sheetnames:
                raise DataError(f"{name}: no sheet {sheet!r}; found {wb.sheetnames}")
            ws = wb[sheet]
        else:
            ws = wb[wb.sheetnames[0]]
        if info is not None:
            info["sheet"] = ws.title
        rows = [[_cell_text(v) for v in r] for r in ws.iter_rows(min_row=1, values_only=True)]
    finally:
        wb.close()
    return rows


def _csv_head(path: Path, name: str, n: int) -> list[list[str]]:
    try:
        with _open_text(path) as fh:
            out = []
            for i, r in enumerate(csv.reader(fh)):
                if i >= n:
                    break
                out.append(r)
            return out
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise DataError(f"{name}: cannot read as CSV text ({type(exc).__name__}: {exc})") from None


def read_table(path: Path, cols: list[Col], *, name: str, sheet: str | None = None, header_row: int | None = None,
               mapping: dict | None = None, extra: re.Pattern | None = None) -> pd.DataFrame:
    """Read one raw file into a text DataFrame with canonical column names and ``_row``.

    Parameters
    ----------
    path : Path
        CSV, CSV.gz or XLSX file.
    cols : list of Col
        Expected columns; optional ones missing from the file are absent from the result.
    name : str
        File name used in error messages (relative to the manifest folder).
    sheet : str, optional
        Worksheet of an XLSX file (default: the first).
    header_row : int, optional
        1-based row of the header (manifest ``header_row``); default: found under the
        title rows.
    mapping : dict, optional
        Manifest ``[source.columns]``: canonical name → the file's header text; wins over
        aliases and fuzzy matching.
    extra : re.Pattern, optional
        Also keep the columns whose snake_case header matches (e.g. SHS strand counts),
        under their raw header; listed in ``attrs["extra"]``.

    Returns
    -------
    pandas.DataFrame
        One row per non-blank data row; text cells as written ('' where blank; not
        stripped, so a padded ID stays visible); ``_row`` the 1-based physical row.
        ``attrs``: ``header_row`` (1-based), ``sheet`` (None for CSV), ``columns``
        ({canonical name: :class:`Match`}) and ``extra``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{name}: file not found ({path})")
    if path.stat().st_size == 0:
        raise DataError(f"{name}: the file is empty")
    suffix = path.name.lower()
    info: dict = {"sheet": None}
    if suffix.endswith((".xlsx", ".xlsm")):
        values, text = _xlsx_values(path, sheet, name, info)
        floats = _FloatText()
        rows = values if text else [_text_row(r, floats) for r in values[:max(HEADER_SCAN_ROWS, int(header_row or 0))]]
        try:  # the header among the first rows, as for CSV (only the cells needed are turned to text)
            h, how = locate(rows, cols, name, header_row=header_row, mapping=mapping)
        except DataError:  # the message as for the whole sheet
            rows = values if text else [_text_row(r, floats) for r in values]
            h, how = locate(rows, cols, name, header_row=header_row, mapping=mapping)
        found = _found(rows[h], cols, how, extra)
        frame = _frame_from_rows(values, h, found) if text else _frame_from_values(values, rows[h], h, found, floats)
        return _with_header(frame, h, cols, how, found, info)
    if suffix.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        head = _csv_head(path, name, max(HEADER_SCAN_ROWS, int(header_row or 0)))
        h, how = locate(head, cols, name, header_row=header_row, mapping=mapping)
        found = _found(head[h], cols, how, extra)
        try:
            return _with_header(_csv_fast(path, h, head[h], found), h, cols, how, found, info)
        except Exception:  # ragged lines, blank lines: the exact slow path
            pass
        try:
            with _open_text(path) as fh:
                rows = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
            raise DataError(f"{name}: cannot read as CSV text ({type(exc).__name__}: {exc})") from None
        return _with_header(_frame_from_rows(rows, h, found), h, cols, how, found, info)
    raise DataError(f"{name}: unsupported file type (expected .csv, .csv.gz or .xlsx)")


def _found(header: list[str], cols: list[Col], how: dict[str, Match], extra) -> dict[str, str]:
    """{frame column: raw header}: the matched columns, plus the ``extra`` ones."""
    found = {k: m.header for k, m in how.items()}
    if extra is not None:
        used = set(found.values())
        for h in header:
            if h not in used and str(h).strip() and extra.fullmatch(snake(h)) and h not in found:
                found[h] = h
    return found


def _with_header(df: pd.DataFrame, h: int, cols=(), how=None, found=None, info=None) -> pd.DataFrame:
    """Remember the header's physical row (1-based), sheet and column matches in ``df.attrs``."""
    df.attrs["header_row"] = h + 1
    canon = {c.name: c.canon for c in cols}
    df.attrs["columns"] = {canon[k]: m for k, m in (how or {}).items()}
    df.attrs["extra"] = [k for k in (found or {}) if k not in canon]
    df.attrs["sheet"] = (info or {}).get("sheet")
    return df


def _frame_from_rows(rows: list[list[str]], h: int, found: dict[str, str]) -> pd.DataFrame:
    header = rows[h]
    pos = {c: header.index(raw) for c, raw in found.items()}
    data: dict[str, list] = {c: [] for c in pos}
    phys: list[int] = []
    for i in range(h + 1, len(rows)):
        r = rows[i]
        if not any(str(v).strip() for v in r):
            continue
        phys.append(i + 1)
        for c, j in pos.items():
            data[c].append(str(r[j]) if j < len(r) else "")
    out = pd.DataFrame({c: pd.Series(v, dtype="str") for c, v in data.items()})
    out["_row"] = np.asarray(phys, dtype="int64")
    return out


def _frame_from_values(values: list[list], header: list[str], h: int, found: dict[str, str],
                       floats: _FloatText) -> pd.DataFrame:
    """:func:`_frame_from_rows` of calamine's values (``header``: row ``h`` as text): only
    the needed columns' cells are turned to text, column by column (a national workbook:
    1.7 million cells). The rows go to a 2-D object array at once when they are all as
    wide, and a column of only strings or only floats is turned to text at once
    (:func:`_cells_text`); otherwise cell by cell."""
    pos = {c: header.index(raw) for c, raw in found.items()}

    def filled(r) -> bool:  # not blank: a cell whose text is not blank (stops at the first)
        return any((v if v.__class__ is str else floats[v] if v.__class__ is float else _value_text(v)).strip()
                   for v in r)

    body = values[h + 1:]
    grid = _grid(body)
    if grid is None:
        kept = [i for i in range(h + 1, len(values)) if filled(values[i])]
    else:  # column by column over the rows not yet known to be filled (most: by the first column)
        kept = (np.flatnonzero(_filled_rows(grid, floats)) + h + 1).tolist()
    data = {}
    for c, j in pos.items():
        if grid is not None and j < grid.shape[1]:
            cells = grid[:, j] if len(kept) == len(body) else grid[np.asarray(kept, dtype=np.intp) - h - 1, j]
        else:
            cells = [values[i][j] if j < len(values[i]) else "" for i in kept]
        data[c] = pd.Series(_cells_text(cells, floats), dtype="str")
    out = pd.DataFrame(data) if data else pd.DataFrame(index=pd.RangeIndex(len(kept)))
    out["_row"] = np.asarray(kept, dtype="int64") + 1
    return out


def _grid(rows: list[list]) -> np.ndarray | None:
    """Rows all as wide as a 2-D object array (cells as they are), else None."""
    if not rows or len(set(map(len, rows))) != 1:
        return None
    grid = np.empty((len(rows), len(rows[0])), dtype=object)
    grid[:] = rows
    return grid


def _filled_rows(grid: np.ndarray, floats: _FloatText) -> np.ndarray:
    """Rows of ``grid`` with a cell whose text (:func:`_text_row`) is not blank."""
    filled = np.zeros(grid.shape[0], dtype=bool)
    todo = np.arange(grid.shape[0])
    for j in range(grid.shape[1]):
        if not todo.size:
            break
        text = (v if v.__class__ is str else floats[v] if v.__class__ is float else _value_text(v)
                for v in grid[todo, j])
        hit = np.fromiter((bool(t.strip()) for t in text), dtype=bool, count=todo.size)
        filled[todo[hit]] = True
        todo = todo[~hit]
    return filled


def _cells_text(cells, floats: _FloatText):
    """Text of calamine cell values (:func:`_text_row`'s rule), at once for a column of
    only ``str`` (kept) or only ``float`` (integral values below 1e16 as integers, NaN
    blank, others through ``floats``); cell by cell otherwise.

    Parameters
    ----------
    cells : sequence
        One column's calamine values.
    floats : _FloatText
        Memo of float texts.

    Returns
    -------
    pyarrow.StringArray or list of str
        One text per cell (``pandas.Series(..., dtype="str")`` takes either).
    """
    import pyarrow as pa

    kinds = set(map(type, cells))
    if kinds == {str}:
        return pa.array(cells, type=pa.string())
    if kinds != {float}:
        return [v if v.__class__ is str else floats[v] if v.__class__ is float else _value_text(v) for v in cells]
    f = np.fromiter(cells, dtype=np.float64, count=len(cells))
    whole = np.isfinite(f) & (np.trunc(f) == f) & (np.abs(f) < _INT_TEXT_LIMIT)
    if whole.all():
        return pa.array(f.astype(np.int64)).cast(pa.string())
    out = np.empty(f.size, dtype=object)
    out[whole] = f[whole].astype(np.int64).astype(str).tolist()
    nan = np.isnan(f)
    out[nan] = ""
    rest = ~(whole | nan)
    out[rest] = [floats[v] for v in f[rest].tolist()]
    return out.tolist()


def _csv_fast(path: Path, h: int, header: list[str], found: dict[str, str]) -> pd.DataFrame:
    """pyarrow reader: only the needed columns, all as text; exact row numbers."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    if len(set(header)) != len(header):
        raise ValueError("duplicate header labels")
    raw_cols = list(found.values())
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(skip_rows=h, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False, newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(
            include_columns=raw_cols,
            column_types={c: pa.string() for c in raw_cols},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    out = pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for c, raw in found.items():
        out[c] = table.column(raw).to_pandas().astype("str")
    # with ignore_empty_lines=False every physical line below the header is one row, so
    # row k is line h + 2 + k; a row blank in every needed column (a blank line, or data
    # only in other columns) is left to the exact slow path
    if len(out) and (out[list(found)].apply(lambda c: c.str.strip() == "").all(axis=1)).any():
        raise ValueError("blank rows: use the exact reader")
    out["_row"] = np.arange(h + 2, h + 2 + table.num_rows, dtype="int64")
    return out
