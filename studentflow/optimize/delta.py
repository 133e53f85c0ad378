"""Exact re-solves of a small change to an evaluated state, touching only what changes.

When no origin pool binds (the allocator's origin factors are all 1, the common case:
:func:`studentflow.optimize.problem._columns_only`), the allocation of a school depends
only on its own demand and slots: ``b_j = min(1, K_j / Σ_i μ_ij)``. A step that changes
the slots or the subsidy steps of a set S of ESC schools (and seats at some public JHS)
therefore changes the flows on S's pairs only, the placements of the origins with a
pair in S, and the relief of the public JHS those origins feed. :func:`evaluate_change`
recomputes exactly those (all draws at once) from the current
:class:`~studentflow.optimize.problem.Evaluation` and returns a :class:`Change` with the
new relief and cost per draw; :func:`commit` turns the change taken by the search into
the next full Evaluation. The result equals a full :func:`~studentflow.optimize.problem.evaluate`
up to rounding (tests check it); when an origin pool would bind, or the current state is
not in the no-binding case, the change is re-solved in full instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studentflow.optimize.problem import Evaluation, MeanFigures, Problem, State, evaluate

__all__ = ["Change", "Remote", "evaluate_change", "commit", "school_pairs"]


def school_pairs(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(order, ptr): the pairs of school j are ``order[ptr[j]:ptr[j + 1]]`` (cached)."""
    if "school_pairs" not in problem._cache:
        order = np.argsort(problem.indices, kind="stable")
        ptr = np.concatenate([[0], np.cumsum(np.bincount(problem.indices, minlength=problem.capacities.size))])
        problem._cache["school_pairs"] = (order, ptr)
    return problem._cache["school_pairs"]


@dataclass(frozen=True, eq=False)
class Change(MeanFigures):
    """A state re-solved as a change to ``base`` (see the module text): relief and cost
    per draw against the status quo, and the patches :func:`commit` applies."""

    state: State
    relief: np.ndarray
    cost: np.ndarray
    paid: np.ndarray
    relief_total: np.ndarray
    base: Evaluation
    pairs: np.ndarray  # changed pairs
    mu: np.ndarray  # draws × changed pairs
    flows: np.ndarray
    schools: np.ndarray  # changed schools
    b: np.ndarray  # draws × changed schools
    load: np.ndarray
    demand: np.ndarray
    origins: np.ndarray  # touched origins
    origin: np.ndarray  # draws × touched origins
    jhs: np.ndarray  # touched public JHS
    relieved: np.ndarray  # draws × touched JHS


@dataclass(frozen=True, eq=False)
class Remote(MeanFigures):
    """Relief and cost per draw of a state re-solved in full (on the cluster or here);
    :meth:`Context.take` re-solves it again when the search takes it."""

    state: State
    relief: np.ndarray
    cost: np.ndarray
    simple: bool = True  # no origin pool binds in it
    exact: bool = True  # False: a screening value with the pools ignored (delta.evaluate_change)


def _simple(ev: Evaluation) -> bool:
    if "simple" not in ev.__dict__:
        object.__setattr__(ev, "simple", bool(np.all(ev.a == 1.0)))
    return ev.__dict__["simple"]


