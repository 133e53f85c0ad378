"""One scenario's Monte Carlo draws as plain work units (numpy/scipy only).

:func:`studentflow.scenarios.run.run_scenarios` prepares one :class:`DrawWork` per scenario
(the design matrix and the sparse origin × ESC-school structure, built once) and runs
:func:`simulate_draws` on it, either here in a loop or on Dask workers
(:mod:`studentflow.scenarios.sweep_dask`), which receive each ``DrawWork`` once and then only
coefficient vectors and seeds. A draw depends only on its coefficient vector and its
seed, never on where or in which order it runs, so both paths give identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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
    keep_pairs : bool
        Also return each draw's whole placements per pair (``DrawOutcome.pair_placed``),
        for the per-school drill-down (:mod:`studentflow.scenarios.drill`).
    pool_draws : numpy.ndarray or None
        Origin pools per draw number × local origin, learners (forecast pools with their
        uncertainty); None: ``pools`` in every draw.
    in_order : bool
        The design's rows are in data order (row ``k`` is data position ``k``, as
        :func:`studentflow.scenarios.work._prepare` builds it: no gather per draw);
        False: in pair-row order.
    demand_draws : numpy.ndarray or None
        Multiplier of each school's expected demand per draw number × local school
        (latent demand of full schools); None: 1.
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
    keep_pairs: bool = False
    pool_draws: np.ndarray | None = None
    in_order: bool = False
    demand_draws: np.ndarray | None = None

    @cached_property
    def structure(self):
        """``(rows, cols, new)`` of the canonical CSR structure (the rounding plan's row and
        column per data position, new-pair positions as a boolean mask), or None when the
        structure is not canonical (duplicate pairs): the general path then. Computed once
        per work unit, on first use."""
        from studentflow.allocation.integer import structure_positions
        from studentflow.allocation.structured import is_canonical

        if not is_canonical(self.indices, self.indptr, self.shape):
            return None
        same = (np.array_equal(self.new_mask.indptr, self.indptr)
                and np.array_equal(self.new_mask.indices, self.indices))
        if not same:
            return None
        rows, cols = structure_positions(self.indices, self.indptr, self.shape)
        return rows, cols, self.new_mask.data != 0

    def expected_data(self, beta: np.ndarray, d: int | None = None) -> np.ndarray:
        """Expected flows μ per data position of the CSR structure (learners); with a draw
        number ``d`` and ``demand_draws``, each school's demand times its draw's multiplier."""
        mu = self.expected(beta)
        mu = mu if self.in_order and self.design is not None else mu[self.order]
        if d is not None and self.demand_draws is not None:
            mu = mu * self.demand_draws[d % len(self.demand_draws)][self.indices]
        return mu

    def expected(self, beta: np.ndarray) -> np.ndarray:
        """Expected flows μ per design row (learners) for the coefficient vector ``beta``:
        per pair row, or per data position when ``in_order``."""
        if self.design is not None:
            X, off = self.design
            eta = linear_predictor(X, off, beta)
            return np.exp(eta, out=eta)
        model, pairs, names = self.predict
        return np.asarray(model.predict(pairs, params=pd.Series(beta, index=names)), dtype=float)


@dataclass(frozen=True)
class CompactDesign:
    """A design matrix with its 0/1 columns (intercept, dummies) stored as uint8.

    ``floats`` (float columns x pairs, float64) and ``binary`` (0/1 columns x pairs,
    uint8), one contiguous row per column; term ``k`` of the model is row ``pos[k]`` of
    ``binary`` where ``is_binary[k]``, else of ``floats``. At national size (22 terms, 18
    of them 0/1, 345,000 pairs) 17 MB instead of 61 MB.
    """

    floats: np.ndarray
    binary: np.ndarray
    is_binary: np.ndarray
    pos: np.ndarray

    @classmethod
    def from_columns(cls, cols) -> "CompactDesign":
        """From a tuple of columns as :func:`compact_columns` gives them."""
        n = len(cols[0]) if cols else 0
        is_bin = np.array([c.dtype == np.uint8 for c in cols], dtype=bool)
        pos = np.zeros(len(cols), np.int64)
        pos[is_bin] = np.arange(is_bin.sum())
        pos[~is_bin] = np.arange((~is_bin).sum())

        def stack(sel, dtype):
            return np.stack(sel).astype(dtype, copy=False) if sel else np.zeros((0, n), dtype)

        return cls(stack([c for c in cols if c.dtype != np.uint8], float),
                   stack([c for c in cols if c.dtype == np.uint8], np.uint8), is_bin, pos)

    def take(self, rows: np.ndarray) -> "CompactDesign":
        """The design with its rows (pairs) in the order ``rows``."""
        return CompactDesign(np.ascontiguousarray(self.floats[:, rows]), np.ascontiguousarray(self.binary[:, rows]),
                             self.is_binary, self.pos)

    def columns(self) -> tuple:
        """The design's columns in term order (contiguous views)."""
        return tuple(self.binary[p] if b else self.floats[p] for b, p in zip(self.is_binary, self.pos))

    def __len__(self) -> int:
        return self.floats.shape[1]


