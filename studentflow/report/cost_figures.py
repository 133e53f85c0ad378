"""Figures of what pesos buy: scenario cost-effectiveness and the optimizer's frontier.

Like :mod:`studentflow.report.figures`, each function returns a matplotlib Figure built
without pyplot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.report.figures import COLORS, _figure, _styled

__all__ = ["cost_effectiveness_plot", "frontier_plot"]


def _err(mean, lo, hi):
    mean, lo, hi = (np.asarray(v, dtype=float) for v in (mean, lo, hi))
    return np.vstack([np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)])


def _label_order(x, y, names):
    """(name, x, y) sorted by x, so that neighbours on the cost axis alternate their labels."""
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    x, y, names = np.asarray(x, dtype=float), np.asarray(y, dtype=float), list(names)
    return [(names[i], x[i], y[i]) for i in order]


@_styled
def cost_effectiveness_plot(result):
    """Learners relieved from congested public JHS against added cost, one point per
    scenario (both versus the baseline, same draws), with 95 % intervals on both axes.

    Parameters
    ----------
    result : ScenarioResult
        With the cost columns (``cost_vs_baseline_*``) and a bundle's relief columns
        (``relieved_congested_vs_baseline_*``; else learners placed are shown).
    """
    t = result.table
    y = "relieved_congested_vs_baseline" if "relieved_congested_vs_baseline_mean" in t else "vs_baseline"
    fig, ax = _figure(figsize=(7.5, 4.8))
    x_m = t["cost_vs_baseline_mean"] / 1e6
    ax.errorbar(x_m, t[f"{y}_mean"], xerr=_err(x_m, t["cost_vs_baseline_lo"] / 1e6, t["cost_vs_baseline_hi"] / 1e6),
                yerr=_err(t[f"{y}_mean"], t[f"{y}_lo"], t[f"{y}_hi"]), fmt="o", color=COLORS[0],
                ecolor="#9bb8d3", capsize=3)
    for k, (name, xv, yv) in enumerate(_label_order(x_m, t[f"{y}_mean"], t["scenario"])):
        # alternate above / below, so that scenarios close in cost and relief stay readable
        ax.annotate(str(name), (xv, yv), textcoords="offset points", xytext=(5, 5 if k % 2 == 0 else -11),
                    fontsize=8)
    top = float(np.nanmax(np.r_[t[f"{y}_hi"].to_numpy(dtype=float), 1.0]))
    if "pesos_per_relieved_mean" in t and y.startswith("relieved"):
        ok = t[np.isfinite(t["pesos_per_relieved_mean"]) & (t["pesos_per_relieved_mean"] > 0)]
        if len(ok):
            best = ok.loc[ok["pesos_per_relieved_mean"].idxmin()]
            xs = np.linspace(0, max(float(x_m.max()), 1e-9), 50)
            ax.plot(xs, xs * 1e6 / best["pesos_per_relieved_mean"], ls=":", color="#999",
                    label=f"₱{best['pesos_per_relieved_mean']:,.0f} per learner ({best['scenario']})")
            ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_ylim(min(0.0, float(np.nanmin(t[f"{y}_lo"]))) * 1.1, top * 1.15)  # the reference line is clipped
    ax.axhline(0, color="#ccc", lw=0.8)
    ax.set_xlabel("added cost vs baseline, ₱ million per school year")
    ax.set_ylabel("learners relieved from congested public JHS" if y.startswith("relieved")
                  else "learners placed vs baseline")
    ax.set_title("What each scenario buys (95 % intervals over draws)")
    return fig


@_styled
def frontier_plot(frontier: pd.DataFrame):
    """Relief against budget for the optimised plan, a uniform subsidy increase and
    filling unused contracted slots (``frontier.csv``), with 95 % bands."""
    fig, ax = _figure(figsize=(7.5, 4.6))
    b = frontier["budget"] / 1e6
    for key, label, color in (("optimised", "optimised plan", COLORS[0]), ("uniform", "uniform subsidy", COLORS[1]),
                              ("fill_slots", "filling contracted slots", COLORS[2])):
        ax.step(b, frontier[f"{key}_relief"], where="post", color=color, label=label)
        ax.fill_between(b, frontier[f"{key}_relief_lo"], frontier[f"{key}_relief_hi"], step="post",
                        color=color, alpha=0.15, lw=0)
    ax.set_xlabel("budget, ₱ million per school year (mean cost over draws)")
    ax.set_ylabel("learners relieved from congested public JHS")
    ax.set_title("What a budget buys")
    ax.legend(frameon=False, loc="upper left")
    return fig
