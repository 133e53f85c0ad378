"""Gravity design matrices and defaults: the direct (numpy) design equals the formula
engine's, prediction re-uses it, and every entry point recommends the same estimator."""

from __future__ import annotations

import inspect
import pickle
import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from studentflow.gravity import STUDY_FORMULA, GravityWarning, direct, fit_gravity
from studentflow.gravity.design import design_matrix
from studentflow.gravity.fit import _build
from studentflow.synth.pairs import make_pairs

#: formulas the direct path computes (numeric columns, np ufuncs, C() with contrasts)
DIRECT = [
    STUDY_FORMULA,
    "y ~ np.log1p(x) + k + C(r, Treatment('NCR'))",
    "y ~ x + C(r) + C(d, Treatment('NCR'))",
    "y ~ np.log(np.abs(x)) + C(d) - 1",
    "y ~ np.sqrt(x) + np.log1p(k) + C(r, Treatment(reference='A')) + C(d, Sum)",
    "y ~ 0 + C(r, Treatment('NCR')) + k",
]
#: formulas left to the engine (interactions, I(), stateful transforms)
ENGINE = ["y ~ x:k + I(x * 2)", "y ~ C(r):x", "y ~ center(x) + k"]

REGIONS = ["NCR", "Region III", "Region IV-A", "CAR"]


@st.composite
def pair_tables(draw, n_min=2):
    """A random pair table: counts, numeric covariates (maybe negative: log gives NaN,
    maybe missing) and two categorical columns over random subsets of the levels (the
    reference 'NCR' sometimes absent), stored as text, object or pandas Categorical."""
    n = draw(st.integers(n_min, 30))
    y = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    y[0] = max(y[0], 1)
    lowest = draw(st.sampled_from([0.0, 0.0, 0.0, -2.0]))  # below -1: log1p gives NaN
    x = draw(st.lists(st.floats(lowest, 200), min_size=n, max_size=n))
    if draw(st.integers(0, 9)) == 0:
        x[draw(st.integers(0, n - 1))] = np.nan
    k = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    cats = {}
    for col, pool in (("r", ["NCR", "A", "B", "C"]), ("d", REGIONS)):
        levels = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))
        vals = draw(st.lists(st.sampled_from(levels), min_size=n, max_size=n))
        kind = draw(st.sampled_from(["default", "object", "category"]))
        cats[col] = (pd.Series(vals, dtype=object) if kind == "object" else
                     pd.Series(pd.Categorical(vals)) if kind == "category" else pd.Series(vals))
    df = pd.DataFrame({"y": y, "x": x, "k": k, **cats})
    if draw(st.booleans()):  # a non-default index survives
        df.index = pd.RangeIndex(100, 100 + n)
    return df


def _study_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The same table under the study's column names (so STUDY_FORMULA applies)."""
    return df.assign(esc_beneficiaries=df["y"], distance_km=df["x"], net_cost_k=df["k"],
                     esc_rating=df["k"], origin_lgu_revenue=df["x"] + 1.0,
                     origin_region=df["r"], destination_region=df["d"])


