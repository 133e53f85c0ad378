"""The budget search: a greedy path in batches of dual-screened, re-solve-confirmed
actions, and the plans it saw.

Path (:mod:`studentflow.optimize.walk`)
    From the status quo, repeatedly: rank the actions by their last exact relief per
    peso or the allocator's dual estimate, re-solve the best exactly as changes to the
    current state (all draws at once), and take a batch of the best re-solved actions
    whose cost reaches ``growth`` times what the path has spent so far (one action at
    first; at most ``batch_max``, which grows with the number of actions). Slot steps
    add the school's unmet demand, in lots up to ``slot_share`` of its demand. Only
    steps that relieve more learners on average are taken. The path does not depend on
    the budget (it only stops once its cost passes the budget), so a larger budget sees
    every path plan a smaller one saw; the number of steps grows with the logarithm of
    the budget. When the last step was a batch, a short finish spends the rest of the
    budget.
Plans seen
    Every prefix of the path, every confirmed candidate (a prefix plus one re-solved
    action: this is how a budget's leftover gets spent), the finish, for small action
    sets (``confirm=0``: every candidate re-solved at every step; at most
    :data:`ENUMERATE_MAX` actions) the paths that start with every one or two actions
    (partial enumeration), uniform subsidy increases of 1, 2, ... steps, and opening a
    share (10 %, 20 %, ..., 100 %) of the unused contracted slots. The plan for a budget
    is the plan seen with the most mean relief among those that fit it
    (:func:`studentflow.optimize.plans.fits`). Hence the plan relieves at least as many
    as any uniform increase (or slot filling) of no greater cost.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from studentflow.optimize.actions import Action, ActionIndex, apply, step_amounts
from studentflow.optimize.context import Context
from studentflow.optimize.plans import Plan, Step, best_within, fits, make_step, merge_steps
from studentflow.optimize.problem import Problem, State, evaluate
from studentflow.optimize.walk import walk

__all__ = ["Step", "Plan", "SearchResult", "search", "best_within", "merge_steps", "fits", "batch_size",
           "ENUMERATE_MAX"]

#: most actions for which ``confirm=0`` also walks from every one or two first actions
ENUMERATE_MAX = 24
#: actions per batch member: a batch holds at most ``len(actions) // BATCH_PER`` actions
BATCH_PER = 50
#: steps of the finish (the leftover of the budget after the path's last batch)
FINISH_STEPS = 6


@dataclass(frozen=True)
class SearchResult:
    plans: tuple  # every plan seen
    path: tuple  # the greedy path's steps
    evaluations: int
    draws: int
    stale: tuple = ()  # (stale exact key, its re-solve's ratio) pairs of the lazy search


def batch_size(n_actions: int) -> int:
    """Most actions in one step: 1 for up to 99 actions, then one per :data:`BATCH_PER`."""
    return max(1, int(n_actions) // BATCH_PER)


def search(problem: Problem, actions, budget: float, *, confirm: int = 5, slot_step: float = 50.0,
           slot_min: float = 5.0, slot_share: float = 0.25, seat_step: float = 45.0, seat_cost: float = 0.0,
           fill_shares=tuple(np.arange(1, 11) / 10), max_path: int = 100_000, margin: float = 0.3,
           refresh: int = 5, growth: float = 0.1, batch_max: int | None = None, client=None,
           local_changes: bool = True, quantile="mean") -> SearchResult:
    """Explore plans up to ``budget`` pesos; see the module text.

    Parameters
    ----------
    confirm : int
        Fewest candidates re-solved per step (0: all feasible ones, for small action
        sets); at most ``confirm + 3 ×`` the size of the batch it forms.
    slot_step, slot_min : float
        Slots one slot step adds: the school's unmet demand, at least ``slot_min``, at
        most the larger of ``slot_step`` and ``slot_share`` × its demand (learners).
    seat_step, seat_cost : float
        Public JHS seats per step; pesos per seat per school year.
    margin : float
        Screening stops once the batch's worst relief per peso is ``1 + margin`` times
        every key not re-solved (the dual estimates understate some steps by up to
        ~25 %, so a margin, not a tolerance).
    refresh : int
        Steps between recomputations of the dual estimates (a subsidy step counts two).
    growth : float
        A step's target cost is ``growth`` times what the path has spent (pesos).
    batch_max : int, optional
        Most actions in one step (default :func:`batch_size` of the actions).
    client : dask.distributed.Client, optional
        Full re-solves (broad subsidies, uniform increases, slot filling) run on it;
        the result is the same as without.
    local_changes : bool
        Re-solve small changes as changes to the current state
        (:mod:`studentflow.optimize.delta`); False: every re-solve in full (the
        benchmark's baseline; same plans up to rounding).
    quantile : "mean" or float
        The budget rule (:func:`~studentflow.optimize.budget_rule.within_budget`): the
        path stops once the plan's cost is no longer within ``budget`` under it.
    """
    ix = ActionIndex.of(problem, actions)
    sq = State.status_quo(problem)
    ref = evaluate(problem, sq, seat_cost=seat_cost)
    ref = replace(ref, relief=np.zeros(problem.draws), cost=np.zeros(problem.draws))
    stale: list = []
    ctx = Context(problem, ix, ref, seat_cost=seat_cost, confirm=confirm, margin=margin, refresh=refresh,
                  slot_step=slot_step, slot_min=slot_min, slot_share=slot_share, seat_step=seat_step, growth=growth,
                  batch_max=batch_size(len(ix.actions)) if batch_max is None else int(batch_max),
                  max_path=max_path, client=client, changes=local_changes, stale=stale, quantile=quantile)
    plans: list[Plan] = [Plan("optimised", ())]
    path, last = walk(ctx, ref, (), {}, budget, plans)
    if last is not None and len(last[3]) > 1 and not fits(path[-1].cost, budget, quantile):
        cur, before, used, _ = last  # the last batch passed the budget: spend the rest
        walk(ctx, cur, before, used, budget, plans, cap=True, max_steps=FINISH_STEPS)
    if confirm == 0 and len(ix.actions) <= ENUMERATE_MAX:  # small sets: paths from every 1 or 2 actions
        amounts = step_amounts(problem, ix, ref, slot_step=slot_step, seat_step=seat_step, slot_min=slot_min,
                               slot_share=slot_share)
        first = [int(k) for k in np.flatnonzero(amounts > 0)]
        for seed in itertools.chain(itertools.combinations(first, 1), itertools.combinations(first, 2)):
            steps, ev = (), ref
            for k in seed:
                ev = ctx.take(ctx.resolve(ev, [apply(problem, ev.state, ix.actions[k], amounts[k])])[0])
                steps += (make_step(ix.actions[k], amounts[k], ev),)
            plans.append(Plan("optimised", steps))
            if fits(ev.cost, budget, quantile):
                walk(ctx, ev, steps, {k: 1 for k in seed}, budget, plans)
    plans += _uniform_plans(ctx, budget)
    plans += _fill_plans(ctx, fill_shares)
    return SearchResult(tuple(plans), tuple(path), ctx.evaluations, problem.draws, tuple(stale))


def _uniform_plans(ctx, budget) -> list[Plan]:
    """Uniform increases of 1, 2, ... subsidy steps until the cost passes ``budget``
    (on a cluster all are re-solved at once, and the same ones kept)."""
    problem = ctx.problem
    act = Action("subsidy", "all ESC schools", 0, "uniform")
    states, state = [], State.status_quo(problem)
    for _ in range(problem.max_steps):
        state = apply(problem, state, act, problem.subsidy_step)
        states.append(state)
    steps, out = [], []
    if ctx.client is not None:
        evs = ctx.full(states)
    for i, state in enumerate(states):
        ev = evs[i] if ctx.client is not None else ctx.full([state])[0]
        steps.append(make_step(act, problem.subsidy_step, ev))
        out.append(Plan("uniform", tuple(steps)))
        if not fits(ev.cost, budget, ctx.quantile):
            break
    if ctx.client is not None:
        ctx.evaluations -= len(states) - len(out)  # counted as in one process
    return out


def _fill_plans(ctx, shares) -> list[Plan]:
    """Open a share of every school's unused contracted slots (status quo → contracted)."""
    problem = ctx.problem
    act = Action("fill_slots", "all ESC schools", 0)
    unused = np.clip(problem.contracted - problem.capacities, 0, None)
    if not unused.any():
        return []
    steps, out, opened = [], [], 0.0
    sq = State.status_quo(problem)
    caps = [problem.capacities + np.floor(share * unused) for share in shares]
    for cap, ev in zip(caps, ctx.full([State(sq.steps, c, sq.seats) for c in caps])):
        steps.append(make_step(act, float((cap - problem.capacities).sum() - opened), ev))
        opened = float((cap - problem.capacities).sum())
        out.append(Plan("fill slots", tuple(steps)))
    return out
