"""Byte-reproducible writers for the synthetic raw files (xlsx, csv, csv.gz, npy, json).

Spreadsheets are written as minimal SpreadsheetML packages with fixed zip timestamps
(openpyxl would stamp the save time and is slow for 30,000-row sheets); gzip files carry
mtime 0 and no file name. The same seed therefore gives byte-identical files.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def csv_bytes(df: pd.DataFrame, float_format: str | None = None) -> bytes:
    """UTF-8 CSV text of ``df`` (no index, "\\n" line ends)."""
    return df.to_csv(index=False, lineterminator="\n", float_format=float_format).encode("utf-8")


def write_csv(path: Path, df: pd.DataFrame, float_format: str | None = None) -> None:
    """Write ``df`` as CSV; gzip-compressed (mtime 0, no file name) if the name ends in .gz."""
    data = csv_bytes(df, float_format)
    if str(path).endswith(".gz"):
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
            gz.write(data)
        data = buf.getvalue()
    Path(path).write_bytes(data)


_XLSX_STATIC = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/>'
        '<Relationship Id="rId2" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
        'Target="styles.xml"/></Relationships>'
    ),
    "xl/styles.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    ),
}


def _col(k: int) -> str:
    name = ""
    k += 1
    while k:
        k, r = divmod(k - 1, 26)
        name = chr(65 + r) + name
    return name


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(ref: str, v) -> str:
    if v is None or (isinstance(v, str) and v == "") or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return f'<c r="{ref}" t="b"><v>{int(v)}</v></c>'
    if isinstance(v, (int, np.integer)):
        return f'<c r="{ref}"><v>{int(v)}</v></c>'
    if isinstance(v, (float, np.floating)):
        return f'<c r="{ref}"><v>{float(v)!r}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{_esc(str(v))}</t></is></c>'


def write_xlsx(path: Path, header: list[str], rows: list[list], *, title: list[str] = (), sheet: str = "Sheet1") -> None:
    """Write a one-sheet .xlsx: ``title`` rows (one text cell each), the header, then ``rows``.

    A minimal SpreadsheetML package written directly (inline strings, no shared-string
    table, no timestamps), so the bytes depend only on the content; None and NaN cells are
    left empty (as are empty strings). Readable by openpyxl, pandas and spreadsheet programs.
    """
    cols = [_col(k) for k in range(max([len(header)] + [len(r) for r in rows]))]
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>']
    every = [[t] for t in title] + [list(header)] + [list(r) for r in rows]
    for i, r in enumerate(every, start=1):
        cells = "".join(_cell(f"{cols[k]}{i}", v) for k, v in enumerate(r))
        out.append(f'<row r="{i}">{cells}</row>')
    out.append("</sheetData></worksheet>")
    workbook = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
                f'<sheets><sheet name="{_esc(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>')
    parts = {**_XLSX_STATIC, "xl/workbook.xml": workbook, "xl/worksheets/sheet1.xml": "".join(out)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            zi = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            z.writestr(zi, text.encode("utf-8"))
    Path(path).write_bytes(buf.getvalue())


def write_json(path: Path, obj) -> None:
    """Pretty JSON with sorted keys and a final newline."""
    Path(path).write_text(json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_npy(path: Path, array: np.ndarray) -> None:
    """numpy .npy (deterministic)."""
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def peso(x: float) -> str:
    """Peso string as in the real files: 9000 → "₱9,000.00"."""
    return f"₱{x:,.2f}"
