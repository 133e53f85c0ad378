"""Tests of studentflow.congestion against an independent, loop-based computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.congestion import jhs_congestion, origin_congestion
from studentflow.schema import Bundle

OFFERING = ["purely_es", "es_jhs", "jhs_shs", "purely_jhs", "all_offering", "purely_shs"]


def bundle_from(schools: pd.DataFrame, flows: pd.DataFrame) -> Bundle:
    return Bundle(schools=schools, flows=flows, areas=pd.DataFrame(), subsidy=pd.DataFrame(),
                  ledger=pd.DataFrame())


@st.composite
def random_bundles(draw):
    n = draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ids = [f"{300000 + k}" for k in range(n)]
    seats = rng.integers(0, 400, n).astype(float)
    seats[rng.random(n) < 0.15] = np.nan
    schools = pd.DataFrame({
        "sector": rng.choice(["public", "private"], n),
        "offering": rng.choice(OFFERING, n),
        "jhs_enrolment": rng.integers(0, 500, n),
        "jhs_seats": seats,
    }, index=pd.Index(ids, name="school_id"))
    m = draw(st.integers(0, 30))
    flows = pd.DataFrame({
        "origin_id": rng.choice(ids, m), "destination_id": rng.choice(ids, m),
        "learners": rng.integers(0, 60, m), "esc_beneficiaries": np.zeros(m, int),
    })
    return bundle_from(schools, flows)


@settings(max_examples=60, deadline=None)
@given(random_bundles())
def test_jhs_congestion_matches_definition(bundle):
    got = jhs_congestion(bundle)
    for sid, row in bundle.schools.iterrows():
        public_jhs = row["sector"] == "public" and row["offering"] in {"es_jhs", "jhs_shs", "purely_jhs", "all_offering"}
        assert (sid in got.index) == public_jhs
        if not public_jhs:
            continue
        g, e, s = got.loc[sid], row["jhs_enrolment"], row["jhs_seats"]
        if np.isnan(s):
            assert np.isnan(g["utilisation"]) and not g["congested"]
            continue
        assert g["aisle_learners"] == max(0, e - s)
        assert g["congested"] == (e > s)
        if s > 0:
            assert g["utilisation"] == pytest.approx(e / s)


@settings(max_examples=60, deadline=None)
@given(random_bundles())
def test_origin_congestion_matches_loop(bundle):
    hot = set(jhs_congestion(bundle).query("congested").index)
    got = origin_congestion(bundle)
    assert set(got.index) == set(bundle.flows["origin_id"])
    for oid in got.index:
        rows = bundle.flows[bundle.flows["origin_id"] == oid]
        total = rows["learners"].sum()
        to_hot = rows.loc[rows["destination_id"].isin(hot), "learners"].sum()
        assert got.loc[oid, "grade7_learners"] == total
        assert got.loc[oid, "to_congested"] == to_hot
        assert got.loc[oid, "feeds_congested"] == (to_hot >= 1)
        assert got.loc[oid, "congested_share"] == pytest.approx(to_hot / total if total else 0.0)
    assert got["grade7_learners"].sum() == bundle.flows["learners"].sum()


def test_hand_example():
    schools = pd.DataFrame({
        "sector": ["public", "public", "public", "private"],
        "offering": ["purely_es", "purely_jhs", "jhs_shs", "purely_jhs"],
        "jhs_enrolment": [0, 450, 300, 900],
        "jhs_seats": [np.nan, 400.0, 320.0, 10.0],
    }, index=pd.Index(["100001", "100002", "100003", "100004"], name="school_id"))
    flows = pd.DataFrame({"origin_id": ["100001"] * 3, "destination_id": ["100002", "100003", "100004"],
                          "learners": [30, 10, 5], "esc_beneficiaries": [0, 0, 2]})
    b = bundle_from(schools, flows)
    j = jhs_congestion(b)
    assert list(j.index) == ["100002", "100003"]  # private and ES-only excluded
    assert j["aisle_learners"].tolist() == [50, 0]
    assert j["congested"].tolist() == [True, False]
    o = origin_congestion(b).loc["100001"]
    assert (o["grade7_learners"], o["to_congested"], bool(o["feeds_congested"])) == (45, 30, True)
    assert o["congested_share"] == pytest.approx(30 / 45)


def test_sample_congestion_matches_truth(sample_bundle, sample_dir):
    """Flags from the ingested sample equal those computed from truth/ by hand, except at
    schools whose JHS seats ingest had to impute (truth holds the real seats)."""
    t = pd.read_csv(sample_dir / "truth" / "schools.csv", dtype={"school_id": str}).set_index("school_id")
    flows = pd.read_csv(sample_dir / "truth" / "flows.csv", dtype={"origin_id": str, "destination_id": str})
    jhs = t[(t["sector"] == "public") & t["offering"].isin(["es_jhs", "jhs_shs", "purely_jhs", "all_offering"])]
    hot = set(jhs.index[jhs["jhs_enrolment"] > jhs["jhs_seats"]])
    imputed = set(sample_bundle.schools.index[sample_bundle.schools["jhs_seats_imputed"].astype(bool)])
    got = jhs_congestion(sample_bundle)
    assert set(got.index) == set(jhs.index)
    assert set(got.index[got["congested"]]) - imputed == hot - imputed
    assert 0.05 < len(hot) / len(t) < 0.3  # a congested study area, as in the study
    oc = origin_congestion(sample_bundle)
    feeders = set(flows.loc[flows["destination_id"].isin(hot) & (flows["learners"] > 0), "origin_id"])
    touched = set(flows.loc[flows["destination_id"].isin(imputed), "origin_id"])
    assert set(oc.index[oc["feeds_congested"]]) - touched == feeders - touched
    pool = flows.groupby("origin_id")["learners"].sum()
    assert oc["grade7_learners"].equals(pool.reindex(oc.index).astype(oc["grade7_learners"].dtype))
