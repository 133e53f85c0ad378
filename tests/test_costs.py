"""Scenario costs (studentflow.scenarios.costs): pesos paid, the inframarginal share, added
slots and the price per learner, checked against the placements they come from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studentflow.scenarios import Scenario, run_scenarios
from studentflow.synth.pairs import make_pairs
from test_scenarios import ALLOCATE, FakeModel, _toy_bundle

SCEN = [
    Scenario("status quo", baseline=True, capacity="billed"),
    Scenario("fill"),
    Scenario("-5K", subsidy=5000),
    Scenario("-5K billed", subsidy=5000, capacity="billed"),
    Scenario("poor +8K", subsidy_targeted=(0.4, 8000)),
    Scenario("add 3", capacity="billed", add_slots=3),
]


@pytest.fixture(scope="module")
def pairs():
    return make_pairs(n_origins=100, dests_per_origin=10, seed=8)


@pytest.fixture(scope="module")
def result(pairs):
    return run_scenarios(_toy_bundle(pairs), FakeModel(pairs.attrs["params"]), SCEN, pairs=pairs, draws=8,
                         seed=4, progress=False, allocator=ALLOCATE)


def _per(result, name, col):
    d = result.per_draw
    return d.loc[d["scenario"] == name, col].to_numpy()


def _extras(pairs, s):
    """The scenario's extra pesos per school and per origin, recomputed from its levers."""
    revenue = pairs.groupby("origin_id")["origin_lgu_revenue"].first()
    g = pd.Series(0.0, index=revenue.index)
    if s.subsidy_targeted:
        q, amount = s.subsidy_targeted
        g[revenue < np.nanquantile(revenue.to_numpy(float), q)] = amount
    return s.subsidy, g


def test_cost_is_every_placed_learner_times_the_amount(result, pairs):
    amount = pairs.groupby("destination_id")["esc_amount"].first().reindex(result.school_ids).to_numpy()
    for s in SCEN:
        uniform, g = _extras(pairs, s)
        want = (result.school_placed[s.name] @ (amount + uniform)
                + result.origin_placed[s.name] @ g.reindex(result.origin_ids).to_numpy())
        np.testing.assert_allclose(_per(result, s.name, "cost"), want, rtol=1e-12)


def test_added_cost_splits_into_inframarginal_and_new_placements(result):
    base_placed = _per(result, "status quo", "placed")
    for s in SCEN:
        added = _per(result, s.name, "cost_vs_baseline")
        np.testing.assert_allclose(added, _per(result, s.name, "cost") - _per(result, "status quo", "cost"))
        np.testing.assert_allclose(added, _per(result, s.name, "cost_inframarginal")
                                   + _per(result, s.name, "cost_new_placements"), rtol=1e-12, atol=1e-6)
    # a uniform raise is paid to every learner the status quo places: Δ·P₀
    np.testing.assert_allclose(_per(result, "-5K", "cost_inframarginal"), 5000 * base_placed)
    # slots alone pay nobody more: no inframarginal cost, and every peso added buys a placement
    for name in ("fill", "add 3"):
        assert np.all(_per(result, name, "cost_inframarginal") == 0)
    assert np.all(_per(result, "status quo", "cost_vs_baseline") == 0)


def test_added_slots_cost_the_learners_who_fill_them(result, pairs):
    amount = pairs.groupby("destination_id")["esc_amount"].first().reindex(result.school_ids).to_numpy()
    caps0 = result.capacities["status quo"]
    beyond = np.clip(result.school_placed["add 3"] - caps0[None, :], 0, None)
    np.testing.assert_allclose(_per(result, "add 3", "cost_added_slots"), beyond @ amount)
    assert np.all(_per(result, "-5K billed", "cost_added_slots") == 0)  # same slots as the status quo
    # slots only: the added cost is the price of the added placements (at most the dearest amount each)
    gained = _per(result, "add 3", "vs_baseline")
    added = _per(result, "add 3", "cost_vs_baseline")
    assert np.all(added <= gained.clip(0) * amount.max() + 1e-6)


def test_price_per_learner_is_the_ratio_of_means_with_draw_intervals(result):
    t = result.table.set_index("scenario")
    for name in ("fill", "-5K", "add 3"):
        cost, gain = _per(result, name, "cost_vs_baseline"), _per(result, name, "vs_baseline")
        assert t.loc[name, "pesos_per_added_learner_mean"] == pytest.approx(cost.mean() / gain.mean())
        ratios = np.where(gain > 0, cost / np.where(gain > 0, gain, 1), np.inf)
        assert t.loc[name, "pesos_per_added_learner_lo"] >= ratios.min() - 1e-9
        assert t.loc[name, "pesos_per_added_learner_hi"] <= ratios.max() + 1e-9
    assert np.isnan(t.loc["status quo", "pesos_per_added_learner_mean"])
    # paying more for the same slots buys learners at a higher price than opening slots
    assert t.loc["-5K", "pesos_per_added_learner_mean"] > t.loc["fill", "pesos_per_added_learner_mean"]


def test_relief_from_congested_jhs_counts_aisle_learners_removed(result):
    t = result.table.set_index("scenario")
    for s in SCEN:
        rc = _per(result, s.name, "relieved_congested")
        np.testing.assert_allclose(rc, t.loc[s.name, "aisle_before"] - _per(result, s.name, "aisle_after"))
        assert np.all(rc <= _per(result, s.name, "relieved") + 1e-9)  # only congested JHS count
    gain = _per(result, "-5K", "relieved_congested_vs_baseline")
    cost = _per(result, "-5K", "cost_vs_baseline")
    assert t.loc["-5K", "pesos_per_relieved_mean"] == pytest.approx(cost.mean() / gain.mean())


def test_summary_and_table_show_costs(result):
    text = result.summary()
    assert text.count("cost ₱") == len(SCEN) and "per added learner" in text
    table = result.scenario_table()
    assert "cost vs baseline, ₱ million" in table and "₱ per learner relieved (congested JHS)" in table
