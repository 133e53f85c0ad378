"""Tests of studentflow.pairs on a hand-built Bundle and (when present) the bundled sample."""

from __future__ import annotations

import functools
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from studentflow import geo
from studentflow.pairs import PAIR_COLUMNS, build_pairs, with_subsidy
from studentflow.schema import Bundle



def tiny_bundle(extras=None) -> Bundle:
    """Four origins, two public JHS (one congested), four private schools (three ESC).

    Schools sit on a line of latitude 14.6 N, ``km`` east of 121.0 E (about 0.1076 km per
    0.001 degree there), so great-circle distances are easy to reason about.
    """
    rows = [  # id, sector, offering, km east, jhs_enrolment, jhs_seats, esc, slots, billed, tuition, rating, region, psgc
        ("100001", "public", "purely_es", 0.0, 0, np.nan, False, 0, 0, np.nan, np.nan, "NCR", "1380600000"),
        ("100002", "public", "purely_es", 2.0, 0, np.nan, False, 0, 0, np.nan, np.nan, "NCR", "1380600000"),
        ("100003", "public", "purely_es", 30.0, 0, np.nan, False, 0, 0, np.nan, np.nan, "Region III", "0301400000"),
        ("100004", "public", "purely_es", 4.0, 0, np.nan, False, 0, 0, np.nan, np.nan, "NCR", "1380600000"),
        ("300001", "public", "purely_jhs", 1.0, 900, 600.0, False, 0, 0, np.nan, np.nan, "NCR", "1380600000"),
        ("300002", "public", "jhs_shs", 29.0, 200, 400.0, False, 0, 0, np.nan, np.nan, "Region III", "0301400000"),
        ("400001", "private", "all_offering", 1.5, 300, np.nan, True, 50, 40, 30_000.0, 2.0, "NCR", "1380600000"),
        ("400002", "private", "purely_jhs", 3.0, 200, np.nan, True, 20, 25, 12_000.0, np.nan, "NCR", "1380600000"),
        ("400003", "private", "purely_jhs", 31.0, 200, np.nan, True, 10, 5, 20_000.0, 6.0, "Region III", "0301400000"),
        ("400004", "private", "purely_jhs", 2.5, 100, np.nan, False, 0, 0, 40_000.0, np.nan, "NCR", "1380600000"),
        ("400005", "private", "purely_jhs", 1.0, 100, np.nan, True, 0, 0, 25_000.0, 4.0, "NCR", "1380600000"),
    ]
    cols = ["school_id", "sector", "offering", "km", "jhs_enrolment", "jhs_seats", "esc", "esc_slots",
            "esc_slots_billed", "tuition", "esc_rating", "region", "psgc_code"]
    df = pd.DataFrame(rows, columns=cols).set_index("school_id")
    geom = [Point(121.0 + km / 107.6, 14.6) for km in df.pop("km")]
    schools = gpd.GeoDataFrame(df, geometry=geom, crs="EPSG:4326")
    flows = pd.DataFrame([
        ("100001", "300001", 80, 0), ("100001", "400001", 6, 4), ("100001", "400004", 3, 0),
        ("100002", "300001", 40, 0), ("100002", "400002", 5, 0),
        ("100003", "300002", 70, 0), ("100003", "400003", 4, 3), ("100003", "400001", 1, 1),
        ("100004", "300002", 20, 0), ("100004", "400005", 0, 0),
    ], columns=["origin_id", "destination_id", "learners", "esc_beneficiaries"])
    areas = pd.DataFrame({"region": ["NCR", "Region III"], "lgu_revenue": [5e9, 8e8]},
                         index=pd.Index(["1380600000", "0301400000"], name="psgc_code"))
    subsidy = pd.DataFrame({"tier": ["NCR", "NCR", "other", "NCR"], "amount": [13_000.0, 13_000.0, 9_000.0, 13_000.0]},
                           index=pd.Index(["400001", "400002", "400003", "400005"], name="school_id"))
    return Bundle(schools=schools, flows=flows, areas=areas, subsidy=subsidy, ledger=pd.DataFrame(),
                  extras=extras or {})


