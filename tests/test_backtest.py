"""Backtest: fit on one school year, predict the next under its levers, compare with the observed."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import studentflow as sf
from studentflow.backtesting.prepare import lever_pairs, year_capacity
from studentflow.scenarios.cohort import forecast_pools


@pytest.fixture(scope="module")
def small(small_region):
    from studentflow.ingest import load_bundle

    return load_bundle(small_region / "manifest.toml")


def _with(bundle, *, raise_tier=None, amount=0.0, add_slots=0, year=None):
    """A copy of ``bundle`` as another year's levers: a subsidy raise for one tier, slots added
    at the ESC schools of that tier."""
    schools, subsidy = bundle.schools.copy(), bundle.subsidy.copy()
    if raise_tier is not None:
        hit = subsidy.index[subsidy["tier"] == raise_tier]
        subsidy.loc[hit, "amount"] = subsidy.loc[hit, "amount"] + amount
        esc = schools.index.isin(hit) & schools["esc"].fillna(False).astype(bool).to_numpy()
        schools.loc[esc, "esc_slots"] = schools.loc[esc, "esc_slots"] + add_slots
    out = dataclasses.replace(bundle, schools=schools, subsidy=subsidy)
    if year is not None and hasattr(out, "school_year"):
        out = dataclasses.replace(out, school_year=year)
    return out


@pytest.fixture(scope="module")
def identical(small):
    return sf.backtest(train=small, test=small, draws=8, seed=1)


def test_identical_years_predict_no_change_and_persistence_is_exact(identical, small):
    r = identical
    d = r.as_dict()
    total = d["observed_total"]
    assert d["observed_change"] == 0
    assert d["predicted_lo"] <= total <= d["predicted_hi"]
    assert abs(d["predicted_change"]) < 0.03 * total
    assert d["persistence"]["total_error"] == 0 and d["persistence"]["school_mae"] == 0
    assert d["persistence"]["srmse"] == pytest.approx(0.0) and d["persistence"]["cpc"] == pytest.approx(1.0)
    assert d["schools_within_interval"] >= 0.9
    t = r.schools  # one year's demand noise widens each school's interval
    assert (t["predictive_hi"] - t["predictive_lo"]).sum() > (t["predicted_hi"] - t["predicted_lo"]).sum()
    # the refit on an identical year gives back the train year's coefficients
    assert np.allclose(r.coefficients["train"], r.coefficients["test"], atol=1e-8)
    # every predictor is scored on the same error keys
    keys = set(d["persistence"])
    assert keys <= set(d["study_estimator"]) and keys <= set(d["forecast_pools"])
    assert {"train", "test", "observed_total", "predicted_total", "predicted_lo", "predicted_hi",
            "observed_change", "predicted_change", "schools_within_interval", "srmse", "cpc"} <= set(d)


def test_a_subsidy_raise_with_added_slots_is_predicted_as_a_gain(small, identical):
    test = _with(small, raise_tier="other", amount=4000.0, add_slots=3)
    r = sf.backtest(train=small, test=test, draws=8, seed=1)
    ch = r.changes.set_index(["kind", "group"])
    assert r.as_dict()["predicted_change"] > identical.as_dict()["predicted_change"] + 50
    gain = ch.loc[("tier", "other"), "predicted_change"] - identical.changes.set_index(
        ["kind", "group"]).loc[("tier", "other"), "predicted_change"]
    assert gain > 0.5 * (r.as_dict()["predicted_change"] - identical.as_dict()["predicted_change"])


def test_the_prediction_never_sees_the_test_years_outcomes(small):
    """Shuffling the test year's beneficiaries over its pairs and changing its billed slots
    (outcomes) leaves the prediction unchanged; only the scores move."""
    rng = np.random.default_rng(0)
    f = small.flows.copy()
    f["esc_beneficiaries"] = np.minimum(rng.permutation(f["esc_beneficiaries"].to_numpy()), f["learners"])
    s = small.schools.copy()
    s["esc_slots_billed"] = 0
    other = dataclasses.replace(small, flows=f, schools=s)
    a = lever_pairs(small, small)
    b = lever_pairs(small, other)
    pd.testing.assert_frame_equal(a, b)


def test_capacity_is_contracted_slots_times_the_train_billing_ratio(small):
    test = _with(small, raise_tier="other", amount=0.0, add_slots=10)
    cap, ratio, pooled = year_capacity(small, test)
    s = small.schools.loc[small.schools["esc"].fillna(False).astype(bool)]
    j = s.index[(s["esc_slots"] > 0)][0]
    expected = round(test.schools.loc[j, "esc_slots"] * s.loc[j, "esc_slots_billed"] / s.loc[j, "esc_slots"])
    assert cap[j] == expected
    assert 0 < pooled < 2
    same, _, _ = year_capacity(small, small)  # identical years: the billed slots back
    billed = s["esc_slots_billed"].astype(float).reindex(same.index)
    assert np.allclose(same[s.loc[same.index, "esc_slots"] > 0], billed[s.loc[same.index, "esc_slots"] > 0])


def test_a_new_esc_school_gets_the_pooled_ratio_and_no_calibration(small):
    s = small.schools.copy()
    esc = s.index[s["esc"].fillna(False).astype(bool)]
    j = esc[0]
    earlier = s.copy()
    earlier.loc[j, ["esc", "esc_slots", "esc_slots_billed"]] = [False, 0, 0]
    train = dataclasses.replace(small, schools=earlier)
    cap, ratio, pooled = year_capacity(train, small)
    assert ratio[j] == pytest.approx(pooled)
    assert cap[j] == round(s.loc[j, "esc_slots"] * pooled)


# ---------------------------------------------------------------- pool forecast
def _cohort(shares: dict, n: int, seed: int):
    """Two school years whose Grade 7 pools are Grade 6 × a known share per group (binomial)."""
    rng = np.random.default_rng(seed)
    ids = [f"{100000 + i:06d}" for i in range(n)]
    groups = list(shares)
    g = [groups[i % len(groups)] for i in range(n)]
    g6 = rng.integers(40, 200, n)
    schools = pd.DataFrame({"sector": [x[0] for x in g], "region": [x[1] for x in g], "enrol_g6": g6}, index=ids)
    learners = rng.binomial(g6, [shares[x] for x in g])
    flows = pd.DataFrame({"origin_id": ids, "destination_id": "300000", "learners": learners,
                          "esc_beneficiaries": 0})
    y0 = SimpleNamespace(schools=schools, flows=flows.iloc[:0], school_year="2021-2022")
    y1 = SimpleNamespace(schools=schools.assign(enrol_g6=rng.integers(40, 200, n)), flows=flows,
                         school_year="2022-2023")
    return y0, y1


@settings(max_examples=15, deadline=None)
@given(a=st.floats(0.6, 1.0), b=st.floats(0.6, 1.0), seed=st.integers(0, 10_000))
def test_forecast_pools_recover_the_transition_shares(a, b, seed):
    shares = {("public", "NCR"): a, ("private", "Region III"): b}
    y0, y1 = _cohort(shares, 120, seed)
    fc = forecast_pools([y0, y1])
    assert fc.method == "consecutive years" and fc.for_year == "2023-2024" and fc.from_year == "2022-2023"
    for (sector, region), share in shares.items():
        row = fc.shares.loc[f"{sector} / {region}"]
        assert abs(row["share"] - share) < 4 * row["se"] + 1e-3
    g6 = y1.schools["enrol_g6"]
    expect = np.round(g6 * [shares[(s, r)] for s, r in zip(y1.schools["sector"], y1.schools["region"])])
    assert np.abs(fc.pools.reindex(g6.index) - expect).sum() <= 0.1 * expect.sum()
    draws = fc.draw(400, seed=3)
    assert draws.shape == (400, len(fc.pools))
    assert np.allclose(draws.mean(axis=0), fc.pools.to_numpy(), rtol=0.05, atol=2)
    assert np.array_equal(draws, fc.draw(400, seed=3))


def test_forecast_pools_with_one_year_use_that_years_ratio(small):
    fc = forecast_pools([small])
    assert fc.method == "same year"
    assert fc.total == pytest.approx(small.flows["learners"].sum(), rel=0.05)


# ---------------------------------------------------------------- several school years on disk
from test_ingest_years import two_years  # noqa: E402,F401 - the sample twice, 40 IDs renamed via a crosswalk


def _cli(*args):
    import contextlib
    import io

    from studentflow.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_one_school_year_exits_1_naming_what_is_missing(small_region, tmp_path):
    code, out, err = _cli("backtest", "--data", str(small_region), "--draws", "2", "--out", str(tmp_path))
    assert code == 1 and out == ""
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err
    assert "two school years" in line and "enrollment, transitions, esc_beneficiaries" in line
    assert 'school_year = "2022-2023"' in line  # the year before the one it has


@pytest.mark.slow
def test_identical_years_under_new_ids_backtest_to_no_change_with_every_school_matched(two_years, tmp_path):
    import json

    manifest, old_of = two_years
    code, out, err = _cli("backtest", "--data", str(manifest), "--draws", "6", "--json", "--out", str(tmp_path))
    assert code == 0, err
    d = json.loads(out)
    assert (d["train"], d["test"]) == ("2022-2023", "2023-2024")
    assert d["observed_change"] == 0
    assert d["predicted_change_lo"] <= 0 <= d["predicted_change_hi"]
    assert abs(d["predicted_change"]) < 0.03 * d["observed_total"]
    # every school matched across the IDs: persistence is exact, no school opened or closed
    assert d["persistence"]["school_mae"] == 0 and d["persistence"]["cpc"] == pytest.approx(1.0)
    assert d["notes"][0].startswith("0 ESC school(s) new") and "; 0 no longer ESC" in d["notes"][0]
    assert d["notes"][1].startswith("0 observed")
    table = pd.read_csv(tmp_path / "backtest.csv", dtype={"school_id": str})
    assert {"school_id", "observed", "predicted", "predicted_lo", "predicted_hi", "persistence",
            "in_interval"} <= set(table.columns)
    assert table["school_id"].is_unique and set(old_of) & set(table["school_id"])  # current IDs only
    assert not set(old_of.values()) & set(table["school_id"])
    assert (table["observed"] == table["persistence"]).all()
    page = (tmp_path / "backtest.html").read_text(encoding="utf-8")
    assert "fig_backtest.png" in page and "Backtest: 2022-2023 → 2023-2024" in page


def _multi_year_sample(sample_dir):
    """The bundled sample's multi-year manifest."""
    from studentflow.ingest import manifest_years

    for name in ("manifest.toml", "manifest_years.toml"):
        if (sample_dir / name).is_file() and len(manifest_years(sample_dir / name)) >= 3:
            return sample_dir / name
    pytest.skip("the bundled sample has a single school year")


