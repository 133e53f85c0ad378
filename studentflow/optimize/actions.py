"""What the optimizer can buy, and what the allocator's duals say each is worth.

Actions (one step each; a plan repeats them):

``slots``
    Add slots at one ESC school, at most up to its limit (its JHS seats). The step adds
    the school's unmet demand (mean over draws, at most ``slot_step``) unless the action
    fixes ``amount``.
``subsidy``
    Raise the ESC amount by one step (``Problem.subsidy_step`` pesos) at a group of
    schools: every school (``uniform``), a location tier, or the schools serving a
    congested public JHS's catchment; schools already at ``max_steps`` stay.
``public_seats``
    Add seats at a congested public JHS (``seat_step`` per step, at most its aisle
    learners), priced by the user's cost per seat.

Dual estimates (:func:`estimate`)
---------------------------------
In each draw the allocation is ``T_ij = a_i μ_ij b_j``: ``b_j < 1`` means school j is full
(its capacity binds, demand above slots is ``(1/b_j − 1) K_j``), ``a_i < 1`` that origin
i's pool is exhausted. One more learner placed from origin i relieves
``w_i = Σ_k share_ik [JHS k still above its seats]`` while the origin places between its
observed beneficiaries and its public-JHS learners (0 otherwise). Hence, per draw:

* a slot at a full school j places ``Σ_i a_i μ_ij [a_i = 1] / D_j`` learners worth
  ``Σ_i a_i μ_ij [a_i = 1] w_i / D_j``, with ``D_j = Σ_i a_i μ_ij`` its demand, up to its
  unmet demand ``D_j − K_j`` (equal to ``T_ij / K_j`` forms where ``b_j > 0``, and also
  right at a school with no slots, ``b_j = 0``); a slot at a school with room is worth
  nothing;
* a subsidy step multiplies μ on school j's pairs by ``f_ij`` (the model's response to
  the lower net cost); at a school with room the extra ``T_ij (f_ij − 1)`` (up to the
  room left) is placed, at a full school nothing is, but every learner there is paid
  the step (the inframarginal cost);
* public seats relieve one learner each up to the JHS's remaining aisle learners.

The estimates rank the actions by relief per peso (mean over draws); the search
(:mod:`studentflow.optimize.search`) confirms the best with exact re-solves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from studentflow.optimize.problem import Evaluation, Problem, State
from studentflow.optimize.slots import lot_floor

__all__ = ["Action", "ActionIndex", "make_actions", "apply", "estimate", "step_amounts"]


@dataclass(frozen=True)
class Action:
    """One kind of step.

    Attributes
    ----------
    kind : {"slots", "subsidy", "public_seats"}
    target : str
        School id, JHS id, or group label ("all ESC schools", "tier NCR",
        "catchment of JHS 301234").
    index : int
        School / JHS position, or the group's row in ``Problem.groups[group]``.
    group : str
        For subsidies: "uniform", or a key of ``Problem.groups``; else "".
    amount : float or None
        Fixed slots / seats per step; None: chosen per step (slots: unmet demand up to
        ``slot_step``; seats: ``seat_step``). Subsidies always add one step.
    max_units : int or None
        How many times a plan may take it (None: until its limit).
    """

    kind: str
    target: str
    index: int = 0
    group: str = ""
    amount: float | None = None
    max_units: int | None = None

    @property
    def label(self) -> str:
        return {"slots": "add ESC slots", "subsidy": "raise ESC subsidy",
                "public_seats": "add public JHS seats"}.get(self.kind, self.kind)


def make_actions(problem: Problem, kinds=("slots", "tier", "catchment", "uniform"),
                 max_units: int | None = None) -> list[Action]:
    """Every action of the given kinds: ``slots`` per ESC school with room to grow,
    ``tier`` / ``catchment`` per group of ``problem.groups``, ``uniform``, and
    ``public_seats`` per congested public JHS."""
    out: list[Action] = []
    if "uniform" in kinds:
        out.append(Action("subsidy", "all ESC schools", 0, "uniform", max_units=max_units))
    for group in ("tier", "catchment"):
        if group in kinds and group in problem.groups:
            labels, _ = problem.groups[group]
            prefix = "tier " if group == "tier" else "catchment of JHS "
            out += [Action("subsidy", f"{prefix}{lab}", g, group, max_units=max_units)
                    for g, lab in enumerate(labels)]
    if "slots" in kinds:
        room = np.flatnonzero(problem.slot_limit - problem.capacities >= 1)
        out += [Action("slots", problem.school_ids[j], int(j), max_units=max_units) for j in room]
    if "public_seats" in kinds:
        out += [Action("public_seats", problem.jhs_ids[k], int(k), max_units=max_units)
                for k in np.flatnonzero(problem.aisle > 0)]
    return out


def _incidence(problem: Problem, action: Action) -> np.ndarray:
    """0/1 per school: the schools a subsidy action raises."""
    if action.group == "uniform":
        return np.ones(problem.capacities.size, dtype=bool)
    return problem.groups[action.group][1][action.index].toarray().ravel() > 0


@dataclass(frozen=True, eq=False)
class ActionIndex:
    """A list of actions as arrays, for estimating all of them at once."""

    actions: tuple
    kind: np.ndarray  # 0 slots, 1 subsidy, 2 public seats
    index: np.ndarray
    fixed: np.ndarray  # fixed amount, NaN where chosen per step
    subsidy_rows: np.ndarray  # positions of the subsidy actions
    incidence: sp.csr_matrix  # subsidy actions × schools, 0/1

    @classmethod
    def of(cls, problem: Problem, actions) -> "ActionIndex":
        actions = tuple(actions)
        codes = {"slots": 0, "subsidy": 1, "public_seats": 2}
        kind = np.array([codes[a.kind] for a in actions], dtype=np.int64)
        index = np.array([a.index for a in actions], dtype=np.int64)
        fixed = np.array([np.nan if a.amount is None else float(a.amount) for a in actions])
        sub = np.flatnonzero(kind == 1)
        m = problem.capacities.size
        rows = [sp.csr_matrix(np.ones((1, m))) if actions[k].group == "uniform"
                else problem.groups[actions[k].group][1][actions[k].index] for k in sub]
        inc = sp.vstack(rows, format="csr") if rows else sp.csr_matrix((0, m))
        inc.data[:] = 1.0
        return cls(actions, kind, index, fixed, sub, inc)


def apply(problem: Problem, state: State, action: Action, amount: float) -> State:
    """The state after one step of ``action`` (``amount`` slots / seats; subsidies:
    ``amount / subsidy_step`` steps, at least one, none beyond ``max_steps``)."""
    if action.kind == "slots":
        caps = state.capacities.copy()
        caps[action.index] += amount
        return State(state.steps, caps, state.seats)
    if action.kind == "public_seats":
        seats = state.seats.copy()
        seats[action.index] += amount
        return State(state.steps, state.capacities, seats)
    steps = state.steps.copy()
    n = max(1, int(round(amount / problem.subsidy_step))) if amount else 1  # subsidy steps taken at once
    inc = _incidence(problem, action)
    steps[inc] = np.minimum(steps[inc] + n, np.maximum(steps[inc], problem.max_steps))
    return State(steps, state.capacities, state.seats)


def step_amounts(problem: Problem, ix: ActionIndex, cur: Evaluation, *, slot_step: float, seat_step: float,
                 slot_min: float = 5.0, slot_share: float = 0.0):
    """Slots / seats / pesos one step of each action adds (0: the action cannot be taken).

    Slots: the school's largest unmet demand over the draws, at least ``slot_min``
    (unused slots cost nothing, and a later subsidy may fill them), at most the room
    below its limit and the larger of ``slot_step`` and ``slot_share`` times the
    school's demand (mean over draws, learners): lots proportional to demand.
    """
    st = cur.state
    out = np.zeros(len(ix.actions))
    b, load = cur.b, cur.school
    demand = _demand(problem, cur)
    unmet = np.where(b < 1 - 1e-9, demand - load, 0.0).max(axis=0)
    room = np.floor(problem.slot_limit - st.capacities + 1e-9)
    sl = ix.kind == 0
    j = ix.index[sl]
    lot = np.maximum(slot_step, np.ceil(slot_share * demand[:, j].mean(axis=0))) if slot_share > 0 else slot_step
    want = np.where(np.isnan(ix.fixed[sl]), np.minimum(lot, np.maximum(slot_min, np.ceil(unmet[j] - 1e-6))),
                    ix.fixed[sl])
    out[sl] = np.where(room[j] >= want, want, np.where(np.isnan(ix.fixed[sl]), np.maximum(room[j], 0.0), 0.0))
    out[sl] = np.where(np.isnan(ix.fixed[sl]), lot_floor(problem, st, j, out[sl]), out[sl])  # first lot >= min_lot
    se = ix.kind == 2
    k = ix.index[se]
    left = problem.aisle[k] - st.seats[k]
    want = np.where(np.isnan(ix.fixed[se]), seat_step, ix.fixed[se])
    out[se] = np.where(left > 0, np.minimum(want, left), 0.0)
    if ix.subsidy_rows.size:
        can = ix.incidence @ (st.steps < problem.max_steps).astype(float)
        out[ix.subsidy_rows] = np.where(can > 0, problem.subsidy_step, 0.0)
    return out


def _demand(problem: Problem, cur: Evaluation) -> np.ndarray:
    """Draws × schools: learners who would come if the school had room, ``Σ_i a_i μ_ij``
    (``= load / b_j`` where ``b_j > 0``; also right at a school with no slots, ``b_j = 0``);
    kept on the evaluation (:func:`studentflow.optimize.delta.commit` patches it)."""
    if "demand" not in cur.__dict__:
        object.__setattr__(cur, "demand", problem.to_schools(cur.mu * cur.a[:, problem.pair_origin]))
    return cur.__dict__["demand"]


def _weights(problem: Problem, cur: Evaluation) -> np.ndarray:
    """Draws × origins: learners relieved per extra learner placed from each origin."""
    open_jhs = (cur.relieved + cur.state.seats < problem.aisle).astype(float)  # draws × JHS
    w = np.asarray((problem.share @ open_jhs.T).T)
    inside = (cur.origin >= problem.observed - 1e-9) & (cur.origin < problem.observed + problem.public_total)
    return w * inside


def _growth(problem: Problem, steps: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Draws × pairs: exp(shift at the next step − shift now) − 1 (cached for one state)."""
    key = ("growth", steps.tobytes())
    hit = problem._cache.get("growth")
    if hit is not None and hit[0] == key:
        return hit[1]
    ps = problem.pair_school
    lvl_now, lvl_next = steps[ps], nxt[ps]
    if not lvl_now.any() and (lvl_next == 1).all():
        gap = problem.shift(1)
    else:
        gap = np.zeros_like(problem.log_mu)
        for n in np.unique(lvl_next[lvl_next > 0]):
            sel = lvl_next == n
            gap[:, sel] += problem.shift(int(n))[:, sel]
        for n in np.unique(lvl_now[lvl_now > 0]):
            sel = lvl_now == n
            gap[:, sel] -= problem.shift(int(n))[:, sel]
    out = np.expm1(gap)
    problem._cache["growth"] = (key, out)
    return out


