"""Compiled inner loops of the integer rounding (numba; optional).

Loaded by :func:`studentflow.allocation.plan.kernels` on first use, only where numba is
installed; every kernel gives exactly the result of the numpy code it replaces, so
draws are identical with or without numba (``tests/test_allocation_kernels.py``).
Compiled once per machine (``cache=True``).  At national size (1.5 million pairs, a
core of 400,000) they take a whole scenario draw from ~0.65 s to ~0.33 s of CPU
(``scripts/bench_allocation.py``, (f)).

* :func:`level_cycles` / :func:`level_apply`: one bit level of the core's dyadic
  rounding (:func:`studentflow.allocation.integer._dyadic`).  The colour classes are
  the cycles of ``sigma(t) = right partner of (t ^ 1)``, labelled in the order of their
  smallest member: the labelling ``scipy.sparse.csgraph.connected_components`` gives,
  so the same coins fall on the same classes.  Branch-free compaction passes (the bits
  are coin flips): about 3.5 ms per level instead of 12 ms at 400,000 core edges.
* :func:`classify`: the freeing pass of the plan
  (:func:`studentflow.allocation.plan._free_prefix` after the ``_lexsort3`` orders;
  per vertex, the prefix rule on distinct packed keys, selected without a sort), the
  edge classes and the star groups, in one pass per side over the pairs.
* :func:`split_parts`: the plan's first lines (scaling to the limits, integer and
  fractional parts, limits left, fractional totals) in one pass, the same float operations.
* :func:`draw_parts`: the per-draw part after the core's bit levels (the core's
  outcomes, systematic sampling of the star groups, independent edges) in one pass.
* :func:`linear_predictor`: ``off + X @ beta`` of a scenario draw over a compact design
  (float columns and 0/1 columns as uint8), adding the terms in column order as the
  numpy loop does (no fused multiply-adds: the same bits); :func:`whole_sums`, a draw's totals.

Arrays made here carry numba's own int64 / bool dtype instances, on which some numpy
loops (``np.add.at``) take a generic path 25x slower: callers view them with numpy's
dtypes (``a.view(np.int64)``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["level_cycles", "level_apply", "classify", "split_parts", "linear_predictor", "draw_parts", "whole_sums"]

_ONE = np.int64(1) << 32


@njit(cache=True, nogil=True)
def level_cycles(wd, ord_r, b, pos, sel, pr, ln):  # pragma: no cover - compiled
    """Edges with bit ``b`` set (``sel[:k]``, by index), their partners at the right
    end (``ln[:, 1]``) and cycle labels of ``t -> ln[t ^ 1, 1]`` (``ln[:, 0]``);
    returns (k, ncomp).  Label and partner share a row of ``ln`` (and ``t``, ``t ^ 1``
    a cache line), so each step of a cycle touches one cache line."""
    k = 0
    for e in range(wd.size):  # branch-free compaction (bits are coin flips)
        bit = (wd[e] >> b) & 1
        sel[k] = e
        pos[e] = k if bit else -1
        k += bit
    j = 0
    for t in range(ord_r.size):  # selected edges in right-vertex order
        p = pos[ord_r[t]]
        pr[j] = p
        j += p >= 0
    for i in range(0, j, 2):  # consecutive edges at a right vertex are partners
        x = pr[i]
        y = pr[i + 1]
        ln[x, 1] = y
        ln[y, 1] = x
    for t in range(k):
        ln[t, 0] = -1
    ncomp = 0
    for v in range(k):  # cycles, numbered by their smallest member
        if ln[v, 0] < 0:
            u = v
            while ln[u, 0] < 0:
                ln[u, 0] = ncomp
                u = ln[u ^ 1, 1]
            ncomp += 1
    return k, ncomp


@njit(cache=True, nogil=True)
def level_apply(wd, sel, ln, coins, k, b):  # pragma: no cover - compiled
    """Add ``+-2^b`` to each selected edge: up iff (own class < other class) xor coin."""
    step = np.int64(1) << b
    for t in range(k):
        x = ln[t, 0]
        o = ln[t ^ 1, 0]
        up = (x < o) ^ coins[min(x, o)]
        wd[sel[t]] += step * (2 * np.int64(up) - 1)


@njit(cache=True, nogil=True)
def _sort_head(buf, k):  # pragma: no cover - compiled
    """Sort ``buf[:k]`` in place (insertion sort for a few values)."""
    if k > 32:
        buf[:k].sort()
        return
    for u in range(1, k):
        x = buf[u]
        v = u - 1
        while v >= 0 and buf[v] > x:
            buf[v + 1] = buf[v]
            v -= 1
        buf[v + 1] = x


@njit(cache=True, nogil=True)
def _mark_prefix(buf, k, pb, seg, w, W_v, cap_v, out):  # pragma: no cover - compiled
    """``buf[:k]``: distinct packed keys whose low ``pb`` bits are positions in ``seg``;
    mark the edges of the freed prefix in increasing key order (``_free_prefix``'s rule).
    ``g(t) = t + ceil((W - S_t) / 2^32)`` (``S_t``: weight of the ``t`` smallest keys)
    never decreases, so the freed edges are the ``T`` smallest keys, ``T`` the largest
    ``t`` with ``g(t) <= cap`` (all when ``k <= cap``, else ``T <= cap``), found by a
    quickselect guided by ``g`` (O(k), no sort): ``buf[:lo]`` holds the ``lo`` smallest
    keys, all freed (weight ``S``), ``T`` is in ``[lo, hi]``, ranks from ``end`` on no
    longer matter.  (Sorting cost the national plan 10 ms per draw.)"""
    low = (np.int64(1) << pb) - 1
    if k <= cap_v:
        for t in range(k):
            out[seg[buf[t] & low]] = True
        return
    if cap_v <= 0:  # the first edge already breaks the rule
        return
    lo, hi, end, S = 0, cap_v, k, np.int64(0)
    while lo < hi:
        if end - lo <= 16:  # a few keys left: sort them and walk the rule
            _sort_head(buf[lo:end], end - lo)
            for t in range(lo, min(end, hi)):
                S += w[seg[buf[t] & low]]
                if (t + 1) + (-((S - W_v) // _ONE)) > cap_v:
                    break
                lo = t + 1
            break
        mid = (lo + end) >> 1  # median-of-three pivot, moved to end - 1 (Lomuto)
        x, y, z = buf[lo], buf[mid], buf[end - 1]
        pv = max(min(x, y), min(max(x, y), z))
        j = lo if pv == x else (mid if pv == y else end - 1)
        buf[j], buf[end - 1] = buf[end - 1], pv
        i, part = lo, np.int64(0)
        for u in range(lo, end - 1):  # branch-free: the comparisons are coin flips
            v = buf[u]
            c = v < pv
            buf[u], buf[i] = buf[i], v  # a no-op swap of two keys >= pv when not c
            part += ((_ONE - 1) - ((v >> pb) & (_ONE - 1))) * c  # the key's weight field
            i += c
        buf[end - 1], buf[i] = buf[i], pv  # keys of rank lo..i-1 below the pivot, the pivot at rank i
        t = i + 1  # the prefix up to and including the pivot
        St = S + part + w[seg[pv & low]]
        if t <= hi and t + (-((St - W_v) // _ONE)) <= cap_v:
            lo, S = t, St  # T >= t: all of them freed
        else:
            hi, end = min(hi, i), i  # T <= i: ranks >= i do not matter
    for t in range(lo):
        out[seg[buf[t] & low]] = True


@njit(cache=True, nogil=True)
def _bits(x):  # pragma: no cover - compiled
    """``int(x).bit_length()`` for ``x >= 0``."""
    b = 0
    while x > 0:
        x >>= 1
        b += 1
    return b


@njit(cache=True, nogil=True)
def classify(rows, cols, w, cap_r, cap_c, WR, WC, n, m):  # pragma: no cover - compiled
    """The plan's freeing pass, classes and star groups in one kernel, over the pairs
    (``rows`` non-decreasing) with fractional part ``w > 0``: what the numpy code of
    :func:`studentflow.allocation.plan._plan` computes with ``_lexsort3`` orders,
    ``_free_prefix`` and the group sums, without its temporaries.

    Rows: each row's edges in the order of ``np.lexsort((-w, slack_c[col], row))``
    (packed keys ``slack << (32 + pb) | (2^32 - 1 - w) << pb | position``, distinct, so
    a plain sort gives lexsort's order); columns: each column's edges (a stable
    counting sort, pairs in index order) in the order of ``np.lexsort((-w, free_r,
    col))``; both with the prefix rule of ``_free_prefix``.  Returns ``ok`` (False: the
    packed keys do not fit in 63 bits, use the numpy code), the independent pairs, the
    star edges (row groups in pair order, then column groups by column and pair), each
    with its group, within-group inclusive cumulative weight and weight, the groups'
    keys (row, or ``n`` + column) and weight totals, and the core pairs."""
    nf = 0
    cr = np.zeros(n, np.int64)
    cnt = np.zeros(m + 1, np.int64)
    for i in range(w.size):
        if w[i] > 0:
            nf += 1
            cr[rows[i]] += 1
            cnt[cols[i] + 1] += 1
    e0 = np.zeros(0, np.int64)
    pb_r = _bits(max(cr.max() - 1, 0)) if n else 0
    pb_c = _bits(max(cnt.max() - 1, 0))
    slack = np.empty(m, np.int64)
    top = 0
    for j in range(m):
        slack[j] = cap_c[j] - (-((-WC[j]) // _ONE))
        top = max(top, abs(slack[j]))
    if nf == 0 or _bits(top) + 1 + 32 + pb_r > 63 or 1 + 32 + pb_c > 63:
        return False, e0, e0, e0, e0, e0, e0, e0, e0
    for i in range(1, rows.size):
        if rows[i] < rows[i - 1]:
            return False, e0, e0, e0, e0, e0, e0, e0, e0
    free_r = np.zeros(w.size, np.bool_)
    buf = np.empty(np.int64(1) << max(pb_r, pb_c), np.int64)
    seg = np.empty(buf.size, np.int64)
    s = 0
    while s < rows.size:  # rows
        v = rows[s]
        e = s + cr[v]
        while e < rows.size and rows[e] == v:  # cr[v] counts the fractional edges only
            e += 1
        if cr[v] <= cap_r[v]:  # all freed (_mark_prefix's first case, without keys)
            for i in range(s, e):
                free_r[i] = w[i] > 0
        else:
            k = 0
            for i in range(s, e):
                if w[i] > 0:
                    buf[k] = (slack[cols[i]] << (32 + pb_r)) | (((_ONE - 1) - w[i]) << pb_r) | k
                    seg[k] = i
                    k += 1
            _mark_prefix(buf, k, pb_r, seg, w, WR[v], cap_r[v], free_r)
        s = e
    for j in range(m):
        cnt[j + 1] += cnt[j]
    by_col = np.empty(nf, np.int64)  # stable counting sort by column (pairs in index
    w_col = np.empty(nf, np.int64)   # order), with weights and row marks alongside: the
    r_col = np.empty(nf, np.uint8)   # column passes below read these in order
    fill = cnt[:-1].copy()
    for i in range(w.size):
        if w[i] > 0:
            p = fill[cols[i]]
            by_col[p], w_col[p], r_col[p] = i, w[i], free_r[i]
            fill[cols[i]] += 1
    c_col = np.zeros(nf, np.bool_)  # freed at the column, per sorted position
    ident = np.arange(buf.size)
    n_ind = n_core = n_star = 0
    for j in range(m):
        s, e = cnt[j], cnt[j + 1]
        for t in range(e - s):
            buf[t] = (np.int64(r_col[s + t]) << (32 + pb_c)) | (((_ONE - 1) - w_col[s + t]) << pb_c) | t
        if e > s:
            _mark_prefix(buf, e - s, pb_c, ident, w_col[s:e], WC[j], cap_c[j], c_col[s:e])
        for p in range(s, e):
            rc = np.int64(r_col[p])
            cc = np.int64(c_col[p])
            n_ind += rc & cc
            n_core += (1 - rc) & (1 - cc)
    free_c = np.zeros(w.size, np.bool_)
    for p in range(nf):
        if c_col[p]:
            free_c[by_col[p]] = True
    n_star = nf - n_ind - n_core
    indep = np.empty(n_ind, np.int64)
    core = np.empty(n_core, np.int64)
    g_edges = np.empty(n_star, np.int64)
    g_of = np.empty(n_star, np.int64)
    g_S = np.empty(n_star, np.int64)
    g_w = np.empty(n_star, np.int64)
    uniq = np.empty(n + m, np.int64)  # at most one group per vertex
    P = np.zeros(n + m, np.int64)
    a = b = c = 0
    g = -1
    gk = -1
    for x in range(w.size):  # pairs in index order: independent, core, row-star edges
        if w[x] == 0:
            continue
        if free_r[x]:
            if free_c[x]:
                indep[a] = x
                a += 1
            continue  # a column-star edge: below
        if not free_c[x]:
            core[c] = x
            c += 1
            continue
        if rows[x] != gk:
            g += 1
            gk = rows[x]
            uniq[g] = gk
        P[g] += w[x]
        g_edges[b], g_of[b], g_S[b], g_w[b] = x, g, P[g], w[x]
        b += 1
    for j in range(m):  # column-star edges, by column
        new = True
        for p in range(cnt[j], cnt[j + 1]):
            if r_col[p] and not c_col[p]:
                if new:
                    g += 1
                    uniq[g] = n + j
                    new = False
                P[g] += w_col[p]
                g_edges[b], g_of[b], g_S[b], g_w[b] = by_col[p], g, P[g], w_col[p]
                b += 1
    return True, indep, g_edges, g_of, g_S, g_w, uniq[:g + 1], P[:g + 1], core


@njit(cache=True, nogil=True)
def split_parts(rows, cols, vals, limE, limK, n, m):  # pragma: no cover - compiled
    """The first lines of ``_plan`` fused: flows scaled down to the integer limits,
    integer parts ``ip``, 32-bit fractional parts ``w`` and the limits left per row and
    column.  The same floating-point operations in the same order as the numpy code
    (``np.bincount`` adds in index order; no contraction into fused multiply-adds), so
    the same bits."""
    R = np.zeros(n)
    for i in range(rows.size):
        R[rows[i]] += vals[i]
    sr = np.ones(n)
    for i in range(n):
        if R[i] > limE[i]:
            sr[i] = limE[i] / (R[i] if R[i] > 0 else 1.0)
    v = np.empty(vals.size)
    C = np.zeros(m)
    for i in range(vals.size):
        v[i] = vals[i] * sr[rows[i]]
        C[cols[i]] += v[i]
    sc = np.ones(m)
    for j in range(m):
        if C[j] > limK[j]:
            sc[j] = limK[j] / (C[j] if C[j] > 0 else 1.0)
    ip = np.empty(vals.size, np.int64)
    w = np.empty(vals.size, np.int64)
    IR = np.zeros(n)
    IC = np.zeros(m)
    WR = np.zeros(n, np.int64)
    WC = np.zeros(m, np.int64)
    one = float(_ONE)
    for i in range(vals.size):
        x = v[i] * sc[cols[i]]
        f = np.floor(x)
        ip[i] = np.int64(f)
        w[i] = np.int64(np.floor((x - f) * one))
        IR[rows[i]] += f
        IC[cols[i]] += f
        WR[rows[i]] += w[i]
        WC[cols[i]] += w[i]
    capR = np.empty(n, np.int64)
    for i in range(n):  # integer sums below 2^53: exact, round() is a no-op
        capR[i] = np.int64(limE[i]) - np.int64(IR[i])
    capC = np.empty(m, np.int64)
    for j in range(m):
        capC[j] = np.int64(limK[j]) - np.int64(IC[j])
    return ip, w, capR, capC, WR, WC


@njit(cache=True, nogil=True)
def linear_predictor(F, B, is_bin, pos, beta, off):  # pragma: no cover - compiled
    """``off + X @ beta``, the terms added in column order: term ``k`` is row ``pos[k]``
    of ``B`` (a 0/1 column as uint8, cast to float) where ``is_bin[k]``, else of ``F``
    (float64).  A plain loop per term, which LLVM vectorises (1.1 ms instead of
    numpy's 4.5 ms at 345,000 pairs x 22 terms, which reads the 61 MB float matrix)."""
    out = off.copy()
    for k in range(beta.size):
        b = beta[k]
        if is_bin[k]:
            bc = B[pos[k]]
            for i in range(out.size):
                out[i] += np.float64(bc[i]) * b
        else:
            fc = F[pos[k]]
            for i in range(out.size):
                out[i] += fc[i] * b
    return out


@njit(cache=True, nogil=True)
def draw_parts(ip, w, c_real, zc, g_edges, g_of, g_S, g_w, U, indep, r):  # pragma: no cover - compiled
    """Whole learners per pair: the integer parts plus the core edges' outcomes ``zc``,
    the star edges' systematic samples with group offsets ``U`` and the independent
    edges' Bernoulli draws (uniforms ``r``), as
    :func:`studentflow.allocation.integer._draw` computes them (the three edge sets are
    disjoint)."""
    out = ip.copy()
    for t in range(c_real.size):
        if c_real[t] >= 0:
            out[c_real[t]] += zc[t]
    for t in range(g_edges.size):
        u = U[g_of[t]]
        out[g_edges[t]] += ((g_S[t] + u) >> 32) - ((g_S[t] - g_w[t] + u) >> 32)
    one = float(_ONE)
    for t in range(indep.size):
        e = indep[t]
        out[e] += r[t] < np.float64(w[e]) / one
    return out


@njit(cache=True, nogil=True)
def whole_sums(whole, rows, cols, new, n, m):  # pragma: no cover - compiled
    """Row and column totals of whole learners per data position and their total on
    positions ``new``, in one pass (integer sums: exact in any order)."""
    r, c, t = np.zeros(n, np.int64), np.zeros(m, np.int64), np.int64(0)
    for i in range(whole.size):
        x = whole[i]
        r[rows[i]] += x
        c[cols[i]] += x
        t += x * np.int64(new[i])
    return r, c, t
