"""A fast, dependency-free XLSX sheet reader (zip + expat), text cells only.

openpyxl spends most of its time building cell objects; for the large school lists
this module streams the sheet XML and returns rows of text directly, with the same
text openpyxl's values would give through :func:`studentflow.ingest.columns._cell_text`
(integers without ".0", other numbers as Python floats' repr, shared and inline strings
as written). Anything unexpected raises, and the caller falls back to openpyxl.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from xml.etree import ElementTree as ET

_M = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PR = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_REF = re.compile(r"([A-Z]+)(\d+)")


_COLS: dict[str, int] = {}


def _col_index(ref: str) -> int:
    """0-based column of a cell reference ("C12" → 2), cached by its letters."""
    letters = ref.rstrip("0123456789")
    col = _COLS.get(letters)
    if col is None:
        if not _REF.fullmatch(ref):
            raise ValueError(f"cell reference {ref!r}")
        n = 0
        for ch in letters:
            n = n * 26 + (ord(ch) - 64)
        col = _COLS[letters] = n - 1
    return col


def _text(el) -> str:
    return "".join(t.text or "" for t in el.iter(f"{_M}t"))


def _inline(el) -> str:
    """Text of an inline-string cell; the common <is><t>…</t></is> shape without a search."""
    if len(el) == 1 and len(el[0]) == 1 and el[0][0].tag == f"{_M}t":
        return el[0][0].text or ""
    return _text(el)


def _number(text: str) -> str:
    try:
        return str(int(text))
    except ValueError:
        f = float(text)
        return str(int(f)) if f.is_integer() and "e" not in text.lower() and "." not in text else repr(f)


def _sheet_path(z: zipfile.ZipFile, sheet: str | None) -> str:
    wb = ET.fromstring(z.read("xl/workbook.xml"))
    sheets = [(s.get("name"), s.get(f"{_R}id")) for s in wb.iter(f"{_M}sheet")]
    if not sheets:
        raise ValueError("no sheets")
    if sheet is None:
        rid = sheets[0][1]
    else:
        match = [r for n, r in sheets if n == sheet]
        if not match:
            raise KeyError(sheet)
        rid = match[0]
    rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    target = next(r.get("Target") for r in rels.iter(f"{_PR}Relationship") if r.get("Id") == rid)
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))


def sheet_names(path) -> list[str]:
    """Names of the worksheets of an XLSX file, in order."""
    with zipfile.ZipFile(path) as z:
        wb = ET.fromstring(z.read("xl/workbook.xml"))
        return [s.get("name") for s in wb.iter(f"{_M}sheet")]


def read_rows(path, sheet: str | None = None) -> list[list[str]]:
    """Every physical row of one sheet (row 1 first; blank rows as empty lists), as text.

    Raises
    ------
    KeyError
        No sheet of that name.
    Exception
        Any other problem (not a zip, unexpected XML): the caller falls back to openpyxl.
    """
    with zipfile.ZipFile(path) as z:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            with z.open("xl/sharedStrings.xml") as fh:
                for _, el in ET.iterparse(fh):
                    if el.tag == f"{_M}si":
                        shared.append(_text(el))
                        el.clear()
        rows: list[list[str]] = []
        row: dict[int, str] = {}
        with z.open(_sheet_path(z, sheet)) as fh:
            for _, el in ET.iterparse(fh):
                tag = el.tag
                if tag == f"{_M}c":
                    ref, t = el.get("r"), el.get("t")
                    col = _col_index(ref) if ref else len(row)
                    if t == "inlineStr":
                        val = _inline(el)
                    else:
                        v = el.find(f"{_M}v")
                        raw = v.text if v is not None else None
                        if raw is None:
                            val = ""
                        elif t == "s":
                            val = shared[int(raw)]
                        elif t in ("str", "e"):
                            val = raw
                        elif t == "b":
                            val = "True" if raw == "1" else "False"
                        elif t in (None, "n"):
                            val = _number(raw)
                        else:
                            raise ValueError(f"cell type {t!r}")
                    row[col] = val
                elif tag == f"{_M}row":
                    r = el.get("r")
                    n = int(r) if r else len(rows) + 1
                    while len(rows) < n - 1:
                        rows.append([])
                    width = max(row) + 1 if row else 0
                    rows.append([row.get(i, "") for i in range(width)])
                    row = {}
                    el.clear()
        return rows
