"""Tests of studentflow.geo: haversine, network distances (vs networkx), matrix reader."""

from __future__ import annotations

import json

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import Point

from studentflow import geo
from studentflow.errors import DataError


def hav_ref(lon1, lat1, lon2, lat2):
    """Independent great-circle distance (Vincenty's spherical atan2 form, R = 6371.0088 km)."""
    p1, p2, dl = np.radians(lat1), np.radians(lat2), np.radians(np.subtract(lon2, lon1))
    y = np.hypot(np.cos(p2) * np.sin(dl), np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl))
    x = np.sin(p1) * np.sin(p2) + np.cos(p1) * np.cos(p2) * np.cos(dl)
    return 6371.0088 * np.arctan2(y, x)


def random_network(seed, n=60, radius=0.03, components=1, slack=(0.01, 0.6)):
    """Random geometric road graph near Manila; lengths = great-circle × (1 + slack)."""
    rng = np.random.default_rng(seed)
    lon = 121.0 + rng.random(n) * 0.15
    lat = 14.5 + rng.random(n) * 0.15
    if components == 2:  # move half of the nodes far east: no edge can join them
        lon[n // 2:] += 1.0
    from scipy.spatial import cKDTree

    pairs = cKDTree(np.c_[lon, lat]).query_pairs(radius, output_type="ndarray")
    hav = hav_ref(lon[pairs[:, 0]], lat[pairs[:, 0]], lon[pairs[:, 1]], lat[pairs[:, 1]])
    length_m = 1000 * hav * (1 + rng.uniform(*slack, len(pairs)))
    ids = np.array([f"n{k}" for k in range(n)])
    edges = pd.DataFrame({
        "u": ids[pairs[:, 0]], "v": ids[pairs[:, 1]], "length_m": length_m,
        "geometry": [f"LINESTRING ({lon[a]} {lat[a]}, {lon[b]} {lat[b]})" for a, b in pairs],
    })
    return edges, ids, lon, lat


def random_schools(seed, n, prefix=1, lon0=121.0, span=0.15):
    rng = np.random.default_rng(seed + 1000)
    pts = [Point(lon0 + a * span, 14.5 + b * 0.15) for a, b in rng.random((n, 2))]
    ids = [f"{prefix}{k:05d}" for k in range(n)]
    return gpd.GeoDataFrame({"name": ids}, geometry=pts, crs="EPSG:4326", index=pd.Index(ids, name="school_id"))


def nx_reference(edges, ids, lon, lat, origins, destinations):
    """Independent answer: brute-force snapping in UTM 51N + networkx Dijkstra."""
    used = np.isin(ids, np.r_[edges["u"], edges["v"]])  # an edge list has no isolated nodes
    ids, lon, lat = ids[used], lon[used], lat[used]
    g = nx.Graph()
    for u, v, w in zip(edges["u"], edges["v"], edges["length_m"] / 1000):
        if not g.has_edge(u, v) or g[u][v]["w"] > w:
            g.add_edge(u, v, w=w)
    tr = Transformer.from_crs(4326, 32651, always_xy=True)
    nxs, nys = tr.transform(lon, lat)

    def nearest(p):
        x, y = tr.transform(p.x, p.y)
        return int(np.argmin((nxs - x) ** 2 + (nys - y) ** 2))

    out = {}
    for oid, op in origins.geometry.items():
        a = nearest(op)
        lengths = nx.single_source_dijkstra_path_length(g, ids[a], weight="w")
        for did, dp in destinations.geometry.items():
            b = nearest(dp)
            if ids[b] in lengths:
                out[(oid, did)] = (hav_ref(op.x, op.y, lon[a], lat[a]) + lengths[ids[b]]
                                   + hav_ref(lon[b], lat[b], dp.x, dp.y))
    return out


# ------------------------------------------------------------------ haversine
def test_haversine_one_degree_of_latitude():
    assert geo.haversine_km(121, 14, 121, 15) == pytest.approx(6371.0088 * np.pi / 180, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(116, 127), st.floats(4, 21)), min_size=3, max_size=3))
def test_haversine_matches_vincenty_form_and_is_a_metric(pts):
    (a, b), (c, d), (e, f) = pts
    ab = geo.haversine_km(a, b, c, d)
    assert ab == pytest.approx(hav_ref(a, b, c, d), abs=1e-6)
    assert ab == pytest.approx(geo.haversine_km(c, d, a, b), abs=1e-12)
    assert ab <= geo.haversine_km(a, b, e, f) + geo.haversine_km(e, f, c, d) + 1e-9


