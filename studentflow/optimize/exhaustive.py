"""Small instances and their exhaustive optimum, to check the search (tests, benchmark).

:func:`small_problem` draws a random problem of a few dozen origins and a handful of
ESC schools and public JHS with a dozen one-time actions; :func:`exhaustive_best`
re-solves every subset of those actions and returns the best one within a budget.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp

from studentflow.optimize.actions import Action, apply, group_matrix
from studentflow.optimize.plans import fits
from studentflow.optimize.problem import Problem, State, evaluate

__all__ = ["small_problem", "exhaustive_best"]


def small_problem(seed: int, *, origins: int = 30, schools: int = 8, jhs: int = 6, draws: int = 4,
                  n_slots: int = 5, n_seats: int = 2, seat_cost: float = 20_000.0):
    """A random small problem and a dozen one-time actions on it.

    Returns
    -------
    (Problem, list of Action, float)
        The problem, the actions (``n_slots`` slot additions of fixed size, two tier
        and two catchment increases, one uniform increase, ``n_seats`` public seat
        additions; each ``max_units=1``) and the cost of a public seat, pesos.
    """
    rng = np.random.default_rng(seed)
    n, m, k = origins, schools, jhs
    reach = rng.random((n, m)) < 0.4
    reach[np.arange(n), rng.integers(0, m, n)] = True
    base = np.where(reach, rng.gamma(2.0, 2.0, (n, m)), 0.0)
    pools = rng.integers(40, 120, n).astype(float)
    caps = np.floor(base.sum(axis=0) * rng.uniform(0.5, 1.2, m))
    tuition = rng.uniform(12_000, 40_000, m)
    amount = rng.choice([9_000.0, 13_000.0], m)
    net_k = np.broadcast_to(np.clip(tuition - amount, 0, None) / 1000, (n, m))
    elasticity = rng.normal(-0.8, 0.1, draws)
    expected = [sp.csr_matrix(base * np.exp(rng.normal(0, 0.15, m))[None, :]) for _ in range(draws)]
    placed_today = np.minimum(base * np.minimum(1, caps / np.maximum(base.sum(0), 1e-9)), 1e9).sum(axis=1)
    observed = np.floor(placed_today * rng.uniform(0.6, 1.0, n))
    public_total = np.floor(pools * 0.6)
    main = rng.integers(0, k, n)
    share = sp.csr_matrix((np.ones(n), (np.arange(n), main)), shape=(n, k))
    aisle = np.where(np.arange(k) < k - 2, rng.uniform(5, 40, k), 0.0)
    tiers = np.where(amount > 10_000, "NCR", "other")
    catch_of_school = [f"{rng.integers(0, 2)}" for _ in range(m)]
    groups = {"tier": group_matrix(tiers), "catchment": group_matrix(catch_of_school)}
    problem = Problem.from_arrays(
        expected=expected, pools=pools, capacities=caps, amount=amount, observed=observed,
        public_total=public_total, share=share, aisle=aisle, slot_limit=caps + 40, contracted=caps + 10,
        subsidy_step=2000.0, max_steps=5, cost_elasticity=elasticity, net_cost_k=net_k, groups=groups)
    actions = [Action("slots", str(j), int(j), amount=float(rng.integers(3, 15)), max_units=1)
               for j in rng.choice(m, n_slots, replace=False)]
    for g in ("tier", "catchment"):
        labels, _ = groups[g]
        actions += [Action("subsidy", f"{g} {lab}", i, g, max_units=1) for i, lab in enumerate(labels)]
    actions.append(Action("subsidy", "all ESC schools", 0, "uniform", max_units=1))
    congested = np.flatnonzero(aisle > 0)
    actions += [Action("public_seats", str(j), int(j), amount=float(rng.integers(3, 10)), max_units=1)
                for j in rng.choice(congested, min(n_seats, congested.size), replace=False)]
    return problem, actions, seat_cost


def exhaustive_best(problem: Problem, actions, budget: float, *, seat_cost: float = 0.0):
    """(relief, cost, subset): the subset of one-time actions (fixed amounts; subsidies
    one step) with the most mean relief among those of mean cost <= ``budget``,
    found by re-solving every subset."""
    sq = State.status_quo(problem)
    ref = evaluate(problem, sq, seat_cost=seat_cost)
    best = (0.0, 0.0, ())
    for r in range(1, len(actions) + 1):
        for subset in itertools.combinations(range(len(actions)), r):
            state = sq
            for i in subset:
                act = actions[i]
                state = apply(problem, state, act, act.amount if act.amount is not None else problem.subsidy_step)
            ev = evaluate(problem, state, seat_cost=seat_cost, reference=ref)
            if fits(ev.cost, budget) and ev.gain > best[0]:
                best = (ev.gain, ev.spent, subset)
    return best
