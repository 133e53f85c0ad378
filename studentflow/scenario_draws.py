"""One scenario's Monte Carlo draws as plain work units (numpy/scipy only).

:func:`studentflow.scenarios.run_scenarios` prepares one :class:`DrawWork` per scenario
(the design matrix and the sparse origin × ESC-school structure, built once) and runs
:func:`simulate_draws` on it, either here in a loop or on Dask workers
(:mod:`studentflow.distributed`), which receive each ``DrawWork`` once and then only
coefficient vectors and seeds. A draw depends only on its coefficient vector and its
seed, never on where or in which order it runs, so both paths give identical results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["DrawWork", "DrawOutcome", "simulate_draws", "draw_seed"]


def draw_seed(seed: int, d: int) -> int:
    """Seed of draw ``d`` of a run with ``seed`` (allocation and rounding), independent of the scheduler."""
    return int(np.random.SeedSequence([seed, d]).generate_state(1)[0])


@dataclass(frozen=True)
class DrawWork:
    """Everything one scenario's draws need.

    Attributes
    ----------
    name, method : str
        Scenario name (for errors) and allocation method.
    design : tuple or None
        ``(X, offset)`` with μ = exp(X β + offset), learners (X column-major); None →
        ``predict``.
    predict : tuple or None
        ``(model, pairs, names)``: μ = ``model.predict(pairs, params=Series(β, names))``,
        used only when the design matrix could not be recovered.
    order, indices, indptr : numpy.ndarray
        CSR structure of the origin × school matrix: pair row ``order[k]`` is data
        position ``k``.
    shape : tuple of int
        (origins, schools) of this scenario.
    pools, caps : numpy.ndarray
        Origin pools and school capacities, learners (local order).
    new_mask : scipy.sparse.csr_matrix
        1 on pairs not observed today, same structure.
    """

    name: str
    method: str
    design: tuple | None
    predict: tuple | None
    order: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple
    pools: np.ndarray
    caps: np.ndarray
    new_mask: sp.csr_matrix

    def expected(self, beta: np.ndarray) -> np.ndarray:
        """Expected flows μ per pair row (learners) for the coefficient vector ``beta``."""
        if self.design is not None:
            X, off = self.design
            # column by column, not X @ beta: BLAS may round differently with the array's
            # memory alignment (which changes when the work unit is shipped to a worker),
            # elementwise ufuncs never do, so every process computes the same bits
            eta = np.array(off, dtype=float, copy=True)
            for k, b in enumerate(np.asarray(beta, dtype=float)):
                eta += X[:, k] * b
            return np.exp(eta)
        model, pairs, names = self.predict
        return np.asarray(model.predict(pairs, params=pd.Series(beta, index=names)), dtype=float)


@dataclass(frozen=True)
class DrawOutcome:
    """One draw of one scenario: whole and expected placements, learners.

    ``origin_placed`` / ``origin_expected`` are per local origin row, ``school_placed``
    per local school column; ``expected`` is the total before rounding and
    ``new_placed`` the whole learners placed on new pairs.
    """

    origin_placed: np.ndarray
    origin_expected: np.ndarray
    school_placed: np.ndarray
    expected: float
    new_placed: float


def _check_whole(name, d, whole, pools, caps) -> None:
    """Whole-learner placements within every origin pool and school capacity, else RuntimeError."""
    rows = np.asarray(whole.sum(axis=1)).ravel()
    cols = np.asarray(whole.sum(axis=0)).ravel()
    over_pool = np.flatnonzero(rows > np.floor(pools + 1e-9))
    over_cap = np.flatnonzero(cols > np.floor(caps + 1e-9))
    if over_pool.size or over_cap.size or (whole.nnz and whole.data.min() < 0):
        raise RuntimeError(
            f"scenario {name!r}, draw {d}: rounded placements break a constraint "
            f"({over_pool.size} origin(s) over pool, {over_cap.size} school(s) over capacity)")


def simulate_draws(work: DrawWork, betas: np.ndarray, draws, seeds, allocator=None) -> list[DrawOutcome]:
    """Allocate and round the draws ``draws`` of one scenario.

    Parameters
    ----------
    work : DrawWork
    betas : numpy.ndarray
        One coefficient vector per draw (rows), in the model's parameter order.
    draws : sequence of int
        Draw numbers (for error messages).
    seeds : sequence of int
        Allocation/rounding seed of each draw (:func:`draw_seed`).
    allocator : callable, optional
        Default :func:`studentflow.allocation.allocate`.

    Returns
    -------
    list of DrawOutcome
        In the order of ``draws``.
    """
    if allocator is None:
        from studentflow.allocation import allocate as allocator
    betas = np.atleast_2d(np.asarray(betas, dtype=float))
    out = []
    for beta, d, seed in zip(betas, draws, seeds):
        mu = work.expected(beta)
        mat = sp.csr_matrix((mu[work.order], work.indices, work.indptr), shape=work.shape)
        alloc = allocator(mat, work.pools, work.caps, method=work.method, seed=seed)
        whole = sp.csr_matrix(alloc.to_integer(seed))
        if whole.nnz and not np.array_equal(whole.data, np.round(whole.data)):
            raise RuntimeError(f"scenario {work.name!r}: to_integer returned fractional learners")
        whole = whole.astype(np.int64)
        _check_whole(work.name, d, whole, work.pools, work.caps)
        out.append(DrawOutcome(
            origin_placed=np.asarray(whole.sum(axis=1)).ravel(),
            origin_expected=np.asarray(alloc.flows.sum(axis=1)).ravel(),
            school_placed=np.asarray(whole.sum(axis=0)).ravel(),
            expected=float(np.asarray(alloc.flows.sum())),
            new_placed=float(whole.multiply(work.new_mask).sum()),
        ))
    return out
