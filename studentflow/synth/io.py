"""Byte-reproducible writers for the synthetic raw files (xlsx, csv, csv.gz, npy, json).

openpyxl stamps the save time into ``docProps/core.xml`` and every zip member; both are
rewritten to a fixed date so that the same seed gives byte-identical files.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

FIXED_TIME = datetime(2024, 1, 1, 0, 0, 0)
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


def write_xlsx(path: Path, header: list[str], rows: list[list], *, title: list[str] = (), sheet: str = "Sheet1") -> None:
    """Write one sheet: ``title`` rows (one text cell each), the header, then ``rows``.

    None cells are left empty. The file is byte-reproducible (fixed timestamps).
    """
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    wb.properties.creator = "studentflow.synth"
    wb.properties.created = FIXED_TIME
    ws = wb.create_sheet(sheet)
    for t in title:
        ws.append([t])
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    buf = io.BytesIO()
    wb.save(buf)
    Path(path).write_bytes(_fix_zip(buf.getvalue()))


def _fix_zip(data: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = body.decode("utf-8")
                text = re.sub(r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)", rf"\g<1>{stamp}\g<3>", text)
                body = text.encode("utf-8")
            zi = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            dst.writestr(zi, body)
    return out.getvalue()


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
