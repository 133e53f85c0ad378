"""Full schools' latent demand (studentflow.scenarios.latent): its probability and its draws.

Checked against independent computations: the draws' law against a direct sum of the
moment-matched NB2 pmf (E[min(D, K) | D >= t]), the probability against Bayes' rule
written out, and on the bundled sample the calibrated status quo reproduced in every draw.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from studentflow.scenarios.latent import demand_law, full_probability, latent_demand_draws


def _pmf(m, s2, alpha, k):
    if alpha * s2 > 1e-12 * m:
        n = m * m / (alpha * s2)
        return stats.nbinom.pmf(k, n, n / (n + m))
    return stats.poisson.pmf(k, m)


@settings(max_examples=40, deadline=None)
@given(m=st.floats(0.5, 40.0), share=st.floats(0.05, 0.99), t=st.integers(1, 40), extra=st.integers(0, 30),
       alpha=st.sampled_from([0.0, 0.1, 0.4, 1.2]), p_full=st.sampled_from([1.0, 0.6]))
def test_draws_place_what_a_full_school_is_expected_to_place(m, share, t, extra, alpha, p_full):
    """Mean over draws of min(demand, K) = p E[min(D, K) | D >= t] + (1 - p) t, by direct sum."""
    s2 = m * m * share  # sum of squares of the pair means: between m^2 / pairs and m^2
    k = np.arange(0, int(t + extra + 60 * np.sqrt(m + alpha * s2) + 200))
    pmf = _pmf(m, s2, alpha, k)
    tail = k >= t
    K = t + extra
    want_full = float((np.minimum(k, K) * pmf)[tail].sum() / pmf[tail].sum())
    want = p_full * want_full + (1 - p_full) * t
    mean_full = float((k * pmf)[tail].sum() / pmf[tail].sum())  # E[D | D >= t]: the calibrated demand
    calibrated = p_full * mean_full + (1 - p_full) * t
    table = pd.DataFrame({"observed": [float(t)], "capacity": [float(t)], "factor": [calibrated / m],
                          "demand": [m], "demand_sq": [s2], "p_full": [p_full]}, index=["s"])
    draws = latent_demand_draws(table, alpha, 20_000, seed=1)
    demand = draws["s"].to_numpy() * calibrated
    assert demand.min() >= t - 1e-9  # a full school's demand is never below what it placed
    assert demand.mean() == pytest.approx(calibrated, rel=0.03, abs=0.15)  # multipliers of mean 1
    assert np.minimum(demand, K).mean() == pytest.approx(want, rel=0.02, abs=0.1)
    # one expected demand would place min(E[D], K) >= the expected placement (Jensen)
    assert min(calibrated, K) >= want - 1e-9


@settings(max_examples=40, deadline=None)
@given(m=st.floats(0.1, 50.0), t=st.integers(0, 40), gap=st.integers(0, 30), alpha=st.sampled_from([0.0, 0.4]))
def test_full_probability_is_bayes_rule_with_a_flat_prior_on_capacity(m, t, gap, alpha):
    s2 = m * m / 3
    k = np.arange(0, int(t + 60 * np.sqrt(m + alpha * s2) + 200))
    pmf = _pmf(m, s2, alpha, k)
    # capacity c in t..t+gap equally likely; placed = min(D, c) = t
    like = np.array([pmf[k >= t].sum() if c == t else pmf[t] for c in range(t, t + gap + 1)])
    want = like[0] / like.sum()
    got = full_probability([t], [t + gap], [m], [s2], alpha)[0]
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9)
    assert full_probability([t], [t + gap + 5], [m], [s2], alpha)[0] <= got + 1e-12  # more room, less sure


def test_draws_are_reproducible_and_skip_schools_that_are_not_full():
    table = pd.DataFrame({"observed": [5.0, 3.0, 0.0], "capacity": [5.0, 9.0, 0.0], "factor": [1.3, 1.0, 1.0],
                          "demand": [5.0, 3.0, 0.0], "demand_sq": [6.0, 2.0, 0.0], "p_full": [1.0, 0.0, 1.0]},
                         index=["a", "b", "c"])
    one = latent_demand_draws(table, 0.4, 50, seed=3)
    assert list(one.columns) == ["a"]  # b is not full, c expects no demand
    pd.testing.assert_frame_equal(one, latent_demand_draws(table, 0.4, 50, seed=3))
    assert not one.equals(latent_demand_draws(table, 0.4, 50, seed=4))
    assert latent_demand_draws(table.assign(p_full=0.0), 0.4, 50, seed=3) is None
    # a school's draws are its own: the same whichever other schools the table holds
    more = pd.concat([table.iloc[[0]].rename(index={"a": "z"}), table])
    pd.testing.assert_series_equal(latent_demand_draws(more, 0.4, 50, seed=3)["a"], one["a"])
    n, p, poisson = demand_law([5.0], [6.0], 0.4)
    assert not poisson[0] and demand_law([5.0], [6.0], 0.0)[2][0]
    assert stats.nbinom.mean(n, p)[0] == pytest.approx(5.0) and stats.nbinom.var(n, p)[0] == pytest.approx(5 + 2.4)


@pytest.mark.slow
def test_posterior_calibration_with_latent_draws_keeps_today_in_every_draw(sample_bundle):
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances, fit_models
    from studentflow.scenarios.run import run_scenarios
    from studentflow.scenarios.spec import study_scenarios

    pairs = build_pairs(sample_bundle, compute_distances(sample_bundle))
    fitted = next(iter(fit_models(pairs).values()))
    model = dataclasses.replace(fitted, cov_params=fitted.cov_params * 0.0)  # only the latent demand varies
    scenarios = study_scenarios()[:2]
    res = run_scenarios(sample_bundle, model, scenarios, pairs=pairs, draws=20, seed=0, progress=False,
                        calibrate="posterior", latent_demand=True)
    s = res.calibration.schools
    assert res.calibration.capacity_rule == "posterior"
    bound = s["capacity_bound"]
    assert ((s["p_full"] > 0) & (s["p_full"] < 1)).sum() > 20 and (s.loc[~bound, "p_full"] == 0).all()
    assert not (bound & (s["observed"] <= 0)).any()  # a school that placed nobody is not full
    # every draw of the status quo fills every full school (its drawn demand is at least
    # its capacity): today's placements there, up to the rounding to whole learners
    placed = res.school_placed[scenarios[0].name]
    ids = np.asarray(res.school_ids).astype(str)
    full = bound.reindex(ids).fillna(False).to_numpy(bool)
    today = np.minimum(s["observed"], s["capacity"]).reindex(ids).to_numpy()
    assert full.sum() > 100 and np.abs(placed[:, full] - today[None, full]).max() <= 1.0
    plain = run_scenarios(sample_bundle, model, scenarios, pairs=pairs, draws=20, seed=0, progress=False,
                          calibrate="posterior", latent_demand=False)
    t, u = res.table.set_index("scenario"), plain.table.set_index("scenario")
    name = scenarios[1].name
    # draws of demand place fewer than one expected demand would (Jensen), and spread more
    assert t.loc[name, "vs_baseline_mean"] < u.loc[name, "vs_baseline_mean"]
    # (coefficients fixed: the plain run spreads only by rounding to whole learners)
    width = t.loc[name, "vs_baseline_hi"] - t.loc[name, "vs_baseline_lo"]
    assert width > u.loc[name, "vs_baseline_hi"] - u.loc[name, "vs_baseline_lo"]
