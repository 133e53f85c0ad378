"""The one rule by which a plan's cost is "within the budget" (``--budget-quantile``).

A plan's cost is known per Monte Carlo draw (pesos per school year against the status
quo). With ``quantile = Q`` (a number in (0, 1]) the plan is within ``budget`` when its
cost is at most the budget in at least a share Q of the draws; equivalently, when the
cost's Q-quantile over the draws taken as the smallest cost ``c`` with at least Q of
the draws at or below ``c`` (numpy's ``method="inverted_cdf"``) is at most the budget.
With ``quantile = "mean"`` the plan is within the budget when its mean cost is (the
optimizer's rule before ``--budget-quantile``). Every place that checks a plan's cost
against the budget calls :func:`within_budget`; :func:`budget_cost` is the figure it
compares.
"""

from __future__ import annotations

import numpy as np

from studentflow.errors import DataError

__all__ = ["DEFAULT_QUANTILE", "within_budget", "budget_cost", "parse_quantile", "quantile_label"]

#: ``--budget-quantile`` when not given: the cost stays within the budget in 95 % of draws.
DEFAULT_QUANTILE = 0.95


def parse_quantile(value) -> float | str:
    """``"mean"`` or a number in (0, 1] (a string such as ``"0.9"`` is read as one).

    Raises
    ------
    DataError
        Anything else, naming ``--budget-quantile``.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "mean":
            return "mean"
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"--budget-quantile: expected 'mean' or a number in (0, 1], got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < float(value) <= 1:
        raise DataError(f"--budget-quantile: expected 'mean' or a number in (0, 1], got {value!r}")
    return float(value)


def budget_cost(cost_per_draw, quantile=DEFAULT_QUANTILE) -> float:
    """The cost the budget is held against, pesos: the mean over draws (``"mean"``), or
    the ``quantile`` of the draws' costs (``inverted_cdf``: a cost some draw has). An
    empty plan (no draws recorded) costs 0."""
    cost = np.asarray(cost_per_draw, dtype=float)
    if cost.size == 0:
        return 0.0
    q = parse_quantile(quantile)
    if q == "mean":
        return float(cost.mean())
    return float(np.quantile(cost, q, method="inverted_cdf"))


def within_budget(cost_per_draw, budget: float, quantile=DEFAULT_QUANTILE) -> bool:
    """True when a plan costing ``cost_per_draw`` (pesos, one value per draw) is within
    ``budget`` pesos under the rule of ``quantile`` (see the module text)."""
    return budget_cost(cost_per_draw, quantile) <= budget


def quantile_label(quantile) -> str:
    """"mean" or e.g. "95th percentile", for summaries and the report."""
    q = parse_quantile(quantile)
    return "mean" if q == "mean" else f"{100 * q:g}th percentile"