# ------------------------------------------------------------------ network
@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1, 2]))
def test_network_distances_equal_networkx(seed, components):
    edges, ids, lon, lat = random_network(seed, components=components)
    o = random_schools(seed, 8, prefix=1, span=1.15 if components == 2 else 0.15)
    d = random_schools(seed + 1, 9, prefix=2, span=1.15 if components == 2 else 0.15)
    got = geo.road_distances(o, d, network=edges, block_size=3)
    ref = nx_reference(edges, ids, lon, lat, o, d)
    assert set(zip(got.origin_id, got.destination_id)) == set(ref)
    assert np.allclose(got.distance_km, [ref[k] for k in zip(got.origin_id, got.destination_id)], rtol=1e-9)
    assert (got["method"] == "network").all()
    s = got.attrs["summary"]
    assert s.unreachable == len(o) * len(d) - len(ref)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_network_never_shorter_than_great_circle(seed):
    # edge lengths drawn *below* the great-circle length: geo must raise them to the floor
    edges, ids, lon, lat = random_network(seed, slack=(-0.5, 0.3))
    o, d = random_schools(seed, 10, 1), random_schools(seed + 7, 10, 2)
    got = geo.road_distances(o, d, network=edges)
    gc = hav_ref(o.geometry.x[got.origin_id].to_numpy(), o.geometry.y[got.origin_id].to_numpy(),
                 d.geometry.x[got.destination_id].to_numpy(), d.geometry.y[got.destination_id].to_numpy())
    assert (got.distance_km.to_numpy() >= gc - 1e-9).all()


def test_disconnected_components_are_left_out_and_counted():
    edges, ids, lon, lat = random_network(3, n=80, components=2)
    west = random_schools(3, 6, 1)  # all near the western component
    east = random_schools(4, 5, 2, lon0=122.0)  # all near the eastern one
    got = geo.road_distances(west, pd.concat([west, east]), network=edges)
    assert set(got.destination_id) <= set(west.index)
    assert got.attrs["summary"].unreachable == 6 * 5
    assert len(got) == 36


def test_max_km_is_a_filter_of_the_full_table_and_blocks_do_not_matter():
    edges, *_ = random_network(11, n=120)
    o, d = random_schools(11, 30, 1), random_schools(12, 25, 2)
    full = geo.road_distances(o, d, network=edges)
    cut = geo.road_distances(o, d, network=edges, max_km=6.0, block_size=4)
    expect = full[full.distance_km <= 6.0].reset_index(drop=True)
    assert 0 < len(cut) < len(full)
    pd.testing.assert_frame_equal(cut, expect, check_exact=False, rtol=1e-12)


def test_file_formats_agree(tmp_path):
    edges, ids, lon, lat = random_network(5)
    o, d = random_schools(5, 5, 1), random_schools(6, 5, 2)
    base = geo.road_distances(o, d, network=edges)
    edges.to_csv(tmp_path / "roads.csv.gz", index=False)
    g = nx.MultiDiGraph()
    for k in range(len(ids)):
        g.add_node(ids[k], x=float(lon[k]), y=float(lat[k]))
    for u, v, w in zip(edges.u, edges.v, edges.length_m):
        g.add_edge(u, v, length=float(w))
    nx.write_graphml(g, tmp_path / "roads.graphml")
    gdf = gpd.GeoDataFrame(edges.drop(columns="geometry"),
                           geometry=gpd.GeoSeries.from_wkt(edges.geometry), crs=4326)
    gdf.to_file(tmp_path / "roads.gpkg")
    for f in ("roads.csv.gz", "roads.graphml", "roads.gpkg"):
        got = geo.road_distances(o, d, network=tmp_path / f)
        pd.testing.assert_frame_equal(got, base, check_exact=False, rtol=1e-9)


def test_bad_network_input_names_the_file(tmp_path):
    p = tmp_path / "roads.csv"
    pd.DataFrame({"u": ["a"], "v": ["b"], "geometry": ["LINESTRING (121 14, 121.1 14)"]}).to_csv(p, index=False)
    o = random_schools(0, 2)
    with pytest.raises(DataError, match=r"roads\.csv.*length_m"):
        geo.road_distances(o, o, network=p)
    pd.DataFrame({"u": ["a", "b"], "v": ["b", "c"], "length_m": ["900", "n/a"],
                  "geometry": ["LINESTRING (121 14, 121.01 14)", "LINESTRING (121.01 14, 121.02 14)"]}
                 ).to_csv(p, index=False)
    with pytest.raises(DataError, match=r"roads\.csv: line 3: length"):
        geo.road_distances(o, o, network=p)
    pd.DataFrame(columns=["u", "v", "length_m", "geometry"]).to_csv(p, index=False)
    with pytest.raises(DataError, match=r"roads\.csv.*empty"):
        geo.road_distances(o, o, network=p)
    (tmp_path / "g.graphml").write_text("<graphml><broken")
    with pytest.raises(DataError, match="g.graphml"):
        geo.read_network(tmp_path / "g.graphml")
    g = nx.Graph()
    g.add_node("a", x=121.0, y=14.0)
    g.add_node("b", x=121.01, y=14.0)
    g.add_node("c", x=121.02, y=14.0)
    g.add_edge("a", "b", length=1500.0)
    g.add_edge("b", "c")  # no length
    nx.write_graphml(g, tmp_path / "h.graphml")
    with pytest.raises(DataError, match=r"h\.graphml: edge 2: length"):
        geo.read_network(tmp_path / "h.graphml")