@functools.lru_cache(maxsize=1)
def tiny_pairs() -> pd.DataFrame:
    """build_pairs(tiny_bundle()) once per session (callers must not modify it)."""
    return build_pairs(tiny_bundle())


def key(pairs):
    return set(zip(pairs["origin_id"], pairs["destination_id"]))


def test_tiny_bundle_pairs_by_hand():
    b = tiny_bundle()
    p = build_pairs(b, radius_km=5.0)
    assert list(p.columns) == list(PAIR_COLUMNS)
    obs, new = p[p.pair_type == "observed"], p[p.pair_type == "new"]
    # observed: flows with >= 1 learner into ESC schools (400004 is not ESC; 100004->400005 has 0)
    assert key(obs) == {("100001", "400001"), ("100002", "400002"), ("100003", "400003"), ("100003", "400001")}
    assert obs["esc_beneficiaries"].sum() == b.flows["esc_beneficiaries"].sum()
    # feeders of congested 300001: 100001, 100002; ESC with slots within 5 km*: 400001, 400002
    # (*great-circle x 1.3: 100002 -> 400001 is 0.65 km, 100001 -> 400002 3.9 km)
    assert key(new) == {("100001", "400002"), ("100002", "400001")}
    assert (new[["learners", "esc_beneficiaries"]] == 0).all().all()
    r = p.set_index(["origin_id", "destination_id"])
    assert r.loc[("100001", "400001"), "net_cost_k"] == pytest.approx(17.0)
    assert r.loc[("100002", "400002"), "net_cost_k"] == 0.0  # subsidy above tuition
    assert r.loc[("100002", "400002"), "esc_unrated"]
    assert r.loc[("100002", "400002"), "esc_rating"] == 4.0  # median of rated ESC: 2, 6, 4
    assert r.loc[("100003", "400001"), "origin_lgu_revenue"] == 8e8
    assert r.loc[("100003", "400001"), "origin_region"] == "Region III"
    assert r.loc[("100003", "400001"), "destination_region"] == "NCR"
    assert r.loc[("100001", "400001"), "origin_pool"] == 89
    assert r.loc[("100003", "400003"), "origin_esc_beneficiaries"] == 4
    assert r.loc[("100001", "400001"), "origin_congested_share"] == pytest.approx(80 / 89)
    assert not r.loc[("100003", "400003"), "origin_feeds_congested"]
    assert r.loc[("100002", "400002"), "destination_billed"] == 25
    km = 1.3 * geo.haversine_km(121.0, 14.6, 121.0 + 1.5 / 107.6, 14.6)
    assert r.loc[("100001", "400001"), "distance_km"] == pytest.approx(km)
    assert (p["distance_method"] == "great_circle").all()


@settings(max_examples=15, deadline=None)
@given(st.floats(0.0, 40.0))
def test_new_pairs_are_exactly_feeders_times_slots_within_radius(radius):
    b = tiny_bundle()
    p = build_pairs(b, radius_km=radius)
    dist = geo.road_distances(b.schools, b.schools)
    hot_feeders = {"100001", "100002"}
    slots = {"400001", "400002", "400003"}
    within = dist[dist.origin_id.isin(hot_feeders) & dist.destination_id.isin(slots) & (dist.distance_km <= radius)]
    observed = key(p[p.pair_type == "observed"])
    assert key(p[p.pair_type == "new"]) == key(within) - observed
    assert (p.loc[p.pair_type == "new", "distance_km"] <= radius).all()


