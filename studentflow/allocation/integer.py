"""Dependent rounding of allocated flows to whole learners (numpy/scipy only).

:func:`round_flows` turns a fractional allocation ``T`` (learners) into an integer
matrix ``Y`` on the same support such that, for every draw,

* row sums ``<= floor(E_i)`` and column sums ``<= floor(K_j)``, and
* ``E[Y_ij] = T_ij`` up to ``2**-24`` learners per pair (the fractional parts are
  handled in fixed point with 32 bits, truncated downwards; pairs in the *core* below
  are rounded on their top 24 bits; both are far below the allocator's tolerance).

Assumption.  Pools and capacities are whole learners.  For non-integer ones the limits
are ``floor(E_i)`` and ``floor(K_j)``; flows whose row (column) sum exceeds that limit
are first scaled down proportionally to it, and the expectation then equals those
scaled flows.  With integer limits and feasible ``T`` (the allocator's output, up to
its tolerance) the scaling is a no-op up to rounding error.

Algorithm and proof
-------------------
Write ``T = I + X`` with ``I = floor(T)`` and ``X`` in ``[0, 1)``, quantised to
``w = floor(X 2^32)``.  For a vertex ``v`` (row or column) let ``c_v`` be its limit
minus the integer parts already placed, and ``W_v = sum w``; feasibility of ``T``
gives ``W_v <= c_v 2^32``.  Only ``Z`` in ``{0,1}`` with ``E[Z_e] = w_e 2^-32`` is
left to draw, with ``sum_{e at v} Z_e <= c_v``.

1. *Freeing.*  At vertex ``v``, ``k`` edges may be taken out of the vertex's group
   ("freed") as long as ``k + ceil(W_rest / 2^32) <= c_v``: a freed edge adds at most
   one learner and the group (below) at most ``ceil(W_rest / 2^32)``, so the limit
   holds whatever the freed edges do.  Edges are freed greedily (largest first,
   rows then columns, preferring edges still grouped at the other end).
2. *Classes.*  An edge freed at both ends is an independent Bernoulli.  An edge grouped
   at exactly one end is a *star* edge of that vertex's group.  An edge grouped at both
   ends is a *core* edge.
3. *Systematic sampling* (Madow 1949) rounds each group's star edges: with one uniform
   offset ``U`` per group, edge ``e`` gets ``floor((S_e + U)/2^32) -
   floor((S_e - w_e + U)/2^32)`` for the within-group cumulative sum ``S``; each edge
   is 1 with probability ``w_e 2^-32`` and the group's count is ``floor`` or ``ceil``
   of its total ``P / 2^32`` (it is ``ceil`` exactly when ``U >= 2^32 - P mod 2^32``).
4. *Core* (vertices with core edges).  Each such vertex's star group is represented by
   one *pendant* edge of weight ``P mod 2^32`` (to a super node on the other side), and
   a *dummy* edge to the same super node tops its total up to a multiple of ``2^32``;
   one edge joins the two super nodes (both then have totals that are multiples of
   ``2^32`` because every real vertex has).  Bipartite dependent rounding (Gandhi,
   Khuller, Parthasarathy & Srinivasan 2006, J. ACM 53(3)) is done bit by bit, from
   the lowest bit up (Doerr's dyadic variant): at bit ``b`` every vertex has an even
   number of edges with that bit set (its total is a multiple of ``2^(b+1)`` once
   lower bits are clear); pairing them consecutively at every vertex splits them into
   closed alternating trails (an Euler partition); within each trail edges alternate
   sign, a fair coin per trail decides the direction, and each edge gains or loses
   ``2^b``.  Every vertex total is preserved exactly and each edge's expectation is
   unchanged; after the top bit all weights are ``0`` or ``2^32``.  Colouring: with
   ``l(e)`` and ``r(e)`` the partners of ``e`` at its left and right ends, the
   permutation ``sigma = r o l`` maps each edge to the next-but-one edge of its trail,
   so its cycles are exactly the two colour classes of each trail (``e`` and
   ``l(e)`` lie in different ones); they are found at C speed as the weakly
   connected components of the graph ``e -> sigma(e)``
   (``scipy.sparse.csgraph.connected_components``; for a permutation they are its
   cycles, and the weak labelling is much faster than the strong one on long
   cycles).  Core weights are truncated to multiples of ``2^8`` first, so only bits
   8..31 need a pass (the
   pendant keeps its exact ``f`` for the conditioning below, so constraints are
   unaffected and the marginal error stays below ``2^-24``).
   The pendant's outcome ``z`` then conditions the group's offset (``U`` uniform on
   ``[2^32 - f, 2^32)`` if ``z = 1``, on ``[0, 2^32 - f)`` otherwise), so the group's
   count is ``floor(P/2^32) + z`` and its edges keep their marginals (``U`` is still
   uniform overall because ``P(z = 1) = f 2^-32``, up to the truncation above).
   Hence a core vertex's grouped edges (core and star) add
   ``floor(P/2^32) + (core ups) + z = (its rounded-graph total, preserved exactly)
   - (dummy) + floor(P/2^32) <= ceil(W_group / 2^32)`` learners, and with step 1 the
   vertex's limit holds on every draw.

Everything that does not depend on the seed (classes, groups, the core graph) is
computed once per allocation (:mod:`studentflow.allocation.plan`) and cached; each draw
costs a few vectorised passes over the pairs plus 24 bit levels on the core.  Why not
plain GKPS: its cycle/path cancelling is sequential (one edge settled per step); here
each bit level settles every edge at once.  Cost depends on the core's size: at the
study's size (325,000 pairs, half the schools full) the core is ~9,000 pairs and a draw
takes ~10 ms of CPU; when origins have many more candidate pairs than spare learners
freeing cannot empty the core: in the national sweep (1.5 million pairs, a new plan
every draw because the coefficients change) the core is ~400,000 pairs.  There the
numpy code spends ~0.25 s on the plan and ~0.3 s on the bit levels per draw; with numba
installed, :mod:`studentflow.allocation.kernels` runs the bit levels (~0.08 s), the
freeing pass and the split into integer and fractional parts compiled, with identical
draws (``scripts/bench_allocation.py``, (e) and (f)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from studentflow.allocation.plan import (  # noqa: F401 - re-exported for callers and tests
    BITS, CORE_LOW, ONE, _Plan, _fix_excess, _free_prefix, _group_sum, _indptr, _lexsort3, _plan,
    _stable_argsort, kernels,
)

__all__ = ["round_flows", "round_data", "structure_positions", "BITS"]


def _dyadic(plan: _Plan, rng: np.random.Generator) -> np.ndarray:
    """Bit-by-bit dependent rounding of the core graph; returns 0/1 per core edge."""
    kern = kernels(plan.w.size)
    if kern is not None:
        return _dyadic_compiled(plan, rng, kern)
    wd = plan.c_w0.copy()
    ordR = plan.c_ordR
    pos = np.empty(wd.size, np.int64)
    ones = np.ones(wd.size)
    arange32 = np.arange(wd.size + 1, dtype=np.int32)
    arange64 = np.arange(wd.size, dtype=np.int64)
    for b in range(CORE_LOW, BITS):
        bit = ((wd >> b) & 1).astype(bool)
        idx = np.flatnonzero(bit)
        k = idx.size
        if k == 0:
            continue
        pos[idx] = arange64[:k]
        nbl = arange64[:k] ^ 1  # partner at the left end (edges sorted by left vertex)
        pr = pos[ordR[bit[ordR]]]
        nbr = np.empty(k, np.int64)  # partner at the right end
        nbr[pr[0::2]] = pr[1::2]
        nbr[pr[1::2]] = pr[0::2]
        # sigma = right partner of the left partner: its cycles are the two colour
        # classes of each alternating trail (every other edge of the trail)
        sigma = nbr[nbl].astype(np.int32)
        g = sp.csr_array((ones[:k], sigma, arange32[: k + 1]), shape=(k, k))
        ncomp, lab = connected_components(g, directed=True, connection="weak")
        other = lab[nbl]  # the trail's other colour class
        coins = rng.integers(0, 2, ncomp).astype(bool)
        up = (lab < other) ^ coins[np.minimum(lab, other)]
        step = np.int64(1) << b
        wd[idx] += np.where(up, step, -step)
    return wd >> BITS  # 0 or 1


def _dyadic_compiled(plan: _Plan, rng: np.random.Generator, kern) -> np.ndarray:
    """:func:`_dyadic` with compiled passes (the same coins, the same result)."""
    wd = plan.c_w0.copy()
    n = wd.size
    ord_r = plan.c_ordR.astype(np.int32)
    pos, sel, pr = (np.empty(n, np.int32) for _ in range(3))
    ln = np.empty((n + 1, 2), np.int32)  # cycle label and right partner per selected edge
    for b in range(CORE_LOW, BITS):
        k, ncomp = kern.level_cycles(wd, ord_r, b, pos, sel, pr, ln)
        if k == 0:
            continue
        coins = rng.integers(0, 2, ncomp).astype(bool)
        kern.level_apply(wd, sel, ln, coins, k, b)
    return wd >> BITS


def _draw(plan: _Plan, rng: np.random.Generator) -> np.ndarray:
    # core
    zc = _dyadic(plan, rng) if plan.c_w0.size else np.zeros(0, np.int64)
    # star groups: offsets, conditioned on the pendant where the vertex is in the core
    u = rng.random(plan.n_groups)
    f = plan.g_f
    span = np.full(plan.n_groups, ONE, np.int64)
    lo = np.zeros(plan.n_groups, np.int64)
    has = plan.g_pend >= 0
    zp = np.zeros(plan.n_groups, np.int64)
    zp[has] = zc[plan.g_pend[has]]
    one = has & (zp == 1)
    zero = has & (zp == 0)
    lo[one] = ONE - f[one]
    span[one] = f[one]
    span[zero] = ONE - f[zero]
    U = lo + np.minimum((u * span).astype(np.int64), span - 1)
    kern = kernels(plan.w.size)
    if kern is not None:  # the same sums in one compiled pass (same uniforms, same order)
        r = rng.random(plan.indep.size) if plan.indep.size else np.zeros(0)
        c_real = plan.c_real if plan.c_w0.size else np.zeros(0, np.int64)
        return kern.draw_parts(plan.ip, plan.w, c_real, zc, plan.g_edges, plan.g_of_edge, plan.g_S,
                               plan.g_w, U, plan.indep, r).view(np.int64)
    Z = np.zeros(plan.w.size, np.int64)
    if plan.c_w0.size:
        real = plan.c_real >= 0
        Z[plan.c_real[real]] = zc[real]
    if plan.g_edges.size:
        Ue = U[plan.g_of_edge]
        we = plan.g_w
        Z[plan.g_edges] = ((plan.g_S + Ue) >> BITS) - ((plan.g_S - we + Ue) >> BITS)
    # independent edges
    if plan.indep.size:
        # w / 2^32 is exact in binary floating point and random() is a multiple of
        # 2^-53, so P(random() < w 2^-32) = w 2^-32 exactly
        Z[plan.indep] = rng.random(plan.indep.size) < plan.w[plan.indep] / float(ONE)
    return plan.ip + Z


def structure_positions(indices, indptr, shape):
    """(row, column) of each data position of a CSR structure, as the rounding plan reads
    them: int32 where the compiled kernels run (half the bytes), else int64."""
    n, m = shape
    ix = np.int32 if kernels(indices.size) is not None and max(n, m) < 2**31 else np.int64
    return np.repeat(np.arange(n, dtype=ix), np.diff(indptr)), indices.astype(ix, copy=False)


def round_data(data, rows, cols, shape, pools, capacities, seed) -> np.ndarray:
    """Whole learners (int64) per data position of a CSR structure: what
    :func:`round_flows` gives on ``csr_array((data, indices, indptr))`` with the same
    seed, without building the matrices (``rows, cols`` from
    :func:`structure_positions`, computed once per structure)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    limE = np.floor(np.asarray(pools, dtype=float))
    limK = np.floor(np.asarray(capacities, dtype=float))
    return _draw(_plan(rows, cols, np.asarray(data, float), limE, limK, *shape), rng)