def _ranges(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, row of each): the concatenated ranges ``ptr[r]:ptr[r + 1]`` of ``rows``."""
    counts = ptr[rows + 1] - ptr[rows]
    total = int(counts.sum())
    seg = np.repeat(np.arange(rows.size), counts)
    return np.repeat(ptr[rows] - np.cumsum(counts) + counts, counts) + np.arange(total), seg


def _sums(values: np.ndarray, seg: np.ndarray, n: int) -> np.ndarray:
    """Draws × n sums of draws × k ``values`` by segment ``seg`` (length k)."""
    D = values.shape[0]
    flat = (np.arange(D)[:, None] * n + seg[None, :]).ravel()
    return np.bincount(flat, weights=values.ravel(), minlength=D * n).reshape(D, n)


def evaluate_change(problem: Problem, cur: Evaluation, state: State, *, reference: Evaluation,
                    seat_cost: float = 0.0, exact: bool = True):
    """``state`` re-solved exactly as a change to ``cur``: a :class:`Change`, or a full
    :class:`~studentflow.optimize.problem.Evaluation` when the change cannot be done
    locally (an origin pool binds, it changes over a quarter of the pairs, or ``cur``
    has a binding pool). ``exact=False``: where a pool would bind, the change with the
    pools ignored instead, as a :class:`Remote` flagged
    ``simple=False`` (for screening only: an optimistic value, never a plan)."""
    full = lambda: evaluate(problem, state, seat_cost=seat_cost, reference=reference)  # noqa: E731
    if not _simple(cur):
        return full()
    old = cur.state
    stepped = state.steps != old.steps
    S = np.flatnonzero(stepped | (state.capacities != old.capacities))
    order, ptr = school_pairs(problem)
    pos, seg = _ranges(ptr, S)
    if pos.size > problem.indices.size // 4:
        return full()  # a broad change: the full re-solve is as fast
    P = order[pos]
    if stepped[S].any():
        lvl = state.steps[problem.indices[P]]
        eta = problem.log_mu[:, P]
        for n in np.unique(lvl[lvl > 0]):
            sel = lvl == n
            eta[:, sel] += problem.shift(int(n))[:, P[sel]]
        mu = np.exp(eta)
    else:
        mu = cur.mu[:, P]
    demand = _sums(mu, seg, S.size)
    K = state.capacities[S]
    b = np.where(demand > K, K / np.where(demand > 0, demand, 1.0), 1.0)
    flows = mu * b[:, seg]
    po = problem.pair_origin[P]
    O, inv = np.unique(po, return_inverse=True)
    origin = cur.origin[:, O] + _sums(flows - cur.flows[:, P], inv, O.size)
    pools = problem.pools[..., O]  # per origin, or draws × origins
    bound = bool(np.any(origin - pools > 1e-9 * np.maximum(pools, 1.0)))
    if bound and exact:
        return full()  # an origin pool binds: the allocator's full solution is needed
    b[:, K == 0] = np.where(demand[:, K == 0] > 0, 0.0, 1.0)
    load = _sums(flows, seg, S.size)
    # relief: only the JHS fed by the touched origins, and those given seats, change
    cap, obs = problem.public_total[O], problem.observed[O]
    dext = (np.minimum(np.clip(origin - obs, 0, None), cap)
            - np.minimum(np.clip(cur.origin[:, O] - obs, 0, None), cap))
    sh = problem.share
    spos, srow = _ranges(sh.indptr, O)
    J, jinv = np.unique(np.concatenate([sh.indices[spos], np.flatnonzero(state.seats != old.seats)]),
                        return_inverse=True)
    drel = _sums(dext[:, srow] * sh.data[spos], jinv[:spos.size], J.size)
    relieved = cur.relieved[:, J] + drel
    before = np.minimum(problem.aisle[J], cur.relieved[:, J] + old.seats[J]).sum(axis=1)
    after = np.minimum(problem.aisle[J], relieved + state.seats[J]).sum(axis=1)
    relief_total = cur.relief_total + (after - before)
    price_new = problem.amount[S] + problem.subsidy_step * state.steps[S]
    price_old = problem.amount[S] + problem.subsidy_step * old.steps[S]
    paid = (cur.paid + load @ price_new - cur.school[:, S] @ price_old
            + seat_cost * (state.seats.sum() - old.seats.sum()))
    if bound:  # exact=False: the pools ignored, flagged (a screening value, not a plan)
        return Remote(state, relief_total - reference.relief_total, paid - reference.paid, False, False)
    return Change(state, relief_total - reference.relief_total, paid - reference.paid, paid, relief_total, cur,
                  P, mu, flows, S, b, load, demand, O, origin, J, relieved)


def commit(problem: Problem, change) -> Evaluation:
    """The full Evaluation of a :class:`Change` (an Evaluation is returned as is)."""
    if isinstance(change, Evaluation):
        return change
    cur = change.base
    mu, flows, b, school, origin, relieved = (cur.mu.copy(), cur.flows.copy(), cur.b.copy(), cur.school.copy(),
                                              cur.origin.copy(), cur.relieved.copy())
    mu[:, change.pairs] = change.mu
    flows[:, change.pairs] = change.flows
    b[:, change.schools] = change.b
    school[:, change.schools] = change.load
    origin[:, change.origins] = change.origin
    relieved[:, change.jhs] = change.relieved
    ev = Evaluation(change.state, change.relief.copy(), change.cost.copy(), change.paid, change.relief_total,
                    origin.sum(axis=1), origin, school, cur.a, b, relieved, mu, flows)
    object.__setattr__(ev, "simple", True)
    if "demand" in cur.__dict__:  # the schools' demand Σ_i μ_ij (a = 1), patched likewise
        demand = cur.__dict__["demand"].copy()
        demand[:, change.schools] = change.demand
        object.__setattr__(ev, "demand", demand)
    return ev


def check(problem: Problem, change, *, reference: Evaluation, seat_cost: float = 0.0) -> float:
    """Largest absolute difference in relief or cost per draw between ``change`` and a
    full re-solve of its state (tests)."""
    ev = evaluate(problem, change.state, seat_cost=seat_cost, reference=reference)
    return float(max(np.abs(ev.relief - change.relief).max(), np.abs(ev.cost - change.cost).max()))

