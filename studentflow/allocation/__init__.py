"""Allocation: expected flows μ, origin pools and destination slots → placements.

numpy/scipy only (no pandas, no geopandas), so programs can import the allocator alone.

- :func:`allocate` / :class:`Allocation` (:mod:`.solve`): the unique doubly constrained
  solution ``T = a μ b`` (or the study's sequential depletion), with capacity duals.
- :func:`round_flows` (:mod:`.integer`): integer placements whose mean is the fractional
  solution and whose margins respect pools and slots.

Internals: :mod:`.balance` (Anderson-accelerated balancing), :mod:`.plan` and
:mod:`.kernels` (the integer rounding's plan and optional numba kernels).
"""

from studentflow.allocation.solve import Allocation, allocate
from studentflow.allocation.integer import round_flows

__all__ = ["Allocation", "allocate", "round_flows"]
