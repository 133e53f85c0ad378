"""Where the search's exact re-solves run: in this process, or full re-solves on a Dask
cluster, with identical results.

A :class:`Context` holds the problem, its actions, the status quo's evaluation and the
search's settings, and counts re-solves. :meth:`Context.resolve` re-solves states that
each change ``cur`` a little as changes
(:func:`studentflow.optimize.delta.evaluate_change`, in this process: they touch a few
schools' pairs only) and the broad ones (a subsidy at many schools) in full;
:meth:`Context.full` re-solves whole states (the uniform increases, the slot filling).
With a Dask ``client`` the full re-solves run as tasks on the cluster, each the same
function of the same inputs as in this process, so the search takes the same decisions
and returns the same plans bit for bit; only relief and cost per draw come back, and the
state a step takes is re-solved here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from studentflow.optimize.delta import Remote, commit, evaluate_change, school_pairs
from studentflow.optimize.problem import Evaluation, Problem, State, evaluate

__all__ = ["Context", "Remote", "binds"]


def binds(ev) -> bool:
    """Whether an origin pool binds in a re-solve (then the changes after it are full
    re-solves: :mod:`studentflow.optimize.delta`)."""
    if isinstance(ev, Remote):
        return not ev.simple
    if isinstance(ev, Evaluation):
        return not bool(np.all(ev.a == 1.0))
    return False


def _remote_evaluate(problem, state, seat_cost, ref_relief, ref_paid):
    ref = _Ref(ref_relief, ref_paid)
    ev = evaluate(problem, state, seat_cost=seat_cost, reference=ref)
    return ev.relief, ev.cost, bool(np.all(ev.a == 1.0))


@dataclass(frozen=True)
class _Ref:
    relief_total: np.ndarray
    paid: np.ndarray


@dataclass(eq=False)
class Context:
    """The search's problem, actions (an ActionIndex), status quo ``ref`` and settings
    (see :func:`studentflow.optimize.search.search`)."""

    problem: Problem
    ix: object
    ref: Evaluation
    seat_cost: float = 0.0
    confirm: int = 5
    margin: float = 0.3
    refresh: int = 5
    slot_step: float = 50.0
    slot_min: float = 5.0
    slot_share: float = 0.0
    seat_step: float = 45.0
    growth: float = 0.1
    batch_max: int = 1
    max_path: int = 100_000
    client: object = None
    changes: bool = True  # re-solve small changes locally (False: every re-solve in full, for benchmarks)
    stale: list | None = None
    quantile: object = "mean"  # the budget rule (studentflow.optimize.budget_rule)
    evaluations: int = 0
    _remote_problem: object = field(default=None, repr=False)

    def _broad(self, cur, state) -> bool:
        """Whether re-solving ``state`` as a change to ``cur`` would be a full re-solve
        anyway (over a quarter of the pairs change), as :func:`evaluate_change` decides."""
        changed = (state.steps != cur.state.steps) | (state.capacities != cur.state.capacities)
        _, ptr = school_pairs(self.problem)
        return int(np.diff(ptr)[changed].sum()) > self.problem.indices.size // 4

    def _evaluate(self, state):
        return evaluate(self.problem, state, seat_cost=self.seat_cost, reference=self.ref)

    def full(self, states) -> list:
        """Whole re-solves of ``states``: their relief and cost per draw (:class:`Remote`;
        on the cluster when there is one)."""
        states = list(states)
        self.evaluations += len(states)
        if self.client is None or not states:
            return [Remote(s, ev.relief, ev.cost, bool(np.all(ev.a == 1.0)))
                    for s, ev in ((s, self._evaluate(s)) for s in states)]
        if self._remote_problem is None:
            light = replace(self.problem, _cache={})
            self._remote_problem = self.client.scatter(light, broadcast=True)
        futs = [self.client.submit(_remote_evaluate, self._remote_problem, s, self.seat_cost,
                                   self.ref.relief_total, self.ref.paid, pure=False) for s in states]
        return [Remote(s, r, c, ok) for s, (r, c, ok) in zip(states, self.client.gather(futs))]

    def resolve(self, cur, states, exact: bool = True) -> list:
        """Each state re-solved exactly: as a change to ``cur`` where that is local, in
        full otherwise (on the cluster when there is one). ``exact=False``: a change
        after which an origin pool binds is not re-solved in full but flagged
        (:func:`~studentflow.optimize.delta.evaluate_change`)."""
        states = list(states)
        out: list = [None] * len(states)
        broad = [i for i, s in enumerate(states) if self.client is not None and self._broad(cur, s)]
        for i, ev in zip(broad, self.full([states[i] for i in broad])):
            out[i] = ev
        for i, s in enumerate(states):
            if out[i] is None:
                self.evaluations += 1
                out[i] = (evaluate_change(self.problem, cur, s, reference=self.ref, seat_cost=self.seat_cost,
                                          exact=exact) if self.changes else self._evaluate(s))
        return out

    def take(self, ev) -> Evaluation:
        """The full Evaluation of a re-solve the search takes as its next state."""
        if isinstance(ev, Remote):
            return self._evaluate(ev.state)
        return commit(self.problem, ev)
