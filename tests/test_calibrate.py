"""Calibration of the status quo and the out-of-sample checks.

The calibration is checked by its defining conditions (the calibrated allocation places
the observed learners at every demand-bound school and fills every capacity-bound one;
capacity-bound schools are never lowered), on random problems whose targets are
feasible by construction, and end to end on a small synthetic region.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.allocation import allocate
from studentflow.allocation.calibrate import calibrate_destinations
from studentflow.scenarios import run_scenarios
from studentflow.scenarios.calibrate import CalibratedModel, calibrate_status_quo, status_quo_fit
from studentflow.scenarios.holdout import _formula_without, out_of_sample
from studentflow.scenarios.spec import Scenario, study_scenarios
from studentflow.synth.pairs import make_pairs

from fakes import FakeModel


@pytest.fixture(scope="module")
def pairs():
    return make_pairs(n_origins=120, dests_per_origin=12, seed=3)


@pytest.fixture(scope="module")
def model(pairs):
    return FakeModel(pairs.attrs["params"])


def _problem(seed, n, m, density, pool_scale):
    rng = np.random.default_rng(seed)
    mu = sp.random(n, m, density=density, random_state=rng, data_rvs=lambda k: rng.gamma(1.0, 2.0, k)).tocsr()
    mu = (mu + sp.csr_matrix((rng.gamma(1.0, 2.0, n), (np.arange(n), rng.integers(0, m, n))), shape=(n, m))).tocsr()
    pools = pool_scale * np.asarray(mu.sum(axis=1)).ravel() * rng.uniform(0.5, 2.0, n)
    caps = np.floor(np.asarray(mu.sum(axis=0)).ravel() * rng.uniform(0.3, 2.0, m))
    # observed placements from a world whose schools pull differently: feasible by construction
    true = allocate(mu @ sp.diags(rng.lognormal(0.0, 0.5, m)), pools, caps)
    observed = np.asarray(true.flows.sum(axis=0)).ravel()
    return mu, pools, caps, observed


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 40), m=st.integers(2, 15),
       density=st.floats(0.1, 0.8), pool_scale=st.sampled_from([0.3, 1.0, 100.0]),
       rule=st.sampled_from(["floor", "match"]))
def test_calibration_reproduces_observed_margins(seed, n, m, density, pool_scale, rule):
    mu, pools, caps, observed = _problem(seed, n, m, density, pool_scale)
    cal = calibrate_destinations(mu, pools, caps, observed, capacity_bound=rule)
    assert cal.converged
    again = allocate(mu @ sp.diags(cal.factors), pools, caps)
    placed = np.asarray(again.flows.sum(axis=0)).ravel()
    np.testing.assert_allclose(placed, np.minimum(observed, caps), rtol=2e-6, atol=2e-6)  # tol 1e-6 x max(1, target)
    np.testing.assert_allclose(cal.placed, placed, rtol=1e-9, atol=1e-9)
    assert (cal.factors >= 0).all()
    bound = observed >= caps
    np.testing.assert_array_equal(cal.capacity_bound, bound)
    if rule == "floor":  # rationing hides demand: a full school's demand is never lowered
        assert (cal.factors[bound] >= 1.0 - 1e-12).all()


def test_floor_keeps_excess_demand_that_match_removes():
    mu = sp.csr_matrix(np.array([[30.0, 2.0], [10.0, 3.0]]))  # school 0 wanted by 40, has 20 slots
    pools, caps, observed = np.array([100.0, 100.0]), np.array([20.0, 50.0]), np.array([20.0, 4.0])
    floor = calibrate_destinations(mu, pools, caps, observed)
    match = calibrate_destinations(mu, pools, caps, observed, capacity_bound="match")
    assert floor.factors[0] == pytest.approx(1.0) and match.factors[0] == pytest.approx(0.5)
    assert floor.factors[1] == pytest.approx(match.factors[1]) == pytest.approx(4.0 / 5.0)
    more_slots = np.array([40.0, 50.0])  # the scenario that doubles school 0's slots
    assert allocate(mu @ sp.diags(floor.factors), pools, more_slots).placed == pytest.approx(44.0)
    assert allocate(mu @ sp.diags(match.factors), pools, more_slots).placed == pytest.approx(24.0)
    assert "capacity-bound" in floor.summary()


def test_unreachable_school_and_bad_input_are_reported():
    mu = sp.csr_matrix(np.array([[1.0, 0.0], [2.0, 0.0]]))
    cal = calibrate_destinations(mu, [10.0, 10.0], [5.0, 5.0], [2.0, 3.0])
    assert cal.unreachable.tolist() == [False, True] and cal.factors[1] == 1.0
    assert "no expected flow" in cal.summary()
    with pytest.raises(ValueError, match="observed"):
        calibrate_destinations(mu, [10.0, 10.0], [5.0, 5.0], [2.0, -1.0])
    with pytest.raises(ValueError, match="capacity_bound"):
        calibrate_destinations(mu, [10.0, 10.0], [5.0, 5.0], [2.0, 1.0], capacity_bound="shrink")


def test_run_scenarios_status_quo_reproduces_observed_per_school(pairs, model):
    res = run_scenarios(None, model, study_scenarios()[:2], pairs=pairs, draws=0, seed=1, progress=False)
    cal = res.calibration
    assert cal is not None and cal.converged
    fit = status_quo_fit(res)
    # point estimate: whole-learner rounding of exactly the observed placements
    assert (fit["observed"] - fit["placed_mean"]).abs().max() <= 1.0 + 1e-9
    assert res.table.iloc[0]["placed_mean"] == pytest.approx(pairs["esc_beneficiaries"].sum(), abs=len(fit) ** 0.5 * 2)
    off = run_scenarios(None, model, study_scenarios()[:2], pairs=pairs, draws=0, seed=1, progress=False,
                        calibrate=False)
    assert off.calibration is None
    again = run_scenarios(None, model, study_scenarios()[:2], pairs=pairs, draws=0, seed=1, progress=False,
                          calibrate=cal)
    pd.testing.assert_frame_equal(again.table, res.table)
    assert "demand-bound" in cal.summary()


def test_design_offset_equals_calibrated_predict(pairs, model):
    """The calibrated design path (log w_j in the offset) and CalibratedModel.predict agree."""
    cal = calibrate_status_quo(model, pairs, study_scenarios()[0])
    fast = run_scenarios(None, model, study_scenarios()[:1], pairs=pairs, draws=3, seed=2, progress=False,
                         calibrate=cal)
    slow = run_scenarios(None, CalibratedModel(model, cal), study_scenarios()[:1], pairs=pairs, draws=3, seed=2,
                         progress=False, calibrate=False)
    np.testing.assert_allclose(fast.per_draw["placed_expected"], slow.per_draw["placed_expected"], rtol=1e-9)


@settings(max_examples=10, deadline=None)
@given(sub=st.lists(st.integers(0, 30_000), min_size=2, max_size=2).map(sorted),
       add=st.lists(st.integers(0, 30), min_size=2, max_size=2).map(sorted))
def test_calibrated_scenarios_monotone_in_subsidy_and_slots(pairs, model, sub, add):
    """DESIGN.md: a uniform subsidy scales whole columns of μ and slots raise capacities, so neither
    places fewer; the calibration multiplies whole columns too, so this must survive it."""
    scen = [Scenario("status quo", baseline=True, capacity="billed"),
            Scenario("a", subsidy=sub[0], add_slots=add[0]),
            Scenario("more subsidy", subsidy=sub[1], add_slots=add[0]),
            Scenario("more slots", subsidy=sub[0], add_slots=add[1])]
    res = run_scenarios(None, model, scen, pairs=pairs, draws=2, seed=9, progress=False)
    assert res.calibration is not None
    d = res.per_draw.pivot(index="draw", columns="scenario", values="placed_expected")
    tol = 1e-6 * d["a"] + 1e-6
    assert (d["more subsidy"] >= d["a"] - tol).all()
    assert (d["more slots"] >= d["a"] - tol).all()
    assert (d["a"] >= d["status quo"] - tol).all()  # contracted >= billed slots


def test_formula_without_drops_only_that_column():
    f = "y ~ np.log1p(d) + C(origin_region, Treatment('NCR')) + C(destination_region, Treatment('NCR'))"
    assert _formula_without(f, "origin_region") == "y ~ np.log1p(d) + C(destination_region, Treatment('NCR'))"
    assert _formula_without("y ~ C(origin_region)", "origin_region") == "y ~ 1"


def test_out_of_sample_scores_both_parts(pairs):
    regions = pairs["origin_region"].unique()
    test = pairs.loc[pairs["origin_region"] == regions[0]].reset_index(drop=True)
    train = pairs.loc[pairs["origin_region"] != regions[0]].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = out_of_sample(train, test, draws=3, seed=0, label="R")
    assert len(table) == 4 and set(table["sample"]) == {"held out", "in sample"}
    assert (table["srmse"] >= 0).all() and table["cpc"].between(0, 1).all()
    assert table["schools_within"].between(0, 1).all()
    held = table.loc[table["sample"] == "held out"]
    assert (held["observed"] == test["esc_beneficiaries"].sum()).all()
    ins = table.set_index(["sample", "calibrated"])
    # calibrated on the fitting part: its schools' observed placements lie within their intervals
    assert ins.loc[("in sample", True), "schools_within"] >= 0.9
    assert (table["held_out"] == "R").all()
    assert (table["formula"].str.contains("origin_region") == False).all()  # noqa: E712


def test_validate_cli_on_a_small_region(small_region, capsys, monkeypatch):
    import studentflow.validate as validate_mod
    from studentflow.cli import main

    real = validate_mod.validate

    def warning_validate(*args, **kwargs):  # an estimator warning, raised twice
        for _ in range(2):
            warnings.warn("alpha is on its boundary 0", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(validate_mod, "validate", warning_validate)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        code = main(["validate", "--data", str(small_region), "--draws", "2", "--seed", "1"])
    out, err = capsys.readouterr()
    assert code == 0
    assert not leaked  # estimator warnings become "note:" lines on stderr, not raw warnings
    assert "Warning:" not in err and err.count("note: alpha is on its boundary 0") == 1
    assert "held out" in out and "in sample" in out and "SRMSE" in out
    assert "Status quo (calibrated) vs observed" in out
    assert "truncate calibrated" in out  # the small region is synthetic: errors vs its truth