def round_flows(flows: Any, pools: Any, capacities: Any, seed=None, *, cache: dict | None = None):
    """Round fractional flows to whole learners by dependent rounding.

    Parameters
    ----------
    flows : numpy.ndarray or scipy.sparse matrix/array, shape (n_origins, n_destinations)
        Feasible fractional flows (learners), e.g. ``Allocation.flows``.
    pools, capacities : array_like
        Origin pools and destination capacities (learners); the limits are their floors.
    seed : int, numpy.random.Generator or None
        Randomness; the same seed gives the same matrix.
    cache : dict, optional
        Where the seed-independent plan is kept between calls.

    Returns
    -------
    numpy.ndarray (int64) or scipy.sparse CSR (int64)
        Integer flows on the support of ``flows`` (CSR with the same pattern when
        ``flows`` is sparse) with row sums ``<= floor(pools)`` and column sums
        ``<= floor(capacities)`` on every draw and ``E[result] = flows`` (up to
        ``2**-24`` learners per pair).  See the module docstring for the proof.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    limE = np.floor(np.asarray(pools, dtype=float))
    limK = np.floor(np.asarray(capacities, dtype=float))
    plan = cache.get("plan") if cache is not None else None
    if sp.issparse(flows):
        csr = flows.tocsr() if flows.format != "csr" else flows
        n, m = csr.shape
        if plan is None:
            rows, cols = structure_positions(csr.indices, csr.indptr, (n, m))
            plan = _plan(rows, cols, np.asarray(csr.data, float), limE, limK, n, m)
        data = _draw(plan, rng)
        out = sp.csr_array((data, csr.indices.copy(), csr.indptr.copy()), shape=(n, m))
        out = out if isinstance(flows, sp.sparray) else sp.csr_matrix(out)
    else:
        arr = np.asarray(flows, dtype=float)
        n, m = arr.shape
        if plan is None:
            rows, cols = (v.astype(np.int64) for v in np.nonzero(arr > 0))
            plan = _plan(rows, cols, arr[rows, cols], limE, limK, n, m)
            if cache is not None:
                cache["support"] = (rows, cols)
        else:
            rows, cols = cache["support"]
        out = np.zeros((n, m), np.int64)
        out[rows, cols] = _draw(plan, rng)
    if cache is not None:
        cache["plan"] = plan
    return out
