"""The greedy path in batches: screen candidates from the duals, re-solve the best
exactly, take a batch whose cost grows with what the path has spent.

One step from the current state ``cur`` (:func:`walk`):

1. **Keys.** Every action keeps a key, its last exact relief per peso or, never
   re-solved, the allocator's dual estimate
   (:func:`studentflow.optimize.actions.estimate`), recomputed every ``refresh`` steps
   (twice as often after subsidy steps); a stale exact key is raised to a fresh estimate that
   is higher (relief is not submodular).
2. **Screening.** Actions are re-solved exactly, one by one as a change to ``cur``
   (:func:`studentflow.optimize.delta.evaluate_change`: only the changed schools'
   pairs, their origins and public JHS; all draws at once), in the order of their keys,
   in chunks, until the batch below is ``1 + margin`` times better (relief per peso)
   than every key not yet re-solved, or ``confirm + 3 × its size`` were re-solved
   (``confirm = 0``: every feasible action). Broad subsidies (a quarter of the pairs
   or more) are full re-solves; with a Dask client they run on the cluster.
3. **Batch.** The re-solved actions in order of exact relief per peso, as many as
   reach the step's target cost ``growth × spent so far`` (pesos; at least one, at
   most ``batch_max``; subsidies raising disjoint sets of schools). So the first steps are single actions and
   later ones grow geometrically: reaching a budget B from a first step of cost c
   takes about ``1/growth + ln(B / c) / ln(1 + growth)`` steps, whatever B.
4. **Confirmation.** A batch of several actions is re-solved together (exact); if it
   relieves no more than the best single action of the batch, that action alone is
   taken instead.

The path does not depend on the budget (it stops once its cost passes it). When the
last step was a batch of several actions, a short **finish** from the state before it
(:func:`walk` with ``cap``) fills the rest of the budget with steps whose target cost is
the budget left, using only actions whose own cost fits it.
"""

from __future__ import annotations

import numpy as np

from studentflow.optimize.actions import apply, estimate, step_amounts
from studentflow.optimize.context import Remote, binds
from studentflow.optimize.plans import Plan, fits, make_step, split_batch

__all__ = ["walk", "ratio"]

CHUNK = 16  # candidates re-solved between two checks of the stopping rule


def ratio(gain: float, cost: float) -> float:
    """Relief per peso; -inf when nothing is relieved, +inf when free."""
    if gain <= 0:
        return -np.inf
    return np.inf if cost <= 0 else gain / cost


def _batch(fresh: dict, ix, target: float, batch_max: int, cap: float | None) -> list:
    """Re-solved actions by exact relief per peso until their costs reach ``target``."""
    out, total = [], 0.0
    raised = np.zeros(ix.incidence.shape[1], dtype=bool)  # schools a subsidy of the batch raises
    ranked = sorted(((v[0], k) for k, v in fresh.items()), key=lambda x: (-x[0], x[1]))
    if ranked and ranked[0][0] > -np.inf and all(not fresh[k][1].simple for r, k in ranked if r > -np.inf):
        return [ranked[0][1]]  # only actions after which a pool binds relieve anyone: the best alone
    for r, k in ranked:
        if not r > -np.inf or len(out) >= batch_max:
            break
        if not fresh[k][1].simple:
            continue  # a pool binds after it: not in a batch (the re-solves after it would all be full)
        dc = fresh[k][2]
        if cap is not None and total + dc > cap:
            continue
        if ix.kind[k] == 1:  # subsidies of a batch raise disjoint sets of schools
            row = ix.incidence[int(np.searchsorted(ix.subsidy_rows, k))].indices
            if raised[row].any():
                continue
            raised[row] = True
        out.append(k)
        total += dc
        if total >= target:
            break
    return out


def _screen(ctx, cur, amounts, feasible, key, exact, target, batch_max, cap):
    """Exact re-solves at ``cur`` in key order (see the module text): {action: (ratio,
    change, cost added)}; updates ``key``/``exact`` in place."""
    p, ix = ctx.problem, ctx.ix
    order = feasible[np.argsort(-key[feasible], kind="stable")]
    limit = order.size if not ctx.confirm else ctx.confirm + 3  # grows with the batch below
    fresh: dict = {}
    i = 0
    while i < min(order.size, limit):
        chunk = order[i:i + CHUNK]
        i += chunk.size
        if fresh and not key[chunk[0]] > -np.inf and ctx.confirm:
            break
        states = [apply(p, cur.state, ix.actions[k], amounts[k]) for k in chunk]
        for k, ev in zip(chunk, ctx.resolve(cur, states, exact=False)):
            dc = ev.spent - cur.spent
            r = ratio(ev.gain - cur.gain, dc)
            if ctx.stale is not None and not np.isnan(exact[k]):
                ctx.stale.append((float(exact[k]), float(r)))
            key[k] = exact[k] = r
            fresh[int(k)] = (r, Remote(ev.state, ev.relief, ev.cost, not binds(ev), getattr(ev, "exact", True)),
                             dc)  # relief and cost only: memory
        if ctx.confirm:
            batch = _batch(fresh, ix, target, batch_max, cap)
            # none relieves yet: go on, up to confirm + 3 × batch_max
            limit = ctx.confirm + 3 * len(batch) if batch else min(i + CHUNK, ctx.confirm + 3 * batch_max)
            rest = order[i:]
            if batch and (rest.size == 0 or fresh[batch[-1]][0] >= (1 + ctx.margin) * key[rest].max()):
                break
    return fresh