def estimate(problem: Problem, ix: ActionIndex, cur: Evaluation, amounts: np.ndarray, *, seat_cost: float = 0.0):
    """(gain, cost): estimated mean relief (learners) and mean cost (pesos) of one step
    of each action from the duals of ``cur`` (see the module text)."""
    st = cur.state
    po = problem.pair_origin
    free = (cur.a >= 1 - 1e-9)  # draws × origins
    w = _weights(problem, cur)
    full = cur.b < 1 - 1e-9
    load = cur.school
    price = problem.amount + problem.subsidy_step * st.steps  # pesos per learner now
    per_school = problem.to_schools

    gain, cost = np.zeros(len(ix.actions)), np.zeros(len(ix.actions))
    simple = bool(free.all()) and bool(np.all(cur.a == 1.0))  # no pool binds: a = 1, skip those products
    Tf = cur.flows if simple else cur.flows * free[:, po]  # flows of origins with learners left
    wpo = w[:, po]
    Tfw = Tf * wpo
    sl = np.flatnonzero((ix.kind == 0) & (amounts > 0))
    if sl.size:
        # a slot at a full school j takes a learner from its demand a_i μ_ij (T_ij / load_j
        # where b_j > 0; the demand itself where b_j = 0: a school with no slots yet)
        demand = _demand(problem, cur)
        safe = np.maximum(demand, 1e-12)
        amf = cur.mu if simple else cur.mu * cur.a[:, po] * free[:, po]
        slot_gain = per_school(amf * wpo) / safe * full  # relief per slot
        slot_placed = (demand / safe if simple else per_school(amf) / safe) * full  # learners per slot
        unmet = np.where(full, demand - load, 0.0)
        j = ix.index[sl]
        filled = np.minimum(amounts[sl][None, :], unmet[:, j])
        gain[sl] = (filled * slot_gain[:, j]).mean(axis=0)
        cost[sl] = (filled * slot_placed[:, j]).mean(axis=0) * price[j]
    se = np.flatnonzero((ix.kind == 2) & (amounts > 0))
    if se.size:
        k = ix.index[se]
        left = np.clip(problem.aisle[k] - cur.relieved[:, k] - st.seats[k], 0, None)
        gain[se] = np.minimum(amounts[se][None, :], left).mean(axis=0)
        cost[se] = amounts[se] * seat_cost
    sub = ix.subsidy_rows[amounts[ix.subsidy_rows] > 0]
    if sub.size:
        # one more step at every school below its cap; an action sums its schools
        nxt = np.minimum(st.steps + 1, problem.max_steps)
        growth = _growth(problem, st.steps, nxt)  # draws × pairs: μ factor − 1 of one more step
        open_ = ~full  # draws × schools: schools with room take the extra demand
        dC = per_school(Tf * growth) * open_
        room = np.clip(st.capacities - load, 0, None)
        scale = np.divide(room, dC, out=np.ones_like(dC), where=dC > room)
        raised = (nxt > st.steps).astype(float)
        sub_gain = (scale * per_school(Tfw * growth) * open_ * raised).mean(axis=0)
        sub_cost = ((problem.subsidy_step * load + (price + problem.subsidy_step) * scale * dC) * raised).mean(axis=0)
        rows = np.searchsorted(ix.subsidy_rows, sub)
        gain[sub] = ix.incidence[rows] @ sub_gain
        cost[sub] = ix.incidence[rows] @ sub_cost
    return gain, cost


def group_matrix(labels_per_school, order=None) -> tuple[list, sp.csr_matrix]:
    """(labels, groups × schools 0/1 CSR) from one label per school (None: no group)."""
    labels_per_school = list(labels_per_school)
    labels = order if order is not None else sorted({x for x in labels_per_school if x is not None})
    pos = {lab: g for g, lab in enumerate(labels)}
    rows = [pos[x] for x in labels_per_school if x in pos]
    cols = [j for j, x in enumerate(labels_per_school) if x in pos]
    mat = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(labels), len(labels_per_school)))
    return list(labels), mat