def _outcome(fn):
    """(result, None) or (None, error message): both paths must agree on either."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(), None
    except ValueError as exc:
        return None, str(exc)


def _assert_same_design(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a.index.equals(b.index)
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-14, atol=0)


@settings(max_examples=150, deadline=None)
@given(df=pair_tables(), new=pair_tables(n_min=1),
       formula=st.sampled_from(DIRECT + ENGINE))
def test_direct_design_equals_formula_engine(df, new, formula):
    df, new = _study_columns(df), _study_columns(new)
    (got, err_direct), (ref, err_engine) = (
        _outcome(lambda: _build(df, formula, direct=True)),
        _outcome(lambda: _build(df, formula, direct=False)))
    assert err_direct == err_engine
    if ref is None:
        event(f"fit: both raise {err_engine.split(':')[1][:40]}")
        return
    np.testing.assert_array_equal(got[0], ref[0])
    _assert_same_design(got[1], ref[1])
    assert list(got[2].column_names) == list(ref[2].column_names)
    used_direct = direct.fit_design(df, formula.split("~", 1)[1], "fit_gravity") is not None
    assert used_direct == (formula in DIRECT)
    # prediction on another table: the fitted design re-used directly, or the engine
    pred, err_pred = _outcome(lambda: design_matrix(got[2], new))
    with mock.patch.object(direct, "plan", lambda info: None):
        pref, err_pref = _outcome(lambda: design_matrix(ref[2], new))
    assert err_pred == err_pref
    event(f"fit by {'direct' if used_direct else 'engine'}; predict "
          f"{'raises' if err_pref else 'ok'}")
    if pref is not None:
        _assert_same_design(pred, pref)


def test_study_design_is_direct_and_predict_reuses_it():
    df = make_pairs(60, 20, seed=4)
    m = fit_gravity(df, zeros="include")
    assert direct.plan(m.design_info) is not None
    X = design_matrix(m.design_info, df)
    np.testing.assert_allclose(X.to_numpy(float), m.exog, rtol=1e-14)
    with mock.patch.object(direct, "plan", lambda info: None):
        ref = m.predict(df)
    np.testing.assert_allclose(m.predict(df), ref, rtol=1e-14)
    # the pickled model's rebuilt design is still computed directly, with the same mu
    back = pickle.loads(pickle.dumps(m))
    assert direct.plan(back.design_info) is not None
    np.testing.assert_allclose(back.predict(df), ref, rtol=1e-14)


def test_direct_design_errors_name_the_problem():
    df = make_pairs(30, 10, seed=2)
    m = fit_gravity(df, zeros="include")
    with pytest.raises(ValueError, match=r"'origin_region' has level\(s\) \['Region V'\] unseen"):
        m.predict(df.assign(origin_region="Region V"))
    with pytest.raises(ValueError, match="net_cost_k"):
        m.predict(df.drop(columns="net_cost_k"))
    # a numeric column stored as text is left to the engine, which reads it as categorical
    assert direct.fit_design(df.assign(esc_rating=df["esc_rating"].astype(str)),
                             STUDY_FORMULA.split("~", 1)[1]) is None


# ---- recommended defaults -------------------------------------------------------------
def test_default_fit_is_truncated_nb2_fast_and_matches_explicit():
    df = make_pairs(80, 30, seed=8, intercept=2.2)
    m = fit_gravity(df)
    assert (m.family, m.zeros, m.method, m.cluster) == ("negbin", "truncate", "fast", "origin_id")
    explicit = fit_gravity(df, STUDY_FORMULA, zeros="truncate", method="fast")
    pd.testing.assert_series_equal(m.params, explicit.params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GravityWarning)
        study = fit_gravity(df, zeros="drop", method="statsmodels")
    assert (study.zeros, study.method) == ("drop", "statsmodels")
    assert study.nobs == m.nobs and not np.allclose(study.params, m.params, rtol=1e-3)


def test_every_entry_point_defaults_to_the_recommended_estimator():
    from studentflow.cli import _parser
    from studentflow.pipeline import fit_models, run_pipeline

    fit = inspect.signature(fit_gravity).parameters
    assert (fit["zeros"].default, fit["method"].default) == ("truncate", "fast")
    fm = inspect.signature(fit_models).parameters
    assert (fm["zeros"].default, fm["method"].default) == ("truncate", "fast")
    rp = inspect.signature(run_pipeline).parameters
    assert (rp["zeros"].default, rp["fit_method"].default) == ("truncate", "fast")
    args = _parser().parse_args(["run"])
    assert (args.zeros, args.fit_method) == ("truncate", "fast")
    from studentflow.validate import validate

    assert inspect.signature(validate).parameters["zeros"].default == "truncate"
    assert _parser().parse_args(["validate"]).zeros == "truncate"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 300).map(float), st.floats(-5, 5)), min_size=1,
                max_size=50))
def test_distinct_counts_equal_numpy_unique(values):
    """The counting shortcut for whole-number counts gives np.unique's answer."""
    from studentflow.gravity.likelihood import _distinct

    y = np.asarray(values, dtype=float)
    uniq, inv = _distinct(y)
    ref_uniq, ref_inv = np.unique(y, return_inverse=True)
    np.testing.assert_array_equal(uniq, ref_uniq)
    np.testing.assert_array_equal(inv, ref_inv)
