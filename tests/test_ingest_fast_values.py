"""The memoised and per-distinct cell parsers of the national ingest against the plain ones.

- ``learners_fast._fill_school`` (each distinct odd text parsed once, remembered across
  blocks and files) gives what ``values.school_ids`` gives cell by cell, whatever the
  crosswalk's old IDs and however often it is called;
- ``values.grade_number`` (once per distinct text) equals pandas' ``str.extract`` of the
  first digits followed by ``to_numeric``, dtype included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.ingest import learners_fast as F
from studentflow.ingest import values as V

ID_TEXT = st.one_of(
    st.integers(0, 10**7).map(str),
    st.sampled_from(["", "0", "9999999", " 136512 ", "36512", "136512.0", "1136512", "abc", "13 6512", "١٢٣٤٥٦"]),
    st.text(alphabet=st.sampled_from(list("0123456789 .x")), max_size=9),
)
OLD = st.sampled_from([frozenset(), frozenset({"1136512", "1000001"})])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(ID_TEXT, min_size=1, max_size=20), min_size=1, max_size=4), OLD)
def test_fill_school_equals_school_ids_cell_by_cell(blocks, old):
    for texts in blocks:  # several blocks: later ones meet the memo
        arr = pa.array(texts, type=pa.string())
        ids, clean = F._ints(arr, 6, pc)
        F._fill_school(ids, arr, clean, old)
        want, _ = V.school_ids(pd.Series(texts, dtype="str"), old)
        expect = np.array([int(x) if x else -1 for x in want.tolist()], dtype=np.int64)
        np.testing.assert_array_equal(ids, expect)


def test_fill_school_memo_is_per_crosswalk():
    arr = pa.array(["1136512", "1136512"], type=pa.string())
    plain = np.full(2, 0, dtype=np.int64)
    F._fill_school(plain, arr, np.zeros(2, dtype=bool), frozenset())
    named = np.full(2, 0, dtype=np.int64)
    F._fill_school(named, arr, np.zeros(2, dtype=bool), frozenset({"1136512"}))
    assert plain.tolist() == [-1, -1] and named.tolist() == [1136512, 1136512]


GRADE = st.one_of(st.sampled_from(["Grade 7", "7", "G7", "grade 8", "", "N/A", "Grade 07", "K", "12/7"]),
                  st.text(alphabet=st.sampled_from(list("Grade 0123456789/")), max_size=8))


@settings(max_examples=150, deadline=None)
@given(st.lists(GRADE, max_size=40))
def test_grade_number_equals_extract_then_to_numeric(cells):
    raw = pd.Series(cells, dtype="str", index=pd.RangeIndex(3, 3 + len(cells)))
    want = pd.to_numeric(raw.str.extract(r"(\d+)")[0], errors="coerce")
    pd.testing.assert_series_equal(V.grade_number(raw), want, check_exact=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 999_999), st.integers(1_000_000, 1_999_999), st.just(-1)), max_size=30))
def test_school_array_equals_school_str(ids):
    arr = np.asarray(ids, dtype=np.int64)
    pd.testing.assert_extension_array_equal(V.school_array(arr), pd.array(V.school_str(arr), dtype="str"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=200), st.booleans())
def test_sort_by_runs_or_quicksort_equals_numpy_sort(values, runs):
    from studentflow.ingest.learners import _counts, _sort, _stable_order

    x = np.sort(np.asarray(values, dtype=np.int64)) if runs else np.asarray(values, dtype=np.int64)
    np.testing.assert_array_equal(_sort(x), np.sort(x))
    np.testing.assert_array_equal(_stable_order(x), np.argsort(x, kind="stable"))
    u, n = _counts(x)
    want_u, want_n = np.unique(x, return_counts=True)
    np.testing.assert_array_equal(u, want_u)
    np.testing.assert_array_equal(n, want_n)
