"""Balancing of expected flows to pools and capacities (numpy only).

The solver behind :func:`studentflow.allocation.solve.allocate` (``method="balance"``): the
alternating (Furness) update ``b <- min(1, K / mu^T a(b))``, exact block-coordinate
descent on the convex dual ``phi(v)`` over ``v = -log b >= 0``, accelerated by
safeguarded Anderson mixing (memory 6; Walker & Ni 2011).  An extrapolated point is
kept only if its KKT violation is below twice the best so far, otherwise the plain
update of the last accepted point is taken and the history restarts; after 50
iterations without a new best the solver falls back to plain Furness, which converges.
The best point seen is returned.  See :mod:`studentflow.allocation.solve` for the problem
and the tolerance.
"""

from __future__ import annotations

import numpy as np

__all__: list[str] = []

_MEMORY = 6  # Anderson history length
_STALL = 50  # iterations without a new best violation before falling back to Furness


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """min(1, num / den) with 1 where den <= num (incl. 0/0) and 0 where num = 0 < den."""
    out = np.ones_like(den)
    hit = den > num
    out[hit] = num[hit] / den[hit]
    return out


def _violation(R, C, E, K, a, b) -> float:
    """Max relative constraint violation and complementary-slackness gap."""
    sE = np.maximum(E, 1.0)
    sK = np.maximum(K, 1.0)
    v = 0.0
    if R.size:
        over = (R - E) / sE
        under = np.where(a < 1.0, (E - R) / sE, 0.0)
        v = max(v, float(over.max()), float(under.max()))
    if C.size:
        over = (C - K) / sK
        under = np.where(b < 1.0, (K - C) / sK, 0.0)
        v = max(v, float(over.max()), float(under.max()))
    return max(v, 0.0)


def _balance(mv, rmv, E, K, tol, max_iter):
    """Safeguarded Anderson-accelerated alternating balancing; returns (a, b, it, viol)."""
    m = K.shape[0]
    b = np.ones(m)

    def step(b):
        r = mv(b)
        a = _safe_ratio(E, r)
        c = rmv(a)
        b_new = _safe_ratio(K, c)
        viol = _violation(a * r, b * c, E, K, a, b)
        return a, b_new, viol

    # columns whose factor can move in log space (positive capacity)
    free = K > 0

    def to_v(bb):
        return -np.log(bb[free])

    def from_v(v):
        out = np.zeros(m)
        out[free] = np.exp(-np.maximum(v, 0.0))
        out[~free] = b_fixed[~free]
        return out

    a, g_b, viol = step(b)
    it = 1
    best_a, best_b, best_viol = a, b, viol
    b_fixed = g_b  # factor of zero-capacity columns (0 where the column has support)
    if viol <= tol:
        return a, b, it, viol
    if not free.any():  # every column has zero capacity: b is fixed, one more step
        a, _, viol = step(b_fixed)
        return a, b_fixed, it + 1, viol
    gx = to_v(g_b)
    F_hist: list[np.ndarray] = [gx - to_v(b)]  # fixed-point residuals G(v) - v
    G_hist: list[np.ndarray] = [gx]
    memory, since_best = _MEMORY, 0
    while it < max_iter:
        if since_best > _STALL:  # safeguard of last resort: plain Furness from here
            memory = 0
        # Anderson (type II) proposal from the history
        prop = G_hist[-1]
        if len(F_hist) > 1 and memory:
            dF = np.stack([F_hist[k + 1] - F_hist[k] for k in range(len(F_hist) - 1)], 1)
            dG = np.stack([G_hist[k + 1] - G_hist[k] for k in range(len(G_hist) - 1)], 1)
            try:
                gamma = np.linalg.lstsq(dF, F_hist[-1], rcond=1e-12)[0]
                cand = G_hist[-1] - dG @ gamma
                if np.all(np.isfinite(cand)):
                    prop = cand
            except np.linalg.LinAlgError:
                pass
        prop = np.maximum(prop, 0.0)
        bp = from_v(prop)
        a, g_bp, viol = step(bp)
        it += 1
        if viol <= tol:
            return a, bp, it, viol
        if viol < best_viol:
            best_a, best_b, best_viol, since_best = a, bp, viol, 0
        else:
            since_best += 1
        gprop = to_v(g_bp)
        if viol < 2.0 * best_viol or len(F_hist) == 1 or not memory:
            F_hist.append(gprop - prop)
            G_hist.append(gprop)
            if len(F_hist) > memory + 1:
                cut = len(F_hist) - memory - 1
                del F_hist[:cut], G_hist[:cut]
        else:
            # reject: restart the history at the last accepted point, whose plain
            # update G_hist[-1] is the next proposal
            F_hist, G_hist = F_hist[-1:], G_hist[-1:]
    return best_a, best_b, it, best_viol
