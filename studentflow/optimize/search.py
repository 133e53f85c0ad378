"""The budget search: a dual-ranked, re-solve-confirmed greedy path, and the plans it saw.

Path
    From the status quo, repeatedly (lazy greedy, see :func:`_walk`): rank the actions
    by their last exact relief per peso or, never re-solved, the allocator's dual
    estimate (:func:`studentflow.optimize.actions.estimate`), re-solve the best exactly
    (all draws; at most ``confirm`` of them, stopping once the best re-solved ratio is
    ``1 + margin`` times every key not re-solved), and take the re-solved step with the
    best mean relief per mean peso. Only steps that relieve more learners on average
    are taken. The path does not depend on the budget (it only stops once its cost
    passes the budget), so a larger budget sees everything a smaller one saw.
Plans seen
    Every prefix of the path, every confirmed candidate (a prefix plus one step: this
    is how a budget's leftover gets spent), for small action sets (``confirm=0``: every
    candidate re-solved at every step; at most :data:`ENUMERATE_MAX` actions) the paths that start with every one or two
    actions (partial enumeration), uniform subsidy increases of 1, 2, ...
    steps, and opening a share (10 %, 20 %, ..., 100 %) of the unused contracted slots.
    The plan for a budget is the plan seen with the most mean relief among those whose
    cost is within it (:mod:`studentflow.optimize.budget_rule`: mean cost, or the cost
    in a given share of the draws). Hence a larger budget never relieves fewer learners, and the
    plan relieves at least as many as any uniform increase (or slot filling) of no
    greater cost.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from studentflow.optimize.actions import Action, ActionIndex, apply, estimate, step_amounts
from studentflow.optimize.budget_rule import budget_cost, within_budget
from studentflow.optimize.problem import Evaluation, Problem, State, evaluate

__all__ = ["Step", "Plan", "SearchResult", "search", "best_within", "merge_steps", "ENUMERATE_MAX"]

#: most actions for which ``confirm=0`` also walks from every one or two first actions
ENUMERATE_MAX = 24


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

    def budget_cost(self, quantile="mean") -> float:
        """The cost held against a budget (:func:`~studentflow.optimize.budget_rule.budget_cost`), cached."""
        memo = self.__dict__.setdefault("_budget_cost", {})
        if quantile not in memo:
            memo[quantile] = budget_cost(self.cost, quantile) if self.steps else 0.0
        return memo[quantile]


@dataclass(frozen=True)
class SearchResult:
    plans: tuple  # every plan seen
    path: tuple  # the greedy path's steps
    evaluations: int
    draws: int
    stale: tuple = ()  # (stale exact key, its re-solve's ratio) pairs of the lazy search


def _ratio(gain: float, cost: float) -> float:
    if gain <= 0:
        return -np.inf
    return np.inf if cost <= 0 else gain / cost


def _step(action, amount, ev: Evaluation) -> Step:
    return Step(action, float(amount), ev.relief.copy(), ev.cost.copy())


def search(problem: Problem, actions, budget: float, *, confirm: int = 5, slot_step: float = 50.0,
           slot_min: float = 5.0,
           seat_step: float = 45.0, seat_cost: float = 0.0, fill_shares=tuple(np.arange(1, 11) / 10),
           max_path: int = 100_000, margin: float = 0.3, refresh: int = 5, quantile="mean") -> SearchResult:
    """Explore plans up to ``budget`` pesos (mean over draws); see the module text.

    Parameters
    ----------
    confirm : int
        Most candidates re-solved per step (0: all feasible ones, for small action sets).
    slot_step, seat_step : float
        Most slots / public seats one step adds where the action does not fix it.
    slot_min : float
        Fewest slots a slot step adds (where the school has the room).
    seat_cost : float
        Pesos per public JHS seat per school year.
    margin : float
        A re-solved step is taken at once when its relief per peso is at least
        ``1 + margin`` times every other action's key (last exact ratio or dual
        estimate); else the next is re-solved too. The dual estimates understate some
        steps by up to ~25 % (the 0/1 relief weights miss origins crossing their
        observed beneficiaries), so a margin, not a tolerance, is needed.
    refresh : int
        The dual estimates are recomputed after every subsidy or seat step and at least
        every ``refresh`` slot steps (a slot step changes the duals of one school and
        its origins only); in between, the estimates of the others are kept.
    quantile : "mean" or float
        The budget rule (:func:`~studentflow.optimize.budget_rule.within_budget`): the
        path stops once the plan's cost is no longer within ``budget`` under it.
    """
    sq = State.status_quo(problem)
    ref = evaluate(problem, sq, seat_cost=seat_cost)
    ref = replace(ref, relief=np.zeros(problem.draws), cost=np.zeros(problem.draws))
    ix = ActionIndex.of(problem, actions)
    stale: list = []
    kw = dict(confirm=confirm, slot_step=slot_step, slot_min=slot_min, seat_step=seat_step,
              seat_cost=seat_cost, max_path=max_path, margin=margin, refresh=refresh, stale=stale, quantile=quantile)
    plans: list[Plan] = [Plan("optimised", ())]
    path, n_eval = _walk(problem, ix, ref, ref, (), {}, budget, plans, **kw)
    if confirm == 0 and len(ix.actions) <= ENUMERATE_MAX:  # small sets: paths from every 1 or 2 actions
        amounts = step_amounts(problem, ix, ref, slot_step=slot_step, seat_step=seat_step, slot_min=slot_min)
        first = [int(k) for k in np.flatnonzero(amounts > 0)]
        for seed in itertools.chain(itertools.combinations(first, 1), itertools.combinations(first, 2)):
            steps, ev = (), ref
            for k in seed:
                ev = evaluate(problem, apply(problem, ev.state, ix.actions[k], amounts[k]), seat_cost=seat_cost,
                              reference=ref)
                steps += (_step(ix.actions[k], amounts[k], ev),)
            n_eval += len(seed)
            plans.append(Plan("optimised", steps))
            if within_budget(ev.cost, budget, quantile):
                n_eval += _walk(problem, ix, ref, ev, steps, {k: 1 for k in seed}, budget, plans, **kw)[1]
    plans += _uniform_plans(problem, budget, ref, seat_cost, quantile)
    plans += _fill_plans(problem, fill_shares, ref, seat_cost)
    n_eval += sum(len(p.steps) for p in plans if p.family != "optimised")
    return SearchResult(tuple(plans), tuple(path), n_eval, problem.draws, tuple(stale))


def _walk(problem, ix, ref, cur, path, used, budget, plans, *, confirm, slot_step, slot_min, seat_step,
          seat_cost, max_path, margin, refresh, stale=None, quantile="mean"):
    """The greedy path from ``cur`` (after the steps ``path``); appends every plan it
    re-solves to ``plans``; returns (the path's steps, re-solves made).

    ``confirm=0``: every feasible candidate is re-solved at every step. Otherwise lazy
    greedy: every action keeps a key, its last exact relief per peso (from a re-solve,
    at an earlier state) or, never re-solved, its dual estimate; when the estimates are
    recomputed a stale exact key is raised to the fresh estimate if that is higher (a
    subsidy step can make a slot worth more: relief is not submodular). The top key is
    re-solved, then the next, until the best ratio re-solved at this state is at least
    ``1 + margin`` times every key not yet re-solved (at most ``confirm`` re-solves
    per step); the best re-solved step is taken.
    ``stale``: a list that receives (stale exact key, refreshed ratio) pairs.
    """
    path, used, n_eval = list(path), dict(used), 0
    actions = ix.actions
    since = refresh  # steps since the estimates were computed
    key = np.full(len(actions), np.nan)  # lazy keys (relief per peso)
    exact = np.full(len(actions), np.nan)  # last exact ratio (nan: never re-solved)
    while len(path) < max_path and within_budget(cur.cost, budget, quantile):
        amounts = step_amounts(problem, ix, cur, slot_step=slot_step, seat_step=seat_step, slot_min=slot_min)
        for k, n in used.items():
            if actions[k].max_units is not None and n >= actions[k].max_units:
                amounts[k] = 0.0
        feasible = np.flatnonzero(amounts > 0)
        if feasible.size == 0:
            break
        if since >= refresh:
            gain, cost = estimate(problem, ix, cur, amounts, seat_cost=seat_cost)
            est = np.array([_ratio(g, c) for g, c in zip(gain, cost)])
            key = np.where(np.isnan(exact), est, np.fmax(exact, est))
            since = 0
        if not confirm:
            best = _confirm_all(problem, ix, ref, cur, path, amounts, feasible, plans, seat_cost)
            n_eval += feasible.size
        else:
            best, n = _confirm_lazy(problem, ix, ref, cur, path, amounts, feasible, plans, seat_cost, key, exact,
                                    confirm, margin, stale)
            n_eval += n
        if best is None:
            if since:  # stale estimates: recompute them before concluding
                since = refresh
                continue
            break
        k, ev = best
        since += 1
        path.append(_step(actions[k], amounts[k], ev))
        used[int(k)] = used.get(int(k), 0) + 1
        cur = ev
    return tuple(path), n_eval


def _resolve(problem, ix, ref, cur, path, k, amount, plans, seat_cost):
    """Re-solve ``cur`` plus one step of action ``k``: (relief per peso, evaluation)."""
    ev = evaluate(problem, apply(problem, cur.state, ix.actions[k], amount), seat_cost=seat_cost, reference=ref)
    plans.append(Plan("optimised", tuple(path) + (_step(ix.actions[k], amount, ev),)))
    return _ratio(ev.gain - cur.gain, ev.spent - cur.spent), ev


def _confirm_all(problem, ix, ref, cur, path, amounts, feasible, plans, seat_cost):
    """Every feasible candidate re-solved: the best (action, evaluation), or None."""
    best = None
    for k in feasible:
        r, ev = _resolve(problem, ix, ref, cur, path, k, amounts[k], plans, seat_cost)
        if r > -np.inf and (best is None or r > best[0]):
            best = (r, k, ev)
    return None if best is None else best[1:]


def _confirm_lazy(problem, ix, ref, cur, path, amounts, feasible, plans, seat_cost, key, exact, confirm,
                  margin, stale):
    """Lazy greedy step (see :func:`_walk`); updates ``key`` and ``exact`` in place:
    ((action, evaluation) or None, re-solves made)."""
    fresh: dict = {}  # action -> (ratio, evaluation) re-solved at this state
    live = key[feasible]
    while len(fresh) < confirm:
        open_ = [i for i in np.argsort(-live, kind="stable") if feasible[i] not in fresh]
        if not open_ or (fresh and not live[open_[0]] > -np.inf):
            break
        k = int(feasible[open_[0]])
        r, ev = _resolve(problem, ix, ref, cur, path, k, amounts[k], plans, seat_cost)
        if stale is not None and not np.isnan(exact[k]):
            stale.append((float(exact[k]), float(r)))
        key[k] = exact[k] = r
        live[open_[0]] = r
        fresh[k] = (r, ev)
        top, k_top = max((rr, kk) for kk, (rr, _) in fresh.items())
        unknown = [live[i] for i in open_[1:]]  # keys not yet re-solved at this state
        if top > -np.inf and top >= (1 + margin) * max(unknown, default=-np.inf):
            return (k_top, fresh[k_top][1]), len(fresh)
    good = [(r, k) for k, (r, _) in fresh.items() if r > -np.inf]
    if not good:
        return None, len(fresh)
    k = max(good)[1]
    return (k, fresh[k][1]), len(fresh)


def _uniform_plans(problem, budget, ref, seat_cost, quantile="mean") -> list[Plan]:
    """Uniform increases of 1, 2, ... subsidy steps until the cost passes ``budget``."""
    act = Action("subsidy", "all ESC schools", 0, "uniform")
    state, steps, out = State.status_quo(problem), [], []
    for _ in range(problem.max_steps):
        state = apply(problem, state, act, problem.subsidy_step)
        ev = evaluate(problem, state, seat_cost=seat_cost, reference=ref)
        steps.append(_step(act, problem.subsidy_step, ev))
        out.append(Plan("uniform", tuple(steps)))
        if not within_budget(ev.cost, budget, quantile):
            break
    return out


def _fill_plans(problem, shares, ref, seat_cost) -> list[Plan]:
    """Open a share of every school's unused contracted slots (status quo → contracted)."""
    act = Action("fill_slots", "all ESC schools", 0)
    unused = np.clip(problem.contracted - problem.capacities, 0, None)
    if not unused.any():
        return []
    steps, out, opened = [], [], 0.0
    sq = State.status_quo(problem)
    for share in shares:
        caps = problem.capacities + np.floor(share * unused)
        ev = evaluate(problem, State(sq.steps, caps, sq.seats), seat_cost=seat_cost, reference=ref)
        steps.append(_step(act, float((caps - problem.capacities).sum() - opened), ev))
        opened = float((caps - problem.capacities).sum())
        out.append(Plan("fill slots", tuple(steps)))
    return out


def best_within(plans, budget: float, family: str | None = None, quantile="mean") -> Plan:
    """The plan with the most mean relief among those within ``budget`` (of ``family``
    if given; ties: the cheaper); the empty plan if none. Within: the rule of
    ``quantile`` (:func:`~studentflow.optimize.budget_rule.within_budget`; "mean": mean
    cost <= budget)."""
    best = Plan(family or "optimised", ())
    for p in plans:
        if family is not None and p.family != family:
            continue
        if p.budget_cost(quantile) <= budget and (p.mean_relief > best.mean_relief
                                      or (p.mean_relief == best.mean_relief and p.mean_cost < best.mean_cost)):
            best = p
    return best


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