def test_missing_distances_fall_back_or_drop_and_count():
    b = tiny_bundle()
    d = geo.road_distances(b.schools, b.schools, max_km=3.0)  # drops long observed pairs
    p = build_pairs(b, d)
    r = p.set_index(["origin_id", "destination_id"])
    assert r.loc[("100003", "400001"), "distance_method"] == "great_circle_fallback"
    assert p.attrs["summary"].gc_fallback == 1  # 100003 -> 400001 (29 km)
    # a school without coordinates: its observed pair cannot get any distance -> dropped
    schools = b.schools.copy()
    schools.loc["400003", "geometry"] = None
    b2 = Bundle(schools=schools, flows=b.flows, areas=b.areas, subsidy=b.subsidy, ledger=b.ledger)
    p2 = build_pairs(b2)
    assert ("100003", "400003") not in key(p2)
    s = p2.attrs["summary"]
    assert (s.dropped_no_location, s.dropped_beneficiaries) == (1, 3)
    assert p2["esc_beneficiaries"].sum() + s.dropped_beneficiaries == b.flows["esc_beneficiaries"].sum()
    assert "dropped" in s.summary()


def test_network_from_bundle_extras(tmp_path):
    lon = 121.0 + np.array([0, 1, 2, 3, 4, 29, 30, 31]) / 107.6
    ids = [f"n{k}" for k in range(len(lon))]
    u, v = [0, 1, 2, 3, 5, 6], [1, 2, 3, 4, 6, 7]
    hav = geo.haversine_km(lon[u], 14.6, lon[v], 14.6)
    edges = pd.DataFrame({"u": [ids[k] for k in u], "v": [ids[k] for k in v], "length_m": 1200 * hav,
                          "geometry": [f"LINESTRING ({lon[a]} 14.6, {lon[c]} 14.6)" for a, c in zip(u, v)]})
    edges.to_csv(tmp_path / "roads.csv.gz", index=False)
    p = build_pairs(tiny_bundle({"road_network": tmp_path / "roads.csv.gz"}))
    # 100003 -> 400001 crosses between components: no road, so great-circle fall-back
    r = p.set_index(["origin_id", "destination_id"])
    assert r.loc[("100003", "400001"), "distance_method"] == "great_circle_fallback"
    assert r.loc[("100001", "400001"), "distance_method"] == "network"
    gc = geo.haversine_km(121.0, 14.6, 121.0 + 1.5 / 107.6, 14.6)
    assert r.loc[("100001", "400001"), "distance_km"] >= gc


# ------------------------------------------------------------------ with_subsidy
@settings(max_examples=40, deadline=None)
@given(st.floats(-5_000, 30_000), st.floats(0, 20_000))
def test_with_subsidy_scalar_and_mapping(extra, other):
    p = tiny_pairs()
    q = with_subsidy(p, extra)
    assert np.allclose(q["esc_amount"], p["esc_amount"] + extra)
    expect = np.maximum(0, q["tuition"] - q["esc_amount"]) / 1000
    assert np.allclose(q["net_cost_k"], expect)
    if extra >= 0:
        assert (q["net_cost_k"] <= p["net_cost_k"] + 1e-12).all()
    assert p["esc_amount"].iloc[0] == 13_000.0  # original untouched
    m = with_subsidy(p, {"400001": other})
    hit = p["destination_id"] == "400001"
    assert np.allclose(m.loc[hit, "esc_amount"], p.loc[hit, "esc_amount"] + other)
    assert np.array_equal(m.loc[~hit, "esc_amount"], p.loc[~hit, "esc_amount"])
    rows = pd.Series(np.where(hit, other, 0.0), index=p.index)
    pd.testing.assert_frame_equal(with_subsidy(p, rows), m)


def test_with_subsidy_rejects_bad_input():
    p = tiny_pairs()
    with pytest.raises(ValueError, match="999999"):
        with_subsidy(p, {"999999": 1000.0})
    with pytest.raises(ValueError, match="finite"):
        with_subsidy(p, float("nan"))
    with pytest.raises(ValueError, match="number"):
        with_subsidy(p, "lots")


