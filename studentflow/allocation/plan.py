"""The seed-independent part of dependent rounding (numpy; numba optional).

:func:`_plan` splits the flows into integer and fractional parts, classifies the
fractional parts into independent, star (systematic sampling) and core (bit-level
dependent rounding) edges, and builds the core graph;
:mod:`studentflow.allocation.integer` has the algorithm, the proof and the per-draw
part.  In numpy the sorts are the costly part: the (vertex, key, -weight) orders are
single argsorts of packed int64 keys (:func:`_lexsort3`), identical to ``np.lexsort``
and about 5x faster.  Where numba is installed (:func:`kernels`), the split and the
freeing pass run compiled (:mod:`studentflow.allocation.kernels`: per-vertex sorts of a
few edges instead of global argsorts) and give the same plan, field for field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BITS", "ONE", "CORE_LOW", "kernels"]

#: use the compiled kernels when numba is installed (False: the numpy code everywhere;
#: the draws are identical either way)
COMPILED = True
#: below this many pairs the numpy code runs (importing numba and loading the compiled
#: kernels costs ~0.5 s per process, more than they save on a few small problems; the
#: sample's sweep, 7 scenarios x 100 draws of 22,000 pairs, takes 2.7 s of CPU with
#: them and 4.6 s without)
MIN_PAIRS = 10_000
_KERNELS: list = []


def kernels(size: int | None = None):
    """:mod:`studentflow.allocation.kernels`, or None when numba is not installed,
    :data:`COMPILED` is False or ``size`` (pairs) is below :data:`MIN_PAIRS` (numba is
    imported on first use, not at import)."""
    if not COMPILED or (size is not None and size < MIN_PAIRS):
        return None
    if not _KERNELS:
        try:
            from studentflow.allocation import kernels as allocation_kernels
        except ImportError:  # numba missing: the numpy code gives the same draws
            allocation_kernels = None
        _KERNELS.append(allocation_kernels)
    return _KERNELS[0]


BITS = 32
ONE = np.int64(1) << BITS
#: the core graph is rounded on bits CORE_LOW..31 (its weights are truncated to
#: multiples of 2^CORE_LOW, i.e. 2^-24 learners): 25 % fewer levels
CORE_LOW = 8


def _group_sum(vals: np.ndarray, starts: np.ndarray, n_groups: int) -> np.ndarray:
    """Sums of consecutive segments ``starts[g]:starts[g+1]`` (int64, empty -> 0)."""
    out = np.zeros(n_groups, dtype=np.int64)
    lens = np.diff(starts)
    ne = lens > 0
    if vals.size and ne.any():
        out[ne] = np.add.reduceat(vals, starts[:-1][ne])
    return out


def _indptr(keys_sorted: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(keys_sorted, minlength=n))]).astype(
        np.int64
    )


def _stable_argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for non-negative integer keys; keys below
    2^16 are sorted as uint16, for which numpy's stable sort is a radix sort."""
    if keys.size and keys.min() >= 0 and keys.max() < 1 << 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def _lexsort3(w, mid, n_mid, major):
    """``np.lexsort((-w, mid, major))`` (the same order, ties by index) for ``w`` in
    ``[0, 2^32)``, ``mid`` in ``[0, n_mid)`` and non-negative integer ``major``.

    The three keys are packed into one int64 when they fit in 63 bits and sorted with
    numpy's default (SIMD) argsort; if the packed keys are all distinct that order is
    the only one, else a stable argsort breaks the ties by index.  About 5x faster than
    lexsort at national size (1.5 million pairs).
    """
    if w.size == 0:
        return np.zeros(0, np.int64)
    bm = int(max(n_mid - 1, 0)).bit_length()
    bM = int(major.max()).bit_length()
    if bM + bm + BITS > 63:  # pragma: no cover - beyond national size
        return np.lexsort((-w, mid, major))
    key = (major.astype(np.int64) << (BITS + bm)) | (mid.astype(np.int64) << BITS)
    key |= (ONE - 1) - w
    order = np.argsort(key)
    ks = key[order]
    if (ks[1:] == ks[:-1]).any():  # ties: keep lexsort's order (by index)
        order = np.argsort(key, kind="stable")
    return order


