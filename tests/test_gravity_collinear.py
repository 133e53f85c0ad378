"""Collinear, constant and separated terms are dropped (as R's lm and fixest do), not fatal."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.errors import DataError
from studentflow.gravity import STUDY_FORMULA, CollinearityWarning, fit_gravity
from studentflow.gravity.collinear import collinear_columns, separated_columns
from studentflow.gravity.design import check_formula
from studentflow.pairs import PAIR_COLUMNS
from studentflow.synth import make_pairs

BASE = "esc_beneficiaries ~ np.log1p(distance_km) + np.log1p(net_cost_k) + esc_rating"


def _fit(pairs, formula=STUDY_FORMULA, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = fit_gravity(pairs, formula, **kw)
    return m, [str(w.message) for w in caught if issubclass(w.category, CollinearityWarning)]


@pytest.fixture(scope="module")
def pairs():
    return make_pairs(40, 10, seed=3, intercept=1.5)


def test_later_duplicate_is_dropped_and_named():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    X = np.column_stack([np.ones(50), a, b, 2 * a - b + 3, a])
    keep, dropped = collinear_columns(X, ["Intercept", "a", "b", "c", "a2"])
    assert keep.tolist() == [True, True, True, False, False]
    assert [d.column for d in dropped] == ["c", "a2"]
    assert dropped[0].reason == "collinear with intercept, a, b"
    assert dropped[1].reason == "collinear with a"


def test_constant_and_zero_columns_have_no_variation():
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(30), rng.normal(size=30), np.full(30, 3.0), np.zeros(30)])
    keep, dropped = collinear_columns(X, ["Intercept", "x", "k", "C(r)[T.B]"])
    assert keep.tolist() == [True, True, False, False]
    assert dropped[0].reason == "no variation (always 3 in the estimation sample)"
    assert "no row of the estimation sample has this level" in dropped[1].reason
    # without an intercept a constant column is the intercept: kept
    keep, dropped = collinear_columns(X[:, 1:3], ["x", "k"])
    assert keep.all() and dropped == ()


@settings(max_examples=60)
@given(seed=st.integers(0, 10_000), kinds=st.lists(st.sampled_from(["new", "combo", "const", "copy"]),
                                                    min_size=1, max_size=9),
       intercept=st.booleans(), scale=st.sampled_from([1e-3, 1.0, 1e4]))
def test_planted_dependencies_are_exactly_the_dropped_columns(seed, kinds, intercept, scale):
    """Random columns with planted dependencies (combinations or copies of earlier columns,
    constants after an intercept): exactly the planted ones are dropped, the kept columns
    are full rank, and the rule agrees with a least-squares reference."""
    rng = np.random.default_rng(seed)
    n = 40
    cols, planted = ([np.ones(n)], [False]) if intercept else ([], [])
    for kind in kinds:
        if kind == "new" or not cols:
            cols.append(rng.normal(size=n) * scale * rng.uniform(0.1, 10))
            planted.append(False)
        elif kind == "const":
            cols.append(np.full(n, rng.uniform(0.5, 5)))
            planted.append(intercept)  # without an intercept the first constant is a basis
        elif kind == "copy":
            cols.append(cols[rng.integers(len(cols))] * rng.uniform(0.5, 2))
            planted.append(True)
        else:
            coef = rng.uniform(-3, 3, size=len(cols))
            cols.append(np.column_stack(cols) @ coef)
            planted.append(True)
    X = np.column_stack(cols)
    keep, dropped = collinear_columns(X, [f"x{i}" for i in range(X.shape[1])])
    expected, basis = [], np.zeros((n, 0))
    for j in range(X.shape[1]):  # reference: least-squares residual against the kept basis
        col = X[:, j]
        res = col - basis @ np.linalg.lstsq(basis, col, rcond=None)[0] if basis.shape[1] else col
        independent = bool(np.linalg.norm(res) > 1e-6 * np.linalg.norm(col))
        expected.append(independent)
        if independent:
            basis = np.column_stack([basis, col])
    assert keep.tolist() == expected
    assert all(not k for k, p in zip(keep, planted) if p)
    assert np.linalg.matrix_rank(X[:, keep]) == int(keep.sum())
    assert [d.column for d in dropped] == [f"x{j}" for j in np.flatnonzero(~keep)]


@pytest.mark.parametrize("method", ["fast", "statsmodels"])
def test_fit_with_a_duplicate_equals_the_fit_without_it(pairs, method):
    dup = pairs.assign(distance_copy=np.log1p(pairs["distance_km"]) * 2.0 - 1.0)
    full, notes = _fit(dup, BASE + " + distance_copy + C(origin_region)", zeros="drop", method=method)
    plain, _ = _fit(dup, BASE + " + C(origin_region)", zeros="drop", method=method)
    assert [d.column for d in full.dropped] == ["distance_copy"]
    assert len(notes) == 1 and "distance_copy: collinear with intercept, ln(1+distance km)" in notes[0]
    assert list(full.params.index) == list(plain.params.index)
    np.testing.assert_allclose(full.params, plain.params, rtol=1e-8)
    np.testing.assert_allclose(full.cov_params, plain.cov_params, rtol=1e-6, atol=1e-12)
    assert full.llf == pytest.approx(plain.llf, rel=1e-10)
    # predictions and coefficient draws work on the reduced model (the dropped term adds 0)
    np.testing.assert_allclose(full.predict(dup), plain.predict(dup), rtol=1e-10)
    draws = full.draw_params(4, seed=2)
    assert list(draws.columns) == list(plain.params.index)
    np.testing.assert_allclose(full.predict(dup, params=draws.iloc[1]), plain.predict(dup, params=draws.iloc[1]),
                               rtol=1e-10)
    assert "Dropped terms (1" in full.summary() and "distance_copy: collinear with" in full.summary()
    again = pickle.loads(pickle.dumps(full))
    np.testing.assert_allclose(again.predict(dup), full.predict(dup), rtol=1e-12)


def test_fast_and_statsmodels_drop_the_same_terms(pairs):
    one = pairs.assign(origin_region="Region III", destination_region="Region III")
    a, notes_a = _fit(one, zeros="drop", method="fast")
    b, notes_b = _fit(one, zeros="drop", method="statsmodels")
    assert notes_a == notes_b and len(notes_a) == 2
    assert all("one region only" in n for n in notes_a)
    assert [d.label for d in a.dropped] == ["origin Region III", "destination Region III"]
    np.testing.assert_allclose(a.params, b.params, rtol=1e-5, atol=1e-7)


def test_separated_dummy_is_dropped_only_when_one_sided():
    """A dummy told apart from an earlier one only on rows at the lowest count: dropped
    when those rows all lie on one side, kept when both signs occur."""
    rng = np.random.default_rng(4)
    n = 200
    y = rng.integers(1, 5, size=n)
    o = (np.arange(n) % 3 == 0).astype(float)
    d_one = o.copy()
    ones = np.flatnonzero((y == 1) & (o == 0))[:3]
    d_one[ones] = 1.0  # destination dummy differs on 3 one-learner rows, all +1
    X = np.column_stack([np.ones(n), rng.normal(size=n), o, d_one])
    names = ["Intercept", "x", "C(o)[T.A]", "C(d)[T.A]"]
    keep, dropped = separated_columns(X, names, y > 1, 1)
    assert keep.tolist() == [True, True, True, False]
    assert "not identified apart from" in dropped[0].reason
    assert "3 pairs telling them apart all carry 1 learner" in dropped[0].reason
    both = d_one.copy()
    both[np.flatnonzero((y == 1) & (o == 1))[:2]] = 0.0  # and -1 on two others
    keep, dropped = separated_columns(np.column_stack([X[:, :3], both]), names, y > 1, 1)
    assert keep.all() and dropped == ()


def test_truncated_fit_drops_a_separated_destination_dummy(pairs):
    """The national pattern: a destination dummy that differs from the origin one only on
    pairs with one learner runs to -inf in the zero-truncated fit; it is dropped instead."""
    p = pairs.loc[pairs["esc_beneficiaries"] > 0].copy()
    p["destination_region"] = p["origin_region"]
    cross = np.flatnonzero((p["esc_beneficiaries"] == 1).to_numpy() & (p["origin_region"] == "NCR").to_numpy())[:3]
    p.iloc[cross, p.columns.get_loc("destination_region")] = "Region III"
    formula = BASE + " + C(origin_region, Treatment('NCR')) + C(destination_region, Treatment('NCR'))"
    m, notes = _fit(p, formula, zeros="truncate")
    labels = {d.label: d.reason for d in m.dropped}
    assert "collinear with origin Region IV-A" in labels["destination Region IV-A"]
    assert "separation" in labels["destination Region III"] and "carry 1 learner" in labels["destination Region III"]
    assert len(notes) == 2 and m.converged and np.isfinite(m.bse).all() and m.params.abs().max() < 20


def test_nothing_left_to_fit_is_a_data_error(pairs):
    with pytest.raises(DataError, match="nothing to fit.*no variation"):
        fit_gravity(pairs.assign(esc_rating=0.0), "esc_beneficiaries ~ 0 + esc_rating", zeros="drop")


def test_check_formula_names_the_unknown_term_and_lists_the_columns():
    check_formula("esc_beneficiaries ~ np.log1p(distance_km) + C(origin_region, Treatment('NCR'))",
                  PAIR_COLUMNS)
    with pytest.raises(ValueError) as err:
        check_formula("esc_beneficiaries ~ np.log1p(distanse_km) + esc_rating", PAIR_COLUMNS, "--formula")
    msg = str(err.value)
    assert "'np.log1p(distanse_km)'" in msg and "'distanse_km'" in msg and "distance_km, " in msg
    assert "\n" not in msg
    for bad, why in (("no tilde", "not a formula"), ("esc_beneficiaries ~ (", "cannot parse"),
                     ("esc_beneficiaries ~ foo:esc_rating", "'foo'")):
        with pytest.raises(ValueError, match=why):
            check_formula(bad, PAIR_COLUMNS)


def test_unknown_column_at_fit_time_names_it(pairs):
    with pytest.raises(ValueError, match="column 'nope'"):
        fit_gravity(pairs, "esc_beneficiaries ~ nope")
