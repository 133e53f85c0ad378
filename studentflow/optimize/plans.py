"""Plans as the search sees them: steps with relief and cost per draw, the one budget
rule (:func:`fits`), and the choice of the best plan within a budget.

Every comparison of a plan's cost with the budget goes through :func:`fits` (today:
mean cost over draws at most the budget), so a different rule (e.g. a quantile of the
draws) replaces one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from studentflow.optimize.actions import Action
from studentflow.optimize.budget_rule import within_budget

__all__ = ["Step", "Plan", "fits", "make_step", "split_batch", "best_within", "merge_steps"]


def fits(cost, budget: float, quantile="mean"):
    """Whether costs per draw (pesos; the last axis) are within ``budget`` under the rule
    of ``quantile`` (:mod:`studentflow.optimize.budget_rule`: the mean, or the cost in
    at least a share ``quantile`` of the draws). One plan's costs give a bool, a
    plans × draws array one per plan."""
    cost = np.asarray(cost, dtype=float)
    if cost.ndim <= 1:
        return bool(within_budget(cost, budget, quantile))
    if quantile == "mean":
        return cost.mean(axis=-1) <= budget
    return np.quantile(cost, float(quantile), axis=-1, method="inverted_cdf") <= budget


@dataclass(frozen=True)
class Step:
    """One step of a plan: the action, what it adds (slots, seats or pesos per learner)
    and the plan's relief (learners) and cost (pesos) per draw after it."""

    action: Action
    amount: float
    relief: np.ndarray
    cost: np.ndarray


@dataclass(frozen=True)
class Plan:
    """A sequence of steps; ``family`` says where the search found it: "optimised"
    (the path and its confirmed candidates), "uniform" or "fill slots"."""

    family: str
    steps: tuple

    @property
    def relief(self) -> np.ndarray:
        return self.steps[-1].relief if self.steps else np.zeros(0)

    @property
    def cost(self) -> np.ndarray:
        return self.steps[-1].cost if self.steps else np.zeros(0)

    @cached_property
    def mean_relief(self) -> float:
        return float(self.relief.mean()) if self.steps else 0.0

    @cached_property
    def mean_cost(self) -> float:
        return float(self.cost.mean()) if self.steps else 0.0


def make_step(action, amount, ev) -> Step:
    """The step of ``action`` (``amount``) that ends at evaluation ``ev``."""
    return Step(action, float(amount), ev.relief.copy(), ev.cost.copy())


def split_batch(members, cur, ev) -> list[Step]:
    """Steps for a batch re-solved together: ``members`` are (action, amount, its own
    re-solve at ``cur``); the batch's change in relief and cost per draw (``ev`` against
    ``cur``) is split among them in proportion to their own changes, so the last step
    ends exactly at ``ev`` (the steps before it are that apportionment, not re-solves)."""
    if len(members) == 1:
        a, n, _ = members[0]
        return [make_step(a, n, ev)]
    out = []
    dr = np.array([np.clip(m[2].relief - cur.relief, 0, None) for m in members])  # members × draws
    dc = np.array([np.clip(m[2].cost - cur.cost, 0, None) for m in members])
    wr = np.divide(dr, dr.sum(axis=0), out=np.full_like(dr, 1 / len(members)), where=dr.sum(axis=0) > 0)
    wc = np.divide(dc, dc.sum(axis=0), out=np.full_like(dc, 1 / len(members)), where=dc.sum(axis=0) > 0)
    cr, cc = np.cumsum(wr, axis=0), np.cumsum(wc, axis=0)
    for i, (a, n, _) in enumerate(members):
        if i == len(members) - 1:
            out.append(make_step(a, n, ev))
        else:
            out.append(Step(a, float(n), cur.relief + cr[i] * (ev.relief - cur.relief),
                            cur.cost + cc[i] * (ev.cost - cur.cost)))
    return out


def best_within(plans, budget: float, family: str | None = None, quantile="mean") -> Plan:
    """The plan with the most mean relief among those that :func:`fit <fits>` ``budget``
    under the rule of ``quantile`` (of ``family`` if given; ties: the cheaper, then the
    first seen); the empty plan if none."""
    pool = [p for p in plans if p.steps and (family is None or p.family == family)]
    best = Plan(family or "optimised", ())
    if not pool:
        return best
    draws = max(p.cost.size for p in pool)
    costs = np.array([p.cost if p.cost.size == draws else np.full(draws, p.mean_cost) for p in pool])
    ok = np.flatnonzero(fits(costs, budget, quantile))
    if ok.size == 0:
        return best
    relief = np.array([pool[i].mean_relief for i in ok])
    cost = np.array([pool[i].mean_cost for i in ok])
    top = relief.max()
    if not top > 0:
        return best
    cand = np.flatnonzero(relief == top)
    return pool[ok[cand[np.argmin(cost[cand])]]]


def merge_steps(plan: Plan) -> Plan:
    """The same plan with consecutive steps of one action (same kind and target) merged
    into one step: amounts add up, relief and cost per draw are the last one's. The
    cumulative figures, and so the plan's relief and cost, do not change; ``plan.csv``
    gets one row per run of the same action instead of one per small step."""
    merged: list[Step] = []
    for st in plan.steps:
        if merged and merged[-1].action == st.action:
            merged[-1] = Step(st.action, merged[-1].amount + st.amount, st.relief, st.cost)
        else:
            merged.append(st)
    return Plan(plan.family, tuple(merged))