def _fix_excess(w, keys, n, cap):
    """Lower weights (largest first) wherever a vertex total exceeds ``cap * 2^32``.

    Only rounding error can cause this for feasible flows; the change is at most a few
    units of 2^-32 per vertex (or all of it where the limit is 0).
    """
    tot = np.zeros(n, np.int64)
    np.add.at(tot, keys, w)  # exact int64 totals; the sort below only if needed
    bad = np.flatnonzero(tot > cap * ONE)
    if bad.size == 0:
        return
    order = _stable_argsort(keys)
    starts = _indptr(keys[order], n)
    for v in bad:
        idx = order[starts[v]:starts[v + 1]]
        excess = int(tot[v]) - int(cap[v]) * int(ONE)
        for e in idx[np.argsort(-w[idx], kind="stable")]:
            take = min(int(w[e]), excess)
            w[e] -= take
            excess -= take
            if excess == 0:
                break


def _free_prefix(keys, order, w, W, cap, n):
    """Edges freed at their ``keys`` vertex, visiting edges in ``order``.

    Returns a boolean mask: the longest prefix per vertex (in ``order``) with
    ``t + ceil((W - cumw_t) / 2^32) <= cap``.
    """
    ws = w[order]
    lens = np.bincount(keys, minlength=n)  # edges per vertex, in vertex order
    starts = np.concatenate([[0], np.cumsum(lens)])
    cum0 = np.concatenate([[0], np.cumsum(ws)])
    # per-vertex quantities spread over its edges with repeat (cheaper than gathers):
    # inclusive within-group cumsum, 1-based rank t, rest = W - cumsum
    cw = cum0[1:] - np.repeat(cum0[starts[:-1]], lens)
    t = np.arange(1, ws.size + 1) - np.repeat(starts[:-1], lens)
    rest = np.repeat(W, lens) - cw
    ceil_rest = -((-rest) // ONE)
    ok = t + ceil_rest <= np.repeat(cap, lens)
    freed = np.zeros(w.size, dtype=bool)
    freed[order] = ok
    return freed


@dataclass(frozen=True)
class _Plan:
    n: int
    m: int
    ip: np.ndarray            # integer parts per stored pair
    w: np.ndarray             # fractional parts, units 2^-32
    indep: np.ndarray         # edges freed at both ends
    # star groups (row groups then column groups), edges in group order
    g_edges: np.ndarray
    g_of_edge: np.ndarray     # group of each entry of g_edges
    g_S: np.ndarray           # inclusive within-group cumsum
    g_w: np.ndarray           # weights of g_edges
    n_groups: int
    g_pend: np.ndarray        # index of the group's pendant edge in the core graph, or -1
    g_f: np.ndarray           # P mod 2^32 per group
    # core graph
    c_w0: np.ndarray          # initial weights of the core graph edges (sorted by left)
    c_right: np.ndarray       # right vertex of each core graph edge
    c_ordR: np.ndarray        # core graph edges sorted by right vertex
    c_real: np.ndarray        # pair index of core-graph edges that are real, else -1


def _split_parts(rows, cols, vals, limE, limK, n, m):
    """Flows scaled down to the integer limits (no-op for feasible flows with integer
    limits); integer parts, fractional parts in units of 2^-32 and the limits left."""
    R = np.bincount(rows, weights=vals, minlength=n)
    sr = np.where(R > limE, limE / np.where(R > 0, R, 1.0), 1.0)
    vals = vals * sr[rows]
    C = np.bincount(cols, weights=vals, minlength=m)
    sc = np.where(C > limK, limK / np.where(C > 0, C, 1.0), 1.0)
    vals = vals * sc[cols]
    ipf = np.floor(vals)
    ip = ipf.astype(np.int64)
    w = np.floor((vals - ipf) * float(ONE)).astype(np.int64)
    capR = limE.astype(np.int64) - np.bincount(rows, weights=ipf, minlength=n).round().astype(np.int64)
    capC = limK.astype(np.int64) - np.bincount(cols, weights=ipf, minlength=m).round().astype(np.int64)
    return ip, w, capR, capC


def _plan(rows, cols, vals, limE, limK, n, m) -> _Plan:
    kern = kernels(vals.size)
    if kern is not None and vals.size:  # fused, compiled: the same plan, field for field
        # numba's arrays carry their own int64 dtype instance, on which numpy's fast
        # np.add.at loop is not used (25x slower): view them with numpy's own dtype
        ip, w, capR, capC, WR, WC = (a.view(np.int64) for a in
                                     kern.split_parts(rows, cols, vals, limE, limK, n, m))
        _check_caps(capR, capC)
        if (WR > capR * ONE).any() or (WC > capC * ONE).any():  # rounding error only
            _fix_excess(w, rows, n, capR)
            _fix_excess(w, cols, m, capC)
            WR, WC = _totals(rows, w, n), _totals(cols, w, m)
        ok, *parts = kern.classify(rows, cols, w, capR, capC, WR, WC, n, m)
        if ok:
            indep, g_edges, g_of, g_S, g_w, uniq, P, core = (a.view(np.int64) for a in parts)
            return _with_core(n, m, ip, w, indep, g_edges, g_of, g_S, g_w, uniq, P,
                              rows[core], cols[core], core)
    else:
        ip, w, capR, capC = _split_parts(rows, cols, vals, limE, limK, n, m)
        _check_caps(capR, capC)
        _fix_excess(w, rows, n, capR)
        _fix_excess(w, cols, m, capC)
    frac = np.flatnonzero(w > 0)
    fr, fc, fw = rows[frac], cols[frac], w[frac]
    WR, WC = _totals(fr, fw, n), _totals(fc, fw, m)
    # rows: free first the edges to the tightest columns (least slack), largest first
    slackC = capC - (-((-WC) // ONE))
    u_sl, r_sl = np.unique(slackC, return_inverse=True)  # dense rank of the slack
    ordr = _lexsort3(fw, r_sl.ravel()[fc], u_sl.size, fr)
    free_r = _free_prefix(fr, ordr, fw, WR, capR, n)
    # columns: prefer edges still grouped at their row, then the largest
    ordc = _lexsort3(fw, free_r, 2, fc)
    free_c = _free_prefix(fc, ordc, fw, WC, capC, m)
    indep = frac[free_r & free_c]
    core = ~free_r & ~free_c
    rstar = ~free_r & free_c
    cstar = free_r & ~free_c
    # star groups: row groups (key = row) then column groups (key = n + col)
    if not (fr[1:] < fr[:-1]).any():  # rows sorted (CSR, np.nonzero): row stars in order
        rsel, csel = np.flatnonzero(rstar), np.flatnonzero(cstar)
        csel = csel[_stable_argsort(fc[csel])]
        sel = np.concatenate([rsel, csel])
        gkey = np.concatenate([fr[rsel], n + fc[csel]])
    else:
        sel = np.flatnonzero(rstar | cstar)
        gkey = np.where(rstar[sel], fr[sel], n + fc[sel])
        o = _stable_argsort(gkey)
        sel, gkey = sel[o], gkey[o]
    first = np.ones(sel.size, bool)  # first edge of each group (keys sorted): np.unique
    first[1:] = gkey[1:] != gkey[:-1]
    g_of = np.cumsum(first) - 1
    gw = fw[sel]
    starts = np.append(np.flatnonzero(first), sel.size)
    cum = np.cumsum(gw)
    g_S = cum - (cum - gw)[np.repeat(starts[:-1], np.diff(starts))]
    P = _group_sum(gw, starts, starts.size - 1)
    e_core = np.flatnonzero(core)
    return _with_core(n, m, ip, w, indep, frac[sel], g_of, g_S, gw, gkey[first], P,
                      fr[e_core], fc[e_core], frac[e_core])


def _check_caps(capR, capC) -> None:
    if (capR < 0).any() or (capC < 0).any():  # pragma: no cover - guarded by scaling
        raise ValueError("integer parts exceed pools or capacities; flows are infeasible")


def _totals(keys, w, n) -> np.ndarray:
    """Exact int64 sums of ``w`` per vertex ``keys``."""
    tot = np.zeros(n, np.int64)
    np.add.at(tot, keys, w)
    return tot


def _with_core(n, m, ip, w, indep, g_edges, g_of, g_S, g_w, uniq, P, cr, cc, creal) -> _Plan:
    """The plan with its core graph, from the star groups (keys ``uniq``: row, or ``n`` +
    column; weight totals ``P``) and the core edges (rows ``cr``, columns ``cc``, pairs
    ``creal``)."""
    n_groups = uniq.size
    g_f = P % ONE
    # core vertices
    core_rows = np.flatnonzero(np.bincount(cr, minlength=n))  # = np.unique
    core_cols = np.flatnonzero(np.bincount(cc, minlength=m))
    nr, nc = core_rows.size, core_cols.size
    lid = np.full(n, -1, np.int64)
    lid[core_rows] = np.arange(nr)
    rid = np.full(m, -1, np.int64)
    rid[core_cols] = np.arange(nc)
    SL, SR = nr, nc
    # group -> core vertex (pendants)
    is_row_g = uniq < n
    g_vertex_row = np.where(is_row_g, uniq, 0)
    g_vertex_col = np.where(is_row_g, 0, uniq - n)
    g_core = np.where(is_row_g, lid[g_vertex_row] >= 0, rid[g_vertex_col] >= 0)
    pend_g = np.flatnonzero(g_core & (g_f > 0))
    left = [lid[cr]]
    right = [rid[cc]]
    weights = [(w[creal] >> CORE_LOW) << CORE_LOW]
    real = [creal]
    n_core = creal.size
    # pendants
    pl = np.where(is_row_g[pend_g], lid[g_vertex_row[pend_g]], SL)
    pr = np.where(is_row_g[pend_g], SR, rid[g_vertex_col[pend_g]])
    left.append(pl)
    right.append(pr)
    weights.append((g_f[pend_g] >> CORE_LOW) << CORE_LOW)
    real.append(np.full(pend_g.size, -1, np.int64))
    g_pend = np.full(n_groups, -1, np.int64)
    g_pend[pend_g] = n_core + np.arange(pend_g.size)
    L0 = np.concatenate(left)
    R0 = np.concatenate(right)
    W0 = np.concatenate(weights)
    # dummies so every core vertex total is a multiple of 2^32
    tl = np.zeros(nr + 1, np.int64)
    np.add.at(tl, L0, W0)
    tr = np.zeros(nc + 1, np.int64)
    np.add.at(tr, R0, W0)
    dl = (-tl[:nr]) % ONE
    dr = (-tr[:nc]) % ONE
    kl = np.flatnonzero(dl > 0)
    kr = np.flatnonzero(dr > 0)
    sr_tot = (tr[SR] + dl.sum()) % ONE  # super right node: row pendants + row dummies
    z = (-sr_tot) % ONE
    left += [kl, np.full(kr.size, SL, np.int64), np.array([SL], np.int64)]
    right += [np.full(kl.size, SR, np.int64), kr, np.array([SR], np.int64)]
    weights += [dl[kl], dr[kr], np.array([z], np.int64)]
    real += [np.full(kl.size + kr.size + 1, -1, np.int64)]
    c_left = np.concatenate(left).astype(np.int64)
    c_right = np.concatenate(right).astype(np.int64)
    c_w0 = np.concatenate(weights).astype(np.int64)
    c_real = np.concatenate(real).astype(np.int64)
    if n_core == 0:  # no core: nothing to round jointly
        c_left = c_right = c_w0 = c_real = np.zeros(0, np.int64)
    # store the core graph sorted by left vertex: then the selected edges of a level,
    # taken in index order, pair up at their left ends as (0, 1), (2, 3), ...
    perm = np.argsort(c_left, kind="stable")
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    g_pend[g_pend >= 0] = inv[g_pend[g_pend >= 0]]
    c_left, c_right, c_w0, c_real = c_left[perm], c_right[perm], c_w0[perm], c_real[perm]
    return _Plan(
        n=n, m=m, ip=ip, w=w, indep=indep, g_edges=g_edges, g_of_edge=g_of, g_S=g_S,
        g_w=g_w, n_groups=n_groups, g_pend=g_pend, g_f=g_f, c_w0=c_w0,
        c_right=c_right, c_ordR=_stable_argsort(c_right), c_real=c_real,
    )