def test_schools_without_geometry_are_skipped_and_counted():
    o = random_schools(1, 6)
    o.loc[o.index[[1, 3]], "geometry"] = None
    o.loc[o.index[5], "geometry"] = Point()  # empty point
    edges, *_ = random_network(1)
    for network in (None, edges):
        got = geo.road_distances(o, random_schools(2, 4, 2), network=network)
        assert set(got.origin_id) == set(o.index[[0, 2, 4]])
        assert got.attrs["summary"].origins_skipped == 3
    with pytest.raises(DataError, match="duplicated school_id"):
        geo.road_distances(pd.concat([o, o]), o)


# ------------------------------------------------------------------ great circle
@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.floats(1.0, 1.6), st.floats(0.5, 30))
def test_great_circle_times_circuity_with_kdtree_cut(seed, circuity, max_km):
    o, d = random_schools(seed, 15, 1), random_schools(seed + 1, 12, 2)
    full = geo.road_distances(o, d, circuity=circuity)
    assert len(full) == 15 * 12
    ref = circuity * hav_ref(o.geometry.x[full.origin_id].to_numpy(), o.geometry.y[full.origin_id].to_numpy(),
                             d.geometry.x[full.destination_id].to_numpy(), d.geometry.y[full.destination_id].to_numpy())
    assert np.allclose(full.distance_km, ref, atol=1e-6)
    cut = geo.road_distances(o, d, circuity=circuity, max_km=max_km)
    expect = full[full.distance_km <= max_km].reset_index(drop=True)
    pd.testing.assert_frame_equal(cut, expect, check_exact=False, rtol=1e-12)


# ------------------------------------------------------------------ matrix
def write_matrix(tmp_path, values, rows, cols=None, units="m"):
    np.save(tmp_path / "m.npy", values.astype(np.float32))
    index = {"units": units, "rows": rows}
    if cols is not None:
        index["cols"] = cols
    (tmp_path / "m_index.json").write_text(json.dumps(index))
    return tmp_path / "m.npy"


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3))
def test_matrix_round_trip_with_duplicate_rows(tmp_path_factory, seed, max_dup):
    rng = np.random.default_rng(seed)
    tmp = tmp_path_factory.mktemp("mat")
    o_ids = [f"{100000 + k}" for k in range(6)]
    d_ids = [f"{200000 + k}" for k in range(4)]
    o_rep = rng.integers(1, max_dup + 1, len(o_ids))
    d_rep = rng.integers(1, max_dup + 1, len(d_ids))
    rows_of = np.repeat(np.arange(len(o_ids)), o_rep)
    cols_of = np.repeat(np.arange(len(d_ids)), d_rep)
    rperm, cperm = rng.permutation(len(rows_of)), rng.permutation(len(cols_of))
    values = rng.integers(100, 30_000, (len(rows_of), len(cols_of))).astype(float)
    values[rng.random(values.shape) < 0.1] = np.nan  # OSRM "null": no route
    rows = {o_ids[k]: [int(p) for p in np.flatnonzero(rows_of[rperm] == k)] for k in range(len(o_ids))}
    cols = {d_ids[k]: [int(p) for p in np.flatnonzero(cols_of[cperm] == k)] for k in range(len(d_ids))}
    path = write_matrix(tmp, values[rperm][:, cperm], rows, cols)
    got = geo.road_distances(o_ids[::-1] + ["999999"], d_ids, matrix=path)
    for (a, b), km in zip(zip(got.origin_id, got.destination_id), got.distance_km):
        block = values[np.ix_(rows_of == o_ids.index(a), cols_of == d_ids.index(b))]
        assert km == pytest.approx(np.nanmin(block) / 1000, rel=1e-6)
    expect_pairs = sum(
        np.isfinite(values[np.ix_(rows_of == i, cols_of == j)]).any()
        for i in range(len(o_ids)) for j in range(len(d_ids)))
    assert len(got) == expect_pairs
    s = got.attrs["summary"]
    assert s.origins_skipped == 1 and s.unreachable == len(o_ids) * len(d_ids) - expect_pairs
    assert (got["method"] == "matrix").all()
    cut = geo.road_distances(o_ids[::-1] + ["999999"], d_ids, matrix=path, max_km=15.0, block_size=2)
    pd.testing.assert_frame_equal(cut, got[got.distance_km <= 15.0].reset_index(drop=True))


