"""What a scenario costs, pesos per school year, and what each peso buys.

The cost model (docs/design.md, "Cost model")
---------------------------------------------
ESC pays every grantee placed in a participating private school the amount of the
school's location tier (``subsidy_rates``: the Grade 7 amount, since the modelled
placements are Grade 7 entrants), plus whatever the scenario adds. With ``a_j`` the
school's amount today, a scenario's extra amount on pair (i, j) is
``Δ_ij = s_j + g_i`` (school part: uniform and tier increases; origin part: targeted
increases, :func:`studentflow.scenarios.levers.subsidy_parts`), so with whole learners
``W_ij`` placed in one Monte Carlo draw

    cost = Σ_ij W_ij (a_j + Δ_ij) = Σ_j P_j (a_j + s_j) + Σ_i R_i g_i

(``P_j`` placed at school j, ``R_i`` placed from origin i): school and origin totals
suffice. Against the baseline scenario (the status quo, same draw; ``P⁰``, ``R⁰`` its
placements, ``Δ⁰`` its extra amount):

    cost − cost⁰ = (Δ − Δ⁰)·P⁰          inframarginal: paid to learners placed anyway
                 + the rest              new placements (and learners moved between schools)

(for one school ``(a + Δ)(P⁰ + ΔP) − a P⁰ = Δ P⁰ + (a + Δ) ΔP``). Added or moved slots
cost nothing by themselves: they cost the amount paid for the learners who fill them,
reported as ``cost_added_slots`` = Σ_j (a_j + s_j) · max(0, P_j − K⁰_j), the placements
beyond the baseline's slots at each school.

What it buys: ``vs_baseline`` more learners placed, and ``relieved_congested_vs_baseline``
more learners relieved from congested public JHS, a learner counting while the school is
above its seats (``aisle_after`` of the baseline minus the scenario's: learners above JHS
seats removed). ``pesos_per_added_learner`` and ``pesos_per_relieved`` divide the added
cost by those gains. Their mean in the scenario table is the ratio of the means; their
interval holds the 2.5 and 97.5 percentiles of the per-draw ratios, a draw without a gain
counting as an infinite price (so an upper bound of ``inf`` says that in more than 2.5 %
of the draws the scenario bought nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["COST_METRICS", "RATIO_METRICS", "BaselineDraws", "draw_costs", "relief_costs",
           "summarise_ratios", "subsidy_paid"]

#: Per-draw cost metrics, summarised into the scenario table as ``<metric>_mean/_lo/_hi``.
COST_METRICS: dict[str, str] = {
    "cost": "ESC subsidy paid for the placed learners, pesos per school year",
    "cost_vs_baseline": "cost minus the baseline scenario's cost (same draw), pesos",
    "cost_inframarginal": "part of cost_vs_baseline paid to learners the baseline places anyway, pesos",
    "cost_new_placements": "cost_vs_baseline minus cost_inframarginal, pesos",
    "cost_added_slots": "paid for learners in slots beyond the baseline's at each school, pesos",
    "relieved_congested": "learners relieved from congested public JHS (aisle learners removed)",
    "relieved_congested_vs_baseline": "relieved_congested minus the baseline's (same draw), learners",
    "pesos_per_added_learner": "cost_vs_baseline / vs_baseline, pesos per additional learner placed",
    "pesos_per_relieved": "cost_vs_baseline / relieved_congested_vs_baseline, pesos per learner relieved",
}
#: ratio metrics: numerator, denominator (per draw)
RATIO_METRICS: dict[str, tuple[str, str]] = {
    "pesos_per_added_learner": ("cost_vs_baseline", "vs_baseline"),
    "pesos_per_relieved": ("cost_vs_baseline", "relieved_congested_vs_baseline"),
}


def subsidy_paid(school_placed, origin_placed, amount, school_extra, origin_extra) -> np.ndarray:
    """Pesos paid per draw: ``P (a + s) + R g`` (see the module text).

    Parameters
    ----------
    school_placed, origin_placed : numpy.ndarray
        Draws × schools and draws × origins, learners.
    amount, school_extra : numpy.ndarray
        Per school: today's ESC amount and the scenario's school part of the increase, pesos.
    origin_extra : numpy.ndarray
        Per origin: the scenario's origin part of the increase, pesos.
    """
    out = np.asarray(school_placed, dtype=float) @ (np.asarray(amount, float) + np.asarray(school_extra, float))
    if np.any(origin_extra):
        out = out + np.asarray(origin_placed, dtype=float) @ np.asarray(origin_extra, float)
    return out


@dataclass(frozen=True)
class BaselineDraws:
    """What the cost of every other scenario is measured against: the baseline's
    per-draw placements (learners), capacities (slots) and extra amounts (pesos)."""

    school_placed: np.ndarray
    origin_placed: np.ndarray
    capacities: np.ndarray
    school_extra: np.ndarray
    origin_extra: np.ndarray
    paid: np.ndarray


def draw_costs(school_placed, origin_placed, amount, school_extra, origin_extra, capacities,
               base: BaselineDraws | None) -> tuple[dict, BaselineDraws]:
    """Per-draw cost metrics of one scenario (pesos) and the baseline to compare with.

    ``base`` None means this scenario is the baseline: it is returned as the baseline
    and its costs versus itself are zero.

    Returns
    -------
    (dict, BaselineDraws)
        ``cost``, ``cost_vs_baseline``, ``cost_inframarginal``, ``cost_new_placements``,
        ``cost_added_slots`` (arrays over draws, pesos), and the baseline.
    """
    amount = np.asarray(amount, dtype=float)
    school_extra = np.asarray(school_extra, dtype=float)
    origin_extra = np.asarray(origin_extra, dtype=float)
    paid = subsidy_paid(school_placed, origin_placed, amount, school_extra, origin_extra)
    if base is None:
        base = BaselineDraws(np.asarray(school_placed), np.asarray(origin_placed),
                             np.asarray(capacities, dtype=float), school_extra, origin_extra, paid)
    inframarginal = base.school_placed.astype(float) @ (school_extra - base.school_extra)
    if np.any(origin_extra != base.origin_extra):
        inframarginal = inframarginal + base.origin_placed.astype(float) @ (origin_extra - base.origin_extra)
    beyond = np.clip(np.asarray(school_placed, dtype=float) - base.capacities, 0, None)
    added = paid - base.paid
    return {
        "cost": paid,
        "cost_vs_baseline": added,
        "cost_inframarginal": inframarginal,
        "cost_new_placements": added - inframarginal,
        "cost_added_slots": beyond @ (amount + school_extra),
    }, base


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den per draw; +inf where den <= 0 (nothing bought)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    return np.divide(num, den, out=np.full(num.shape, np.inf), where=den > 0)


def relief_costs(per_draw: pd.DataFrame, baseline: str, aisle_before: float | None) -> pd.DataFrame:
    """``per_draw`` with relief from congested JHS and the price ratios added.

    Needs ``cost_vs_baseline`` and ``vs_baseline``; relief columns only when
    ``aisle_after`` is there (a bundle was given). Rows are scenario × draw, every
    scenario with the same draws in the same order (as :func:`run_scenarios` makes them).
    """
    out = per_draw.copy()
    is_base = (out["scenario"] == baseline).to_numpy()
    n_scen = int(out["scenario"].nunique())
    if "aisle_after" in out and aisle_before is not None:
        out["relieved_congested"] = float(aisle_before) - out["aisle_after"].to_numpy(dtype=float)
        base = out.loc[is_base, "relieved_congested"].to_numpy()
        out["relieved_congested_vs_baseline"] = out["relieved_congested"] - np.tile(base, n_scen)
    for name, (num, den) in RATIO_METRICS.items():
        if den in out:
            ratio = _ratio(out[num].to_numpy(), out[den].to_numpy())
            ratio[is_base] = np.nan
            out[name] = ratio
    return out


def summarise_ratios(table: pd.DataFrame, per_draw: pd.DataFrame) -> pd.DataFrame:
    """Ratio metrics of the scenario table: mean = ratio of the means (NaN when the
    mean gain is not positive), lo/hi = percentiles of the per-draw ratios (inf allowed)."""
    out = table.copy()
    for name, (num, den) in RATIO_METRICS.items():
        if name not in per_draw:
            continue
        means, los, his = [], [], []
        for scen in out["scenario"]:
            g = per_draw[per_draw["scenario"] == scen]
            r = g[name].to_numpy(dtype=float)
            n_mean, d_mean = g[num].mean(), g[den].mean()
            means.append(n_mean / d_mean if d_mean > 0 else np.nan)
            if np.isnan(r).all():
                los.append(np.nan), his.append(np.nan)
                continue
            big = np.finfo(float).max
            lo, hi = np.percentile(np.where(np.isinf(r), big, r), [2.5, 97.5], method="nearest")
            los.append(np.inf if lo >= big else lo), his.append(np.inf if hi >= big else hi)
        out[f"{name}_mean"], out[f"{name}_lo"], out[f"{name}_hi"] = means, los, his
    return out