# ------------------------------------------------------------------ bundled sample
def test_sample_pairs_account_for_every_beneficiary(sample_bundle, sample_dir):
    p = build_pairs(sample_bundle, radius_km=5.0)  # distances from the bundled OSRM-style matrix
    obs, new = p[p.pair_type == "observed"], p[p.pair_type == "new"]
    assert obs["esc_beneficiaries"].sum() == sample_bundle.flows["esc_beneficiaries"].sum()
    assert (obs["learners"] >= 1).all() and (new[["learners", "esc_beneficiaries"]] == 0).all().all()
    assert not p.duplicated(["origin_id", "destination_id"]).any()
    assert (new["distance_km"] <= 5.0).all() and new["origin_feeds_congested"].all()
    assert (new["destination_slots"] > 0).all()
    # the generator's candidate pairs (truth, within its radius on the road network)
    truth = pd.read_csv(sample_dir / "truth" / "pairs.csv", dtype={"origin_id": str, "destination_id": str})
    params = pd.read_json(sample_dir / "truth" / "params.json", typ="series")
    assert params["radius_km"] >= 5.0
    assert key(new) <= key(truth)
    m = p.merge(truth, on=["origin_id", "destination_id"], suffixes=("", "_truth"))
    assert (m["esc_beneficiaries"] == m["esc_beneficiaries_truth"]).all()
    for col in ("tuition", "esc_amount", "net_cost_k"):
        assert np.allclose(m[col], m[f"{col}_truth"])
    # within-school pairs are 0 km (geo); the truth may predate that rule, so compare the rest
    same = m["origin_id"] == m["destination_id"]
    assert same.any() and (m.loc[same, "distance_km"] == 0).all()
    m = m[~same]
    # road km agree except where ingest repaired a school's coordinates
    rel = np.abs(m["distance_km"] / m["distance_km_truth"] - 1)
    assert np.median(rel) < 1e-6 and (rel > 1e-3).mean() < 0.02
    assert p.attrs["summary"].dropped_no_location == 0


def test_sample_network_distances_equal_networkx(sample_bundle):
    import networkx as nx

    s = sample_bundle.schools
    esc = s[s["esc"]]
    origins = s[s["offering"] == "purely_es"].iloc[::400]
    got = geo.road_distances(origins, esc, network=sample_bundle.extras["road_network"], max_km=12.0)
    edges = pd.read_csv(sample_bundle.extras["road_network"], dtype={"u": str, "v": str})
    net = geo.read_network(edges)  # node coordinates only; paths come from networkx below
    g = nx.Graph()
    for u, v, w in zip(edges.u, edges.v, edges.length_m / 1000):
        if not g.has_edge(u, v) or g[u][v]["w"] > w:
            g.add_edge(u, v, w=w)
    o_node, o_snap = geo.snap(net, origins.geometry.x, origins.geometry.y)
    d_node, d_snap = geo.snap(net, esc.geometry.x, esc.geometry.y)
    expect = {}
    for a, oid in enumerate(origins.index):
        lengths = nx.single_source_dijkstra_path_length(g, net.node_ids[o_node[a]], cutoff=12.0, weight="w")
        for b, did in enumerate(esc.index):
            km = o_snap[a] + lengths.get(net.node_ids[d_node[b]], np.inf) + d_snap[b]
            if km <= 12.0:
                expect[(oid, did)] = km
    assert len(expect) > 20 and key(got) == set(expect)
    assert np.allclose(got["distance_km"], [expect[k] for k in zip(got.origin_id, got.destination_id)], rtol=1e-9)


# ------------------------------------------------------------------ candidate sets
def gc_km(b, o, d):
    """Independent road-km stand-in: 1.3 × haversine between two schools of ``b``."""
    p, q = b.schools.geometry[o], b.schools.geometry[d]
    return 1.3 * geo.haversine_km(p.x, p.y, q.x, q.y)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.0, 40.0))
