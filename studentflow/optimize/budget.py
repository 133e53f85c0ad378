"""``optimize``: where a budget of P pesos relieves most learners from congested public JHS.

See :mod:`studentflow.optimize.search` for the method and
:mod:`studentflow.optimize.problem` for what is measured. Relief and cost are means over
the Monte Carlo draws of the gravity coefficients (the plan is chosen for all draws at
once, not tuned to one), with 95 % percentile intervals; costs are pesos per school year
against the status quo, relief is learners relieved from congested public JHS on
expected (not rounded) placements.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.optimize.actions import make_actions
from studentflow.optimize.budget_rule import DEFAULT_QUANTILE, budget_cost, parse_quantile, quantile_label
from studentflow.optimize.levers import Levers, load_levers
from studentflow.optimize.problem import Problem
from studentflow.optimize.search import Plan, SearchResult, best_within, merge_steps, search

__all__ = ["OptimizeResult", "optimize", "plan_table", "frontier_table"]

_UNITS = {"slots": "slots", "subsidy": "pesos per learner", "public_seats": "seats", "fill_slots": "slots"}


def _iv(values) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return 0.0, 0.0, 0.0
    lo, hi = np.percentile(v, [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def plan_table(plan: Plan) -> pd.DataFrame:
    """One row per step: action, target, amount, marginal cost and relief (mean, 95 %
    interval over draws), cumulative cost and relief (``plan.csv``)."""
    rows = []
    prev_r = prev_c = 0.0
    for k, st in enumerate(plan.steps, start=1):
        dr, dc = st.relief - prev_r, st.cost - prev_c
        r, c = _iv(dr), _iv(dc)
        cr, cc = _iv(st.relief), _iv(st.cost)
        rows.append({
            "step": k, "action": st.action.label, "target": st.action.target, "amount": st.amount,
            "unit": _UNITS.get(st.action.kind, ""), "cost": c[0], "cost_lo": c[1], "cost_hi": c[2],
            "relief": r[0], "relief_lo": r[1], "relief_hi": r[2],
            "pesos_per_relieved": c[0] / r[0] if r[0] > 0 else np.nan,
            "cumulative_cost": cc[0], "cumulative_cost_lo": cc[1], "cumulative_cost_hi": cc[2],
            "cumulative_relief": cr[0], "cumulative_relief_lo": cr[1], "cumulative_relief_hi": cr[2],
        })
        prev_r, prev_c = st.relief, st.cost
    cols = ["step", "action", "target", "amount", "unit", "cost", "cost_lo", "cost_hi", "relief", "relief_lo",
            "relief_hi", "pesos_per_relieved", "cumulative_cost", "cumulative_cost_lo", "cumulative_cost_hi",
            "cumulative_relief", "cumulative_relief_lo", "cumulative_relief_hi"]
    return pd.DataFrame(rows, columns=cols)


def frontier_table(plans, budget: float, points: int = 20, quantile="mean") -> pd.DataFrame:
    """Relief (mean, 95 % interval) against budget for the optimised plan, a uniform
    subsidy increase and filling unused contracted slots (``frontier.csv``): at each
    budget, the best plan of each family within it (under the rule of ``quantile``,
    :mod:`studentflow.optimize.budget_rule`)."""
    rows = []
    for b in np.linspace(0.0, float(budget), int(points) + 1):
        row = {"budget": b}
        for family, key in ((None, "optimised"), ("uniform", "uniform"), ("fill slots", "fill_slots")):
            p = best_within(plans, b, family, quantile)
            m, lo, hi = _iv(p.relief) if p.steps else (0.0, 0.0, 0.0)
            row.update({f"{key}_relief": m, f"{key}_relief_lo": lo, f"{key}_relief_hi": hi,
                        f"{key}_cost": p.mean_cost})
            if key == "uniform":
                row["uniform_subsidy"] = sum(s.amount for s in p.steps)
            elif key == "fill_slots":
                row["fill_slots_opened"] = sum(s.amount for s in p.steps)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class OptimizeResult:
    """What :func:`optimize` chose.

    Attributes
    ----------
    budget : float
        Pesos per school year.
    plan : Plan
        The chosen steps (``plan_table`` is ``plan.csv``).
    plan_table, frontier : pandas.DataFrame
        ``plan.csv`` and ``frontier.csv`` (see :func:`plan_table`, :func:`frontier_table`).
    levers : Levers
    draws, seed : int
    budget_quantile : "mean" or float
        The budget rule: the plan's cost is within ``budget`` in at least this share of
        the draws (or on average, "mean"); :mod:`studentflow.optimize.budget_rule`.
    evaluations : int
        Exact re-solves of all draws made by the search.
    seconds : float
        Wall time of the search (the problem built, not the data read).
    """

    budget: float
    plan: Plan
    plan_table: pd.DataFrame
    frontier: pd.DataFrame
    levers: Levers
    draws: int
    seed: int
    evaluations: int
    seconds: float
    search: SearchResult = field(repr=False, default=None)
    problem: Problem = field(repr=False, default=None)
    budget_quantile: float | str = "mean"

    @property
    def cost_quantile(self) -> float:
        """The cost held against the budget, pesos: its ``budget_quantile`` over draws
        (the mean with "mean")."""
        return budget_cost(self.plan.cost, self.budget_quantile) if self.plan.steps else 0.0

    @property
    def relief(self) -> tuple[float, float, float]:
        """Learners relieved from congested public JHS: mean, 2.5 %, 97.5 %."""
        return _iv(self.plan.relief)

    @property
    def cost(self) -> tuple[float, float, float]:
        """Pesos per school year against the status quo: mean, 2.5 %, 97.5 %."""
        return _iv(self.plan.cost)

    def summary(self) -> str:
        """Plain text: the budget, what the plan buys, the uniform comparison and its steps."""
        r, c = self.relief, self.cost
        t = self.plan_table
        uni = best_within(self.search.plans, self.budget, "uniform", self.budget_quantile) if self.search else None
        q = quantile_label(self.budget_quantile)
        lines = [f"studentflow optimize: budget ₱{self.budget:,.0f} per school year, {self.draws} draws "
                 f"(seed {self.seed}), {self.evaluations:,} re-solves in {self.seconds:.1f} s",
                 f"  plan ({self.plan.family}): {len(t)} steps, cost ₱{c[0]:,.0f} [₱{c[1]:,.0f}, ₱{c[2]:,.0f}], "
                 f"relieves {r[0]:,.0f} [{r[1]:,.0f}, {r[2]:,.0f}] learners from congested public JHS"
                 + (f" (₱{c[0] / r[0]:,.0f} per learner)" if r[0] > 0 else ""),
                 (f"  budget rule: the mean cost over draws stays within the budget (mean cost ₱{c[0]:,.0f})"
                  if q == "mean" else
                  f"  budget rule: the cost stays within the budget in at least {100 * self.budget_quantile:g} % "
                  f"of the draws; mean cost ₱{c[0]:,.0f}, {q} ₱{self.cost_quantile:,.0f}")]
        if uni is not None:
            lines.append(f"  best uniform increase within budget: +₱{sum(s.amount for s in uni.steps):,.0f} "
                         f"relieves {uni.mean_relief:,.0f} for ₱{uni.mean_cost:,.0f}")
        if len(t):
            by = t.groupby(["action", "unit"], sort=False).agg(steps=("step", "size"), amount=("amount", "sum"),
                                                               cost=("cost", "sum"), relief=("relief", "sum"))
            for (action, unit), g in by.iterrows():
                lines.append(f"    {action:<22} {int(g['steps']):>4} steps, {g['amount']:>10,.0f} {unit:<18} "
                             f"₱{g['cost']:>14,.0f}  relief {g['relief']:>8,.1f}")
        return "\n".join(lines)


def optimize(bundle=None, model=None, *, budget: float, pairs=None, distances=None, levers=None,
             draws: int = 20, seed: int = 0, status_quo=None, calibrate=True, problem: Problem | None = None,
             actions=None, frontier_points: int = 40, budget_quantile=DEFAULT_QUANTILE,
             client=None, pool_draws=None) -> OptimizeResult:
    """Choose, within ``budget`` pesos per school year, the actions that relieve most
    learners from congested public JHS (mean over Monte Carlo draws).

    Parameters
    ----------
    bundle, model : Bundle, GravityModel
        The data and the fitted gravity model (not needed with ``problem``).
    budget : float
        Pesos per school year (cost against the status quo, held under the rule of
        ``budget_quantile``).
    pairs, distances : pandas.DataFrame, optional
        PairTable; built from ``bundle`` and ``distances`` when omitted.
    levers : Levers, path or None
        Actions and step sizes (:mod:`studentflow.optimize.levers`); None: defaults.
    draws, seed : int
        Monte Carlo draws of the gravity coefficients (as in ``run_scenarios``).
    status_quo : Scenario, optional
        Where the plan starts (default: the study's status quo, billed slots).
    calibrate : bool or Calibration
        Start from the status quo calibrated to the observed placements (default, as
        ``run_scenarios``), a given Calibration, or (False) the model as fitted.
    problem : Problem, optional
        A prepared problem (e.g. a calibrated status quo, or arrays); skips building one.
    actions : list of Action, optional
        Restrict the actions (default: every action the levers allow).
    frontier_points : int
        Budgets on the frontier between 0 and ``budget``.
    client : dask.distributed.Client or str, optional
        Run the search's full re-solves on this Dask cluster (a Client, a scheduler
        address or ``"local:N"``); the plan is the same as without.
    budget_quantile : float or "mean"
        The plan's cost stays within ``budget`` in at least this share of the draws
        (default 0.95); "mean": its mean cost does (the rule before this option).
        :func:`studentflow.optimize.budget_rule.within_budget`.
    pool_draws : pandas.DataFrame, optional
        Origin pools per Monte Carlo draw (rows: ``draws`` draws; columns: origin ids;
        learners), e.g. a forecast year's (:func:`studentflow.next_year.plan_next_year`):
        draw d's allocations use row d, so the plan's intervals carry the pools'
        uncertainty as well as the coefficients'. Default: the pair table's pools.

    Returns
    -------
    OptimizeResult
    """
    if not (np.isfinite(budget) and budget >= 0):
        raise DataError(f"optimize: budget must be a non-negative number of pesos, got {budget!r}")
    if not isinstance(draws, (int, np.integer)) or draws < 0:
        raise DataError(f"optimize: draws must be a non-negative integer, got {draws!r}")
    lev = levers if isinstance(levers, Levers) else load_levers(levers)
    quantile = parse_quantile(budget_quantile)
    if problem is None:
        if bundle is None or model is None:
            raise ValueError("optimize: give bundle and model, or problem=")
        if pairs is None:
            if distances is None:
                raise ValueError("optimize: give pairs=, or distances= to build them")
            from studentflow.pairs import build_pairs

            pairs = build_pairs(bundle, distances)
        from studentflow.optimize.build import build_problem

        problem = build_problem(bundle, model, pairs, status_quo=status_quo, distances=distances, draws=draws,
                                seed=seed, subsidy_step=lev.subsidy_step, max_steps=lev.max_steps,
                                calibrate=calibrate, max_added_slots=lev.max_added_slots, min_lot=lev.min_lot,
                                unused_slot_share=lev.unused_slot_share, pool_draws=pool_draws)
    else:  # a prepared problem: the levers' lot and unused-slot price apply to it too
        problem = dataclasses.replace(problem, min_lot=lev.min_lot, unused_slot_share=lev.unused_slot_share)
    if actions is None:
        actions = make_actions(problem, lev.actions)
    owned = False
    if client is not None:
        from studentflow.dask_client import resolve

        client, owned = resolve(client)
    t0 = time.perf_counter()
    try:
        found = search(problem, actions, float(budget), confirm=lev.confirm, slot_step=lev.slot_step,
                       slot_min=lev.slot_min, refresh=lev.refresh, seat_step=lev.public_seat_step,
                       seat_cost=lev.public_seat_cost or 0.0, client=client, quantile=quantile)
    finally:
        if owned:
            from studentflow.dask_client import close

            close(client)
    plan = merge_steps(best_within(found.plans, float(budget), quantile=quantile))  # a run of one action: one row
    seconds = time.perf_counter() - t0
    return OptimizeResult(float(budget), plan, plan_table(plan),
                          frontier_table(found.plans, budget, frontier_points, quantile),
                          lev, problem.draws, seed, found.evaluations, seconds, found, problem, quantile)
