"""The pooled NB2 fit with capacity-censored ESC schools (studentflow.gravity.censored)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.gravity.censored import _Censored, capacity_bound_years, fit_censored
from studentflow.gravity.panel import fit_panel_gravity
from studentflow.pairs import BILLED_SHARE_BEFORE

FORMULA = "esc_beneficiaries ~ np.log1p(distance_km) + np.log1p(net_cost_k)"
TRUTH = {"Intercept": 1.2, "np.log1p(distance_km)": -0.6, "np.log1p(net_cost_k)": -0.35}
ALPHA = 0.4


def rationed_panel(seed: int, *, origins: int = 50, schools: int = 120, years: int = 2, slack: float = 0.35):
    """Stacked pairs with NB2 demand rationed by each school's capacity (known truth).

    Capacity is the median school's expected demand times a lognormal factor, so the
    cheap, popular schools are the full ones (with ``slack=0`` no school is full); a full
    school admits exactly its capacity, drawn by lot among its applicants (multivariate
    hypergeometric), as the synthetic region does.
    """
    rng = np.random.default_rng(seed)
    cost = rng.uniform(2, 40, schools)  # thousand pesos
    ox, oy = rng.uniform(0, 20, origins), rng.uniform(0, 20, origins)
    dx, dy = rng.uniform(0, 20, schools), rng.uniform(0, 20, schools)
    factor = np.exp(rng.normal(0.0, slack, schools))
    parts, flags = [], []
    for t in range(years):
        o, d = np.meshgrid(np.arange(origins), np.arange(schools), indexing="ij")
        o, d = o.ravel(), d.ravel()
        km = np.hypot(ox[o] - dx[d], oy[o] - dy[d]) + 0.5
        nc = cost[d] * (1.03 ** t)
        mu = np.exp(TRUTH["Intercept"] + TRUTH["np.log1p(distance_km)"] * np.log1p(km)
                    + TRUTH["np.log1p(net_cost_k)"] * np.log1p(nc))
        demand = rng.poisson(mu * rng.gamma(1 / ALPHA, ALPHA, mu.size))
        expected = np.bincount(d, mu, minlength=schools)
        cap = np.maximum(1, np.round(np.median(expected) * factor)).astype(np.int64)
        if slack == 0:
            cap = np.full(schools, 10**9)
        admitted = demand.copy()
        for j in range(schools):
            rows = np.flatnonzero(d == j)
            if demand[rows].sum() > cap[j]:
                admitted[rows] = rng.multivariate_hypergeometric(demand[rows], cap[j])
        total = np.bincount(d, admitted, minlength=schools)
        year = f"{2021 + t}-{2022 + t}"
        parts.append(pd.DataFrame({"origin_id": [f"o{i}" for i in o], "destination_id": [f"d{j}" for j in d],
                                   "distance_km": km, "net_cost_k": nc, "esc_beneficiaries": admitted,
                                   "school_year": year}))
        flags.append(pd.DataFrame({"destination_id": [f"d{j}" for j in range(schools)], "school_year": year,
                                   "capacity_bound": (total >= cap) & (total > 0)}))
    bound = pd.concat(flags).set_index(["destination_id", "school_year"])
    return pd.concat(parts, ignore_index=True), bound


@pytest.mark.slow
def test_censored_fit_recovers_the_truth_that_the_plain_fit_misses():
    pairs, bound = rationed_panel(3)
    assert 0.3 < bound["capacity_bound"].mean() < 0.8
    plain = fit_panel_gravity(pairs, FORMULA, zeros="include")
    fit = fit_panel_gravity(pairs, FORMULA, zeros="include", censored=bound)
    cost = "np.log1p(net_cost_k)"
    assert fit.uncensored is not None and fit.censored_schools == int(bound["capacity_bound"].sum())
    for name, value in TRUTH.items():
        if name == "Intercept":
            continue
        assert abs(fit.params[name] - value) < 3 * fit.bse[name], (name, fit.params[name], fit.bse[name])
    # rationing flattens the cost gradient: cheap schools are the full ones
    assert abs(plain.params[cost] - TRUTH[cost]) > abs(fit.params[cost] - TRUTH[cost])
    assert abs(fit.alpha - ALPHA) < 0.1
    assert np.all(np.isfinite(fit.bse)) and fit.converged


def test_without_full_schools_the_censored_fit_is_the_nb2_fit():
    pairs, bound = rationed_panel(5, origins=20, schools=30, slack=0.0)
    bound["capacity_bound"] = False
    plain = fit_panel_gravity(pairs, FORMULA, zeros="include")
    fit = fit_panel_gravity(pairs, FORMULA, zeros="include", censored=bound)
    np.testing.assert_allclose(fit.params, plain.params, atol=2e-4)
    assert fit.alpha == pytest.approx(plain.alpha, abs=2e-4)
    # the same likelihood, so the same two-way sandwich
    np.testing.assert_allclose(fit.bse, plain.bse, rtol=2e-2)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), share=st.floats(0.0, 1.0))
def test_scores_are_the_gradient_of_the_censored_likelihood(seed, share):
    rng = np.random.default_rng(seed)
    n, G = 60, 6
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    group = rng.integers(0, G, n)
    group[:G] = np.arange(G)
    y = rng.poisson(2.0, n).astype(float)
    bound = rng.random(G) < share
    total = np.bincount(group, y, minlength=G)
    lik = _Censored(y, X, group, bound, total)
    theta = np.r_[rng.normal(0, 0.3, 3), np.log(rng.uniform(0.1, 1.0))]
    _, S = lik.rows(theta)
    h = 1e-6
    num = [(lik.rows(theta + e, scores=False)[0].sum() - lik.rows(theta - e, scores=False)[0].sum()) / (2 * h)
           for e in np.eye(len(theta)) * h]
    np.testing.assert_allclose(S.sum(axis=0), num, rtol=1e-4, atol=1e-4)
    # the analytic Hessian (tail second derivatives numerical) = differences of the scores
    np.testing.assert_allclose(lik.hessian(theta), lik.numeric_hessian(theta), rtol=2e-3, atol=2e-3)


def test_capacity_bound_years_reads_placements_billing_and_history():
    rows = pd.DataFrame({
        "destination_id": ["a", "a", "b", "c", "d", "e"],
        "school_year": ["2023-2024"] * 6,
        "esc_beneficiaries": [3, 2, 4, 0, 6, 9],
        "destination_billed": [5, 5, 6, 0, 6, 9],
        "destination_slots": [10, 10, 10, 10, 10, 10],
        BILLED_SHARE_BEFORE: [0.5, 0.5, 0.6, 0.1, 0.9, np.nan],
    })
    out = capacity_bound_years(rows)
    got = out["capacity_bound"].droplevel("school_year").to_dict()
    # a: placed its billed 5 (= 10 x 0.5): full; b: placed 4 of 6 billed: not full;
    # c: placed nobody; d: billed 6 where it billed 9 of 10 before: below capacity;
    # e: no history, placed its billed: full
    assert got == {"a": True, "b": False, "c": False, "d": False, "e": True}
    assert out.loc[("a", "2023-2024"), "observed"] == 5


def test_censored_needs_the_zeros_and_two_clusters():
    pairs, bound = rationed_panel(1, origins=10, schools=10)
    with pytest.raises(ValueError, match="censored= needs"):
        fit_panel_gravity(pairs, FORMULA, zeros="truncate", censored=bound)
    with pytest.raises(ValueError, match="censored= needs"):
        fit_panel_gravity(pairs, FORMULA, zeros="include", cluster="origin_id", censored=bound)
    plain = fit_panel_gravity(pairs, FORMULA, zeros="include", family="poisson")
    with pytest.raises(ValueError, match="NB2"):
        fit_censored(plain, np.zeros(len(pairs), int), np.zeros(1, bool), np.zeros(1), np.zeros(len(pairs)),
                     np.zeros(len(pairs)))
