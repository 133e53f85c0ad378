"""Former hand-written XLSX reader, now a thin alias of the calamine reader.

The zip + expat reader that lived here was replaced by python-calamine in
:func:`studentflow.ingest.columns._xlsx_rows` (same rows of text, about four times faster
on the national enrolment workbook; see scripts/check_xlsx_reader.py and
scripts/bench_xlsx.py, whose baseline is this module's old text from git). These two names
remain only for tests/test_ingest_units.py::test_fast_xlsx_reader_agrees_with_openpyxl;
new code reads workbooks through :func:`studentflow.ingest.columns.read_table`. Remove
this module together with that test.
"""

from __future__ import annotations

from pathlib import Path


def sheet_names(path) -> list[str]:
    """Names of the worksheets of an XLSX file, in order."""
    from python_calamine import CalamineWorkbook

    with CalamineWorkbook.from_path(str(path)) as wb:
        return list(wb.sheet_names)


def read_rows(path, sheet: str | None = None) -> list[list[str]]:
    """Every physical row of one sheet (row 1 first) as text; see ``columns._xlsx_rows``.

    Raises
    ------
    KeyError
        No sheet of that name.
    """
    from studentflow.ingest.columns import _xlsx_rows

    path = Path(path)
    if sheet is not None and sheet not in sheet_names(path):
        raise KeyError(sheet)
    return _xlsx_rows(path, sheet, path.name)
