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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from studentflow.errors import DataError

#: Rows scanned for the header under title banners.
HEADER_SCAN_ROWS = 25
#: Minimum rapidfuzz ratio (0-100) for a fuzzy column-name match.
FUZZY_COLUMN_SCORE = 88.0


@dataclass(frozen=True)
class Col:
    """One expected column: canonical name, accepted spellings, and whether required."""

    name: str
    aliases: tuple[str, ...] = ()
    required: bool = True


def label_key(text) -> str:
    """Comparison key of a column label: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower()) if text is not None else ""


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


def _xlsx_rows(path: Path, sheet: str | None, name: str) -> list[list[str]]:
    """Every physical row of one sheet (row 1 first) as text, read with calamine.

    Cells as openpyxl's values through :func:`_cell_text`, except where calamine has no
    way to know: a number written "14590.0" reads "14590" (calamine keeps only the float),
    and an error cell ("#N/A") reads '' (blank). Rows are padded to the last used column
    and end at the last used row. A workbook calamine cannot open goes to openpyxl, which
    reads it or raises the DataError naming the file.

    Raises
    ------
    DataError
        No sheet named ``sheet`` (the message lists the sheets), or the file cannot be
        read as an XLSX workbook.
    """
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception:  # not a zip, broken XML, encrypted: openpyxl reads it or says why
        return _xlsx_rows_openpyxl(path, sheet, name)
    try:
        names = list(wb.sheet_names)
        if sheet is not None and sheet not in names:
            raise DataError(f"{name}: no sheet {sheet!r}; found {names}")
        if not names:
            raise DataError(f"{name}: the workbook has no sheets")
        try:
            values = wb.get_sheet_by_name(names[0] if sheet is None else sheet).to_python(skip_empty_area=False)
        except Exception:
            return _xlsx_rows_openpyxl(path, sheet, name)
    finally:
        wb.close()
    floats = _FloatText()
    return [[v if v.__class__ is str else floats[v] if v.__class__ is float else _value_text(v) for v in r]
            for r in values]


def _xlsx_rows_openpyxl(path: Path, sheet: str | None, name: str) -> list[list[str]]:
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


def find_header(rows: list[list[str]], cols: list[Col], name: str) -> int:
    """0-based index of the header row among ``rows``: the first row naming most columns.

    Raises
    ------
    DataError
        If no row among the first :data:`HEADER_SCAN_ROWS` names at least two expected
        columns (or all of them, when fewer than two are expected).
    """
    keys = [{label_key(c.name), *(label_key(a) for a in c.aliases)} for c in cols]
    best, best_i = 0, -1
    for i, r in enumerate(rows[:HEADER_SCAN_ROWS]):
        cells = {label_key(v) for v in r if str(v).strip()}
        score = sum(1 for k in keys if k & cells)
        if score > best:
            best, best_i = score, i
    if best < min(2, len(cols)) or best_i < 0:
        if not any(any(str(v).strip() for v in r) for r in rows):
            raise DataError(f"{name}: the file is empty")
        raise DataError(
            f"{name}: no header row found in the first {HEADER_SCAN_ROWS} rows; "
            f"expected columns such as {[c.name for c in cols[:4]]}"
        )
    return best_i


def match_columns(header: list[str], cols: list[Col], name: str) -> dict[str, str]:
    """Map canonical column names to the raw header labels that carry them.

    Exact key matches (case, spacing and punctuation ignored) and aliases first, then a
    fuzzy match (rapidfuzz ratio >= :data:`FUZZY_COLUMN_SCORE`) among the labels left.

    Raises
    ------
    DataError
        A required column has no match; the message lists the closest labels found.
    """
    labels = [h for h in header if str(h).strip()]
    by_key: dict[str, str] = {}
    for h in labels:
        by_key.setdefault(label_key(h), h)
    used: set[str] = set()
    found: dict[str, str] = {}
    for c in cols:
        for k in (label_key(c.name), *(label_key(a) for a in c.aliases)):
            if k in by_key and by_key[k] not in used:
                found[c.name] = by_key[k]
                used.add(by_key[k])
                break
    for c in cols:
        if c.name in found:
            continue
        left = {label_key(h): h for h in labels if h not in used}
        if left:
            hit = process.extractOne(label_key(c.name), list(left), scorer=fuzz.ratio)
            if hit and hit[1] >= FUZZY_COLUMN_SCORE:
                found[c.name] = left[hit[0]]
                used.add(left[hit[0]])
                continue
        if c.required:
            near = process.extract(c.name, labels, scorer=fuzz.WRatio, limit=3)
            near_txt = ", ".join(repr(h) for h, s, _ in near) if near else "no columns"
            raise DataError(f"{name}: no column for {c.name!r}; found {near_txt}")
    return found


def read_table(path: Path, cols: list[Col], *, name: str, sheet: str | None = None) -> pd.DataFrame:
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

    Returns
    -------
    pandas.DataFrame
        One row per non-blank data row; text cells as written ('' where blank; not
        stripped, so a padded ID stays visible); ``_row`` the 1-based physical row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{name}: file not found ({path})")
    if path.stat().st_size == 0:
        raise DataError(f"{name}: the file is empty")
    suffix = path.name.lower()
    if suffix.endswith((".xlsx", ".xlsm")):
        rows = _xlsx_rows(path, sheet, name)
        h = find_header(rows, cols, name)
        found = match_columns(rows[h], cols, name)
        return _with_header(_frame_from_rows(rows, h, found), h)
    if suffix.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        head = _csv_head(path, name, HEADER_SCAN_ROWS)
        h = find_header(head, cols, name)
        found = match_columns(head[h], cols, name)
        try:
            return _with_header(_csv_fast(path, h, head[h], found), h)
        except Exception:  # ragged lines, blank lines: the exact slow path
            pass
        try:
            with _open_text(path) as fh:
                rows = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
            raise DataError(f"{name}: cannot read as CSV text ({type(exc).__name__}: {exc})") from None
        return _with_header(_frame_from_rows(rows, h, found), h)
    raise DataError(f"{name}: unsupported file type (expected .csv, .csv.gz or .xlsx)")


def _with_header(df: pd.DataFrame, h: int) -> pd.DataFrame:
    """Remember the header's physical row (1-based) in ``df.attrs["header_row"]``."""
    df.attrs["header_row"] = h + 1
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
