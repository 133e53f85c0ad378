"""One scenario's draws on a fixed sparse structure: allocation and rounding without
rebuilding, copying or re-checking the origin × school matrix (numpy/scipy only).

Every draw of a scenario allocates expected flows on the same canonical CSR structure
(rows sorted, column indices sorted and distinct within each row); only the data change.
:func:`allocate_structured` is :func:`studentflow.allocation.solve.allocate`
(``method="balance"``) for such data, and :func:`studentflow.allocation.integer.round_data`
rounds them; both give the results of the general functions bit for bit
(``tests/test_allocation_structured.py``), without the per-draw copies of the structure,
its canonical-format checks and the sparse containers around the rounding.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from studentflow.allocation.solve import Allocation, _balanced, _check_vector, allocate

__all__ = ["allocate_structured", "is_canonical"]


def is_canonical(indices: np.ndarray, indptr: np.ndarray, shape) -> bool:
    """Whether ``(indices, indptr)`` is a canonical CSR structure of ``shape``: ``indptr``
    non-decreasing from 0 to ``indices.size``, column indices in ``[0, shape[1])``,
    strictly increasing within each row."""
    indices, indptr = np.asarray(indices), np.asarray(indptr)
    if indptr.shape != (shape[0] + 1,) or indptr[0] != 0 or indptr[-1] != indices.size:
        return False
    if (np.diff(indptr) < 0).any():
        return False
    if indices.size == 0:
        return True
    if indices.min() < 0 or indices.max() >= shape[1]:
        return False
    step = np.diff(indices.astype(np.int64)) > 0
    step[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < indices.size)] - 1] = True  # row starts
    return bool(step.all())


def allocate_structured(data, indices, indptr, shape, pools, capacities, *, tol: float = 1e-9,
                        max_iter: int = 10_000) -> Allocation:
    """:func:`~studentflow.allocation.solve.allocate` (``method="balance"``) of the expected
    flows ``csr_array((data, indices, indptr), shape)`` (learners), whose structure the
    caller has checked to be canonical (:func:`is_canonical`, once per structure).

    The same allocation, bit for bit, as ``allocate`` on that matrix; the flows (a CSR
    array) share ``indices`` and ``indptr`` instead of copies.  Negative or non-finite
    ``data`` go through ``allocate``, which names the first bad entry.
    """
    data = np.asarray(data, dtype=float)
    mu = sp.csr_array((data, indices, indptr), shape=shape, copy=False)
    if data.size and not (data.min() >= 0 and np.isfinite(data.max())):
        return allocate(mu, pools, capacities, tol=tol, max_iter=max_iter)
    if not (np.isfinite(tol) and tol > 0) or int(max_iter) < 1:
        return allocate(mu, pools, capacities, tol=tol, max_iter=max_iter)  # its errors
    n, m = mu.shape
    E = _check_vector(pools, "pools", n, "rows (origins)")
    K = _check_vector(capacities, "capacities", m, "columns (destinations)")
    return _balanced("sparray", mu, E, K, tol, max_iter, share=True)
