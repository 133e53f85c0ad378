"""Issue 21: which ESC schools were really full, from their billing in earlier school years.

A school that bills exactly the learners it admitted looks full (observed = billed slots)
whether or not its capacity bound. A multi-year manifest tells the two apart: a school
that billed a larger share of its contracted slots in an earlier year was below its
capacity now. Checked here: the slot history ingest reads (IDs through the crosswalk),
the PairTable column, the rule, and the "unconstrain" calibration (the status quo still
reproduced exactly; full schools' demand raised to E[D | D >= K]).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from studentflow.allocation import allocate
from studentflow.allocation.calibrate import _censored_mean_factor, calibrate_destinations
from studentflow.pairs import BILLED_SHARE_BEFORE, build_pairs
from studentflow.scenarios.calibrate import below_capacity, calibrate_status_quo
from studentflow.scenarios.spec import study_scenarios

from fakes import FakeModel


def _direct_censored_mean(means, t, alpha):
    """E[D | D >= t] by summing the pmf of the moment-matched NB (or Poisson)."""
    m, s2 = float(np.sum(means)), float(np.sum(np.square(means)))
    k = np.arange(0, int(t + 60 * np.sqrt(m + alpha * s2) + 200))
    if alpha * s2 > 1e-12 * m:
        n = m * m / (alpha * s2)
        pmf = stats.nbinom.pmf(k, n, n / (n + m))
    else:
        pmf = stats.poisson.pmf(k, m)
    tail = k >= t
    return float((k[tail] * pmf[tail]).sum() / pmf[tail].sum())


@settings(max_examples=60, deadline=None)
@given(means=st.lists(st.floats(0.01, 20.0), min_size=1, max_size=6), t=st.integers(1, 60),
       alpha=st.sampled_from([0.0, 0.05, 0.4, 1.5]))
def test_censored_mean_matches_a_direct_sum(means, t, alpha):
    mu = sp.csr_matrix(np.array(means)[:, None])
    factor = _censored_mean_factor(mu, np.ones(len(means)), np.array([float(t)]), alpha)[0]
    want = _direct_censored_mean(means, t, alpha)
    assert factor * sum(means) == pytest.approx(want, rel=1e-6, abs=1e-9)
    assert factor * sum(means) >= max(t, sum(means)) - 1e-9  # at least the floor rule's demand


def _problem(seed, n, m):
    rng = np.random.default_rng(seed)
    mu = sp.random(n, m, density=0.5, random_state=rng, data_rvs=lambda k: rng.gamma(1.0, 2.0, k)).tocsr()
    mu = (mu + sp.csr_matrix((rng.gamma(1.0, 2.0, n), (np.arange(n), rng.integers(0, m, n))), shape=(n, m))).tocsr()
    pools = np.asarray(mu.sum(axis=1)).ravel() * rng.uniform(0.5, 2.0, n)
    caps = np.floor(np.asarray(mu.sum(axis=0)).ravel() * rng.uniform(0.3, 2.0, m))
    observed = np.asarray(allocate(mu @ sp.diags(rng.lognormal(0.0, 0.5, m)), pools, caps).flows.sum(axis=0)).ravel()
    return mu, pools, caps, np.floor(observed + 1e-9), rng.random(m) < 0.3  # whole learners, still feasible


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 30), m=st.integers(2, 12),
       alpha=st.sampled_from([0.0, 0.4]))
def test_unconstrain_reproduces_today_and_raises_only_full_schools(seed, n, m, alpha):
    mu, pools, caps, observed, below = _problem(seed, n, m)
    floor = calibrate_destinations(mu, pools, caps, observed, below_capacity=below)
    unc = calibrate_destinations(mu, pools, caps, observed, capacity_bound="unconstrain", dispersion=alpha,
                                 below_capacity=below)
    assert unc.converged
    placed = np.asarray(allocate(mu @ sp.diags(unc.factors), pools, caps).flows.sum(axis=0)).ravel()
    # today reproduced to the allocator's tolerance (1e-4 learners), as under the floor rule
    np.testing.assert_allclose(placed, np.minimum(observed, caps), rtol=1e-5, atol=1e-4)
    assert unc.max_violation < 1e-4
    bound = (observed >= caps) & ~below
    np.testing.assert_array_equal(unc.capacity_bound, bound)
    assert (unc.factors[bound] >= floor.factors[bound] - 1e-9).all()  # full schools: more demand, never less
    np.testing.assert_allclose(unc.factors[~bound], floor.factors[~bound], rtol=1e-9)  # the others: matched
    assert ("below capacity" in unc.summary()) == bool(below.any())


def test_a_school_that_billed_more_before_is_not_taken_as_full():
    # school 0: 7 learners expected, admitted and billed 3 of its 10 contracted slots
    mu = sp.csr_matrix(np.array([[4.0, 10.0], [3.0, 10.0]]))
    pools, billed, observed, slots = np.array([50.0, 50.0]), np.array([3.0, 20.0]), np.array([3.0, 20.0]), \
        np.array([10.0, 30.0])
    looks_full = calibrate_destinations(mu, pools, billed, observed)
    history = calibrate_destinations(mu, pools, billed, observed, capacity_bound="unconstrain", dispersion=0.3,
                                     below_capacity=[True, False])
    fill = [np.asarray(allocate(mu @ sp.diags(c.factors), pools, slots).flows.sum(axis=0)).ravel()
            for c in (looks_full, history)]
    assert fill[0][0] == pytest.approx(7.0)  # the floor rule fills it with the model's demand
    assert fill[1][0] == pytest.approx(3.0)  # below capacity: its demand was what it admitted
    assert fill[1][1] > fill[0][1] == pytest.approx(20.0)  # the full school: demand given it filled 20 > 20


def test_below_capacity_rule():
    pairs = pd.DataFrame({
        "destination_id": ["A", "A", "B", "C", "D"], "destination_slots": [10, 10, 10, 10, 0],
        "destination_billed": [3, 3, 7, 3, 0], BILLED_SHARE_BEFORE: [0.8, 0.8, 0.8, np.nan, np.nan]})
    got = below_capacity(pairs)
    assert got.to_dict() == {"A": True, "B": False, "C": False, "D": False}  # B: 7 is within a slot of 8
    assert not below_capacity(pairs.drop(columns=BILLED_SHARE_BEFORE)).any()


def test_slot_history_is_read_through_the_crosswalk(sample_dir, sample_bundle):
    from studentflow.ingest import load_panel

    h = sample_bundle.slot_history
    assert sample_bundle.school_year == "2023-2024"
    assert sorted(h["school_year"].unique()) == ["2021-2022", "2022-2023"]
    assert not h.duplicated(["school_year", "school_id"]).any() and (h["billed"] <= h["slots"] * 1.5).all()
    xw = pd.read_csv(sample_dir / "school_id_mapping.csv", dtype=str)
    renamed = xw.loc[xw["old_school_id"] != xw["school_id_2024"]]
    assert not h["school_id"].isin(renamed["old_school_id"]).any()  # old IDs remapped to today's
    panel = load_panel(sample_dir / "manifest.toml")
    for year, rows in h.groupby("school_year"):  # every school named by its current ID, as that year's bundle
        esc = panel[year].schools
        assert set(rows["school_id"]) == set(esc.index[esc["esc"]])
        same = esc.loc[rows["school_id"]]
        assert (same["esc_slots"].to_numpy() == rows["slots"].to_numpy()).all()
        assert (same["esc_slots_billed"].to_numpy() == rows["billed"].to_numpy()).all()
    assert panel["2021-2022"].slot_history.empty  # no year before the first
    pd.testing.assert_frame_equal(panel.latest.slot_history, h)
    middle = panel["2022-2023"].slot_history  # a year's history stops before it: no look-ahead
    assert set(middle["school_year"]) == {"2021-2022"}


def test_one_year_manifest_has_no_history(small_region):
    from studentflow.ingest import load_bundle
    from studentflow.pipeline import fit_models

    b = load_bundle(small_region / "manifest.toml")
    assert b.slot_history is None
    pairs = build_pairs(b)
    assert pairs[BILLED_SHARE_BEFORE].isna().all()
    cal = calibrate_status_quo(next(iter(fit_models(pairs).values())), pairs, study_scenarios()[0])
    assert cal.capacity_rule == "floor" and not cal.schools["below_capacity"].any()


def test_calibration_uses_the_history_when_the_pairs_carry_it(sample_bundle):
    from studentflow.pipeline import compute_distances, fit_models

    distances = compute_distances(sample_bundle)
    pairs = build_pairs(sample_bundle, distances)
    share = pairs.groupby("destination_id")[BILLED_SHARE_BEFORE].first()
    h = sample_bundle.slot_history
    one = share.dropna().index[0]
    rows = h[h["school_id"] == one]
    assert share[one] == pytest.approx((rows["billed"] / rows["slots"]).max())
    model = next(iter(fit_models(pairs).values()))
    status_quo = study_scenarios()[0]
    auto = calibrate_status_quo(model, pairs, status_quo)
    floor = calibrate_status_quo(model, pairs.drop(columns=BILLED_SHARE_BEFORE), status_quo)
    assert (auto.capacity_rule, floor.capacity_rule) == ("unconstrain", "floor")
    s = auto.schools
    assert s["below_capacity"].sum() > 50 and not (s["capacity_bound"] & s["below_capacity"]).any()
    assert np.allclose(s["calibrated"], np.minimum(s["observed"], s["capacity"]), atol=1e-3)  # today, exactly
    assert "below capacity by their billing" in auto.summary()
