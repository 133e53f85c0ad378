"""Per-draw totals of ``scenario_draws.simulate_draws`` against scipy's own sums."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.scenarios.draws import _new_placed, _whole_sums


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 30), m=st.integers(1, 20),
       density=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_totals_equal_sparse_sums(seed, n, m, density):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n, m)) < density) * rng.integers(0, 50, (n, m))
    keep = (rng.random((n, m)) < density) | (dense > 0)  # stored zeros too
    rows, cols = np.nonzero(keep)
    whole = sp.csr_matrix((dense[rows, cols].astype(np.int64), (rows, cols)), shape=(n, m))
    r, c = _whole_sums(whole)
    assert r.dtype == c.dtype == np.int64
    np.testing.assert_array_equal(r, np.asarray(whole.sum(axis=1)).ravel())
    np.testing.assert_array_equal(c, np.asarray(whole.sum(axis=0)).ravel())
    # new-pair mask with the same structure (the fast path) and with another one
    is_new = (rng.random(whole.nnz) < 0.5).astype(float)
    same = sp.csr_matrix((is_new, whole.indices, whole.indptr), shape=(n, m))
    other = sp.csr_matrix(rng.random((n, m)) < 0.5, dtype=float)
    for mask in (same, other):
        assert _new_placed(whole, mask) == float(whole.multiply(mask).sum())
