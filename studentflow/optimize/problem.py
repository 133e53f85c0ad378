"""The budget problem as plain arrays, and its exact evaluation (numpy/scipy only).

A :class:`Problem` holds the status quo the optimizer starts from: per Monte Carlo draw
the log expected flows on the candidate origin → ESC-school pairs, origin pools, ESC
slots, today's ESC amounts, and the public-JHS relief data. It does not know how the
status quo was produced (a fitted gravity model, a calibrated one, or arrays of a
test): :func:`studentflow.optimize.build.build_problem` makes one from a bundle and a
model, :meth:`Problem.from_arrays` from anything else.

A :class:`State` is a change to the status quo: subsidy steps per ESC school, slots per
school, seats added per public JHS. :func:`evaluate` re-solves the allocator
(:func:`studentflow.allocation.allocate`, expected learners, not rounded) in every
draw and returns what the state relieves and costs against the status quo.

Relief
    Learners relieved from congested public JHS: each origin's placements above its
    observed ESC beneficiaries (at most its learners in public JHS) leave its public
    JHS in proportion to today's flows (as in the scenarios), and a JHS counts them,
    plus any seats added to it, only up to its aisle learners (enrolment above seats):
    ``relief = Σ_k min(aisle_k, relieved_k + seats_added_k)``.
Cost
    Pesos per school year, as in :mod:`studentflow.scenarios.costs`:
    ``Σ_j placed_j (amount_j + step · steps_j) + seat_cost · seats added``, minus the
    status quo's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from studentflow.allocation import allocate
from studentflow.optimize.slots import reserved_cost

__all__ = ["Problem", "State", "Evaluation", "evaluate"]


@dataclass(frozen=True, eq=False)
class Problem:
    """The status quo and the levers' data, all arrays (see the module text).

    Attributes
    ----------
    indptr, indices : numpy.ndarray
        CSR structure of the origins × ESC schools matrix of candidate pairs.
    log_mu : numpy.ndarray
        Draws × pairs (CSR order): log expected flows in the status quo, learners.
    pools : numpy.ndarray
        Per origin: learners available; or draws × origins, a pool per draw (a forecast
        year's pools drawn with the coefficients, ``optimize --for-year next``).
    capacities, slot_limit, contracted : numpy.ndarray
        Per ESC school: slots in the status quo, the most slots it can have (its seats),
        and its contracted slots (for the "fill slots" comparison), learners.
    amount : numpy.ndarray
        Per ESC school: today's ESC amount, pesos per learner per year.
    subsidy_step, max_steps : float, int
        Pesos per subsidy step and the most steps any school may receive.
    subsidy_shift : callable
        ``subsidy_shift(n)`` → draws × pairs change of log μ when every school's amount
        is raised by ``n`` steps (0 → zeros); cached.
    observed, public_total : numpy.ndarray
        Per origin: observed ESC beneficiaries and learners sent to public JHS today.
    share : scipy.sparse.csr_matrix
        Origins × public JHS: share of each origin's public-JHS learners per JHS.
    aisle : numpy.ndarray
        Per public JHS: learners above its seats today (0 where not congested).
    groups : dict
        Name → (labels, incidence): school groups a subsidy action can target, e.g.
        ``"tier"`` → (["NCR", ...], groups × schools 0/1 CSR) and ``"catchment"``.
    origin_ids, school_ids, jhs_ids : numpy.ndarray
        Labels.
    min_lot, unused_slot_share : float
        Fewest slots added at a school that gets any, and the share of its amount paid
        per added slot left unused (:mod:`studentflow.optimize.slots`; 0: off).
    """

    indptr: np.ndarray
    indices: np.ndarray
    log_mu: np.ndarray
    pools: np.ndarray
    capacities: np.ndarray
    slot_limit: np.ndarray
    contracted: np.ndarray
    amount: np.ndarray
    subsidy_step: float
    max_steps: int
    subsidy_shift: Callable[[int], np.ndarray]
    observed: np.ndarray
    public_total: np.ndarray
    share: sp.csr_matrix
    aisle: np.ndarray
    groups: dict
    origin_ids: np.ndarray
    school_ids: np.ndarray
    jhs_ids: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)
    min_lot: float = 0.0
    unused_slot_share: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.pools.shape[-1], self.capacities.size)

    @property
    def draws(self) -> int:
        return self.log_mu.shape[0]

    @property
    def pair_school(self) -> np.ndarray:
        """ESC school (column) of every pair, CSR order."""
        return self.indices

    @property
    def pair_origin(self) -> np.ndarray:
        """Origin (row) of every pair, CSR order."""
        if "pair_origin" not in self._cache:
            self._cache["pair_origin"] = np.repeat(np.arange(self.pools.shape[-1]), np.diff(self.indptr))
        return self._cache["pair_origin"]

    def blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices, indptr) of the block-diagonal matrix of all draws (cached)."""
        if "blocks" not in self._cache:
            D, (_, m), nnz = self.draws, self.shape, self.indices.size
            indices = (np.arange(D)[:, None] * m + self.indices[None, :]).ravel()
            indptr = np.concatenate([[0], (np.arange(D)[:, None] * nnz + self.indptr[None, 1:]).ravel()])
            self._cache["blocks"] = (indices.astype(np.int64), indptr.astype(np.int64))
        return self._cache["blocks"]

    def to_schools(self, values: np.ndarray) -> np.ndarray:
        """Draws × pairs → draws × schools sums."""
        if "to_schools" not in self._cache:
            nnz, m = self.indices.size, self.capacities.size
            self._cache["to_schools"] = sp.csr_matrix(
                (np.ones(nnz), (self.indices, np.arange(nnz))), shape=(m, nnz))
        return np.asarray(self._cache["to_schools"] @ values.T).T

    def shift(self, n: int) -> np.ndarray:
        """Draws × pairs log-μ change at ``n`` subsidy steps everywhere (cached)."""
        key = ("shift", int(n))
        if key not in self._cache:
            self._cache[key] = (np.zeros_like(self.log_mu) if n == 0
                                else np.asarray(self.subsidy_shift(int(n)), dtype=float))
        return self._cache[key]

    @classmethod
    def from_arrays(cls, *, expected, pools, capacities, amount, observed, public_total, share, aisle,
                    slot_limit=None, contracted=None, subsidy_step=1000.0, max_steps=20,
                    cost_elasticity=None, net_cost_k=None, groups=None, labels=None) -> "Problem":
        """A problem from plain arrays (tests, benchmarks, other models).

        Parameters
        ----------
        expected : list of scipy.sparse matrices or numpy.ndarray (draws × origins × schools)
            Status-quo expected flows per draw, learners; the same sparsity in every draw.
        cost_elasticity : numpy.ndarray, optional
            Per draw, the coefficient of ``ln(1 + net cost, thousand pesos)``; with
            ``net_cost_k`` (per pair, CSR order, or origins × schools dense) it gives
            the subsidy's effect as in the study's gravity formula. None: subsidies do
            not change demand.
        groups : dict, optional
            Name → (labels, groups × schools 0/1 matrix).
        labels : dict, optional
            ``origin_ids``, ``school_ids``, ``jhs_ids``.
        """
        mats = [sp.csr_matrix(m) for m in expected]
        base = mats[0].copy()
        base.sort_indices()
        base.data[:] = 1.0
        rows, cols = base.nonzero()  # CSR order: rows sorted, columns sorted within a row
        with np.errstate(divide="ignore"):
            log_mu = np.vstack([np.log(np.asarray(m[rows, cols], dtype=float).ravel()) for m in mats])
        if net_cost_k is not None and np.ndim(net_cost_k) == 2:
            net_cost_k = np.asarray(net_cost_k, dtype=float)[rows, cols]
        ncols = base.shape[1]
        step = float(subsidy_step)

        def shift(n):
            if cost_elasticity is None or net_cost_k is None:
                return np.zeros_like(log_mu)
            c0 = np.asarray(net_cost_k, dtype=float)
            c1 = np.clip(c0 - n * step / 1000.0, 0, None)
            return np.outer(np.asarray(cost_elasticity, float), np.log1p(c1) - np.log1p(c0))

        caps = np.asarray(capacities, dtype=float)
        labels = labels or {}
        return cls(
            indptr=base.indptr.copy(), indices=base.indices.copy(), log_mu=log_mu,
            pools=np.asarray(pools, float), capacities=caps,
            slot_limit=np.asarray(slot_limit if slot_limit is not None else caps, float),
            contracted=np.asarray(contracted if contracted is not None else caps, float),
            amount=np.asarray(amount, float) * np.ones(ncols), subsidy_step=step, max_steps=int(max_steps),
            subsidy_shift=shift, observed=np.asarray(observed, float),
            public_total=np.asarray(public_total, float), share=sp.csr_matrix(share),
            aisle=np.asarray(aisle, float), groups=dict(groups or {}),
            origin_ids=np.asarray(labels.get("origin_ids", np.arange(base.shape[0]))).astype(str),
            school_ids=np.asarray(labels.get("school_ids", np.arange(ncols))).astype(str),
            jhs_ids=np.asarray(labels.get("jhs_ids", np.arange(len(aisle)))).astype(str),
        )


@dataclass(frozen=True, eq=False)
class State:
    """A change to the status quo: subsidy steps per school (int), slots per school
    (learners), seats added per public JHS."""

    steps: np.ndarray
    capacities: np.ndarray
    seats: np.ndarray

    @classmethod
    def status_quo(cls, problem: Problem) -> "State":
        return cls(np.zeros(problem.capacities.size, dtype=np.int64), problem.capacities.copy(),
                   np.zeros(problem.aisle.size))


class MeanFigures:
    """``gain`` and ``spent``: the mean over draws of ``relief`` (learners) and ``cost``
    (pesos), for every result of a re-solve (full, local or remote)."""

    @property
    def gain(self) -> float:
        """Mean relief over draws, learners."""
        return float(self.relief.mean())

    @property
    def spent(self) -> float:
        """Mean cost over draws, pesos."""
        return float(self.cost.mean())


@dataclass(frozen=True, eq=False)
class Evaluation(MeanFigures):
    """One state re-solved in every draw (expected learners; pesos per school year).

    ``relief`` and ``cost`` are per draw and measured against the status quo;
    ``origin`` / ``school`` are draws × origins / schools placements, ``a`` / ``b`` the
    allocator's origin and capacity factors (the duals), ``relieved`` draws × public JHS
    learners relieved before the aisle cap, ``mu`` and ``flows`` draws × pairs expected
    flows before and after allocation.
    """

    state: State
    relief: np.ndarray
    cost: np.ndarray
    paid: np.ndarray
    relief_total: np.ndarray
    placed: np.ndarray
    origin: np.ndarray
    school: np.ndarray
    a: np.ndarray
    b: np.ndarray
    relieved: np.ndarray
    mu: np.ndarray
    flows: np.ndarray


def expected_flows(problem: Problem, steps: np.ndarray) -> np.ndarray:
    """Draws × pairs expected flows μ with ``steps`` subsidy steps per school."""
    steps = np.asarray(steps, dtype=np.int64)
    key = ("mu", steps.tobytes())
    cached = problem._cache.get("mu_last")
    if cached is not None and cached[0] == key:
        return cached[1]
    eta = problem.log_mu.copy()
    per_pair = steps[problem.pair_school]
    for n in np.unique(per_pair[per_pair > 0]):
        sel = per_pair == n
        eta[:, sel] += problem.shift(int(n))[:, sel]
    mu = np.exp(eta)
    problem._cache["mu_last"] = (key, mu)
    return mu


def _columns_only(problem: Problem, mu: np.ndarray, capacities: np.ndarray):
    """The allocation when no origin pool binds, else (None, None, None).

    With every ``a_i = 1`` the KKT conditions of :func:`studentflow.allocation.allocate`
    read ``b_j = min(1, K_j / Σ_i μ_ij)`` and ``Σ_j μ_ij b_j <= E_i``; when the row sums
    of ``μ b`` stay within the pools (up to the allocator's tolerance) this is its
    unique solution, found without balancing (tests check the two agree).
    """
    col = problem.to_schools(mu)  # draws × schools
    b = np.where(col > capacities, capacities / np.where(col > 0, col, 1.0), 1.0)
    t = mu * b[:, problem.indices]
    rows = np.add.reduceat(t, problem.indptr[:-1], axis=1) if t.shape[1] else np.zeros((mu.shape[0], 0))
    rows[:, np.diff(problem.indptr) == 0] = 0.0
    if np.any(rows - problem.pools > 1e-9 * np.maximum(problem.pools, 1.0)):
        return None, None, None
    b[:, capacities == 0] = np.where(col[:, capacities == 0] > 0, 0.0, 1.0)
    return np.ones((mu.shape[0], problem.shape[0])), b, t


def relief_of(problem: Problem, origin: np.ndarray, seats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(relief per draw, draws × JHS relieved before the cap) from origin placements."""
    extra = np.minimum(np.clip(origin - problem.observed, 0, None), problem.public_total)
    relieved = np.asarray((problem.share.T @ extra.T).T)
    relief = np.minimum(problem.aisle, relieved + seats).sum(axis=1)
    return relief, relieved


def evaluate(problem: Problem, state: State, *, seat_cost: float = 0.0, reference=None,
             mu: np.ndarray | None = None) -> Evaluation:
    """Re-solve the allocation of every draw under ``state``.

    Parameters
    ----------
    reference : Evaluation, optional
        The status quo's evaluation: relief and cost are measured against it (None:
        ``state`` is the status quo, relief and cost are zero).
    mu : numpy.ndarray, optional
        Draws × pairs expected flows for ``state.steps`` when already known.
    """
    n, m = problem.shape
    if mu is None:
        mu = expected_flows(problem, state.steps)
    D = problem.draws
    a_all, b_all, t = _columns_only(problem, mu, state.capacities)
    if t is None:
        # every draw at once: a block-diagonal problem (draw d's origins and schools
        # offset by d), whose balanced solution is each block's own (no pair links two)
        indices, indptr = problem.blocks()
        mat = sp.csr_matrix((mu.ravel(), indices, indptr), shape=(D * n, D * m))
        alloc = allocate(mat, np.broadcast_to(problem.pools, (D, n)).ravel(), np.tile(state.capacities, D))
        a_all = alloc.origin_factors.reshape(D, n)
        b_all = alloc.destination_factors.reshape(D, m)
        t = mu * a_all[:, problem.pair_origin] * b_all[:, problem.indices]
    origin = np.add.reduceat(t, problem.indptr[:-1], axis=1) if t.shape[1] else np.zeros((D, n))
    origin[:, np.diff(problem.indptr) == 0] = 0.0
    flat = (np.arange(D)[:, None] * m + problem.indices[None, :]).ravel()
    school = np.bincount(flat, weights=t.ravel(), minlength=D * m).reshape(D, m)
    relief_total, relieved = relief_of(problem, origin, state.seats)
    price = problem.amount + problem.subsidy_step * state.steps
    paid = school @ price + seat_cost * state.seats.sum() + reserved_cost(problem, state, school, price)
    if reference is None:
        relief, cost = np.zeros(D), np.zeros(D)
    else:
        relief, cost = relief_total - reference.relief_total, paid - reference.paid
    return Evaluation(state, relief, cost, paid, relief_total, origin.sum(axis=1), origin, school,
                      a_all, b_all, relieved, mu, t)
