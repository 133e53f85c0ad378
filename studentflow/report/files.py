"""Writing output files: atomically, without LRNs, spreadsheet-safe CSV.

Every file is written atomically: first to a hidden temporary name in the same folder,
then moved into place with :func:`os.replace`, so a run that fails never leaves a
half-written file under a final name. No learner reference number (LRN) is written: any
12-digit number in a text field is masked.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["atomic_write", "mask_lrns", "csv_cells"]

_LRN = re.compile(r"(?<!\d)\d{12}(?!\d)")


def mask_lrns(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` with every 12-digit number in text columns replaced by a mask."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            codes, uniques = pd.factorize(out[col].astype("string"))  # each distinct text once
            if not len(uniques):  # nothing but missing values: nothing to mask
                out[col] = pd.array([pd.NA] * len(out), dtype="string")
                continue
            masked = pd.Series(uniques).astype("string").str.replace(_LRN, "[LRN removed]", regex=True)
            out[col] = pd.array(masked.to_numpy(dtype=object)[codes], dtype="string")
            out.loc[codes < 0, col] = pd.NA
    return out


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path``.

    The temporary file sits in the same folder (so :func:`os.replace` is atomic) under a
    hidden name with the same suffix; it is removed if ``write`` fails. The file gets the
    permissions an ordinary new file would (0o666 less the umask), not mkstemp's 0o600,
    so an output folder handed over on a shared machine can be read.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        if path.suffix == ".gpkg":
            tmp.unlink()  # the GPKG driver wants to create the file itself
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process umask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def floats_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each float64 column as the text ``to_csv`` writes for it (missing kept).

    pandas writes a float column as numpy's ``astype(str)`` of it: the shortest repr, as
    Python's ``float.__repr__``, which is 1.7x faster (public_jhs.csv nationally: 790,000
    floats). Same text, so the same CSV bytes. Apply after the text columns are masked:
    the numbers' text is not a learner's (:func:`mask_lrns` would take a 12-digit one).
    """
    out = frame
    for i in range(frame.shape[1]):
        col = frame.iloc[:, i]
        if col.dtype != np.float64:
            continue
        v = col.to_numpy()
        text = np.array(list(map(float.__repr__, v.tolist())), dtype=object)
        text[np.isnan(v)] = np.nan
        out = frame.copy(deep=False) if out is frame else out
        out.isetitem(i, pd.Series(text, index=frame.index, dtype=object))
    return out


#: rows of a ``.csv.gz`` turned to text and compressed at a time (:func:`_write_csv`)
GZ_ROWS = 1 << 17


def _write_csv(path: Path, frame: pd.DataFrame, rows: int = GZ_ROWS) -> Path:
    """CSV without LRNs, whose text cells a spreadsheet shows as text (never as formulas).

    A ``.csv.gz`` is written ``rows`` rows at a time (each cell's text depends on the cell
    alone), into one gzip stream with no file name or time stamp: the bytes of
    ``gzip.compress(whole text, compresslevel=3, mtime=0)``, without the whole text, its
    floats as Python strings and its bytes in memory at once (the national drill-down's
    ``esc_origins``, 2.4 million rows, took 2 GB that way)."""
    def csv_text(part, buf=None, header=True):
        text = csv_cells(part, header=header)
        if buf is None:
            return text
        with open(buf, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)

    if path.suffix == ".gz":
        import zlib

        def write(tmp):
            from concurrent.futures import ThreadPoolExecutor

            z = zlib.compressobj(3, zlib.DEFLATED, 31)  # gzip.compress(level 3, mtime=0)'s stream
            with open(tmp, "wb") as fh, ThreadPoolExecutor(1) as deflate:  # zlib lets go of the GIL:
                pending = None  # one block compressed on the other thread while the next one's text is made
                for a in range(0, max(len(frame), 1), max(int(rows), 1)):
                    data = csv_text(frame.iloc[a:a + rows], header=a == 0).encode("utf-8")
                    if pending is not None:
                        fh.write(pending.result())
                    pending = deflate.submit(z.compress, data)
                if pending is not None:
                    fh.write(pending.result())
                fh.write(z.flush())

        return atomic_write(path, write)
    return atomic_write(path, lambda tmp: csv_text(frame, tmp))


def _csv_quoted(texts) -> list[str]:
    """Each text as the csv module writes it in a row of several fields (QUOTE_MINIMAL, as
    ``DataFrame.to_csv``): asked of the csv module itself, so its rules hold exactly."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    out = []
    for t in texts:
        buf.seek(0)
        buf.truncate()
        writer.writerow((t, ""))
        out.append(buf.getvalue()[:-2])  # less the empty second field's "," and the "\n"
    return out


def _column_cells(col: pd.Series) -> list | None:
    """The CSV text of every cell of ``col`` as :func:`_write_csv` writes it (text masked and
    made spreadsheet-safe, floats as their repr, missing as ""), worked out once per distinct
    value; None for a dtype left to pandas."""
    from studentflow.report.names import FORMULA_STARTS

    if col.dtype == object or pd.api.types.is_string_dtype(col):
        codes, uniques = pd.factorize(col.astype("string"))  # as mask_lrns, then spreadsheet_safe
        texts = pd.Series(uniques, dtype="string").str.replace(_LRN, "[LRN removed]", regex=True).tolist()
        texts = _csv_quoted(["'" + t if t.startswith(FORMULA_STARTS) else t for t in texts])
    elif col.dtype == np.float64:
        v = col.to_numpy()
        codes, uniques = pd.factorize(v.view(np.int64))  # by bits: 0.0 and -0.0 stay apart
        texts = list(map(float.__repr__, uniques.view(np.float64).tolist()))
        codes = np.where(np.isnan(v), -1, codes)
    elif col.dtype == np.bool_ or (col.dtype.kind in "iu" and isinstance(col.dtype, np.dtype)):
        codes, uniques = pd.factorize(col.to_numpy())
        texts = [str(u) for u in uniques.tolist()]
    else:
        return None
    table = np.array([*texts, ""], dtype=object)  # code -1 (missing): the last, ""; numbers need no quotes
    return table[codes].tolist()


def csv_cells(frame: pd.DataFrame, header: bool = True) -> str:
    """CSV text of ``frame`` without LRNs, spreadsheet-safe: byte for byte
    ``floats_as_text(spreadsheet_safe(mask_lrns(frame))).to_csv(index=False, header=header)``.

    Text, float, integer and boolean columns are turned to text once per distinct value
    and the rows joined directly (the national drill-down's 2.4 million rows, most of them
    repeating names); a frame with another dtype, one column or no rows goes through
    pandas as above.
    """
    from studentflow.report.names import spreadsheet_safe

    cols = [_column_cells(frame.iloc[:, i]) for i in range(frame.shape[1])] if frame.shape[1] > 1 else [None]
    if len(frame) == 0 or any(c is None for c in cols):
        return floats_as_text(spreadsheet_safe(mask_lrns(frame))).to_csv(index=False, header=header)
    lines = [",".join(_csv_quoted([str(c) for c in frame.columns]))] if header else []
    lines.extend(map(",".join, zip(*cols)))
    return "\n".join(lines) + "\n"