def _subsidy_lots(p, ix, cur, amounts, est_cost, want, sub):
    """Pesos per learner of each subsidy action's step: ``n`` subsidy steps, ``n`` the
    cost ``want`` over one step's estimated cost (at least 1, at most the steps left
    below the cap at the group's least-raised school)."""
    n = np.clip(np.floor(want / np.maximum(est_cost[sub], 1.0)), 1, None)
    left = ix.incidence.multiply((p.max_steps - cur.state.steps)[None, :].astype(float)).tocsr().max(axis=1)
    n = np.minimum(n, np.maximum(left.toarray().ravel(), 1))
    return np.where(amounts[sub] > 0, n * p.subsidy_step, 0.0)


def _together(ctx, cur, batch, amounts):
    """The batch's actions re-solved together at ``cur``."""
    state = cur.state
    for k in batch:
        state = apply(ctx.problem, state, ctx.ix.actions[k], amounts[k])
    return ctx.resolve(cur, [state])[0]


def walk(ctx, cur, path, used, budget, plans, *, cap: bool = False, max_steps: int | None = None):
    """The greedy path from ``cur`` (after the steps ``path``; ``used``: action → times
    taken); appends every plan it re-solves to ``plans``. ``cap``: a finish (steps
    whose target cost is the budget left, of actions that fit in it; see the module
    text); at most ``max_steps`` steps.

    Returns
    -------
    (tuple of Step, last)
        The path, and ``last = (evaluation, path, used, batch)`` before its last step
        (None if it took none).
    """
    p, ix, acts = ctx.problem, ctx.ix, ctx.ix.actions
    path, used = list(path), dict(used)
    since, last = ctx.refresh, None
    key = np.full(len(acts), np.nan)
    exact = np.full(len(acts), np.nan)
    est_cost = np.zeros(len(acts))
    sub = ix.subsidy_rows
    taken = 0
    while len(path) < ctx.max_path and fits(cur.cost, budget, ctx.quantile) and (max_steps is None or taken < max_steps):
        amounts = step_amounts(p, ix, cur, slot_step=ctx.slot_step, seat_step=ctx.seat_step,
                               slot_min=ctx.slot_min, slot_share=ctx.slot_share)
        for k, n in used.items():
            if acts[k].max_units is not None and n >= acts[k].max_units:
                amounts[k] = 0.0
        feasible = np.flatnonzero(amounts > 0)
        if feasible.size == 0:
            break
        if since >= ctx.refresh:
            gain, est_cost = estimate(p, ix, cur, amounts, seat_cost=ctx.seat_cost)
            est = np.array([ratio(g, c) for g, c in zip(gain, est_cost)])
            key = np.where(np.isnan(exact), est, np.fmax(exact, est))
            since = 0
        room = budget - cur.spent if cap else None
        if room is not None and room < 1e-4 * budget:
            break  # the finish has spent all but a ten-thousandth
        target = ctx.growth * cur.spent if room is None else room
        if ctx.batch_max > 1:  # subsidy steps sized by cost: about a CHUNK-th of the target each
            amounts[sub] = _subsidy_lots(p, ix, cur, amounts, est_cost, target / CHUNK, sub)
        fresh = _screen(ctx, cur, amounts, feasible, key, exact, target, ctx.batch_max, room)
        for k, (_, ev, _) in fresh.items():
            if ev.exact:  # (a screening value with the pools ignored is not a plan)
                plans.append(Plan("optimised", tuple(path) + (make_step(acts[k], amounts[k], ev),)))
        batch = _batch(fresh, ix, target, ctx.batch_max, room)
        if not batch:
            if since and not cap:  # stale estimates: recompute them before concluding
                since = ctx.refresh
                continue
            break
        ev = fresh[batch[0]][1]
        if len(batch) > 1:
            both = _together(ctx, cur, batch, amounts)
            while len(batch) > 1 and ((binds(both) and not binds(cur)) or (room is not None
                                                                          and not fits(both.cost, budget, ctx.quantile))):
                # together they make an origin pool bind (every re-solve after would be
                # full), or (finish) pass the budget: the better half
                batch = batch[:len(batch) // 2]
                both = _together(ctx, cur, batch, amounts) if len(batch) > 1 else ev
            if both.gain > ev.gain and (room is None or fits(both.cost, budget, ctx.quantile)):
                ev = both
            else:
                batch = batch[:1]
        if isinstance(ev, Remote):  # the screened single action: re-solved again to take it
            if ctx.client is not None and ctx._broad(cur, ev.state):
                ctx.evaluations += 1  # as in one process; ctx.take re-solves it here
            else:
                ev = ctx.resolve(cur, [ev.state])[0]
                if not ev.gain > cur.gain:  # screened with the pools ignored; exactly, no better
                    key[batch[0]] = -np.inf
                    continue
        steps = split_batch([(acts[k], amounts[k], fresh[k][1]) for k in batch], cur, ev)
        plans.append(Plan("optimised", tuple(path) + tuple(steps)))
        last = (cur, tuple(path), dict(used), batch)
        path += steps
        for k in batch:
            used[int(k)] = used.get(int(k), 0) + 1
        key[batch], exact[batch] = -np.inf, np.nan  # taken: their next step waits for fresh estimates
        since += 1 if all(ix.kind[k] != 1 for k in batch) else 2  # subsidies move the duals more
        cur = ctx.take(ev)
        taken += 1
    return tuple(path), last