def linear_predictor(X, off, beta) -> np.ndarray:
    """``off + X @ beta`` column by column, in column order (float64).

    ``X`` is a 2-D array, a tuple of its columns or a :class:`CompactDesign`; each
    column float64 or, for a 0/1 column, uint8: a uint8 column is cast to float64
    before the product, so the products and sums are those of the float64 matrix, bit
    for bit.  Not ``X @ beta``: BLAS may round differently with the array's memory
    alignment (which changes when the work unit is shipped to a worker); elementwise
    operations never do, so every process computes the same bits.  A
    :class:`CompactDesign` of at least ``allocation.plan.MIN_PAIRS`` rows goes through
    the compiled kernel where numba is installed (the same additions in the same
    order, row by row in one pass)."""
    beta = np.asarray(beta, dtype=float)
    if isinstance(X, CompactDesign):
        from studentflow.allocation.plan import kernels

        kern = kernels(len(X))
        if kern is not None:
            return kern.linear_predictor(X.floats, X.binary, X.is_binary, X.pos, beta,
                                         np.ascontiguousarray(off, dtype=float))
        X = X.columns()
    eta = np.array(off, dtype=float, copy=True)
    tmp = np.empty_like(eta)
    cols = X if isinstance(X, tuple) else X.T
    for col, b in zip(cols, beta):
        np.multiply(col, b, out=tmp, dtype=float)
        eta += tmp
    return eta


def compact_columns(X, names) -> tuple:
    """Columns ``names`` of the design ``X`` (a DataFrame, or a 2-D array and column
    positions) as a tuple for :func:`linear_predictor`: uint8 where a column holds only
    0 and 1, else float64 (each a contiguous copy)."""
    out = []
    for name in names:
        col = X[name].to_numpy(dtype=float) if hasattr(X, "columns") else np.asarray(X[:, name], dtype=float)
        binary = bool(np.all((col == 0.0) | (col == 1.0)))
        out.append(col.astype(np.uint8) if binary else np.array(col, dtype=float, order="C", copy=True))
    return tuple(out)


@dataclass(frozen=True)
class DrawOutcome:
    """One draw of one scenario: whole and expected placements, learners.

    ``origin_placed`` / ``origin_expected`` are per local origin row, ``school_placed``
    per local school column (whole learners as int32, as the sweep keeps them); ``expected`` is the total before rounding and
    ``new_placed`` the whole learners placed on new pairs.
    """

    origin_placed: np.ndarray
    origin_expected: np.ndarray
    school_placed: np.ndarray
    expected: float
    new_placed: float
    pair_placed: np.ndarray | None = None  # int32 per data position, when work.keep_pairs


def _check_whole(name, d, rows, cols, data, pools, caps) -> None:
    """Whole-learner placements (row sums ``rows``, column sums ``cols``) within every
    origin pool and school capacity, else RuntimeError."""
    over_pool = np.flatnonzero(rows > np.floor(pools + 1e-9))
    over_cap = np.flatnonzero(cols > np.floor(caps + 1e-9))
    if over_pool.size or over_cap.size or (data.size and data.min() < 0):
        raise RuntimeError(
            f"scenario {name!r}, draw {d}: rounded placements break a constraint "
            f"({over_pool.size} origin(s) over pool, {over_cap.size} school(s) over capacity)")


def _whole_sums(whole: sp.csr_matrix):
    """Row and column sums of an int64 CSR matrix (learners), exact, without the
    sparse products ``whole.sum(axis=...)`` makes."""
    n, m = whole.shape
    rows = np.zeros(n, np.int64)
    nz = np.diff(whole.indptr) > 0
    if whole.nnz:
        rows[nz] = np.add.reduceat(whole.data, whole.indptr[:-1][nz])
    cols = np.bincount(whole.indices, weights=whole.data, minlength=m)
    return rows, cols.round().astype(np.int64)  # float sums of integers below 2^53: exact


def _new_placed(whole: sp.csr_matrix, new_mask: sp.csr_matrix) -> float:
    """Whole learners on new pairs; the mask's data directly when both share one structure."""
    if (whole.indptr.shape == new_mask.indptr.shape
            and whole.indices.shape == new_mask.indices.shape
            and np.array_equal(whole.indptr, new_mask.indptr)
            and np.array_equal(whole.indices, new_mask.indices)):
        return float(whole.data[new_mask.data != 0].sum())  # mask data is 0 / 1
    return float(whole.multiply(new_mask).sum())


