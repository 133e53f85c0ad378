"""Gravity model: parameter recovery, truncation bias, fast vs statsmodels, metrics, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.gravity import metrics as gm
from studentflow.gravity import (
    NESTED_FORMULAS, STUDY_FORMULA, AlphaBoundaryWarning, GravityConvergenceWarning,
    GravityWarning, compare_models, fit_gravity,
)
from studentflow.synth import STUDY_ALPHA, STUDY_PARAMS
from studentflow.synth.pairs import linear_predictor, make_pairs


def _fit(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GravityWarning)
        return fit_gravity(*args, **kw)


def _truth_by_column(model, truth):
    return pd.Series({n: truth[gm.term_key(n)] for n in model.params.index})


@pytest.fixture(scope="module")
def pairs():
    return make_pairs(400, 40, seed=3)


@pytest.fixture(scope="module")
def include_fit(pairs):
    return fit_gravity(pairs, zeros="include", method="fast")


# ---- synthetic truth ------------------------------------------------------------------
def test_make_pairs_deterministic_and_realistic():
    a, b = make_pairs(200, 40, seed=11), make_pairs(200, 40, seed=11)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(make_pairs(200, 40, seed=12))
    assert len(a) == 200 * 40 and not a.duplicated(["origin_id", "destination_id"]).any()
    assert a["distance_km"].between(0.3, 15).all()
    assert a["net_cost_k"].between(0, 60).all() and a["net_cost_k"].skew() > 0
    assert set(a["esc_rating"]) <= set(range(1, 9))
    assert a["origin_lgu_revenue"].between(1e8, 3e10).all()
    assert set(a["origin_region"]) == set(a["destination_region"]) == {
        "NCR", "Region III", "Region IV-A"}
    np.testing.assert_allclose(a["mu"].mean(), 0.25, rtol=1e-9)
    per_origin = a.groupby("origin_id")["esc_beneficiaries"].sum().mean()
    assert 7 < per_origin < 13
    assert (a["origin_pool"] >= a["origin_esc_beneficiaries"]).all()
    assert (a["learners"] >= a["esc_beneficiaries"]).all()
    assert ((a["pair_type"] == "observed") == (a["learners"] > 0)).all()


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 50), seed=st.integers(0, 2**31))
def test_make_pairs_shape_and_calibration(n, k, seed):
    df = make_pairs(n, k, seed=seed)
    assert len(df) == n * k and df["origin_id"].nunique() == n
    assert not df.duplicated(["origin_id", "destination_id"]).any()
    np.testing.assert_allclose(df["mu"].mean(), 0.25, rtol=1e-9)
    np.testing.assert_allclose(
        np.log(df["mu"]), linear_predictor(df, df.attrs["params"]), rtol=1e-12, atol=1e-12)
    assert (df["esc_beneficiaries"] >= 0).all()


def test_make_pairs_counts_are_nb2_with_known_dispersion():
    df = make_pairs(1500, 40, seed=2, intercept=1.0)
    y, mu = df["esc_beneficiaries"].to_numpy(float), df["mu"].to_numpy()
    np.testing.assert_allclose(y.mean(), mu.mean(), rtol=0.03)
    a_hat = np.sum((y - mu) ** 2 - y) / np.sum(mu**2)  # moment estimator of alpha
    assert abs(a_hat - STUDY_ALPHA) < 0.06


# ---- estimation ---------------------------------------------------------------------
def test_include_recovers_truth_within_3_se(pairs, include_fit):
    m = include_fit
    truth = _truth_by_column(m, pairs.attrs["params"])
    z = (m.params - truth) / m.bse
    assert (z.abs() < 3).all(), z
    a_se = np.sqrt(m.cov_params.loc["alpha", "alpha"])
    assert abs(m.alpha - STUDY_ALPHA) < 3 * a_se


def test_predict_with_truth_equals_generator_mean(pairs, include_fit):
    # term-key params (STUDY_PARAMS naming) map onto the design columns
    mu = include_fit.predict(pairs, params=pd.Series(pairs.attrs["params"]))
    np.testing.assert_allclose(mu, pairs["mu"].to_numpy(), rtol=1e-10)
    eta = linear_predictor(pairs, include_fit.params.rename(gm.term_key))
    np.testing.assert_allclose(include_fit.predict(pairs), np.exp(eta), rtol=1e-10)


def test_ci_coverage_of_distance_small_study():
    covered = []
    for s in range(30):
        df = make_pairs(60, 30, seed=100 + s)
        m = _fit(df, zeros="include", method="fast")
        lo, hi = m.conf_int().loc["np.log1p(distance_km)"]
        covered.append(lo <= STUDY_PARAMS["log1p_distance_km"] <= hi)
    assert 0.8 <= np.mean(covered) <= 1.0


def test_drop_is_biased_truncate_recovers():
    df = make_pairs(600, 40, seed=5)
    truth = df.attrs["params"]
    drop = _fit(df, zeros="drop", method="fast")
    trunc = _fit(df, zeros="truncate", method="fast")
    t_drop = _truth_by_column(drop, truth)
    z_drop = (drop.params - t_drop) / drop.bse
    # positive-only NB2: slopes pulled toward 0, so all candidate pairs are overpredicted
    assert z_drop["np.log1p(distance_km)"] > 3 and z_drop["np.log1p(net_cost_k)"] > 3
    assert abs(drop.params["np.log1p(distance_km)"]) < 0.6 * abs(truth["log1p_distance_km"])
    assert drop.predict(df).sum() > 2 * df["mu"].sum()
    z_tr = (trunc.params - _truth_by_column(trunc, truth)) / trunc.bse
    assert (z_tr.abs() < 3).all(), z_tr
    assert trunc.predict(df).sum() == pytest.approx(df["mu"].sum(), rel=0.1)


@pytest.mark.parametrize(
    "family,zeros,cluster",
    [("negbin", "include", "origin_id"), ("negbin", "include", None),
     ("poisson", "include", "origin_id"), ("poisson", "truncate", "origin_id"),
     ("negbin", "truncate", "origin_id"), ("negbin", "truncate", None),
     ("negbin", "drop", "origin_id"), ("negbin", "drop", None)],
)
def test_fast_equals_statsmodels(family, zeros, cluster):
    """The default path (direct design, Newton) against statsmodels end to end."""
    # statsmodels' truncated NB rebuilds a model per score call: keep that table small
    n = 50 if (family, zeros) == ("negbin", "truncate") else 120
    intercept = {"include": 0.9, "truncate": 2.2, "drop": 3.0}[zeros]  # drop: alpha > 0
    df = make_pairs(n, 30, seed=7, intercept=intercept)
    ref = _fit(df, family=family, zeros=zeros, cluster=cluster, method="statsmodels")
    fast = _fit(df, family=family, zeros=zeros, cluster=cluster)
    assert fast.method == "fast" and list(fast.params.index) == list(ref.params.index)
    assert family == "poisson" or ref.alpha > 0.01
    np.testing.assert_allclose(fast.params, ref.params, rtol=1e-8, atol=1e-10)
    # statsmodels' truncated models differentiate the likelihood numerically (finite
    # differences): their standard errors carry errors of ~1e-6; ours are exact
    np.testing.assert_allclose(fast.bse, ref.bse, rtol=2e-5 if zeros == "truncate" else 1e-8)
    np.testing.assert_allclose(fast.alpha, ref.alpha, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fast.llf, ref.llf, rtol=1e-10)
    np.testing.assert_allclose(fast.llnull, ref.llnull, rtol=1e-8)
    np.testing.assert_allclose(fast.predict(df), ref.predict(df), rtol=1e-7)


def test_fit_summaries_are_consistent(include_fit):
    m = include_fit
    assert m.aic == pytest.approx(-2 * m.llf + 2 * (len(m.params) + 1))
    assert m.bic == pytest.approx(-2 * m.llf + (len(m.params) + 1) * np.log(m.nobs))
    assert 0 < m.pseudo_r2 < 1 and m.llnull < m.llf
    ci = m.conf_int(0.10)
    np.testing.assert_allclose(ci["upper"] - ci["lower"], 2 * 1.6448536 * m.bse, rtol=1e-6)
    np.testing.assert_allclose(m.irr, np.exp(m.params))
    assert m.converged and m.n_clusters == 400


def test_summary_and_elasticities_use_study_names(include_fit):
    text = include_fit.summary()
    for label in ("ln(1+distance km)", "ln(1+net cost, thousand pesos)", "ESC rating rank",
                  "ln(1+origin LGU revenue)", "origin Region III", "destination Region IV-A",
                  "alpha (dispersion)", "Pseudo R²"):
        assert label in text
    el = include_fit.elasticities
    b = include_fit.params["np.log1p(distance_km)"]
    row = el.loc["np.log1p(distance_km)"]
    assert row["term"] == "ln(1+distance km)" and row["estimate"] == b
    assert f"{abs(1.1**b - 1) * 100:.1f} % fewer learners" in row["reading"]
    assert "Intercept" not in el.index


def test_draw_params_reproducible_and_centered(include_fit, pairs):
    m = include_fit
    d1, d2 = m.draw_params(4000, seed=5), m.draw_params(4000, seed=5)
    pd.testing.assert_frame_equal(d1, d2)
    assert list(d1.columns) == list(m.params.index)
    assert (np.abs(d1.mean() - m.params) < 4 * m.bse / np.sqrt(4000)).all()
    np.testing.assert_allclose(d1.std(), m.bse, rtol=0.06)
    sub = pairs.iloc[:50]
    row = d1.iloc[3]
    expected = np.exp(linear_predictor(sub, row.rename(gm.term_key)))
    np.testing.assert_allclose(m.predict(sub, params=row), expected, rtol=1e-10)
    assert not np.allclose(m.predict(sub, params=row), m.predict(sub))


def test_nested_models_lr_table(pairs):
    tab = compare_models(pairs, zeros="include", method="fast", cluster=None)
    assert list(tab["model"]) == list(NESTED_FORMULAS)
    assert (np.diff(tab["llf"]) >= -1e-6).all()
    np.testing.assert_allclose(tab["lr"].iloc[1:], 2 * np.diff(tab["llf"]))
    assert np.isnan(tab["lr"].iloc[0]) and tab["lr_pvalue"].iloc[1:].between(0, 1).all()
    full = fit_gravity(pairs, STUDY_FORMULA, zeros="include", method="fast", cluster=None)
    assert tab["llf"].iloc[-1] == pytest.approx(full.llf)


def test_dispersion_tests():
    nb = make_pairs(300, 40, seed=9, intercept=1.0)
    m = fit_gravity(nb, zeros="include", method="fast")
    lr, ct = m.dispersion_test("lr"), m.dispersion_test("ct")
    assert lr.pvalue < 1e-6 and ct.pvalue < 1e-6 and abs(ct.alpha - STUDY_ALPHA) < 0.15
    pois = make_pairs(300, 40, seed=9, intercept=1.0, alpha=0.0)
    mp = _fit(pois, family="poisson", zeros="include", method="fast")
    assert mp.dispersion_test("lr").pvalue > 0.01 and mp.dispersion_test("ct").pvalue > 0.01


# ---- metrics --------------------------------------------------------------------------
def test_cpc_srmse_hand_computed(include_fit, pairs):
    t, p = [1.0, 0.0, 3.0], [2.0, 1.0, 1.0]
    # min = (1, 0, 1): CPC = 2*2 / (4 + 4)
    assert gm.cpc(t, p) == pytest.approx(0.5)
    # residuals (-1, -1, 2): RMSE = sqrt(6/3), mean observed 4/3
    assert gm.srmse(t, p) == pytest.approx(np.sqrt(2) / (4 / 3))
    y = pairs["esc_beneficiaries"].to_numpy(float)
    mu = include_fit.predict(pairs)
    assert include_fit.cpc() == pytest.approx(gm.cpc(y, mu))
    assert include_fit.srmse(pairs) == pytest.approx(gm.srmse(y, mu))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 100)), min_size=1, max_size=30)
       .filter(lambda v: sum(v) > 0), st.floats(0.1, 10))
def test_metric_properties(t, c):
    t = np.asarray(t)
    rng = np.random.default_rng(len(t))
    p = t * rng.uniform(0.5, 1.5, t.size) + 0.01
    assert gm.cpc(t, t) == pytest.approx(1.0)
    assert gm.srmse(t, t) == pytest.approx(0.0)
    assert 0 <= gm.cpc(t, p) <= 1 and gm.cpc(t, p) == pytest.approx(gm.cpc(p, t))
    assert gm.srmse(c * t, c * p) == pytest.approx(gm.srmse(t, p))


def test_deviance_matches_statsmodels_families(include_fit):
    from statsmodels.genmod import families

    y = include_fit.endog
    mu = np.exp(include_fit.exog @ include_fit.params.to_numpy())
    a = include_fit.alpha
    assert include_fit.deviance() == pytest.approx(
        families.NegativeBinomial(alpha=a).deviance(y, mu), rel=1e-10)
    assert gm.deviance(y, mu) == pytest.approx(families.Poisson().deviance(y, mu), rel=1e-10)


# ---- bad input ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return make_pairs(40, 10, seed=1, intercept=1.5)


def test_predict_unseen_region_is_an_error(include_fit, small):
    bad = small.copy()
    bad.loc[2, "origin_region"] = "Region V"
    with pytest.raises(ValueError, match="unseen"):
        include_fit.predict(bad)
    with pytest.raises(ValueError, match="distance_km"):
        include_fit.predict(small.drop(columns="distance_km"))


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d.drop(columns="esc_rating"), "esc_rating"),
        (lambda d: d.assign(esc_beneficiaries=0), "all zero"),
        (lambda d: d.assign(esc_beneficiaries=d["esc_beneficiaries"].where(d.index != 3, -1)),
         "negative"),
        (lambda d: d.assign(net_cost_k=d["net_cost_k"].where(d.index != 5, np.nan)),
         "net_cost_k"),
        (lambda d: d.assign(distance_km=d["distance_km"].where(d.index != 5, -2.0)),
         "non-finite.*distance_km"),
    ],
)
def test_bad_input_errors(small, mutate, match):
    with pytest.raises(ValueError, match=match):
        fit_gravity(mutate(small.copy()), zeros="include", method="fast")


def test_separated_level_is_dropped_not_fatal(small):
    from studentflow.gravity import CollinearityWarning

    none_in_iii = small.assign(esc_beneficiaries=small["esc_beneficiaries"].where(
        small["destination_region"] != "Region III", 0))
    with pytest.warns(CollinearityWarning, match="destination Region III.*all carry 0 learners.*separation"):
        m = fit_gravity(none_in_iii, zeros="include", method="fast")
    assert [d.label for d in m.dropped] == ["destination Region III"]
    assert m.converged and np.isfinite(m.bse).all()


def test_bad_options_and_boundary_warning(small):
    with pytest.raises(ValueError, match="zeros"):
        fit_gravity(small, zeros="sometimes")
    with pytest.raises(ValueError, match="cluster"):
        fit_gravity(small, cluster="school")
    # positive flows with mean ~1.3: no overdispersion left, alpha on its boundary
    df = make_pairs(200, 40, seed=1)
    with pytest.warns(AlphaBoundaryWarning, match="boundary"):
        m = fit_gravity(df, zeros="drop", method="fast")
    assert m.alpha == 0.0 and np.isfinite(m.bse).all()


# ---- numerical core -------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    y=st.integers(0, 40), eta=st.floats(-4, 4), log_alpha=st.floats(-4, 2),
    family=st.sampled_from(["negbin", "poisson"]), truncated=st.booleans(),
)
def test_row_derivatives_match_finite_differences(y, eta, log_alpha, family, truncated):
    from studentflow.gravity.newton import row_derivatives

    if truncated and y == 0:
        y = 1
    r = float(np.exp(-log_alpha))
    yy = np.array([float(y)])

    def f(e, rr, key="ll"):
        return row_derivatives(yy, np.array([e]), rr, family, truncated)[key][0]

    d = row_derivatives(yy, np.array([eta]), r, family, truncated)
    h_e, h_r = 1e-5, 1e-5 * r
    num_e = (f(eta + h_e, r) - f(eta - h_e, r)) / (2 * h_e)
    num_ee = (f(eta + h_e, r, "e") - f(eta - h_e, r, "e")) / (2 * h_e)
    assert d["e"][0] == pytest.approx(num_e, rel=1e-5, abs=1e-7)
    assert d["ee"][0] == pytest.approx(num_ee, rel=1e-5, abs=1e-7)
    if family == "negbin":
        num_r = (f(eta, r + h_r) - f(eta, r - h_r)) / (2 * h_r)
        num_rr = (f(eta, r + h_r, "r") - f(eta, r - h_r, "r")) / (2 * h_r)
        num_er = (f(eta, r + h_r, "e") - f(eta, r - h_r, "e")) / (2 * h_r)
        assert d["r"][0] == pytest.approx(num_r, rel=1e-5, abs=1e-7)
        assert d["rr"][0] == pytest.approx(num_rr, rel=1e-4, abs=1e-7)
        assert d["er"][0] == pytest.approx(num_er, rel=1e-5, abs=1e-7)
    # the likelihood itself against scipy's pmf
    from scipy import stats

    mu = np.exp(eta)
    dist = stats.nbinom(r, r / (r + mu)) if family == "negbin" else stats.poisson(mu)
    ll = dist.logpmf(y) - (np.log(dist.sf(0)) if truncated else 0.0)
    assert d["ll"][0] == pytest.approx(ll, rel=1e-9, abs=1e-9)


def test_non_convergence_warns(monkeypatch, small):
    import functools

    from studentflow.gravity import fit as gravity
    from studentflow.gravity import newton as gravity_fast

    assert not gravity_fast.fit_counts(
        small["esc_beneficiaries"].to_numpy(float), np.ones((len(small), 1)), maxiter=1
    ).converged
    monkeypatch.setattr(gravity.gf, "fit_counts",
                        functools.partial(gravity_fast.fit_counts, maxiter=1))
    with pytest.warns(GravityConvergenceWarning, match="did not converge"):
        m = fit_gravity(small, zeros="include", method="fast")
    assert not m.converged and "NO" in m.summary()


def test_collinear_and_constant_terms_are_dropped_and_named(small):
    from studentflow.gravity import CollinearityWarning

    f = "esc_beneficiaries ~ distance_km + I(2 * distance_km + 1)"
    with pytest.warns(CollinearityWarning, match=r"I\(2 \* distance_km \+ 1\): collinear with intercept"):
        m = fit_gravity(small, f, zeros="include", method="fast")
    assert [d.column for d in m.dropped] == ["I(2 * distance_km + 1)"]
    assert list(m.params.index) == ["Intercept", "distance_km"]
    with pytest.warns(CollinearityWarning, match="no variation"):
        m = fit_gravity(small.assign(esc_rating=3), zeros="include", method="fast")
    assert [(d.column, d.label) for d in m.dropped] == [("esc_rating", "ESC rating rank")]
    assert "Dropped terms (1" in m.summary() and "no variation" in m.summary()


def test_elasticity_ratio_delta_method_matches_draws(include_fit):
    r, se = include_fit.elasticity_ratio()
    b = include_fit.params
    assert r == pytest.approx(b["np.log1p(distance_km)"] / b["np.log1p(net_cost_k)"])
    d = include_fit.draw_params(20000, seed=2)
    ratios = d["np.log1p(distance_km)"] / d["np.log1p(net_cost_k)"]
    # the ratio's sampling spread (robust: interquartile range / 1.349) vs delta method
    iqr = np.subtract(*np.percentile(ratios, [75, 25])) / 1.349
    assert se == pytest.approx(iqr, rel=0.15)
    with pytest.raises(ValueError, match="no term"):
        include_fit.elasticity_ratio("tuition")


def test_pickled_model_predicts_identically(include_fit, pairs):
    """patsy's DesignInfo does not pickle; the model travels as a recipe and rebuilds it."""
    import pickle

    back = pickle.loads(pickle.dumps(include_fit))
    assert back.design_info.column_names == include_fit.design_info.column_names
    pd.testing.assert_series_equal(back.params, include_fit.params)
    sub = pairs.iloc[:500]
    np.testing.assert_array_equal(back.predict(sub), include_fit.predict(sub))
    # categorical levels survive: a level unseen in the fit is still an error by name
    bad = sub.assign(origin_region="Region XIII")
    with pytest.raises(ValueError, match="origin_region"):
        back.predict(bad)


def test_stateful_transform_refuses_to_pickle(small):
    import pickle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = fit_gravity(small, "esc_beneficiaries ~ center(np.log1p(distance_km))", zeros="truncate")
    with pytest.raises(ValueError, match="stateful transform"):
        pickle.dumps(m)
