"""Benchmark of studentflow.allocation (not run by the tests).

Prints, in one run on one machine, the time to reach tol = 1e-9 for

(a) study size: ~7,600 origins x 1,400 ESC schools, ~325,000 candidate pairs, sparse;
(b) national size: 40,000 origins x 13,000 schools, ~5,000,000 pairs, sparse;
(c) problem (a) as a dense array;
(d) 100 integer draws (``Allocation.to_integer``) at size (a);
(e) one integer draw on a fresh allocation (as the scenario sweep does: the plan is
    rebuilt every draw) at national size, ~1.5 million pairs (and on (b));
(f) whole scenario draws (``scenario_draws.simulate_draws``: expected flows from a
    22-covariate design, balancing, rounding plan, rounding, per-draw totals) at the
    national sweep's size, 46,000 origins x 13,000 ESC schools, ~1.5 million pairs;
    the current code against the code of commit ``BASELINE_COMMIT`` (loaded from git in
    this process) and against the current code without numba, with a check that all
    three give identical draws; and a stage breakdown of one new draw;

with baselines run in the same process: the study's ``sequential`` rule and a plain
dense Furness (alternating) iteration in numpy, and the ratios against them.

Problems have realistic structure: origins and schools scattered over a region with
denser clusters, each origin's candidate schools are its nearest ~40 (national: ~125),
``mu`` is lognormal times a distance decay, pools are 70-140 learners, and capacities
are set so that about half of the schools bind.

Usage: ``PYTHONPATH=. python scripts/bench_allocation.py [--skip-national] [--only-draws]``
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from benchlib import load_baseline
import studentflow.allocation.integer as ai
import studentflow.allocation.plan as apl
from studentflow.allocation import allocate
from studentflow.scenarios.draws import DrawWork, simulate_draws

#: the code before the whole-draw speed-up (issue 8): numpy-only rounding (connected
#: components per bit level, lexsort-order freeing) and sparse-product draw metrics
BASELINE_COMMIT = "09c1159"


def make_problem(n_origins: int, n_schools: int, k: int, seed: int = 0, kk=None):
    """Realistic synthetic allocation problem.

    Returns ``(mu, pools, capacities)`` with ``mu`` a CSR array (learners), about
    ``n_origins * k`` candidate pairs (or ``kk[i]`` for origin ``i`` when given).
    """
    rng = np.random.default_rng(seed)
    n_cl = max(5, n_schools // 50)
    centres = rng.uniform(0, 100, size=(n_cl, 2))

    def points(n):
        c = centres[rng.integers(0, n_cl, n)]
        return c + rng.normal(scale=3.0, size=(n, 2))

    org, sch = points(n_origins), points(n_schools)
    draws = rng.integers(int(0.6 * k), int(1.4 * k) + 1, n_origins)
    kk = draws if kk is None else np.asarray(kk)
    kmax = int(kk.max())
    dist, idx = cKDTree(sch).query(org, k=kmax)
    keep = np.arange(kmax)[None, :] < kk[:, None]
    rows = np.repeat(np.arange(n_origins), kk)
    cols = idx[keep]
    d = dist[keep]
    vals = rng.lognormal(mean=0.0, sigma=1.0, size=rows.size) * (1.0 + d) ** -0.45
    mu = sp.csr_array((vals, (rows, cols)), shape=(n_origins, n_schools))
    pools = rng.integers(70, 141, n_origins).astype(float)
    # scale so that mean expected row total is ~0.6 of the pool (some origins bind)
    rs = mu.sum(axis=1)
    mu = mu * (0.6 * pools.mean() / rs.mean())
    demand = np.asarray(mu.sum(axis=0)).ravel()
    caps = np.floor(demand * rng.uniform(0.4, 1.6, n_schools))
    return sp.csr_array(mu), pools, caps


def make_hard_problem(seed: int = 1):
    """Problem (a) with expected demand ~2x the pools and capacities re-drawn around
    the new column demand, so that most origins *and* about half the schools bind:
    the case where plain alternating balancing is slowest."""
    mu, E, _ = make_problem(7_600, 1_400, 43, seed=seed)
    mu = mu * (2.0 / 0.6)  # expected row totals ~2x the pools
    rng = np.random.default_rng(seed + 100)
    demand = np.asarray(mu.sum(axis=0)).ravel()
    K = np.floor(demand * rng.uniform(0.4, 1.6, demand.size) / 2.0)
    return mu, E, K


def furness_dense(mu: np.ndarray, E, K, tol=1e-9, max_iter=100_000):
    """Plain alternating balancing on a dense array (the textbook baseline); returns
    the flows matrix as well, like ``allocate``."""
    b = np.ones(mu.shape[1])
    for it in range(1, max_iter + 1):
        r = mu @ b
        a = np.where(r > E, E / np.where(r > 0, r, 1), 1.0)
        c = a @ mu
        C = b * c
        sK = np.maximum(K, 1)
        viol = max(((C - K) / sK).max(), np.where(b < 1, (K - C) / sK, 0).max())
        if viol <= tol:
            break
        b = np.where(c > K, K / np.where(c > 0, c, 1), 1.0)
    flows = mu * a[:, None]  # the answer, as allocate() returns it
    flows *= b[None, :]
    return flows, b, it


def furness_sparse(mu, E, K, tol=1e-9, max_iter=100_000):
    """Plain alternating balancing with scipy.sparse mat-vecs (no acceleration)."""
    muT = mu.T.tocsr()
    b = np.ones(mu.shape[1])
    for it in range(1, max_iter + 1):
        r = mu @ b
        a = np.where(r > E, E / np.where(r > 0, r, 1), 1.0)
        c = muT @ a
        C = b * c
        sK = np.maximum(K, 1)
        viol = max(((C - K) / sK).max(), np.where(b < 1, (K - C) / sK, 0).max())
        if viol <= tol:
            return a, b, it
        b = np.where(c > K, K / np.where(c > 0, c, 1), 1.0)
    return a, b, max_iter


# ------------------------------------------------ baseline for (e): the old plan
def baseline_fix_excess(w, keys, n, cap):
    """Lower weights (largest first) wherever a vertex total exceeds ``cap * 2^32``.

    Only rounding error can cause this for feasible flows; the change is at most a few
    units of 2^-32 per vertex (or all of it where the limit is 0).
    """
    order = np.argsort(keys, kind="stable")
    starts = ai._indptr(keys[order], n)
    tot = ai._group_sum(w[order], starts, n)
    for v in np.flatnonzero(tot > cap * ai.ONE):
        idx = order[starts[v]:starts[v + 1]]
        excess = int(tot[v]) - int(cap[v]) * int(ai.ONE)
        for e in idx[np.argsort(-w[idx], kind="stable")]:
            take = min(int(w[e]), excess)
            w[e] -= take
            excess -= take
            if excess == 0:
                break


def baseline_free_prefix(keys, order, w, W, cap, n):
    """Edges freed at their ``keys`` vertex, visiting edges in ``order``.

    Returns a boolean mask: the longest prefix per vertex (in ``order``) with
    ``t + ceil((W - cumw_t) / 2^32) <= cap``.
    """
    k = keys[order]
    ws = w[order]
    starts = ai._indptr(k, n)
    first = np.repeat(starts[:-1], np.diff(starts))  # position of each group's start
    cum = np.cumsum(ws)
    cw = cum - (cum - ws)[first]  # inclusive within-group cumsum
    t = np.arange(k.size) - first + 1
    rest = W[k] - cw
    ceil_rest = -((-rest) // ai.ONE)
    ok = t + ceil_rest <= cap[k]
    freed = np.zeros(w.size, dtype=bool)
    freed[order] = ok
    return freed



def baseline_plan(rows, cols, vals, limE, limK, n, m) -> ai._Plan:
    """Baseline: ``allocation_integer._plan`` as of commit c1523e8 (three lexsorts /
    stable argsorts per plan), kept to time the national-size draw against."""
    # scale down to the integer limits (no-op for feasible flows with integer limits)
    R = np.bincount(rows, weights=vals, minlength=n)
    sr = np.where(R > limE, limE / np.where(R > 0, R, 1.0), 1.0)
    vals = vals * sr[rows]
    C = np.bincount(cols, weights=vals, minlength=m)
    sc = np.where(C > limK, limK / np.where(C > 0, C, 1.0), 1.0)
    vals = vals * sc[cols]
    ipf = np.floor(vals)
    ip = ipf.astype(np.int64)
    w = np.floor((vals - ipf) * float(ai.ONE)).astype(np.int64)
    capR = limE.astype(np.int64) - np.bincount(rows, weights=ipf, minlength=n).round().astype(np.int64)
    capC = limK.astype(np.int64) - np.bincount(cols, weights=ipf, minlength=m).round().astype(np.int64)
    if (capR < 0).any() or (capC < 0).any():  # pragma: no cover - guarded by scaling
        raise ValueError("integer parts exceed pools or capacities; flows are infeasible")
    baseline_fix_excess(w, rows, n, capR)
    baseline_fix_excess(w, cols, m, capC)
    frac = np.flatnonzero(w > 0)
    fr, fc, fw = rows[frac], cols[frac], w[frac]
    WR = np.zeros(n, np.int64)
    np.add.at(WR, fr, fw)
    WC = np.zeros(m, np.int64)
    np.add.at(WC, fc, fw)
    # rows: free first the edges to the tightest columns (least slack), largest first
    slackC = capC - (-((-WC) // ai.ONE))
    ordr = np.lexsort((-fw, slackC[fc], fr))
    free_r = baseline_free_prefix(fr, ordr, fw, WR, capR, n)
    # columns: prefer edges still grouped at their row, then the largest
    ordc = np.lexsort((-fw, free_r, fc))
    free_c = baseline_free_prefix(fc, ordc, fw, WC, capC, m)
    indep = frac[free_r & free_c]
    core = ~free_r & ~free_c
    rstar = ~free_r & free_c
    cstar = free_r & ~free_c
    # star groups: row groups (key = row) then column groups (key = n + col)
    sel = np.flatnonzero(rstar | cstar)
    gkey = np.where(rstar[sel], fr[sel], n + fc[sel])
    o = np.argsort(gkey, kind="stable")
    sel, gkey = sel[o], gkey[o]
    uniq, g_of = np.unique(gkey, return_inverse=True)
    n_groups = uniq.size
    gw = fw[sel]
    starts = np.concatenate([[0], np.cumsum(np.bincount(g_of, minlength=n_groups))])
    cum = np.cumsum(gw)
    g_S = cum - (cum - gw)[np.repeat(starts[:-1], np.diff(starts))]
    P = ai._group_sum(gw, starts, n_groups)
    g_f = P % ai.ONE
    # core vertices
    core_rows = np.unique(fr[core])
    core_cols = np.unique(fc[core])
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
    e_core = np.flatnonzero(core)
    left = [lid[fr[e_core]]]
    right = [rid[fc[e_core]]]
    weights = [(fw[e_core] >> ai.CORE_LOW) << ai.CORE_LOW]
    real = [frac[e_core]]
    n_core = e_core.size
    # pendants
    pl = np.where(is_row_g[pend_g], lid[g_vertex_row[pend_g]], SL)
    pr = np.where(is_row_g[pend_g], SR, rid[g_vertex_col[pend_g]])
    left.append(pl)
    right.append(pr)
    weights.append((g_f[pend_g] >> ai.CORE_LOW) << ai.CORE_LOW)
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
    dl = (-tl[:nr]) % ai.ONE
    dr = (-tr[:nc]) % ai.ONE
    kl = np.flatnonzero(dl > 0)
    kr = np.flatnonzero(dr > 0)
    sr_tot = (tr[SR] + dl.sum()) % ai.ONE  # super right node: row pendants + row dummies
    z = (-sr_tot) % ai.ONE
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
    return ai._Plan(
        n=n, m=m, ip=ip, w=w, indep=indep, g_edges=frac[sel], g_of_edge=g_of, g_S=g_S,
        g_w=fw[sel], n_groups=n_groups, g_pend=g_pend, g_f=g_f, c_w0=c_w0,
        c_right=c_right, c_ordR=np.argsort(c_right, kind="stable"), c_real=c_real,
    )



def baseline_round_flows(flows, pools, capacities, seed):
    """``round_flows`` with the baseline plan (sparse flows, no cache)."""
    rng = np.random.default_rng(seed)
    csr = flows.tocsr()
    n, m = csr.shape
    rows = np.repeat(np.arange(n), np.diff(csr.indptr))
    plan = baseline_plan(rows, csr.indices.astype(np.int64), np.asarray(csr.data, float),
                         np.floor(pools), np.floor(capacities), n, m)
    return sp.csr_array((ai._draw(plan, rng), csr.indices.copy(), csr.indptr.copy()),
                        shape=(n, m))


def bench_fresh_draw(res, label, draws=3):
    """Per-draw time of ``to_integer`` with the plan rebuilt each draw, against the
    baseline plan; the draws must be identical."""
    def new():
        return [ai.round_flows(res.flows, res.pools, res.capacities, s, cache={})
                for s in range(draws)]

    def old():
        return [baseline_round_flows(res.flows, res.pools, res.capacities, s)
                for s in range(draws)]

    t_new, a = timed(new, repeat=2)
    t_old, b = timed(old, repeat=2)
    same = all((x != y).nnz == 0 for x, y in zip(a, b))
    print(f"(e) {label} fresh-plan integer draw: {1000 * t_new[0] / draws:.0f} ms/draw wall "
          f"({1000 * t_new[1] / draws:.0f} ms CPU); baseline plan (c1523e8) "
          f"{1000 * t_old[0] / draws:.0f} ms/draw; ratio baseline/new "
          f"{t_old[0] / t_new[0]:.2f}; identical draws {same}")


# ------------------------------------- (f): whole scenario draws, new vs baseline
class _BaselineRounding:
    """An ``Allocation`` whose ``to_integer`` is the baseline commit's rounding."""

    def __init__(self, res, rounding):
        self.flows, self._res, self._rounding = res.flows, res, rounding

    def to_integer(self, seed):
        r = self._res
        return self._rounding.round_flows(r.flows, r.pools, r.capacities, seed, cache={})