def _on_structure(whole, work):
    from studentflow.scenarios.drill import on_structure

    return on_structure(whole, work.indptr, work.indices, work.shape)


def _structured_draw(work: DrawWork, structure, beta, d, seed) -> DrawOutcome:
    """One draw of the default allocator on the work unit's canonical structure: the
    outcome of the general path, bit for bit, without building, copying and checking
    the sparse matrices around allocation and rounding (``allocation.structured``)."""
    from studentflow.allocation.integer import round_data
    from studentflow.allocation.plan import kernels
    from studentflow.allocation.structured import allocate_structured

    rows, cols, new = structure
    pools = work.pools if work.pool_draws is None else work.pool_draws[d % len(work.pool_draws)]
    alloc = allocate_structured(work.expected_data(beta, d), work.indices, work.indptr, work.shape,
                                pools, work.caps)
    flows = alloc.flows.data
    whole = round_data(flows, rows, cols, work.shape, alloc.pools, alloc.capacities, seed)
    n, m = work.shape
    nz = np.flatnonzero(np.diff(work.indptr))
    kern = kernels(whole.size)
    if kern is not None:  # exact integer sums, as _whole_sums and _new_placed give them
        placed_o, placed_s, on_new = (np.asarray(a) for a in kern.whole_sums(whole, rows, cols, new, n, m))
        placed_o, placed_s = placed_o.view(np.int64), placed_s.view(np.int64)
    else:
        placed_o = np.zeros(n, np.int64)
        if whole.size:
            placed_o[nz] = np.add.reduceat(whole, work.indptr[nz])
        placed_s = np.bincount(cols, weights=whole, minlength=m).round().astype(np.int64)
        on_new = whole[new].sum()
    _check_whole(work.name, d, placed_o, placed_s, whole, pools, work.caps)
    expected_o = np.zeros(n)  # as scipy's CSR sum(axis=1): reduceat over the non-empty rows
    if flows.size:
        expected_o[nz] = np.add.reduceat(flows, work.indptr[nz])
    return DrawOutcome(
        origin_placed=placed_o.astype(np.int32), origin_expected=expected_o,
        school_placed=placed_s.astype(np.int32),
        expected=float(np.sum(flows)) if flows.size else 0.0,
        new_placed=float(on_new),
        pair_placed=whole.astype(np.int32) if work.keep_pairs else None,
    )


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
        Default :func:`studentflow.allocation.solve.allocate`.

    Returns
    -------
    list of DrawOutcome
        In the order of ``draws``.
    """
    from studentflow.allocation.solve import allocate as _allocate

    if allocator is None:
        allocator = _allocate
    betas = np.atleast_2d(np.asarray(betas, dtype=float))
    fast = work.structure if allocator is _allocate and work.method == "balance" else None
    out = []
    for beta, d, seed in zip(betas, draws, seeds):
        if fast is not None:
            out.append(_structured_draw(work, fast, beta, d, seed))
            continue
        mu = work.expected_data(beta, d)
        mat = sp.csr_matrix((mu, work.indices, work.indptr), shape=work.shape)
        pools = work.pools if work.pool_draws is None else work.pool_draws[d % len(work.pool_draws)]
        alloc = allocator(mat, pools, work.caps, method=work.method, seed=seed)
        del mu, mat  # two arrays of pairs fewer held while rounding (per draw thread)
        whole = sp.csr_matrix(alloc.to_integer(seed))
        if whole.data.dtype.kind != "i":  # another allocator's result: check, then cast
            if whole.nnz and not np.array_equal(whole.data, np.round(whole.data)):
                raise RuntimeError(
                    f"scenario {work.name!r}: to_integer returned fractional learners")
            whole = whole.astype(np.int64)
        elif whole.data.dtype != np.int64:
            whole = whole.astype(np.int64)
        placed_o, placed_s = _whole_sums(whole)
        _check_whole(work.name, d, placed_o, placed_s, whole.data, pools, work.caps)
        out.append(DrawOutcome(
            origin_placed=placed_o.astype(np.int32),  # as the sweep keeps them: half the bytes
            origin_expected=np.asarray(alloc.flows.sum(axis=1)).ravel(),
            school_placed=placed_s.astype(np.int32),
            expected=float(np.asarray(alloc.flows.sum())),
            new_placed=_new_placed(whole, work.new_mask),
            pair_placed=_on_structure(whole, work) if work.keep_pairs else None,
        ))
        del alloc, whole  # and the cached rounding plan, before the next draw's arrays
    return out
