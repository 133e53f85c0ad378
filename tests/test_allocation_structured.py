"""A scenario's draws on its fixed sparse structure (``allocation.structured``,
``integer.round_data`` and the structured draw of ``scenarios.draws``) against the
general functions: the same allocation, rounding and draw outcome, bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import studentflow.allocation.plan as apl
from studentflow.allocation import allocate, round_flows
from studentflow.allocation.integer import round_data, structure_positions
from studentflow.allocation.structured import allocate_structured, is_canonical
from studentflow.scenarios.draws import DrawWork, simulate_draws


def problem(seed, n, m, density, bind):
    """Canonical CSR expected flows (rows sorted, distinct sorted columns) whose pools
    and capacities bind on about ``bind`` of their totals; some zero pools and slots."""
    rng = np.random.default_rng(seed)
    keep = rng.random((n, m)) < density
    rows, cols = np.nonzero(keep)
    mu = sp.csr_array((rng.lognormal(0, 1.5, rows.size), (rows, cols)), shape=(n, m))
    E = np.floor(np.asarray(mu.sum(1)).ravel() * bind * rng.uniform(0.3, 1.5, n))
    K = np.floor(np.asarray(mu.sum(0)).ravel() * bind * rng.uniform(0.3, 1.5, m))
    E[rng.random(n) < 0.1] = 0
    K[rng.random(m) < 0.1] = 0
    return mu, E, K


def same_allocation(a, b):
    for f in dataclasses.fields(a):
        if f.name in ("flows", "_cache"):
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert np.array_equal(x, y, equal_nan=isinstance(x, (float, np.ndarray))), f.name
    fa, fb = sp.csr_array(a.flows), sp.csr_array(b.flows)
    assert np.array_equal(fa.data, fb.data) and np.array_equal(fa.indices, fb.indices)
    assert np.array_equal(fa.indptr, fb.indptr)


@pytest.mark.parametrize("compiled", [True, False])
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 40), m=st.integers(1, 25),
       density=st.sampled_from([0.05, 0.3, 0.9]), bind=st.sampled_from([0.5, 0.9, 2.0]))
def test_structured_allocation_and_rounding_equal_the_general_ones(compiled, seed, n, m, density, bind):
    before = apl.MIN_PAIRS
    apl.MIN_PAIRS = 0 if compiled else 10**9  # the compiled kernels or the numpy code
    try:
        _check_allocation_and_rounding(seed, n, m, density, bind)
    finally:
        apl.MIN_PAIRS = before


def _check_allocation_and_rounding(seed, n, m, density, bind):
    mu, E, K = problem(seed, n, m, density, bind)
    assert is_canonical(mu.indices, mu.indptr, mu.shape)
    ref = allocate(mu, E, K)
    got = allocate_structured(mu.data, mu.indices, mu.indptr, mu.shape, E, K)
    same_allocation(got, ref)
    rows, cols = structure_positions(mu.indices, mu.indptr, mu.shape)
    for s in (0, 7):
        whole = round_flows(ref.flows, ref.pools, ref.capacities, s)
        data = round_data(got.flows.data, rows, cols, mu.shape, got.pools, got.capacities, s)
        assert data.dtype == np.int64
        np.testing.assert_array_equal(data, sp.csr_array(whole).data)


def test_bad_expected_flows_are_named_as_allocate_names_them():
    mu, E, K = problem(3, 10, 6, 0.5, 0.9)
    data = mu.data.copy()
    data[4] = np.nan
    with pytest.raises(ValueError, match="expected flows must be finite"):
        allocate_structured(data, mu.indices, mu.indptr, mu.shape, E, K)
    with pytest.raises(ValueError, match="pools has length"):
        allocate_structured(mu.data, mu.indices, mu.indptr, mu.shape, E[:-1], K)


def test_canonical_structure_is_recognised():
    mu, _, _ = problem(5, 12, 9, 0.5, 0.9)
    ind, ptr = mu.indices, mu.indptr
    assert is_canonical(ind, ptr, mu.shape)
    assert is_canonical(np.zeros(0, np.int32), np.zeros(4, np.int64), (3, 2))
    row = int(np.flatnonzero(np.diff(ptr) >= 2)[0])
    swapped = ind.copy()
    a = ptr[row]
    swapped[a], swapped[a + 1] = swapped[a + 1], swapped[a]  # unsorted within a row
    assert not is_canonical(swapped, ptr, mu.shape)
    dup = ind.copy()
    dup[a + 1] = dup[a]  # a duplicate pair
    assert not is_canonical(dup, ptr, mu.shape)
    assert not is_canonical(ind, ptr, (mu.shape[0], int(ind.max())))  # a column out of range
    assert not is_canonical(ind, ptr[:-1], mu.shape)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 30), m=st.integers(1, 20),
       pool_draws=st.booleans(), keep_pairs=st.booleans(), compiled=st.booleans())
def test_structured_draw_equals_the_general_path(seed, n, m, pool_draws, keep_pairs, compiled):
    """The structured draw is taken for the default allocator; a wrapper of ``allocate``
    (the same results through the general path) must give every outcome field the same,
    with the compiled kernels (rounding, sums) and without."""
    before = apl.MIN_PAIRS
    apl.MIN_PAIRS = 0 if compiled else 10**9
    try:
        _check_draws(seed, n, m, pool_draws, keep_pairs)
    finally:
        apl.MIN_PAIRS = before


def _check_draws(seed, n, m, pool_draws, keep_pairs):
    rng = np.random.default_rng(seed)
    mu, E, K = problem(seed, n, m, 0.4, 0.8)
    k = mu.nnz
    X = rng.normal(size=(k, 3))
    order = rng.permutation(k)  # pair row order[p] is data position p
    rows_of = np.repeat(np.arange(n), np.diff(mu.indptr))
    is_new = (rng.random(k) < 0.5).astype(float)
    work = DrawWork(
        name="s", method="balance", design=(X[np.argsort(order)], np.log(mu.data)[np.argsort(order)]),
        predict=None, order=order, indices=mu.indices.astype(np.int32), indptr=mu.indptr.astype(np.int64),
        shape=mu.shape, pools=E, caps=K, new_mask=sp.csr_matrix((is_new, mu.indices, mu.indptr), shape=mu.shape),
        keep_pairs=keep_pairs, pool_draws=np.floor(rng.uniform(0, 2, (3, n)) * E[None, :]) if pool_draws else None)
    assert work.structure is not None and np.array_equal(work.structure[0], rows_of)
    betas = rng.normal(scale=0.3, size=(4, 3))
    seeds = [11, 12, 13, 14]

    def general(*a, **kw):
        return allocate(*a, **kw)

    fast = simulate_draws(work, betas, range(4), seeds)
    slow = simulate_draws(work, betas, range(4), seeds, general)
    for a, b in zip(fast, slow):
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if x is None:
                assert y is None
                continue
            assert np.asarray(x).dtype == np.asarray(y).dtype, f.name
            assert np.array_equal(x, y), f.name