def draw_work(n_origins: int, n_schools: int, k: int, n_cov: int = 22, seed: int = 3):
    """A national-size scenario work unit like ``scenarios._prepare`` builds: the pairs of
    :func:`make_problem` in CSR order with the national run's shape (``k`` is unused:
    rural and urban origins, about 0.16 expected learners per pair, half the schools
    full, hardly any origin exhausted; see the comments), a
    column-major design with ``n_cov`` covariates (the national model has 22) whose
    coefficient vector 0 gives that ``mu`` through the offset, about 3/4 of the pairs
    new; and 3 coefficient draws near 0."""
    rng = np.random.default_rng(seed)
    # as in the national sweep: 3/4 of the origins rural with 1-12 candidate schools,
    # 1/4 urban with 55-160 (median 7, mean ~32); ~0.16 expected learners per pair;
    # pools of 30-250 learners, hardly ever exhausted; small ESC capacities of which
    # about half bind (with many pairs per spare learner this leaves a large core)
    urban = rng.random(n_origins) < 0.25
    kk = np.where(urban, rng.integers(55, 161, n_origins), rng.integers(1, 13, n_origins))
    mu, _, _ = make_problem(n_origins, n_schools, k, seed=seed, kk=kk)
    mu = sp.csr_array((mu.data * (0.16 / mu.data.mean()), mu.indices, mu.indptr), shape=mu.shape)
    E = rng.integers(30, 251, n_origins).astype(float)
    K = np.floor(np.asarray(mu.sum(axis=0)).ravel() * rng.uniform(0.4, 1.6, mu.shape[1]))
    nnz = mu.nnz
    X = np.asfortranarray(rng.normal(size=(nnz, n_cov)))
    design = (X, np.log(mu.data))
    is_new = (rng.random(nnz) < 0.77).astype(float)
    new_mask = sp.csr_matrix((is_new, mu.indices, mu.indptr), shape=mu.shape)
    work = DrawWork(name="bench", method="balance", design=design, predict=None,
                    order=np.arange(nnz), indices=mu.indices.astype(np.int32),
                    indptr=mu.indptr, shape=mu.shape, pools=E, caps=K, new_mask=new_mask)
    betas = rng.normal(scale=0.02, size=(3, n_cov))
    return work, betas


