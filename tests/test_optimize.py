"""The budget optimizer (studentflow.optimize): exact evaluation, dual estimates, and the
search's guarantees on small random instances with a known exhaustive optimum."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from studentflow.errors import DataError
from studentflow.optimize import Levers, State, evaluate, load_levers, make_actions, optimize
from studentflow.optimize.actions import ActionIndex, apply, estimate, step_amounts
from studentflow.optimize.exhaustive import exhaustive_best, small_problem
from studentflow.optimize.problem import _columns_only

ALL = ("slots", "tier", "catchment", "uniform", "public_seats")
FAST = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _instance(seed, frac):
    """A small problem with ten one-time actions and a budget that is ``frac`` of taking them all."""
    prob, acts, seat_cost = small_problem(seed, origins=20, draws=3, n_slots=4, n_seats=1)
    ref = evaluate(prob, State.status_quo(prob), seat_cost=seat_cost)
    state = State.status_quo(prob)
    for a in acts:
        state = apply(prob, state, a, a.amount if a.amount is not None else prob.subsidy_step)
    everything = evaluate(prob, state, seat_cost=seat_cost, reference=ref).spent
    return prob, acts, seat_cost, frac * everything


def _run(prob, acts, seat_cost, budget, confirm=0):
    lev = Levers(actions=ALL, public_seat_cost=seat_cost, confirm=confirm)
    return optimize(problem=prob, budget=budget, actions=acts, levers=lev, budget_quantile="mean")


@FAST
@given(seed=st.integers(0, 10_000), frac=st.floats(0.05, 0.8))
def test_plan_within_two_percent_of_exhaustive_optimum_and_budget(seed, frac):
    prob, acts, seat_cost, budget = _instance(seed, frac)
    # small_problem makes one catchment action per congested JHS group, at most two: an
    # instance with fewer (seed 96 has one) is not the ten-action one compared exhaustively
    assume(len(acts) == 10)
    best, best_cost, _ = exhaustive_best(prob, acts, budget, seat_cost=seat_cost)
    res = _run(prob, acts, seat_cost, budget)
    assert res.cost[0] <= budget + 1e-6  # never over budget (mean cost over draws)
    assert res.relief[0] >= 0.98 * best - 1e-9
    # plan.csv adds up to the plan
    assert len(res.plan_table) == len(res.plan.steps)
    if len(res.plan_table):
        last = res.plan_table.iloc[-1]
        assert last["cumulative_relief"] == pytest.approx(res.relief[0])
        assert last["cumulative_cost"] == pytest.approx(res.cost[0])
        assert res.plan_table["relief"].sum() == pytest.approx(res.relief[0])


@FAST
@given(seed=st.integers(0, 10_000), f1=st.floats(0.02, 0.9), f2=st.floats(0.02, 0.9), confirm=st.sampled_from([0, 3]))
def test_larger_budget_never_relieves_fewer(seed, f1, f2, confirm):
    prob, acts, seat_cost, _ = _instance(seed, 1.0)
    lo, hi = sorted((f1, f2))
    _, _, _, b_lo = _instance(seed, lo)
    _, _, _, b_hi = _instance(seed, hi)
    small, large = _run(prob, acts, seat_cost, b_lo, confirm), _run(prob, acts, seat_cost, b_hi, confirm)
    assert large.relief[0] >= small.relief[0] - 1e-9
    f = large.frontier  # along one run too
    assert np.all(np.diff(f["optimised_relief"]) >= -1e-9)
    assert np.all(f["optimised_cost"] <= f["budget"] + 1e-6)


@FAST
@given(seed=st.integers(0, 10_000), frac=st.floats(0.05, 1.0), confirm=st.sampled_from([0, 3]))
def test_plan_beats_every_uniform_increase_of_no_greater_cost(seed, frac, confirm):
    prob, acts, seat_cost, budget = _instance(seed, frac)
    res = _run(prob, acts, seat_cost, budget, confirm)
    # uniform increases evaluated here, independently of the search
    ref = evaluate(prob, State.status_quo(prob), seat_cost=seat_cost)
    uniform = [a for a in acts if a.group == "uniform"][0]
    state = State.status_quo(prob)
    for _ in range(prob.max_steps):
        state = apply(prob, state, uniform, prob.subsidy_step)
        ev = evaluate(prob, state, seat_cost=seat_cost, reference=ref)
        if ev.spent <= budget:
            assert res.relief[0] >= ev.gain - 1e-9


def test_fast_path_is_the_allocators_solution():
    from studentflow.allocation import allocate

    prob, _, _ = small_problem(3, draws=2)
    mu = np.exp(prob.log_mu)
    for caps in (prob.capacities, prob.capacities * 0.3, prob.capacities + 1e6):
        a, b, t = _columns_only(prob, mu, caps)
        for d in range(prob.draws):
            mat = sp.csr_matrix((mu[d], prob.indices, prob.indptr), shape=prob.shape)
            ref = allocate(mat, prob.pools, caps)
            if t is None:  # a pool binds: the fast path must not claim the solution
                assert (ref.origin_factors < 1 - 1e-9).any()
                continue
            np.testing.assert_allclose(t[d], ref.flows.data, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(b[d], ref.destination_factors, rtol=1e-7, atol=1e-9)
    tight = small_problem(3, draws=2)[0]
    pools = np.full(tight.pools.size, 1.0)  # pools bind: the fast path steps aside
    assert _columns_only(tight.__class__(**{**tight.__dict__, "pools": pools, "_cache": {}}), mu,
                         tight.capacities)[2] is None


def test_dual_estimate_of_a_slot_matches_the_re_solve():
    prob, _, _ = small_problem(11, draws=3)
    ref = evaluate(prob, State.status_quo(prob))
    ix = ActionIndex.of(prob, make_actions(prob, ("slots",)))
    amounts = step_amounts(prob, ix, ref, slot_step=1.0, seat_step=1.0, slot_min=1.0)
    gain, cost = estimate(prob, ix, ref, amounts)
    full = np.flatnonzero((ref.b < 1 - 1e-9).all(axis=0))
    checked = 0
    for k, act in enumerate(ix.actions):
        if act.index in full and amounts[k] == 1:
            ev = evaluate(prob, apply(prob, ref.state, act, 1.0), reference=ref)
            # one slot at a school full in every draw places about one learner
            assert cost[k] == pytest.approx(ev.spent, rel=0.1)
            assert gain[k] == pytest.approx(ev.gain, rel=0.25, abs=0.02)
            checked += 1
    assert checked


def test_public_seats_need_a_cost(tmp_path):
    with pytest.raises(DataError, match="public_seat_cost"):
        Levers(actions=("slots", "public_seats"))
    f = tmp_path / "levers.toml"
    f.write_text('[optimize]\nactions = ["public_seats"]\n')
    with pytest.raises(DataError, match=r"levers\.toml.*public_seat_cost"):
        load_levers(f)
    f.write_text('[optimize]\nslot_stp = 5\n')
    with pytest.raises(DataError, match="slot_stp"):
        load_levers(f)
    f.write_text('[optimize]\nsubsidy_step = "1000"\n')
    with pytest.raises(DataError, match="subsidy_step.*number"):
        load_levers(f)


def test_sample_levers_file_reads():
    from pathlib import Path

    lev = load_levers(Path(__file__).resolve().parents[1] / "scenarios" / "optimize" / "levers.toml")
    assert "public_seats" in lev.actions and lev.public_seat_cost > 0 and lev.max_steps == 20


def test_optimize_is_callable_from_the_package():
    import studentflow

    prob, acts, seat_cost = small_problem(2, draws=2)
    res = studentflow.optimize(problem=prob, budget=1e5, actions=acts[:3],
                               levers=Levers(actions=("slots",), confirm=0))
    assert res.cost[0] <= 1e5 and "studentflow optimize" in res.summary()


def test_cli_optimize_writes_plan_frontier_and_figure(small_region, tmp_path, capsys):
    import pandas as pd

    from studentflow.cli import main

    out = tmp_path / "out"
    assert main(["optimize", "--budget", "3000000", "--draws", "3", "--data", str(small_region),
                 "--out", str(out)]) == 0
    plan, frontier = pd.read_csv(out / "plan.csv"), pd.read_csv(out / "frontier.csv")
    assert {"action", "target", "amount", "cost", "relief_lo", "relief_hi", "cumulative_cost",
            "cumulative_relief"} <= set(plan.columns)
    assert plan["cumulative_cost"].iloc[-1] <= 3_000_000 + 1e-6
    assert frontier["optimised_relief"].iloc[-1] >= max(frontier["uniform_relief"].max(),
                                                        frontier["fill_slots_relief"].max()) - 1e-9
    assert (out / "fig_frontier.png").stat().st_size > 0 and (out / "optimize.html").exists()
    assert "studentflow optimize" in capsys.readouterr().out
    bad = tmp_path / "levers.toml"
    bad.write_text('[optimize]\nactions = ["slots", "public_seats"]\n')
    assert main(["optimize", "--budget", "1000", "--levers", str(bad), "--data", str(small_region)]) == 2
    assert "public_seat_cost" in capsys.readouterr().err


def test_dual_estimate_of_a_slot_at_a_school_with_no_slots():
    # b_j = 0 there (no learner placed), so T_ij / load_j says nothing: the estimate must
    # use the school's demand a_i μ_ij, or the search never looks at such a school
    prob, _, _ = small_problem(11, draws=3)
    demand = prob.to_schools(np.exp(prob.log_mu))  # draws × schools, no pool binds at a = 1 here
    j = int(np.argmax(demand.mean(axis=0)))
    caps = prob.capacities.copy()
    caps[j] = 0.0
    empty = prob.__class__(**{**prob.__dict__, "capacities": caps, "_cache": {}})
    ref = evaluate(empty, State.status_quo(empty))
    assert np.all(ref.school[:, j] == 0)
    ix = ActionIndex.of(empty, [a for a in make_actions(empty, ("slots",)) if a.index == j])
    wide = step_amounts(empty, ix, ref, slot_step=1e9, seat_step=1.0, slot_min=1.0)
    unmet = (empty.to_schools(ref.mu * ref.a[:, empty.pair_origin]) - ref.school)[:, j].max()
    assert wide[0] == pytest.approx(min(np.ceil(unmet - 1e-6), empty.slot_limit[j]))  # its whole demand
    amounts = step_amounts(empty, ix, ref, slot_step=1.0, seat_step=1.0, slot_min=1.0)
    gain, cost = estimate(empty, ix, ref, amounts)
    ev = evaluate(empty, apply(empty, ref.state, ix.actions[0], 1.0), reference=ref)
    assert ev.spent > 0 and cost[0] == pytest.approx(ev.spent, rel=0.1)
    assert gain[0] == pytest.approx(ev.gain, rel=0.25, abs=0.02)


@FAST
@given(seed=st.integers(0, 10_000), confirm=st.sampled_from([0, 5]))
def test_plan_merges_runs_of_one_action_without_changing_the_totals(seed, confirm):
    from studentflow.optimize import best_within

    prob, _, _ = small_problem(seed, origins=20, draws=3)
    acts = make_actions(prob, ("slots", "uniform"))
    res = optimize(problem=prob, budget=2e6, actions=acts,
                   levers=Levers(actions=("slots", "uniform"), slot_step=2, slot_min=1, confirm=confirm))
    raw = best_within(res.search.plans, 2e6, quantile=res.budget_quantile)  # the plan step by step
    t = res.plan_table
    assert len(t) <= len(raw.steps)
    assert not ((t["action"] == t["action"].shift()) & (t["target"] == t["target"].shift())).any()
    np.testing.assert_allclose(res.plan.relief, raw.relief)
    np.testing.assert_allclose(res.plan.cost, raw.cost)
    # every merged row ends where one of the raw steps ended, with the same amounts in total
    ends = {round(float(s.relief.mean()), 9) for s in raw.steps}
    assert all(round(float(s.relief.mean()), 9) in ends for s in res.plan.steps)
    assert t["amount"].sum() == pytest.approx(sum(s.amount for s in raw.steps))
