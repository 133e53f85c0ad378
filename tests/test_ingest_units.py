"""Unit tests of the ingestion helpers: IDs, pesos, counts, regions, headers, places."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, strategies as st

from studentflow.errors import DataError
from studentflow.ingest import values as V
from studentflow.ingest.columns import Col, find_header, match_columns
from studentflow.ingest.places import PlaceMatcher, place_key
from studentflow.schema import ESC_RATING_RANK


@given(st.integers(10_000, 999_999), st.sampled_from(["{}", " {} ", "{}.0", "{}.00 "]))
def test_school_ids_normalise_any_written_form(n, fmt):
    ids, _ = V.school_ids(pd.Series([fmt.format(n)]))
    assert ids[0] == f"{n:06d}" and len(ids[0]) == 6 and int(ids[0]) == n


@given(st.one_of(st.integers(0, 9_999), st.integers(1_000_000, 10**13)).map(str)
       | st.text(alphabet="abcXYZ-/ ", min_size=0, max_size=8))
def test_school_ids_reject_other_lengths_and_text(s):
    assert V.school_ids(pd.Series([s]))[0][0] == ""


@given(st.integers(0, 10**8), st.integers(0, 99))
def test_pesos_parse_written_amounts(whole, cents):
    text = f"₱{whole:,}.{cents:02d}"
    assert V.pesos(pd.Series([text]))[0] == pytest.approx(whole + cents / 100)
    assert V.pesos(pd.Series([f"PHP {whole}"]))[0] == whole


def test_pesos_and_counts_missing_markers():
    assert V.pesos(pd.Series(["N/A", "", "-", "abc"])).isna().all()
    assert list(V.counts(pd.Series(["1,250", "7", "3.0", "", "2.5", "-1"]))[:3]) == [1250, 7, 3]
    assert V.counts(pd.Series(["", "2.5", "-1"])).isna().all()


def test_region_variants():
    raw = pd.Series(["NCR", "National Capital Region", "Metro Manila", "Region III", "CENTRAL LUZON",
                     "Region IV-A", "REGION IVA", "CALABARZON", "Region 4A", "Mars"])
    assert list(V.region(raw)) == ["NCR"] * 3 + ["Region III"] * 2 + ["Region IV-A"] * 4 + [""]


def test_rating_rank_every_label_and_case():
    for text, rank in ESC_RATING_RANK.items():
        assert V.rating_rank(pd.Series([text.upper() + " "]))[0] == rank
    assert V.rating_rank(pd.Series(["", "unknown"])).isna().all()


def test_header_found_under_banners_and_typos_matched():
    cols = [Col("BEIS School ID in Grade 7"), Col("School Name in Grade 7"), Col("LRN")]
    rows = [["Gr 7 Enrollees"], ["as of June"], [""],
            ["LRN", "BEIS_School_ID in Grade 7", "School Namein Grade 7"], ["1", "2", "3"]]
    h = find_header(rows, cols, "t.csv")
    assert h == 3
    found = match_columns(rows[h], cols, "t.csv")
    assert found == {"BEIS School ID in Grade 7": "BEIS_School_ID in Grade 7",
                     "School Name in Grade 7": "School Namein Grade 7", "LRN": "LRN"}


def test_grade6_and_grade7_columns_not_confused():
    cols = [Col("BEIS School ID in Grade 7"), Col("BEIS School ID in Grade 6")]
    header = ["beis school id in grade 6", "BEIS SCHOOL ID IN GRADE 7"]
    assert match_columns(header, cols, "t.csv") == {"BEIS School ID in Grade 7": header[1],
                                                    "BEIS School ID in Grade 6": header[0]}


def test_missing_column_names_file_and_close_match():
    with pytest.raises(DataError, match=r"enrollment.xlsx: no column for 'BEIS School ID'; found 'School ID No.'"):
        match_columns(["Region", "School ID No.", "Sector"], [Col("Region"), Col("BEIS School ID")],
                      "enrollment.xlsx")


@pytest.fixture(scope="module")
def matcher():
    return PlaceMatcher(("NCR", "Region III", "Region IV-A"))


@pytest.mark.parametrize("name, province, code", [
    ("SAN FERNANDO CITY", "PAMPANGA", "0305416000"),
    ("City of San Fernando (Pampanga)", "", "0305416000"),
    ("SAN JOSE", "TARLAC", "0306918000"),
    ("San Jose City", "Nueva Ecija", "0304926000"),
    ("STO. TOMAS", "Pampanga", "0305421000"),
    ("Santo Tomas City", "Batangas", "0401028000"),
    ("LAS PINAS CITY", "NCR", "1380200000"),
    ("City of Dasmariñas", "Cavite", "0402106000"),
    ("Dasmarinas City", "", "0402106000"),
    ("Gen. Trias", "Cavite", "0402108000"),
])
def test_deped_and_dti_spellings_reach_one_psgc_code(matcher, name, province, code):
    assert matcher.match(name, province, "") == code


def test_ambiguous_name_without_province_is_not_guessed(matcher):
    assert matcher.match("San Jose", "", "") == ""          # Tarlac, Batangas, ... : no guess
    assert place_key("City of Las Piñas") == place_key("LAS PINAS CITY")


def test_physical_rows_survive_banners_and_blank_lines(tmp_path):
    from studentflow.ingest.columns import read_table

    p = tmp_path / "c.csv"
    p.write_text("LIST OF SCHOOLS\n\nSchool ID,Latitude,Longitude\n1,14.5,121\n\n2,14.6,121.1\n3,,\n")
    cols = [Col("School ID"), Col("Latitude"), Col("Longitude")]
    df = read_table(p, cols, name="c.csv")
    assert list(df["_row"]) == [4, 6, 7] and list(df["School ID"]) == ["1", "2", "3"]
    assert df.attrs["header_row"] == 3


_POINT = st.tuples(st.floats(4.5, 21.0), st.floats(116.5, 126.5))


@given(st.lists(st.tuples(st.sampled_from(["ok", "swapped", "zero", "blank", "outside"]), _POINT),
                min_size=1, max_size=30))
def test_coordinates_every_row_kept_or_in_ledger(tmp_path_factory, rows):
    from pathlib import Path

    from studentflow.ingest.ledger import Ledger
    from studentflow.ingest.manifest import Source
    from studentflow.ingest.readers import PH_LAT, PH_LON, read_coordinates

    lines = ["School ID,Latitude,Longitude"]
    for k, (kind, (lat, lon)) in enumerate(rows):
        sid = f"{100000 + k}"
        cell = {"ok": (f"{lat:.6f}", f"{lon:.6f}"), "swapped": (f"{lon:.6f}", f"{lat:.6f}"),
                "zero": ("0", "0"), "blank": ("", ""), "outside": (f"{lat + 30:.6f}", f"{lon:.6f}")}[kind]
        lines.append(f"{sid},{cell[0]},{cell[1]}")
    folder = Path(tmp_path_factory.mktemp("coords"))
    (folder / "c.csv").write_text("\n".join(lines) + "\n")
    ledger = Ledger()
    got = read_coordinates(Source("coordinates", folder / "c.csv", "c.csv"), ledger)
    led = ledger.frame()
    expect = {"ok": None, "swapped": "corrected", "zero": "dropped", "blank": "dropped", "outside": "dropped"}
    for k, (kind, (lat, lon)) in enumerate(rows):
        row = k + 2
        events = set(led.loc[led["row"] == row, "action"])
        assert events == ({expect[kind]} if expect[kind] else set())
        assert (row in set(got["_row"])) == (kind in ("ok", "swapped"))
    assert got["lon"].between(*PH_LON).all() and got["lat"].between(*PH_LAT).all()
    ok = got.set_index("_row")
    for k, (kind, (lat, lon)) in enumerate(rows):
        if kind in ("ok", "swapped"):
            assert ok.loc[k + 2, "lat"] == pytest.approx(lat, abs=1e-6)
            assert ok.loc[k + 2, "lon"] == pytest.approx(lon, abs=1e-6)


_CELLS = st.sampled_from(["", " ", "N/A", "-", "12", " 1,250 ", "1250.0", "3.5", "-4", "₱9,000.00", "PHP 9000",
                          "Public", "PRIVATE school", "purely jhs", "ES and JHS", "Excellent", "x", None])


@given(st.lists(_CELLS, min_size=1, max_size=60))
def test_parsers_once_per_distinct_text_equal_cell_by_cell(cells):
    """per_distinct parses each distinct text once and spreads the result back: the same
    Series (values, dtype, index, name) as parsing every cell, whatever the repeats."""
    raw = pd.Series(cells * 5, dtype="str", name="col", index=pd.RangeIndex(3, 3 + 5 * len(cells)))
    for fn in (V.counts, V.pesos, V.is_missing, V.sector, V.offering, V.rating_rank):
        pd.testing.assert_series_equal(fn(raw), fn.__wrapped__(raw), check_exact=True)


@given(st.lists(st.integers(-1, 1_999_999), max_size=50))
def test_school_str_pads_to_six_digits(ids):
    out = V.school_str(pd.array(ids, dtype="int32").to_numpy() if ids else pd.array([], dtype="int32").to_numpy())
    assert list(out) == ["" if i < 0 else f"{i:06d}" for i in ids]
    assert all(type(v) is str for v in out)


@given(st.lists(st.one_of(st.none(), st.text(alphabet="0123456789.,- \t١٢x", max_size=10),
                          st.floats(-200, 200).map(repr)), min_size=1, max_size=40))
def test_coordinate_decimals_by_arrow_equal_the_python_regex(cells):
    """Digits after the decimal point, by Arrow (\\p{Nd}) as by pandas' Python regex (\\d)."""
    from studentflow.ingest.readers import _decimals

    raw = pd.Series(cells, dtype="str", index=pd.RangeIndex(7, 7 + len(cells)))
    want = raw.str.strip().str.extract(r"\.(\d+)$")[0].str.len().fillna(0)
    pd.testing.assert_series_equal(_decimals(raw), want.astype("float64"), check_names=False, check_exact=True)
