"""The pooled gravity fit over several school years (issue 21, item 4): parameter recovery."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.gravity import fit_gravity
from studentflow.gravity.metrics import term_key
from studentflow.gravity.panel import fit_panel_gravity, year_sort_key
from studentflow.synth.panel_pairs import make_panel_pairs

YEARS = ("2022-2023", "2023-2024", "2024-2025")


@pytest.fixture(scope="module")
def panel_pairs():
    return make_panel_pairs(YEARS, n_origins=400, year_effects={"2022-2023": 0.3, "2023-2024": -0.2}, seed=5)


@pytest.fixture(scope="module")
def pooled(panel_pairs):
    return fit_panel_gravity(panel_pairs)


def test_net_cost_changes_between_years(panel_pairs):
    cost = panel_pairs.pivot_table(index=["origin_id", "destination_id"], columns="school_year",
                                   values="net_cost_k")
    assert (cost[YEARS[2]] < cost[YEARS[1]] - 1).mean() > 0.2  # the subsidy increase lowers it
    assert (cost[YEARS[1]] > cost[YEARS[0]]).mean() > 0.5  # tuition inflation raises it


def test_pooled_fit_recovers_the_truth_within_its_standard_errors(panel_pairs, pooled):
    truth = panel_pairs.attrs["params"]
    for name in pooled.params.index:
        key = term_key(name)
        z = (pooled.params[name] - truth[key]) / pooled.bse[name]
        assert abs(z) < 3.0, (key, pooled.params[name], truth[key], pooled.bse[name])
    for year, effect in panel_pairs.attrs["year_effects"].items():
        row = pooled.year_effects.loc[year]
        if year == YEARS[-1]:
            assert row["coef"] == 0.0 and row["std_err"] == 0.0
        else:
            assert abs(row["coef"] - effect) < 3.0 * row["std_err"], (year, row["coef"], effect)
    assert pooled.n_clusters == panel_pairs["origin_id"].nunique()  # one cluster per school across years


def test_pooled_cost_elasticity_is_tighter_than_the_single_year_fit(panel_pairs, pooled):
    latest = panel_pairs[panel_pairs["school_year"] == YEARS[-1]]
    single = fit_gravity(latest)
    cost = "np.log1p(net_cost_k)"
    assert pooled.bse[cost] < 0.8 * single.bse[cost]
    assert pooled.nobs > 2 * single.nobs


def test_the_pooled_model_predicts_the_latest_year_without_a_year_column(panel_pairs, pooled):
    latest = panel_pairs[panel_pairs["school_year"] == YEARS[-1]]
    assert np.allclose(pooled.predict(latest.drop(columns="school_year")), pooled.pooled.predict(latest), rtol=1e-10)
    older = panel_pairs[panel_pairs["school_year"] == YEARS[0]]
    shift = np.log(pooled.pooled.predict(older) / pooled.predict(older.drop(columns="school_year")))
    assert np.allclose(shift, pooled.year_effects.loc[YEARS[0], "coef"])
    draws = pooled.draw_params(5, seed=1)
    assert list(draws.columns) == list(pooled.params.index)
    assert "Year effects" in pooled.summary() and "2022-2023: +" in pooled.summary()
    again = pickle.loads(pickle.dumps(pooled))
    assert np.allclose(again.predict(latest), pooled.predict(latest))


def test_one_year_is_the_single_year_fit(panel_pairs):
    latest = panel_pairs[panel_pairs["school_year"] == YEARS[-1]]
    one = fit_panel_gravity(latest)
    single = fit_gravity(latest)
    pd.testing.assert_series_equal(one.params, single.params, rtol=1e-8)
    assert one.years == (YEARS[-1],) and len(one.year_effects) == 1


def test_bad_year_input_is_named(panel_pairs):
    with pytest.raises(ValueError, match="school_year"):
        fit_panel_gravity(panel_pairs.drop(columns="school_year"))
    with pytest.raises(ValueError, match="reference year"):
        fit_panel_gravity(panel_pairs, reference="1999-2000")


def test_year_sort_key_orders_by_first_calendar_year():
    assert sorted(["2024-2025", "2019-2020", "2023-2024"], key=year_sort_key) == \
        ["2019-2020", "2023-2024", "2024-2025"]


@settings(max_examples=4)
@given(seed=st.integers(0, 10_000), ref=st.sampled_from(YEARS))
def test_the_reference_year_only_shifts_the_year_effects(seed, ref):
    """Any reference year gives the same slopes; year effects move by the new reference's effect,
    and the model predicts its reference year's rows as the full pooled fit does."""
    pp = make_panel_pairs(YEARS, n_origins=80, dests_per_origin=20, seed=seed)
    latest = fit_panel_gravity(pp)
    other = fit_panel_gravity(pp, reference=ref)
    assert other.reference_year == ref
    pd.testing.assert_series_equal(other.params.drop("Intercept"), latest.params.drop("Intercept"), atol=1e-5)
    shift = latest.year_effects["coef"] - latest.year_effects.loc[ref, "coef"]
    np.testing.assert_allclose(other.year_effects["coef"], shift, atol=1e-5)
    rows = pp[pp["school_year"] == ref]
    np.testing.assert_allclose(other.predict(rows.drop(columns="school_year")), latest.pooled.predict(rows),
                               rtol=1e-4)


