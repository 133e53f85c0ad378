"""Benchmark of studentflow.allocation (not run by the tests).

Prints, in one run on one machine, the time to reach tol = 1e-9 for

(a) study size: ~7,600 origins x 1,400 ESC schools, ~325,000 candidate pairs, sparse;
(b) national size: 40,000 origins x 13,000 schools, ~5,000,000 pairs, sparse;
(c) problem (a) as a dense array;
(d) 100 integer draws (``Allocation.to_integer``) at size (a);

with baselines run in the same process: the study's ``sequential`` rule and a plain
dense Furness (alternating) iteration in numpy, and the ratios against them.

Problems have realistic structure: origins and schools scattered over a region with
denser clusters, each origin's candidate schools are its nearest ~40 (national: ~125),
``mu`` is lognormal times a distance decay, pools are 70-140 learners, and capacities
are set so that about half of the schools bind.

Usage: ``PYTHONPATH=. python scripts/bench_allocation.py [--skip-national]``
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from studentflow.allocation import allocate


def make_problem(n_origins: int, n_schools: int, k: int, seed: int = 0):
    """Realistic synthetic allocation problem.

    Returns ``(mu, pools, capacities)`` with ``mu`` a CSR array (learners), about
    ``n_origins * k`` candidate pairs.
    """
    rng = np.random.default_rng(seed)
    n_cl = max(5, n_schools // 50)
    centres = rng.uniform(0, 100, size=(n_cl, 2))

    def points(n):
        c = centres[rng.integers(0, n_cl, n)]
        return c + rng.normal(scale=3.0, size=(n, 2))

    org, sch = points(n_origins), points(n_schools)
    kk = rng.integers(int(0.6 * k), int(1.4 * k) + 1, n_origins)
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


def main(skip_national: bool = False) -> None:
    print(f"studentflow allocation benchmark (tol 1e-9); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
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


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-national", action="store_true")
    main(**vars(p.parse_args()))