def bench_whole_draw(work, betas, label, repeat=3):
    """ms per whole draw (μ, balance, plan, rounding, metrics: ``simulate_draws``) with
    the current code against the baseline commit's ``simulate_draws`` and rounding, in
    this process, and whether every outcome is identical."""
    old_draws = load_baseline("scenario_draws", BASELINE_COMMIT)
    old_round = load_baseline("allocation_integer", BASELINE_COMMIT)

    def baseline_allocator(*a, **kw):
        return _BaselineRounding(allocate(*a, **kw), old_round)

    seeds = [1000 + d for d in range(len(betas))]
    draws = list(range(len(betas)))

    def numpy_path():
        apl.COMPILED = False
        try:
            return simulate_draws(work, betas, draws, seeds)
        finally:
            apl.COMPILED = True

    runs = {
        "new": lambda: simulate_draws(work, betas, draws, seeds),
        "baseline": lambda: old_draws.simulate_draws(work, betas, draws, seeds, baseline_allocator),
        "numpy": numpy_path,
    }
    simulate_draws(work, betas[:1], [0], seeds[:1])  # load the compiled kernels (numba)
    best, out = {}, {}
    for _ in range(repeat):  # interleaved, best of each: fair on a busy machine
        for key, fn in runs.items():
            t, out[key] = timed(fn)
            best[key] = min(best.get(key, t), t)
    t_new, t_old, t_np = best["new"], best["baseline"], best["numpy"]
    new, old, plain = out["new"], out["baseline"], out["numpy"]

    def same(a, b):
        return all(np.array_equal(x.origin_placed, y.origin_placed)
                   and np.array_equal(x.school_placed, y.school_placed)
                   and np.array_equal(x.origin_expected, y.origin_expected)
                   and x.expected == y.expected and x.new_placed == y.new_placed
                   for x, y in zip(a, b))

    nd = len(betas)
    kern = apl.kernels() is not None
    print(f"(f) {label} whole draw (simulate_draws): new {1000 * t_new[0] / nd:.0f} ms/draw wall "
          f"({1000 * t_new[1] / nd:.0f} ms CPU{'' if kern else ', numba missing: numpy path'}); "
          f"baseline {BASELINE_COMMIT} {1000 * t_old[0] / nd:.0f} ms/draw wall "
          f"({1000 * t_old[1] / nd:.0f} ms CPU); ratio baseline/new "
          f"{t_old[0] / t_new[0]:.2f} wall, "
          f"{t_old[1] / t_new[1]:.2f} CPU; identical draws {same(new, old)}")
    print(f"    new without numba (numpy path) {1000 * t_np[0] / nd:.0f} ms/draw wall "
          f"({1000 * t_np[1] / nd:.0f} ms CPU); ratio baseline/numpy-path "
          f"{t_old[1] / t_np[1]:.2f} CPU; identical draws {same(plain, old)}")


