"""Compiled rounding kernels (numba) against the numpy code they replace, and the
bit-level rounding's defining conditions.

The kernels must not change a single draw: the plan (every field) and the integer
matrices are compared with the numpy path (``allocation_plan.COMPILED = False``) on
problems where freeing leaves a core, mixed vertices (some edges freed, some not) and
ties in the sort keys.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import studentflow.allocation.plan as apl
from studentflow.allocation import allocate
from studentflow.allocation.integer import _dyadic, round_flows

pytest.importorskip("numba")


@pytest.fixture(autouse=True)
def compiled_at_every_size(monkeypatch):
    """The kernels on these small problems too (by default only from 100,000 pairs)."""
    monkeypatch.setattr(apl, "MIN_PAIRS", 0)


def problem(seed, n, m, k, bind=0.8, ties=False):
    """Sparse problem with ~k candidate schools per origin where both sides bind."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), k)
    cols = rng.integers(0, m, rows.size)
    vals = rng.lognormal(0, 1, rows.size)
    if ties:  # repeated values: equal fractional parts, equal sort keys
        vals = np.round(vals * 4) / 4 + 0.125
    mu = sp.csr_array((vals, (rows, cols)), shape=(n, m))
    E = np.floor(np.asarray(mu.sum(1)).ravel() * bind * rng.uniform(0.5, 1.5, n))
    K = np.floor(np.asarray(mu.sum(0)).ravel() * bind * rng.uniform(0.5, 1.5, m))
    return allocate(mu, E, K)


def plans_and_draws(res, seeds):
    """(plan, draws) with the compiled kernels and with the numpy path."""
    out = []
    for compiled in (True, False):
        apl.COMPILED = compiled
        try:
            cache = {}
            draws = [round_flows(res.flows, res.pools, res.capacities, s, cache=cache)
                     for s in seeds]
            out.append((cache["plan"], draws))
        finally:
            apl.COMPILED = True
    return out


def assert_same(res, seeds):
    (p1, d1), (p0, d0) = plans_and_draws(res, seeds)
    for name in p0.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(p1, name), getattr(p0, name), err_msg=name)
    for a, b in zip(d1, d0):
        assert a.dtype == b.dtype == np.int64
        assert (a != b).nnz == 0
    return p0


@pytest.mark.parametrize("ties", [False, True])
def test_compiled_plan_and_draws_equal_numpy(ties):
    res = problem(1, 1500, 300, 40, ties=ties)
    plan = assert_same(res, range(4))
    # the case the kernels are for: a large core, and both freed and grouped edges
    assert (plan.c_real >= 0).sum() > 1000
    assert plan.g_edges.size > 1000 and plan.indep.size > 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 60), m=st.integers(1, 25),
       k=st.integers(1, 12), bind=st.sampled_from([0.5, 0.9, 1.5, 3.0]), ties=st.booleans())
def test_property_compiled_equals_numpy(seed, n, m, k, bind, ties):
    assert_same(problem(seed, n, m, k, bind, ties), [seed % 7, 11])


def test_dyadic_kernel_preserves_vertex_totals_and_is_binary():
    """Independent check of the compiled bit-level rounding: every core vertex total
    (a multiple of 2^32) is kept exactly and each edge ends at 0 or 1 learner."""
    res = problem(4, 800, 200, 40)
    cache = {}
    round_flows(res.flows, res.pools, res.capacities, 0, cache=cache)
    plan = cache["plan"]
    order = np.argsort(plan.c_right, kind="stable")
    np.testing.assert_array_equal(order, plan.c_ordR)
    for seed in range(3):
        z = _dyadic(plan, np.random.default_rng(seed))
        assert set(np.unique(z)) <= {0, 1}
        tot0 = np.bincount(plan.c_right, weights=plan.c_w0.astype(float))
        tot1 = np.bincount(plan.c_right, weights=z.astype(float)) * 2.0**32
        np.testing.assert_array_equal(tot0, tot1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 3000), k=st.integers(1, 8),
       n_binary=st.integers(0, 8), compiled=st.booleans())
def test_compact_design_gives_the_float_designs_bits(seed, n, k, n_binary, compiled):
    """The compact design (0/1 columns as uint8) gives exactly the linear predictor of
    the float64 design, column by column, on the numpy path and on the compiled kernel;
    and it agrees with X @ beta up to rounding."""
    from studentflow.scenarios.draws import CompactDesign, compact_columns, linear_predictor

    rng = np.random.default_rng(seed)
    cols = [rng.normal(0, 3, n) for _ in range(k)] + [
        (rng.random(n) < rng.random()).astype(float) for _ in range(n_binary)]
    X = np.column_stack([cols[i] for i in rng.permutation(len(cols))])  # binary ones anywhere
    off = rng.normal(0, 1, n)
    beta = rng.normal(0, 2, X.shape[1])
    D = CompactDesign.from_columns(compact_columns(X, range(X.shape[1])))
    assert D.binary.dtype == np.uint8 and D.binary.shape[0] >= n_binary
    assert D.floats.nbytes + D.binary.nbytes <= X.nbytes
    ref = linear_predictor(np.asfortranarray(X), off, beta)  # the float64 design
    apl.COMPILED = compiled
    try:
        got = linear_predictor(D, off, beta)
    finally:
        apl.COMPILED = True
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(got, off + X @ beta, rtol=1e-9, atol=1e-9)
