"""Destination factors that make the allocator reproduce observed placements (numpy/scipy only).

A gravity model predicts each ESC school's demand from a handful of covariates; the
schools' own pull (reputation, religion, transport, siblings) is not among them, so the
predicted demand of single schools scatters around what they actually enrol. The
doubly constrained gravity model's answer (Wilson 1970) is a destination balancing
factor ``w_j`` per school, chosen so that the model's flows into each school add up to
the observed total. :func:`calibrate_destinations` computes those factors for the
capacity-constrained allocator (:func:`studentflow.allocation.solve.allocate`):

.. math::

    T_{ij} = a_i\\,\\mu_{ij} w_j\\,b_j ,\\qquad
    \\text{allocate}(\\mu\\,\\mathrm{diag}(w), E, K)

Observed placements ``P_j`` at a school are an exact measure of its demand only when
its capacity did not bind. Where it did (``P_j >= K_j``: every status-quo slot taken),
``P_j`` says only that demand was at least ``K_j``: the school may have turned learners
away. The two kinds of school are therefore calibrated differently:

* **demand-bound** (``P_j < K_j``): ``w_j`` so that the status quo places exactly
  ``P_j`` learners, ``w_j = P_j / sum_i a_i mu_ij``;
* **capacity-bound** (``P_j >= K_j``): demand is only raised as far as needed to fill
  the school, never lowered, ``w_j = max(1, K_j / sum_i a_i mu_ij)``; the model's own
  (higher) demand is kept where it exceeds capacity, so a scenario that adds slots
  there still fills them (``capacity_bound="floor"``, the default).
  ``capacity_bound="match"`` sets these schools' demand to ``K_j`` as well, the
  textbook doubly constrained calibration; it reproduces today equally well but
  removes the demand that rationing hides, so scenarios that add slots or cut net
  cost come out far too small (on the bundled sample the error of scenario changes
  against the truth grows from ~90 to ~1,260 learners; docs/design.md "Calibration").

* **unconstrained** (``capacity_bound="unconstrain"``): a capacity-bound school's
  demand is raised to its expected value *given* that it filled its capacity,
  ``E[D_j | D_j >= K_j]``, where ``D_j`` is negative binomial with the calibrated
  mean ``sum_i a_i mu_ij`` and the NB2 variance ``mean + alpha sum_i (a_i mu_ij)^2``
  (``dispersion`` = alpha; 0: Poisson). The floor rule keeps the larger of the model's
  demand and ``K_j``, the least that is consistent with a full school; this rule keeps
  what a full school's demand is expected to be (the "demand unconstraining" of
  revenue management, one E-step of EM for censored counts). It is only as good as the
  list of schools that were really full: a school that bills exactly the learners it
  admitted looks full without being so. ``below_capacity`` names schools known to have
  been below their capacity (e.g. from their billing in other school years,
  :mod:`studentflow.scenarios.calibrate`); they are calibrated as demand-bound.

``a_i`` are the allocator's origin factors (1 unless the origin's pool binds). The
factors are found by balancing ``T_ij = a_i mu_ij c_j`` to column sums equal to the
targets ``min(P_j, K_j)`` and row sums within the pools (Furness's alternation, as for
the doubly constrained model); then ``w_j = c_j``, except that under the floor rule a
capacity-bound school keeps ``w_j = max(1, c_j)`` and the allocator's own capacity factor
``b_j = c_j / w_j`` seats exactly ``K_j`` (the same allocation, so the calibrated status
quo is unchanged). One round when no pool binds. A school whose candidate pairs carry no
expected flow cannot be calibrated; it keeps ``w_j = 1`` and is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

__all__ = ["CAPACITY_RULES", "DestinationCalibration", "calibrate_destinations", "demand_law"]

#: Rules for capacity-bound schools (see the module text).
CAPACITY_RULES = ("floor", "match", "unconstrain")


@dataclass(frozen=True, eq=False)
class DestinationCalibration:
    """Result of :func:`calibrate_destinations`.

    Attributes
    ----------
    factors : numpy.ndarray
        ``w_j >= 0`` per destination (dimensionless): multiply column ``j`` of the
        expected flows by it.
    capacity_bound : numpy.ndarray of bool
        Schools whose observed placements reach their capacity (``P_j >= K_j``).
    target : numpy.ndarray
        Placements the calibrated status quo aims at, ``min(P_j, K_j)`` (learners).
    predicted, placed : numpy.ndarray
        Allocated placements per destination before and after calibration (learners).
    unreachable : numpy.ndarray of bool
        Destinations with a positive target but no expected flow on any pair (factor 1).
    over_capacity : int
        Destinations whose observed placements exceed their capacity (target clipped).
    converged : bool
        Whether the factors changed by less than ``tol`` (relative) in the last round.
    iterations : int
        Balancing rounds.
    max_violation : float
        Largest ``|placed_j - target_j|`` over reachable schools, learners.
    capacity_rule : str
        ``"floor"``, ``"match"`` or ``"unconstrain"`` (see the module text).
    below_capacity : numpy.ndarray of bool or None
        Schools given as below their capacity (calibrated as demand-bound), if any.
    """

    factors: np.ndarray
    capacity_bound: np.ndarray
    target: np.ndarray
    predicted: np.ndarray
    placed: np.ndarray
    unreachable: np.ndarray
    over_capacity: int
    converged: bool
    iterations: int
    max_violation: float
    capacity_rule: str = "floor"
    observed: np.ndarray = field(default=None, repr=False)
    below_capacity: np.ndarray = field(default=None, repr=False)

    def summary(self) -> str:
        """Short description: totals before and after, factor spread, schools by kind (learners)."""
        w = self.factors[~self.unreachable]
        q = np.percentile(w, [10, 50, 90]) if w.size else np.full(3, np.nan)
        obs = self.observed.sum() if self.observed is not None else self.target.sum()
        lines = [
            f"Destination calibration ({self.capacity_rule}): {self.factors.size} schools, "
            f"{int(self.capacity_bound.sum())} capacity-bound, "
            f"{int((~self.capacity_bound).sum())} demand-bound",
            f"  observed {obs:,.0f} learners; status quo before {self.predicted.sum():,.1f}, "
            f"after {self.placed.sum():,.1f} (target {self.target.sum():,.0f})",
            f"  factors w_j: 10 % {q[0]:.2f}, median {q[1]:.2f}, 90 % {q[2]:.2f}",
            f"  converged {self.converged} after {self.iterations} rounds, "
            f"max |placed - target| {self.max_violation:.2e} learners",
        ]
        if self.unreachable.any():
            lines.append(f"  {int(self.unreachable.sum())} school(s) with observed placements but no "
                         "expected flow on any pair (left uncalibrated)")
        if self.below_capacity is not None and self.below_capacity.any():
            lines.append(f"  {int(self.below_capacity.sum())} school(s) below capacity by their billing "
                         "history: calibrated as demand-bound")
        if self.over_capacity:
            lines.append(f"  {self.over_capacity} school(s) placed more than their capacity "
                         "(target clipped to capacity)")
        return "\n".join(lines)


def _column_pull(mu: sp.csr_matrix, a: np.ndarray) -> np.ndarray:
    """``sum_i a_i mu_ij`` per column (learners)."""
    return np.asarray(mu.T @ a, dtype=float).ravel()


#: Furness rounds before the dual is polished with L-BFGS.
FURNESS_ROUNDS = 500


def _origin_factors(mu, pools, c):
    """``a_i = min(1, E_i / sum_j mu_ij c_j)`` (1 for an empty row)."""
    row = np.asarray(mu @ c, dtype=float).ravel()
    return np.where(row > 0, np.minimum(1.0, np.divide(pools, row, out=np.ones_like(row), where=row > 0)), 1.0)


def _furness_round(mu, pools, target, a, max_factor):
    """One round: column factors to the targets, then origin factors to the pools."""
    pull = _column_pull(mu, a)
    ok = pull > 0
    c = np.minimum(np.where(ok, np.divide(target, pull, out=np.ones_like(pull), where=ok), 1.0), max_factor)
    a = _origin_factors(mu, pools, c)
    col = c * _column_pull(mu, a)
    violation = np.max((np.abs(col - target) / np.maximum(target, 1.0))[ok]) if ok.any() else 0.0
    return c, a, ok, violation


def _polish(mu, pools, target, c, ok, max_factor, tol, max_iter):
    """Minimise the convex dual ``sum_i h(r_i, E_i) - sum_j target_j u_j`` over
    ``u = log c`` (schools with a positive target and a reachable column) by L-BFGS;
    ``h(r, E) = r`` for ``r <= E``, ``E (1 + log(r / E))`` above, ``r = mu e^u``. Its
    gradient is the calibrated column sum minus the target."""
    from scipy.optimize import minimize

    free = np.flatnonzero(ok & (target > 0))
    if free.size == 0:
        return c, 0
    sub = mu[:, free].tocsr()
    tgt = target[free]
    base = np.asarray(mu[:, np.setdiff1d(np.arange(mu.shape[1]), free)] @ c[np.setdiff1d(np.arange(mu.shape[1]),
                                                                                          free)]).ravel()

    def fun(u):
        r = base + np.asarray(sub @ np.exp(u)).ravel()
        safe = np.where(pools > 0, pools, 1.0)
        over = r > pools
        h = np.where(over, np.where(pools > 0, pools * (1.0 + np.log(np.where(over, r, 1.0) / safe)), 0.0), r)
        a = np.where(over, np.divide(pools, r, out=np.zeros_like(r), where=r > 0), 1.0)
        return float(h.sum() - tgt @ u), np.exp(u) * np.asarray(sub.T @ a).ravel() - tgt

    res = minimize(fun, np.log(np.maximum(c[free], 1e-300)), jac=True, method="L-BFGS-B",
                   bounds=[(None, np.log(max_factor))] * free.size,
                   options={"maxiter": max_iter, "ftol": 0.0, "gtol": 0.1 * tol,
                            "maxcor": 20})
    out = c.copy()
    out[free] = np.exp(res.x)
    return out, int(res.nit)


def calibrate_destinations(
    expected,
    pools,
    capacities,
    observed,
    *,
    capacity_bound: Literal["floor", "match", "unconstrain"] = "floor",
    dispersion: float = 0.0,
    below_capacity=None,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    max_factor: float = 1e4,
    allocator=None,
) -> DestinationCalibration:
    """Destination factors ``w`` with ``allocate(expected * w, pools, capacities)`` placing
    the observed learners at every school (see the module text for the two kinds of school).

    Parameters
    ----------
    expected : array-like or scipy.sparse matrix
        Expected flows μ, origins × destinations, learners (the status quo's).
    pools : array-like
        Origin pools E_i, learners.
    capacities : array-like
        Status-quo capacities K_j (e.g. billed ESC slots), learners.
    observed : array-like
        Observed placements P_j per destination, learners.
    capacity_bound : {"floor", "match", "unconstrain"}
        Rule for schools with ``P_j >= K_j``: raise demand only as far as needed to fill
        them (default), set it to exactly ``K_j``, or raise it to its expected value
        given that it filled ``K_j`` (see the module text).
    dispersion : float
        NB2 alpha of the demand (``"unconstrain"`` only; 0 = Poisson), dimensionless.
    below_capacity : array-like of bool, optional
        Per destination: known to have been below its capacity, so calibrated as
        demand-bound even where ``P_j >= K_j`` (default: none).
    tol : float
        Stop when every reachable school's calibrated placements are within ``tol``
        × max(1, target) of its target.
    max_iter : int
        At most this many balancing rounds (two sparse matrix-vector products each).
    max_factor : float
        Factors are capped here; they reach it only when the targets cannot be met
        (origin pools too small for the observed placements), and the result then
        reports ``converged=False`` and the gap.
    allocator : callable, optional
        Default :func:`studentflow.allocation.solve.allocate`.

    Returns
    -------
    DestinationCalibration
    """
    if allocator is None:
        from studentflow.allocation.solve import allocate as allocator
    if capacity_bound not in CAPACITY_RULES:
        raise ValueError(f"capacity_bound must be one of {CAPACITY_RULES}, got {capacity_bound!r}")
    if not (np.isfinite(dispersion) and dispersion >= 0):
        raise ValueError(f"dispersion must be a finite NB2 alpha >= 0, got {dispersion!r}")
    mu = sp.csr_matrix(expected, dtype=float)
    n, m = mu.shape
    pools = np.asarray(pools, dtype=float)
    caps = np.asarray(capacities, dtype=float)
    obs = np.asarray(observed, dtype=float)
    for name, arr, size in (("pools", pools, n), ("capacities", caps, m), ("observed", obs, m)):
        if arr.shape != (size,):
            raise ValueError(f"{name}: expected {size} values, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)) or (arr < 0).any():
            raise ValueError(f"{name}: must be finite and non-negative (learners)")
    below = np.zeros(m, bool) if below_capacity is None else np.asarray(below_capacity, dtype=bool)
    if below.shape != (m,):
        raise ValueError(f"below_capacity: expected {m} values, got shape {below.shape}")
    bound = (obs >= caps) & ~below
    target = np.minimum(obs, caps)
    first = allocator(mu, pools, caps)
    predicted = np.asarray(first.flows.sum(axis=0), dtype=float).ravel()
    # Balance T = a_i mu_ij c_j with column sums equal to the targets and row sums within
    # the pools (c_j = w_j b_j, the school's factor times the allocator's own capacity
    # factor); then split c into w (see the module text).
    a = np.ones(n)
    c = np.ones(m)
    converged, rounds, violation = False, 0, np.inf
    for rounds in range(1, min(max_iter, FURNESS_ROUNDS) + 1):
        c, a, ok, violation = _furness_round(mu, pools, target, a, max_factor)
        if violation <= tol:
            converged = True
            break
    if not converged:  # tight pools: Furness slows to a crawl, finish on the dual (L-BFGS)
        c, extra = _polish(mu, pools, target, c, ok, max_factor, tol, max_iter)
        rounds += extra
        a = _origin_factors(mu, pools, c)
        col = c * _column_pull(mu, a)
        violation = np.max((np.abs(col - target) / np.maximum(target, 1.0))[ok]) if ok.any() else 0.0
        converged = violation <= tol
    unreachable = ~ok & (target > 0)
    w = c.copy() if capacity_bound == "match" else np.maximum(1.0, c)
    if capacity_bound == "unconstrain":
        w = np.maximum(w, _censored_mean_factor(mu, a, target, dispersion))
    w = np.where(bound, w, c)
    alloc = allocator(mu @ sp.diags(w), pools, caps)
    placed = np.asarray(alloc.flows.sum(axis=0), dtype=float).ravel()
    gap = np.abs(placed - target)[~unreachable]
    return DestinationCalibration(
        factors=w, capacity_bound=bound, target=target, predicted=predicted, placed=placed,
        unreachable=unreachable, over_capacity=int((obs > caps).sum()), converged=converged,
        iterations=rounds, max_violation=float(gap.max()) if gap.size else 0.0,
        capacity_rule=capacity_bound, observed=obs, below_capacity=below if below_capacity is not None else None,
    )


def demand_law(demand, demand_sq, alpha: float):
    """A school's demand as the moment-matched NB2 sum: scipy's negative binomial ``(n, p)``
    with mean ``demand`` and variance ``demand + alpha demand_sq`` (learners, learners²),
    and where that extra variance is ~0, a Poisson flag (``n`` is then 1e12, unused)."""
    m = np.asarray(demand, float)
    extra = alpha * np.asarray(demand_sq, float)
    poisson = ~(extra > 1e-12 * m)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(poisson, 1e12, m * m / np.where(poisson, 1.0, extra))
        p = n / (n + m)
    return n, p, poisson


def _censored_mean_factor(mu: sp.csr_matrix, a: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    """``E[D_j | D_j >= t_j] / E[D_j]`` per destination (1 where the mean is 0).

    ``D_j`` is negative binomial with mean ``m_j = sum_i a_i mu_ij`` and variance
    ``m_j + alpha sum_i (a_i mu_ij)^2`` (moment-matched NB2 sum; Poisson when that sum is
    0). Uses ``k P(D = k) = m P(D' = k - 1)``, ``D'`` with one more "success" (NB) or
    the same (Poisson), so ``E[D | D >= t] = m P(D' >= t - 1) / P(D >= t)``; computed
    in logs, so a target far above the mean gives a factor near ``t / m``.
    """
    from scipy import stats

    scaled = sp.diags(a) @ mu
    mean = np.asarray(scaled.sum(axis=0), dtype=float).ravel()
    square = np.asarray(scaled.multiply(scaled).sum(axis=0), dtype=float).ravel()
    out = np.ones_like(mean)
    ok = (mean > 0) & (target > 0)
    if not ok.any():
        return out
    m, t = mean[ok], np.ceil(target[ok] - 1e-9)
    n, p, poisson = demand_law(m, square[ok], alpha)
    nb = ~poisson
    n, p = np.where(nb, n, 1.0), np.where(nb, p, 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_tail = np.where(nb, stats.nbinom.logsf(t - 1, n, p), stats.poisson.logsf(t - 1, m))
        log_shift = np.where(nb, stats.nbinom.logsf(t - 2, n + 1, p), stats.poisson.logsf(t - 2, m))
        ratio = np.exp(log_shift - log_tail)
    # E[D | D >= t] is at least t and at least the mean; where the tail underflows, t / m
    out[ok] = np.where(np.isfinite(ratio), np.maximum(ratio, t / m), t / m)
    return np.maximum(out, 1.0)
