"""The vectorised XLSX cell text (columns._cells_text, columns._frame_from_values) against
the per-cell rule (columns._text_row and columns._frame_from_rows on text rows).

Cells are what calamine returns: str, float (any, including NaN, inf, -0.0, 1e16 and
above), int, bool, date, datetime. A column of only strings or only floats takes the
vectorised path; any other mix the per-cell one; the text must be the same either way.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.ingest.columns import _cells_text, _FloatText, _frame_from_rows, _frame_from_values, _text_row

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10**6, 10**6).map(float),                       # counts: the common case
    st.sampled_from([0.0, -0.0, 1e16, -1e16, 9999999999999998.0, 1e16 - 2, 0.5, 1.25, float("nan")]),
)
TEXT = st.text(alphabet=st.sampled_from(list("ab 1,.\t₱") + ["\u00a0", "\x1c"]), max_size=6)
OTHER = st.one_of(st.integers(-10**20, 10**20), st.booleans(), st.dates(),
                  st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)))
CELL = st.one_of(FLOATS, TEXT, OTHER)


def per_cell(cells) -> list[str]:
    return _text_row(list(cells), _FloatText())


def as_text(out) -> list[str]:
    return pd.Series(out, dtype="str").tolist()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(FLOATS, max_size=30), st.lists(TEXT, max_size=30), st.lists(CELL, max_size=30)),
       st.booleans())
def test_cells_text_equals_the_per_cell_rule(cells, as_array):
    column = np.array(cells + [None], dtype=object)[:-1] if as_array else cells  # a grid column or a list
    assert as_text(_cells_text(column, _FloatText())) == per_cell(cells)


def test_float_column_with_fractions_and_nan_takes_the_vectorised_path_and_agrees():
    cells = [1.0, float("nan"), 2.5, -0.0, 1e16, 123456789012.0, float("inf")]
    out = _cells_text(cells, _FloatText())
    assert as_text(out) == ["1", "", "2.5", "0", "1e+16", "123456789012", "inf"]
    assert as_text(_cells_text([3.0, 40.0], _FloatText())) == ["3", "40"]


ROW = st.lists(st.one_of(FLOATS, TEXT, st.just(""), OTHER), min_size=4, max_size=4)


@settings(max_examples=150, deadline=None)
@given(st.lists(ROW, min_size=0, max_size=25), st.booleans(), st.integers(0, 2))
def test_frame_from_values_equals_the_frame_of_text_rows(body, ragged, h):
    header = ["A", "B", "C", "D"]
    values = [["title", "", "", ""]] * h + [header] + [list(r) for r in body]
    if ragged and body:  # rows of different widths: the row-by-row path
        values[-1] = values[-1][:2]
    found = {"a": "A", "c": "C", "d": "D"}
    floats = _FloatText()
    got = _frame_from_values(values, header, h, found, floats)
    want = _frame_from_rows([_text_row(r, _FloatText()) for r in values], h, found)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_blank_rows_are_skipped_with_their_physical_rows_kept():
    nan = float("nan")
    header = ["A", "B", "C"]
    values = [["Title", "", ""], header, ["x", 1.0, ""], ["", nan, " "], [" \t", "", 2.5], ["", "", ""],
              ["", "", dt.date(2024, 1, 2)]]
    got = _frame_from_values(values, header, 1, {"a": "A", "c": "C"}, _FloatText())
    assert got["_row"].tolist() == [3, 5, 7] and got["c"].tolist() == ["", "2.5", "2024-01-02 00:00:00"]
    want = _frame_from_rows([_text_row(r, _FloatText()) for r in values], 1, {"a": "A", "c": "C"})
    pd.testing.assert_frame_equal(got, want, check_exact=True)