def test_radius_candidates_are_every_origin_times_every_esc_school_within_radius(radius):
    b = tiny_bundle()
    p = build_pairs(b, radius_km=radius, candidates="radius")
    assert list(p.columns) == list(PAIR_COLUMNS)
    senders = {"100001", "100002", "100003", "100004"}  # every origin with Grade 7 learners
    esc = {"400001", "400002", "400003", "400005"}  # ESC participants, with or without slots
    within = {(o, d) for o in senders for d in esc if gc_km(b, o, d) <= radius}
    assert key(p[p.within_radius]) == within
    observed = key(p[p.pair_type == "observed"])
    assert observed == key(build_pairs(b, radius_km=radius)[lambda x: x.pair_type == "observed"])
    assert key(p[p.pair_type == "new"]) == within - observed
    assert key(p[~p.within_radius]) == {k for k in observed if k not in within}
    assert (p.loc[~p.within_radius, "pair_type"] == "observed").all()
    assert p.attrs["summary"].within_radius == len(within)
    # the study's set is a subset: congested feeders x ESC schools with slots
    study = build_pairs(b, radius_km=radius)
    assert key(study[study.pair_type == "new"]) <= key(p[p.pair_type == "new"])
    assert key(study[study.within_radius]) == key(study) & within


def test_radius_set_does_not_depend_on_the_outcome():
    """Moving beneficiaries between pairs changes counts, never the within-radius pairs."""
    b = tiny_bundle()
    flows = b.flows.copy()
    flows.loc[flows.destination_id == "400001", "esc_beneficiaries"] = 0
    flows.loc[(flows.origin_id == "100004") & (flows.destination_id == "400005"), ["learners", "esc_beneficiaries"]] = 7
    b2 = Bundle(schools=b.schools, flows=flows, areas=b.areas, subsidy=b.subsidy, ledger=b.ledger)
    p1 = build_pairs(b, radius_km=5.0, candidates="radius")
    p2 = build_pairs(b2, radius_km=5.0, candidates="radius")
    assert key(p1[p1.within_radius]) == key(p2[p2.within_radius])
    assert p1["esc_beneficiaries"].sum() != p2["esc_beneficiaries"].sum()


def test_bad_candidates_name_the_argument():
    with pytest.raises(ValueError, match="candidates"):
        build_pairs(tiny_bundle(), candidates="observed")


def test_matrix_from_extras_under_either_key(tmp_path):
    b = tiny_bundle()
    ids = list(b.schools.index)
    lon = b.schools.geometry.x.to_numpy()
    metres = 1000 * 1.7 * geo.haversine_km(lon[:, None], 14.6, lon[None, :], 14.6)  # not the 1.3 fallback
    np.save(tmp_path / "m.npy", metres.astype(np.float32))
    (tmp_path / "m_index.json").write_text(json.dumps({"units": "m", "rows": {i: [k] for k, i in enumerate(ids)}}))
    table = geo.road_distances(ids, ids, matrix=tmp_path / "m.npy")
    got = [build_pairs(tiny_bundle(extras), candidates="radius") for extras in (
        {"road_distances": (tmp_path / "m.npy", tmp_path / "m_index.json")},  # what ingest fills
        {"road_matrix": tmp_path / "m.npy"},
        {"road_distances": table},  # a road_distances table
    )]
    assert (got[0]["distance_method"] == "matrix").all()
    r = got[0].set_index(["origin_id", "destination_id"])
    expect = 1.7 / 1.3 * gc_km(b, "100001", "400001")
    assert r.loc[("100001", "400001"), "distance_km"] == pytest.approx(expect, rel=1e-6)
    for other in got[1:]:
        pd.testing.assert_frame_equal(other, got[0])


