"""Where ESC slots can be added, in what lots, and what reserved but unused slots cost.

Three levers-file options (:mod:`studentflow.optimize.levers`):

``max_added_slots``
    Most slots added at one school: ``"current"`` (default: at most its current slots,
    i.e. at most doubling them), ``"seats"`` (only its free seats bind) or a number of
    slots. In every case a school gets slots only where it has free JHS seats (seats
    minus enrolment in the bundle's schools table; a private school's seats come from
    the ``private_seats`` source, imputed from its enrolment where missing), and at most
    that many: the cap is ``min(free seats, current slots)`` by default.
``min_lot``
    Fewest slots added at a school that gets any (default 5): a school whose cap is
    below it gets none, and its first step adds at least this many.
``unused_slot_share``
    Share of the school's ESC amount (pesos per learner) paid for each added slot left
    unused in a draw (default 0: only filled slots are paid, as for today's billed
    slots; 1: a reserved slot costs as much as a filled one).
"""

from __future__ import annotations

import numpy as np

__all__ = ["added_slot_cap", "lot_floor", "reserved_cost"]


def added_slot_cap(current, free_seats, max_added="current", min_lot: float = 5.0) -> np.ndarray:
    """Most slots that may be added per school (whole slots; 0: none).

    Parameters
    ----------
    current : array-like
        Slots per school in the status quo, learners.
    free_seats : array-like
        JHS seats minus JHS enrolment per school (missing or negative: 0), seats.
    max_added : "current", "seats" or float
        See the module text.
    min_lot : float
        Schools whose cap is below it get 0.

    Examples
    --------
    >>> added_slot_cap([10, 10, 10, 0], [3, 25, 8, 40], "current", 5)
    array([ 0., 10.,  8.,  0.])
    """
    current = np.asarray(current, dtype=float)
    free = np.floor(np.clip(np.nan_to_num(np.asarray(free_seats, dtype=float)), 0, None) + 1e-9)
    if isinstance(max_added, str):
        other = current if max_added == "current" else np.full(current.shape, np.inf)
    else:
        other = np.full(current.shape, float(max_added))
    cap = np.floor(np.minimum(free, other) + 1e-9)
    return np.where(cap >= min_lot, cap, 0.0)


def lot_floor(problem, state, schools: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Slot step amounts raised to the problem's ``min_lot`` at schools that have none
    added yet (0 where the room left is below it); other schools unchanged."""
    lot = float(getattr(problem, "min_lot", 0.0) or 0.0)
    if lot <= 0 or schools.size == 0:
        return amounts
    first = state.capacities[schools] <= problem.capacities[schools] + 1e-9
    room = np.floor(problem.slot_limit[schools] - state.capacities[schools] + 1e-9)
    raised = np.where(room >= lot, np.maximum(amounts, lot), 0.0)
    return np.where(first & (amounts > 0), raised, amounts)


def reserved_cost(problem, state, school: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Pesos per draw for added slots left unused: ``share × Σ_j price_j × min(added_j,
    empty_j)``, with ``empty_j`` the slots of school j not filled in the draw (``school``
    draws × schools placements, ``price`` pesos per learner per school)."""
    share = float(getattr(problem, "unused_slot_share", 0.0) or 0.0)
    if share <= 0:
        return np.zeros(school.shape[0])
    added = np.clip(state.capacities - problem.capacities, 0, None)
    if not added.any():
        return np.zeros(school.shape[0])
    empty = np.clip(state.capacities[None, :] - school, 0, None)
    return share * (np.minimum(added[None, :], empty) @ price)