def test_square_matrix_without_cols_and_km_units(tmp_path):
    values = np.array([[0.0, 2.5], [2.5, 0.0]])
    path = write_matrix(tmp_path, values, {"100001": [0], "100002": [1]}, units="km")
    got = geo.road_distances(["100001"], ["100001", "100002"], matrix=(path, tmp_path / "m_index.json"))
    assert got.distance_km.tolist() == [0.0, 2.5]


@pytest.mark.parametrize("index, match", [
    ("{not json", "invalid JSON"),
    ('{"cols": {}}', '"rows"'),
    ('{"rows": {"100001": [7]}}', "integers in"),
    ('{"units": "mi", "rows": {"100001": [0]}}', "units"),
])
def test_bad_matrix_index_is_a_data_error(tmp_path, index, match):
    np.save(tmp_path / "m.npy", np.zeros((2, 2), np.float32))
    (tmp_path / "m_index.json").write_text(index)
    with pytest.raises(DataError, match=match) as err:
        geo.road_distances(["100001"], ["100001"], matrix=tmp_path / "m.npy")
    assert "m_index.json" in str(err.value)


# ------------------------------------------------------------------ within-school pairs
def test_within_school_pairs_are_zero_for_network_and_great_circle():
    edges, ids, lon, lat = random_network(21)
    schools = random_schools(21, 10, 1)
    o, d = schools.iloc[:7], schools.iloc[4:]  # 3 schools in both tables
    for network in (edges, None):
        got = geo.road_distances(o, d, network=network)
        ref = (nx_reference(edges, ids, lon, lat, o, d) if network is not None else
               {(a, b): 1.3 * hav_ref(p.x, p.y, q.x, q.y)
                for a, p in o.geometry.items() for b, q in d.geometry.items()})
        km = dict(zip(zip(got.origin_id, got.destination_id), got.distance_km))
        assert set(km) == set(ref)
        same = {k for k in km if k[0] == k[1]}
        assert len(same) == 3 and all(km[k] == 0.0 for k in same)
        if network is not None:  # the formula gives twice the access leg, which is > 0
            assert all(ref[k] > 0 for k in same)
        assert np.allclose([km[k] for k in set(km) - same], [ref[k] for k in set(km) - same], rtol=1e-9)
        assert got.attrs["summary"].same_school == 3
        assert (got[["origin_id", "destination_id"]].to_numpy().tolist()
                == sorted(got[["origin_id", "destination_id"]].to_numpy().tolist(),
                          key=lambda r: (o.index.get_loc(r[0]), d.index.get_loc(r[1]))))


def test_same_place_not_same_id():
    """Geometry methods know schools by their points: positional ids are not trusted."""
    edges, *_ = random_network(8)
    a = random_schools(8, 4, 1)
    b = random_schools(9, 4, 1)  # same ids as ``a``, other places
    b.loc[b.index[2], "geometry"] = a.geometry.iloc[0]  # one point shared by two ids
    for network in (edges, None):
        got = geo.road_distances(a, b, network=network)
        zero = got[got.distance_km == 0.0]
        assert list(zip(zero.origin_id, zero.destination_id)) == [(a.index[0], b.index[2])]
        assert (got.loc[got.origin_id == got.destination_id, "distance_km"] > 0).all()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 3))
def test_within_school_matrix_pairs_are_zero(tmp_path_factory, seed, n_nan):
    rng = np.random.default_rng(seed)
    tmp = tmp_path_factory.mktemp("diag")
    ids = [f"{100000 + k}" for k in range(5)]
    values = rng.integers(100, 9_000, (5, 5)).astype(float)  # the diagonal is > 0 ...
    values[np.diag_indices(5)[0][:n_nan], np.diag_indices(5)[1][:n_nan]] = np.nan  # ... or no route
    path = write_matrix(tmp, values, {i: [k] for k, i in enumerate(ids)})
    o, d = ids[:4], ids[1:]
    max_km = rng.uniform(0, 9)
    got = geo.road_distances(o, d, matrix=path, max_km=max_km)
    km = dict(zip(zip(got.origin_id, got.destination_id), got.distance_km))
    expect = {(a, b): 0.0 if a == b else values[ids.index(a), ids.index(b)] / 1000 for a in o for b in d}
    expect = {k: v for k, v in expect.items() if v <= max_km}
    assert set(km) == set(expect)
    assert np.allclose([km[k] for k in expect], list(expect.values()), rtol=1e-6)
    assert all(km[(i, i)] == 0.0 for i in ids[1:4])
    s = got.attrs["summary"]
    assert s.same_school == 3 and s.unreachable == 0  # a no-route diagonal cell is a 0 km pair
    order = [(o.index(a), d.index(b)) for a, b in zip(got.origin_id, got.destination_id)]
    assert order == sorted(order)
