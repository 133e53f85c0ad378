"""Issue 21, item 5: a plan for next year carries the uncertainty of the forecast pools.

With ``pools`` given per draw (draws × origins), every draw of the optimizer's problem is
solved with its own pools: checked against each draw solved alone, on problems whose
pools bind, and through the search and ``optimize --for-year next``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.optimize.exhaustive import small_problem
from studentflow.optimize.problem import State, evaluate


def _one_draw(problem, d, pools):
    return dataclasses.replace(problem, log_mu=problem.log_mu[d:d + 1], pools=pools[d], _cache={},
                               subsidy_shift=lambda n: problem.subsidy_shift(n)[d:d + 1])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 5_000), squeeze=st.floats(0.02, 0.5), steps=st.integers(0, 6))
def test_each_draw_uses_its_own_pools(seed, squeeze, steps):
    problem, _, _ = small_problem(seed, draws=4)
    rng = np.random.default_rng(seed)
    pools = problem.pools[None, :] * rng.uniform(squeeze, 2 * squeeze, (problem.draws, problem.shape[0]))
    per_draw = dataclasses.replace(problem, pools=pools, _cache={})
    state = dataclasses.replace(State.status_quo(problem), steps=np.full(problem.shape[1], steps),
                                capacities=problem.capacities * 1.5)
    base = evaluate(per_draw, State.status_quo(per_draw))
    ev = evaluate(per_draw, state, reference=base)
    assert np.all(ev.origin <= pools + 1e-6)  # every draw within its own pools
    for d in range(problem.draws):
        alone = _one_draw(problem, d, pools)
        ref = evaluate(alone, State.status_quo(alone))
        one = evaluate(alone, state, reference=ref)
        np.testing.assert_allclose(ev.school[d], one.school[0], rtol=1e-6, atol=1e-6)
        assert ev.relief[d] == pytest.approx(one.relief[0], rel=1e-6, abs=1e-6)
        assert ev.cost[d] == pytest.approx(one.cost[0], rel=1e-6, abs=1e-3)


def test_binding_pools_change_the_answer():
    problem, _, _ = small_problem(11, draws=4)
    tight = problem.pools[None, :] * np.linspace(0.05, 0.2, problem.draws)[:, None]
    state = dataclasses.replace(State.status_quo(problem), capacities=problem.capacities * 2.0)
    fixed = evaluate(problem, state)
    drawn = evaluate(dataclasses.replace(problem, pools=tight, _cache={}), state)
    assert np.any(np.isclose(drawn.origin, tight, rtol=1e-6))  # pools bind
    assert np.all(drawn.origin.sum(axis=1) < fixed.origin.sum(axis=1))
    assert np.all(np.diff(drawn.origin.sum(axis=1)) > 0)  # larger pools, more placed


def test_build_problem_takes_pools_per_draw(sample_bundle):
    from studentflow.optimize.build import build_problem
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances, fit_models

    pairs = build_pairs(sample_bundle, compute_distances(sample_bundle))
    model = next(iter(fit_models(pairs).values()))
    origins = pd.unique(pairs["origin_id"].astype(str))
    base = pairs.groupby(pairs["origin_id"].astype(str))["origin_pool"].first().reindex(origins).to_numpy(float)
    rng = np.random.default_rng(1)
    draws = pd.DataFrame(np.round(base[None, :] * rng.uniform(0.9, 1.1, (3, origins.size))), columns=origins)
    fixed = build_problem(sample_bundle, model, pairs, draws=3, seed=0)
    drawn = build_problem(sample_bundle, model, pairs, draws=3, seed=0, pool_draws=draws.iloc[:, 1:])
    assert fixed.pools.shape == (fixed.shape[0],) and drawn.pools.shape == (3, fixed.shape[0])
    at = pd.Index(fixed.origin_ids).get_indexer(origins[1:])
    np.testing.assert_array_equal(drawn.pools[:, at], draws.iloc[:, 1:].to_numpy())
    missing = pd.Index(fixed.origin_ids).get_loc(origins[0])  # an origin the draws lack keeps its pool
    assert (drawn.pools[:, missing] == fixed.pools[missing]).all()
    np.testing.assert_array_equal(drawn.log_mu, fixed.log_mu)
    with pytest.raises(ValueError, match="one per draw"):
        build_problem(sample_bundle, model, pairs, draws=2, seed=0, pool_draws=draws)