def timed(fn, repeat=1):
    """Best wall time over ``repeat`` runs, with the CPU time of that run."""
    best = (np.inf, np.inf)
    out = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if w < best[0]:
            best = (w, c)
    return best, out


def fmt(t):
    return f"{t[0]:7.3f} s wall ({t[1]:6.3f} s CPU)"


def draw_stages(work, beta, seed=1000, repeat=3):
    """Best-of-``repeat`` CPU ms of each stage of one new draw."""
    def cpu(fn):
        best, out = np.inf, None
        for _ in range(repeat):
            c0 = time.process_time()
            out = fn()
            best = min(best, time.process_time() - c0)
        return 1000 * best, out

    t_mu, mu = cpu(lambda: work.expected(beta))
    mat = sp.csr_matrix((mu[work.order], work.indices, work.indptr), shape=work.shape)
    t_bal, res = cpu(lambda: allocate(mat, work.pools, work.caps))
    f = res.flows
    n, m = f.shape
    rows = np.repeat(np.arange(n), np.diff(f.indptr))
    args = (rows, f.indices.astype(np.int64), np.asarray(f.data, float), np.floor(work.pools),
            np.floor(work.caps), n, m)
    t_plan, plan = cpu(lambda: ai._plan(*args))
    t_dy, _ = cpu(lambda: ai._dyadic(plan, np.random.default_rng(seed)))
    t_draw, _ = cpu(lambda: ai._draw(plan, np.random.default_rng(seed)))
    t_all, _ = cpu(lambda: simulate_draws(work, beta[None, :], [0], [seed]))
    print(f"    stages of one new draw (CPU ms): expected flows {t_mu:.0f}, balance "
          f"{t_bal:.0f} ({res.iterations} iterations), rounding plan {t_plan:.0f}, rounding "
          f"{t_draw:.0f} (bit levels {t_dy:.0f}), the rest (CSR, totals) "
          f"{t_all - t_mu - t_bal - t_plan - t_draw:.0f}; whole {t_all:.0f}; core "
          f"{int((plan.c_real >= 0).sum()):,} pairs, grouped {plan.g_edges.size:,}")