@pytest.mark.slow
def test_the_sample_backtest_across_the_policy_change(sample_dir):
    """2022-2023 → 2023-2024 (NCR ₱11,000 → ₱13,000, slots added at 50 full schools): the observed
    change lies in the 95 % interval and the model beats persistence per school."""
    r = sf.backtest(_multi_year_sample(sample_dir), draws=20, seed=0)
    d = r.as_dict()
    assert (d["train"], d["test"]) == ("2022-2023", "2023-2024")
    assert d["predicted_change_lo"] <= d["observed_change"] <= d["predicted_change_hi"]
    assert d["predicted_change"] > 0  # the raise and the added slots are seen
    assert d["school_mae"] < d["persistence"]["school_mae"]
    assert d["schools_within_predictive_interval"] > d["schools_within_interval"]
    assert d["srmse"] < d["persistence"]["srmse"] and d["cpc"] > d["persistence"]["cpc"]
    ncr = r.changes.set_index(["kind", "group"]).loc[("tier", "NCR")]
    assert ncr["predicted_change"] > 0 and ncr["inside"]
    # the oracle is the floor: closer per school than the model
    assert d["oracle"]["school_mae"] < d["school_mae"] and d["truth_change"] is not None
    assert {"model", "study estimator", "persistence"} <= set(d["truth_change_error"])
