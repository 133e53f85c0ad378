"""What every per-kind reader shares: reading with the manifest's options, noting what was
detected, and normalising / de-duplicating ID columns with ledger rows.
"""

from __future__ import annotations

import pandas as pd

from studentflow.ingest import values as V
from studentflow.ingest.columns import Col, read_table
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source

#: Headers of a DepEd school-ID column met in real files (besides "BEIS School ID").
SCHOOL_ID_ALIASES: tuple[str, ...] = (
    "School ID", "SchoolID", "BEIS ID", "BEIS School ID", "LIS School ID", "beis_school_id", "School_ID",
    "DepEd School ID Number", "DepEd School ID", "school_id",
)

_PLAIN_NUMBER = r"\d+(\.\d*)?"


def read(src: Source, cols: list[Col], ledger: Ledger, extra=None) -> pd.DataFrame:
    """Read ``src`` with its manifest options (sheet, header_row, ``[source.columns]``);
    record the rows read, the header correction and what was detected."""
    df = read_table(src.path, cols, name=src.file, sheet=src.sheet, header_row=src.header_row,
                    mapping=src.mapping, extra=extra)
    note_read(src, len(df), int(df.attrs.get("header_row", 1)), ledger,
              sheet=df.attrs.get("sheet"), columns=df.attrs.get("columns", {}))
    return df


def note_read(src: Source, rows: int, header_row: int, ledger: Ledger, *, sheet=None, columns=None) -> None:
    """Record the rows read of a file, what was detected (sheet, header row, column
    matches) and, if its header sat below row 1, that correction."""
    ledger.rows_read[(src.kind, src.file)] = rows
    ledger.detected[(src.kind, src.file)] = {"sheet": sheet, "header_row": header_row, "columns": dict(columns or {})}
    if header_row > 1:
        ledger.add(src.kind, src.file, header_row, "", "corrected",
                   f"header found on row {header_row}, below {header_row - 1} title/blank row(s), which were skipped")


def text_written(raw: pd.Series, parsed: pd.Series) -> pd.Series:
    """Cells that parsed to a number but were not written as a plain number ("1,250", "₱9,000.00")."""
    return parsed.notna() & ~raw.str.strip().str.fullmatch(_PLAIN_NUMBER).fillna(False).astype(bool)


def school_id_col(df: pd.DataFrame, col: str, src: Source, ledger: Ledger, what: str = "school ID") -> pd.DataFrame:
    """Normalise ``df[col]`` to 6-digit IDs; drop (and record) rows where it is invalid."""
    ids, _ = V.school_ids(df[col], src.old_ids)
    bad = ids == ""
    ledger.add_many(src.kind, src.file, df.loc[bad, "_row"], "", "dropped",
                    f"invalid {what} (not a 6-digit DepEd school ID)")
    return df.assign(**{col: ids})[~bad]


def esc_id_col(df: pd.DataFrame, col: str, src: Source, ledger: Ledger) -> pd.DataFrame:
    """Normalise ``df[col]`` to ESC IDs; drop (and record) rows where it is invalid or blank."""
    ids = V.esc_ids(df[col])
    bad = ids == ""
    ledger.add_many(src.kind, src.file, df.loc[bad, "_row"], "", "dropped", "invalid or blank ESC school ID")
    return df.assign(**{col: ids})[~bad]


def dedupe(df: pd.DataFrame, key, src: Source, ledger: Ledger, what: str) -> pd.DataFrame:
    """Keep the first row per ``key`` (a column or list of columns); record later ones as merged."""
    dup = df.duplicated(key, keep="first")
    if dup.any():
        ledger.add_many(src.kind, src.file, df.loc[dup, "_row"], df.loc[dup, key] if key == "school_id" else "",
                        "merged", f"repeated {what}: merged into its first row")
    return df[~dup]