@pytest.mark.parametrize("network", [False, True])
def test_within_school_pair_has_zero_distance(tmp_path, network):
    """A school with Grade 6 and an ESC JHS: its own Grade 7 learners travel 0 km."""
    b = tiny_bundle()
    schools = b.schools.copy()
    schools.loc["400001", "offering"] = "all_offering"
    flows = pd.concat([b.flows, pd.DataFrame([("400001", "400001", 12, 5), ("400001", "300001", 30, 0)],
                                             columns=b.flows.columns)], ignore_index=True)
    extras = {}
    if network:  # a road 0.3 km north of the schools: each school's access leg is ~0.3 km
        lon = 121.0 + np.arange(-1, 33) / 107.6
        a, c = lon[:-1], lon[1:]
        edges = pd.DataFrame({"u": [f"n{k}" for k in range(33)], "v": [f"n{k + 1}" for k in range(33)],
                              "length_m": 1000 * geo.haversine_km(a, 14.6027, c, 14.6027) * 1.1,
                              "geometry": [f"LINESTRING ({x} 14.6027, {y} 14.6027)" for x, y in zip(a, c)]})
        extras = {"road_network": edges}
    b2 = Bundle(schools=schools, flows=flows, areas=b.areas, subsidy=b.subsidy, ledger=b.ledger, extras=extras)
    for candidates in ("study", "radius"):
        r = build_pairs(b2, candidates=candidates).set_index(["origin_id", "destination_id"])
        assert r.loc[("400001", "400001"), "distance_km"] == 0.0
        assert r.loc[("400001", "400001"), "esc_beneficiaries"] == 5
        assert r.loc[("400001", "400001"), "distance_method"] == ("network" if network else "great_circle")
        other = r.drop(index=("400001", "400001"))
        assert (other["distance_km"] > 0.25 if network else other["distance_km"] > 0).all()
    # a supplied table without the pair: the great-circle fall-back keeps it at 0 km too
    table = geo.road_distances(schools, schools)
    table = table[table.origin_id != table.destination_id]
    r = build_pairs(b2, table, candidates="radius").set_index(["origin_id", "destination_id"])
    assert r.loc[("400001", "400001"), ["distance_km", "distance_method", "within_radius"]].tolist() == [
        0.0, "great_circle_fallback", False]


def test_sample_radius_candidates_recover_the_distance_coefficient(sample_bundle, sample_dir):
    """NB2 with zeros="include" is consistent on the radius set, not on the study's set.

    The sample's admissions may be rationed by school capacity (full schools turn
    learners away; truth/params.json "rationing"): realised counts are then thinned school
    by school, which the study formula's destination-region terms cannot absorb, and
    school-level coefficients (rating, revenue) drift by a few SE. Distance is a
    pair-level covariate, robust to that thinning, so only its coefficient is checked.
    """
    from studentflow.gravity import STUDY_FORMULA, fit_gravity

    truth = json.loads((sample_dir / "truth" / "params.json").read_text())
    beta = truth["params"]["log1p_distance_km"]
    term = "np.log1p(distance_km)"
    radius = build_pairs(sample_bundle, radius_km=5.0, candidates="radius")
    est = radius[radius.within_radius]
    # the estimation set is the generator's candidate set (within its radius)
    t = pd.read_csv(sample_dir / "truth" / "pairs.csv", dtype={"origin_id": str, "destination_id": str},
                    usecols=["origin_id", "destination_id", "distance_km"])
    assert truth["radius_km"] >= 5.0
    tk = key(t[t.distance_km <= 5.0])
    assert len(key(est) ^ tk) <= 0.005 * len(tk)
    good = fit_gravity(est, STUDY_FORMULA, zeros="include", method="statsmodels")
    assert abs(good.params[term] - beta) <= 3 * good.bse[term]
    study = build_pairs(sample_bundle, radius_km=5.0)  # the study's allocation set, all rows
    bad = fit_gravity(study, STUDY_FORMULA, zeros="include", method="fast")
    assert abs(bad.params[term] - beta) >= 6 * bad.bse[term]
    assert abs(bad.params[term] - beta) >= 3 * abs(good.params[term] - beta)
