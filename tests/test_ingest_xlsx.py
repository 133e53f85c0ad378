"""The calamine XLSX reader (columns._xlsx_rows) against the openpyxl path (_xlsx_rows_openpyxl).

Workbooks are written here by openpyxl (every cell type) or by studentflow.synth.io.write_xlsx;
the two readers must give the same rows of text, up to trailing blank cells and rows
(openpyxl pads to the declared sheet dimension), except the two documented cases calamine
cannot see: a number written "14590.0" (read "14590") and an error cell (read '').
"""

from __future__ import annotations

import datetime as dt
import zipfile

import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studentflow.errors import DataError
from studentflow.ingest.columns import Col, _xlsx_rows, _xlsx_rows_openpyxl, read_table
from studentflow.ingest import values as V


def trim(rows):
    out = [list(r) for r in rows]
    for r in out:
        while r and r[-1] == "":
            r.pop()
    while out and not out[-1]:
        out.pop()
    return out


def both(p, sheet=None):
    return trim(_xlsx_rows(p, sheet, p.name)), trim(_xlsx_rows_openpyxl(p, sheet, p.name))


@pytest.fixture
def typed(tmp_path):
    """Banners, a gap row, numeric and padded IDs, floats, bools, dates, times, durations,
    blanks, short rows, a far cell, a merged banner; a second sheet starting at C4; an empty sheet."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "DATA"
    ws.append(["SCHOOL LEVEL DATA ON ENROLLMENT"])
    ws.append([])
    ws.append(["School ID", "Name", "Lat", "Flag", "Big", "When", "Day", "Clock", "Span", "Neg"])
    ws.append([136512, "Ñino's \"school\"", 14.123456, True, 1.5e20, dt.datetime(2024, 6, 3, 8, 30, 15),
               dt.date(2024, 6, 3), dt.time(7, 45), dt.timedelta(hours=30), -3])
    ws.append([" 036512 ", None, 0.1, False, 2.5e-7, None, None, None, None, -0.5])
    ws.append([36512.0, "x", None, None, 7, None, None, None, None, 9_999_999_999_999_998])
    ws.append(["only one"])
    ws["L9"] = "far cell"
    ws.merge_cells("A10:C10")
    ws["A10"] = "merged banner"
    ws["F6"].number_format = "yyyy-mm-dd hh:mm:ss"   # a styled blank cell widens openpyxl's rows only
    ws2 = wb.create_sheet("Second")
    ws2["C4"] = "starts late"
    ws2["D5"] = 12345
    wb.create_sheet("Empty")
    p = tmp_path / "typed.xlsx"
    wb.save(p)
    return p


def test_every_cell_type_matches_openpyxl(typed):
    new, old = both(typed, "DATA")
    assert new == old
    # the text itself, independently of openpyxl: integers without ".0", floats as repr
    assert new[3][:5] == ["136512", "Ñino's \"school\"", "14.123456", "True", "1.5e+20"]
    assert new[3][5:9] == ["2024-06-03 08:30:15", "2024-06-03 00:00:00", "07:45:00", "1 day, 6:00:00"]
    assert new[5][0] == "36512" and new[5][9] == "9999999999999998"
    assert new[1] == [] and new[8][11] == "far cell" and new[9][0] == "merged banner"


def test_sheet_selection_keeps_physical_rows(typed):
    assert both(typed, "Second")[0] == both(typed, "Second")[1]
    rows = _xlsx_rows(typed, "Second", "typed.xlsx")
    assert len(rows) >= 5 and rows[3][2] == "starts late" and rows[4][3] == "12345"  # row 4, column C
    assert trim(_xlsx_rows(typed, "Empty", "typed.xlsx")) == []
    assert _xlsx_rows(typed, None, "typed.xlsx") == _xlsx_rows(typed, "DATA", "typed.xlsx")


def test_missing_sheet_lists_the_sheets(typed):
    with pytest.raises(DataError, match=r"typed\.xlsx: no sheet 'Nope'; found \['DATA', 'Second', 'Empty'\]"):
        _xlsx_rows(typed, "Nope", "typed.xlsx")


@pytest.mark.parametrize("content", [b"this is not a zip archive at all", b"PK\x03\x04 truncated"])
def test_corrupt_file_names_the_file(tmp_path, content):
    p = tmp_path / "slots.xlsx"
    p.write_bytes(content)
    with pytest.raises(DataError, match=r"^slots\.xlsx: cannot read as an XLSX workbook"):
        _xlsx_rows(p, None, "slots.xlsx")


def test_zip_that_is_not_a_workbook_names_the_file(tmp_path):
    p = tmp_path / "seats.xlsx"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    with pytest.raises(DataError, match=r"^seats\.xlsx: cannot read as an XLSX workbook"):
        _xlsx_rows(p, None, "seats.xlsx")


def test_written_float_integers_read_as_integers_and_parse_alike(tmp_path, monkeypatch):
    """write_xlsx writes 14590.0 as "14590.0": openpyxl keeps the ".0", calamine cannot."""
    from studentflow.ingest import columns
    from studentflow.ingest import values as V
    from studentflow.synth.io import write_xlsx

    p = tmp_path / "fees.xlsx"
    write_xlsx(p, ["ESC ID", "G7 Tuition", "Misc Fees"], [[100003.0, 14590.0, 0.5], [200004, "₱9,000.00", None]],
               title=["PEAC fees"], sheet="Tuition")
    new, old = both(p, "Tuition")
    assert old[2] == ["100003.0", "14590.0", "0.5"] and new[2] == ["100003", "14590", "0.5"]
    assert new[3] == old[3] == ["200004", "₱9,000.00"]
    cols = [Col("ESC ID"), Col("G7 Tuition"), Col("Misc Fees", required=False)]
    a = read_table(p, cols, name="fees.xlsx", sheet="Tuition")
    monkeypatch.setattr(columns, "_xlsx_rows", columns._xlsx_rows_openpyxl)
    b = read_table(p, cols, name="fees.xlsx", sheet="Tuition")
    assert a["_row"].tolist() == b["_row"].tolist() == [3, 4] and a.attrs == b.attrs and a.attrs["header_row"] == 2
    assert V.esc_ids(a["ESC ID"]).tolist() == V.esc_ids(b["ESC ID"]).tolist() == ["100003", "200004"]
    assert V.pesos(a["G7 Tuition"]).tolist() == V.pesos(b["G7 Tuition"]).tolist() == [14590.0, 9000.0]
    assert V.pesos(a["Misc Fees"]).equals(V.pesos(b["Misc Fees"]))


def test_error_cells_read_blank(tmp_path):
    """calamine gives an error cell as empty; values.is_missing treats "#N/A" and '' alike."""
    from studentflow.ingest import values as V

    p = tmp_path / "err.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["School ID", "Seats JHS"])
    wb.active.append([136512, 40])
    wb.save(p)
    with zipfile.ZipFile(p) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    parts[sheet] = parts[sheet].replace(b'<c r="B2" t="n"><v>40</v></c>', b'<c r="B2" t="e"><v>#N/A</v></c>')
    with zipfile.ZipFile(p, "w") as z:
        for n, b in parts.items():
            z.writestr(n, b)
    new, old = both(p)
    assert old[1] == ["136512", "#N/A"] and new[1] == ["136512"]
    assert V.is_missing(pd.Series(["#N/A", ""])).all()


_cell = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    st.datetimes(dt.datetime(1900, 3, 1), dt.datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grid=st.lists(st.lists(_cell, max_size=6), min_size=1, max_size=8), top=st.integers(0, 3))
def test_random_sheets_match_openpyxl(tmp_path, grid, top):
    wb = openpyxl.Workbook()
    ws = wb.active
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ws.cell(row=top + i + 1, column=j + 1, value=v)
    p = tmp_path / "r.xlsx"
    wb.save(p)
    new, old = both(p)
    # calamine reads a whitespace-only text cell as blank, openpyxl keeps it: both are
    # missing to ingest (values.is_missing), the one documented text difference
    assert new == trim([["" if c.strip() == "" else c for c in row] for row in old])


def test_whitespace_only_cells_read_blank_and_count_as_missing(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append([" ", "\t", " a ", "x"])
    p = tmp_path / "w.xlsx"
    wb.save(p)
    new, old = both(p)
    assert new == [["", "", " a ", "x"]] and old == [[" ", "\t", " a ", "x"]]
    assert V.is_missing(pd.Series(old[0][:2])).all() and not V.is_missing(pd.Series(old[0][2:])).any()


@pytest.mark.parametrize("header_row", [None, 3])
def test_workbook_frame_from_values_equals_frame_from_text_rows(typed, header_row):
    """read_table turns only the needed cells to text, column by column: the frame of
    every row turned to text first (blank rows skipped, physical row numbers)."""
    from studentflow.ingest.columns import _found, _frame_from_rows, locate

    cols = [Col("School ID"), Col("Name"), Col("Flag", required=False), Col("When", required=False),
            Col("Neg", required=False)]
    got = read_table(typed, cols, name="typed.xlsx", sheet="DATA", header_row=header_row)
    rows = _xlsx_rows(typed, "DATA", "typed.xlsx")
    h, how = locate(rows, cols, "typed.xlsx", header_row=header_row)
    want = _frame_from_rows(rows, h, _found(rows[h], cols, how, None))
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["_row"].tolist() == [4, 5, 6, 7, 9, 10]  # row 8 blank in every column, skipped