def main(skip_national: bool = False, only_draws: bool = False) -> None:
    print(f"studentflow allocation benchmark (tol 1e-9); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    work, betas = draw_work(46_000, 13_000, 32)
    size = f"{work.shape[0]:,} x {work.shape[1]:,}, {len(work.order):,} pairs"
    bench_whole_draw(work, betas, size)
    draw_stages(work, betas[0])
    if only_draws:
        return
    _, (mu, E, K) = timed(lambda: make_problem(7_600, 1_400, 43, seed=1))
    print(f"(a) problem: {mu.shape[0]} x {mu.shape[1]}, {mu.nnz:,} pairs")
    t_a, res = timed(lambda: allocate(mu, E, K), repeat=3)
    print(f"(a) balance sparse        {fmt(t_a)}  iterations {res.iterations}, violation "
          f"{res.max_violation:.1e}, schools full "
          f"{int(np.sum(res.destination_factors < 1))}/{mu.shape[1]}, origins exhausted "
          f"{int(np.sum(res.origin_factors < 1))}/{mu.shape[0]}, placed {res.placed:,.0f}")
    t_seq, seq = timed(lambda: allocate(mu, E, K, method="sequential", seed=0), repeat=2)
    print(f"    baseline sequential   {fmt(t_seq)}  placed {seq.placed:,.0f}; "
          f"ratio sequential/balance {t_seq[0] / t_a[0]:.1f}")
    dense = mu.toarray()
    t_c, res_c = timed(lambda: allocate(dense, E, K), repeat=3)
    print(f"(c) balance dense         {fmt(t_c)}  iterations {res_c.iterations}, "
          f"max |dense - sparse| {np.abs(res_c.flows - res.flows.toarray()).max():.1e}")
    t_f, (_, _, it_f) = timed(lambda: furness_dense(dense, E, K), repeat=3)
    print(f"    baseline Furness dense {fmt(t_f)}  iterations {it_f}; ratio "
          f"Furness/balance-dense {t_f[0] / t_c[0]:.1f}, Furness-dense/balance-sparse "
          f"{t_f[0] / t_a[0]:.1f}")
    mu_h, E_h, K_h = make_hard_problem()
    t_h, res_h = timed(lambda: allocate(mu_h, E_h, K_h), repeat=3)
    t_hs, (_, _, it_hs) = timed(lambda: furness_sparse(mu_h, E_h, K_h), repeat=3)
    print(f"(a') both sides bind: balance sparse {fmt(t_h)}, {res_h.iterations} iterations "
          f"(schools full {int(np.sum(res_h.destination_factors < 1))}, origins exhausted "
          f"{int(np.sum(res_h.origin_factors < 1))}); plain Furness sparse {fmt(t_hs)}, "
          f"{it_hs} iterations; ratio {t_hs[0] / t_h[0]:.1f}")

    def draws():
        return [res.to_integer(s) for s in range(100)]

    t_d, ints = timed(draws)
    tot = np.array([x.sum() for x in ints])
    plan = res._cache["plan"]
    print(f"(d) 100 integer draws     {fmt(t_d)}  ({1000 * t_d[0] / 100:.1f} ms/draw wall, "
          f"{1000 * t_d[1] / 100:.1f} ms CPU; first draw builds the plan); placed mean "
          f"{tot.mean():,.1f} sd {tot.std():.1f} vs fractional {res.placed:,.1f}; core "
          f"{int((plan.c_real >= 0).sum()):,} pairs, grouped {plan.g_edges.size:,}, "
          f"independent {plan.indep.size:,}")
    mu_e, E_e, K_e = make_problem(12_000, 4_000, 125, seed=2)
    bench_fresh_draw(allocate(mu_e, E_e, K_e), f"{mu_e.nnz:,} pairs")
    if not skip_national:
        _, (mu_n, E_n, K_n) = timed(lambda: make_problem(40_000, 13_000, 125, seed=2))
        print(f"(b) problem: {mu_n.shape[0]} x {mu_n.shape[1]}, {mu_n.nnz:,} pairs")
        t_b, res_b = timed(lambda: allocate(mu_n, E_n, K_n), repeat=2)
        print(f"(b) balance sparse        {fmt(t_b)}  iterations {res_b.iterations}, "
              f"violation {res_b.max_violation:.1e}, schools full "
              f"{int(np.sum(res_b.destination_factors < 1))}/{mu_n.shape[1]}, origins "
              f"exhausted {int(np.sum(res_b.origin_factors < 1))}/{mu_n.shape[0]}")
        t_bh, (_, _, it_bh) = timed(lambda: furness_sparse(mu_n, E_n, K_n), repeat=2)
        print(f"    baseline Furness sparse {fmt(t_bh)}  iterations {it_bh}; ratio "
              f"Furness/balance {t_bh[0] / t_b[0]:.2f}")
        t_bs, _ = timed(lambda: allocate(mu_n, E_n, K_n, method="sequential", seed=0))
        print(f"    baseline sequential   {fmt(t_bs)}  ratio sequential/balance "
              f"{t_bs[0] / t_b[0]:.1f}")
        bench_fresh_draw(res_b, f"(b) {mu_n.nnz:,} pairs", draws=1)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-national", action="store_true")
    p.add_argument("--only-draws", action="store_true", help="only (f), the whole-draw timing")
    main(**vars(p.parse_args()))
