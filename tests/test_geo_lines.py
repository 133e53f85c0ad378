"""Edge end points from WKT text (pyarrow) are shapely's, bit for bit; bad geometries are DataErrors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow import geo
from studentflow.errors import DataError
from studentflow.geo import lines

COORD = st.floats(-180, 180, allow_nan=False, allow_infinity=False)
FORMAT = st.sampled_from(["{:.6f}", "{!r}", "{:.17g}", "{:.3e}", "{:.0f}"])


def shapely_ends(text):
    geom = shapely.from_wkt(np.asarray(text, dtype=object))
    return shapely.get_coordinates(shapely.get_point(geom, 0)), shapely.get_coordinates(shapely.get_point(geom, -1))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(COORD, COORD), min_size=2, max_size=5), min_size=1, max_size=8), FORMAT)
def test_text_ends_are_shapelys_bit_for_bit(lines_xy, fmt):
    text = ["LINESTRING (" + ", ".join(f"{fmt.format(x)} {fmt.format(y)}" for x, y in pts) + ")" for pts in lines_xy]
    fast = lines._text_ends(pd.Series(text, dtype="string[pyarrow]"))
    assert fast is not None  # the plain form takes the pyarrow path
    want = shapely_ends(text)
    for got, ref in zip(fast, want):
        assert got.tobytes() == ref.tobytes()
    for got, ref in zip(lines.line_ends(pd.Series(text, dtype=object), "t.csv"), want):  # object column too
        assert got.tobytes() == ref.tobytes()
    for got, ref in zip(lines.line_ends(shapely.from_wkt(text), "t.gpkg"), want):  # geometries
        assert got.tobytes() == ref.tobytes()


@pytest.mark.parametrize("text", ["LINESTRING Z (1 2 3, 4 5 6)", "LINESTRING(1 2,3 4)", "LINESTRING (1 2,3 4)",
                                  "LINESTRING (1  2, 3 4)", "LINESTRING (1 2, 3 4) "])
def test_other_wkt_forms_go_through_shapely(text):
    col = pd.Series(["LINESTRING (0 0, 1 1)", text])
    assert lines._text_ends(col) is None
    for got, ref in zip(lines.line_ends(col, "t.csv"), shapely_ends(col.tolist())):
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("text, message", [
    ("LINESTRING (a b, c d)", "not valid WKT"), ("LINESTRING (1 2)", "not valid WKT"),
    (None, "line 3: column 'geometry' is empty"), ("LINESTRING EMPTY", "line 3: column 'geometry' is empty"),
    ("POINT (1 2)", "line 3: column 'geometry' must be a LINESTRING, got Point"),
])
def test_bad_edge_geometry_is_a_data_error_naming_file_and_line(tmp_path, text, message):
    edges = pd.DataFrame({"u": ["a", "b"], "v": ["b", "c"], "length_m": [100.0, 120.0],
                          "geometry": ["LINESTRING (121 14.5, 121.001 14.5)", text]})
    path = tmp_path / "roads.csv"
    edges.to_csv(path, index=False)
    with pytest.raises(DataError, match=message) as err:
        geo.read_network(path)
    assert str(path) in str(err.value)


def test_sample_network_is_the_same_read_either_way(sample_dir, monkeypatch):
    fast = geo.read_network(sample_dir / "roads.csv.gz")
    monkeypatch.setattr(lines, "_text_ends", lambda values: None)  # shapely for every edge
    slow = geo.read_network(sample_dir / "roads.csv.gz")
    assert fast.lon.tobytes() == slow.lon.tobytes() and fast.lat.tobytes() == slow.lat.tobytes()
    assert np.array_equal(fast.node_ids, slow.node_ids)
    assert (fast.graph != slow.graph).nnz == 0 and fast.graph.nnz == slow.graph.nnz