def test_two_way_clusters_are_statsmodels_cameron_gelbach_miller(panel_pairs):
    """The pooled fit's default two-way (origin and ESC school) covariance is statsmodels'
    two-way cluster covariance at the same estimates; one-way clustering is narrower here."""
    import statsmodels.api as sm

    two = fit_panel_gravity(panel_pairs, family="poisson", zeros="include")
    one = fit_panel_gravity(panel_pairs, family="poisson", zeros="include", cluster="origin_id")
    full = two.pooled
    assert two.cluster == full.cluster == "origin_id and destination_id"
    groups = panel_pairs[["origin_id", "destination_id"]].apply(lambda c: c.factorize()[0]).to_numpy()
    assert len(groups) == full.endog.size
    with warnings.catch_warnings():  # statsmodels warns that 0 iterations "failed to converge"
        warnings.simplefilter("ignore")
        ref = sm.Poisson(full.endog, full.exog).fit(start_params=full.params.to_numpy(), maxiter=0, disp=0,
                                                    cov_type="cluster", cov_kwds={"groups": groups}, method="newton")
    np.testing.assert_allclose(np.sqrt(np.diag(full.cov_params.to_numpy())), ref.bse, rtol=1e-6)
    for name in two.params.index:
        j = list(full.params.index).index(name)
        assert two.bse[name] == pytest.approx(ref.bse[j], rel=1e-6)
    pd.testing.assert_series_equal(two.params, one.params)  # the same estimates, other standard errors
    assert not np.allclose(two.bse, one.bse, rtol=1e-3)
    with pytest.raises(ValueError, match="cluster"):
        fit_panel_gravity(panel_pairs, cluster=("origin_id", "no_such_column"))


def test_a_year_already_built_is_not_built_again(sample_dir):
    """The pipeline hands the pooled fit its latest-year pair table: the same fit as building it
    (the study tables' fit, ``censored=False``; the censored fit reads the radius sets)."""
    from studentflow.gravity.panel import fit_years_panel, panel_distances, pooled_fit
    from studentflow.pairs import build_pairs

    panel, bundle = fit_years_panel(sample_dir / "manifest.toml", "all")
    distances = panel_distances(panel)
    latest = build_pairs(bundle, distances)
    kw = dict(censored=False)
    fresh, reused = pooled_fit(panel, distances, **kw), pooled_fit(panel, distances, built={bundle.school_year: latest}, **kw)
    pd.testing.assert_series_equal(fresh.params, reused.params)
    pd.testing.assert_frame_equal(fresh.cov_params, reused.cov_params)
    doubled = latest.assign(esc_beneficiaries=2 * latest["esc_beneficiaries"])  # a table given is used as given
    other = pooled_fit(panel, distances, built={bundle.school_year: doubled}, **kw)
    assert not np.allclose(other.params, fresh.params)
    with pytest.raises(ValueError, match="empty"):
        pooled_fit(panel, distances, built={y: latest.head(0) for y in panel.years}, **kw)
