"""The optimizer's outputs: ``plan_by_school.csv``, ``plan.csv``, ``plan.toml``,
``frontier.csv``, ``fig_frontier.png`` and a report section (``optimize.html``, also
embeddable in ``report.html`` with ``write_report(sections=...)``).

The tables and ``plan.toml`` are made by :mod:`studentflow.optimize` (above this layer)
and handed in as data; this module only writes and shows them.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd

from studentflow.report.write import _png, _table_html, _write_csv, _write_text, atomic_write, page_open

__all__ = ["write_optimize", "optimize_section"]

_SHOWN = ["target_kind", "target", "name", "municipality", "province", "slots_added", "subsidy_change", "cost",
          "cost_lo", "cost_hi", "relief", "relief_lo", "relief_hi", "pesos_per_relieved"]


def _budget_sentence(opt) -> str:
    q = getattr(opt, "budget_quantile", "mean")
    c = opt.cost
    if q == "mean":
        return f"The budget holds on average over the draws (mean cost ₱{c[0]:,.0f})."
    return (f"The budget holds in at least {100 * q:g} % of the draws: the plan's cost is ₱{c[0]:,.0f} on average "
            f"and ₱{opt.cost_quantile:,.0f} at its {100 * q:g}th percentile, within ₱{opt.budget:,.0f}.")


def optimize_section(opt, png: bytes | None = None, by_school: pd.DataFrame | None = None,
                     map_html: str = "") -> str:
    """HTML section: what the budget buys, the plan per target, the map, the first steps
    and the frontier figure."""
    r, c = opt.relief, opt.cost
    t = opt.plan_table
    f = opt.frontier.iloc[-1]
    parts = [
        "<h2>What the budget buys</h2>",
        f"<div class='key'>Budget ₱{opt.budget:,.0f} per school year ({opt.draws} Monte Carlo draws). "
        f"The plan costs ₱{c[0]:,.0f} (95 % interval ₱{c[1]:,.0f}–₱{c[2]:,.0f}) and relieves "
        f"<b>{r[0]:,.0f}</b> learners ({r[1]:,.0f}–{r[2]:,.0f}) from congested public JHS"
        + (f", ₱{c[0] / r[0]:,.0f} per learner" if r[0] > 0 else "") + ". " + _budget_sentence(opt) + " "
        f"A uniform subsidy increase within the same budget relieves {f['uniform_relief']:,.0f} "
        f"(+₱{f['uniform_subsidy']:,.0f} per learner); opening unused contracted slots relieves "
        f"{f['fill_slots_relief']:,.0f}.</div>",
        "<p>Steps are chosen one at a time by learners relieved per peso, ranked with the allocator's "
        "capacity duals and confirmed by re-solving every draw; means over the draws with 95 % intervals. "
        "Costs are pesos per school year against the status quo (subsidy paid for the placed learners, "
        "the raise paid to those already placed included; public seats at the given cost). A learner counts "
        "as relieved while the public JHS is above its seats. Slots are added only where the school has "
        "free JHS seats.</p>",
    ]
    if by_school is not None and len(by_school):
        shown = by_school[[col for col in _SHOWN if col in by_school]]
        parts.append(f"<h3>The plan by school</h3><p>{len(by_school)} targets (plan_by_school.csv), most learners "
                     "relieved per peso first; the rows add up to the plan's totals. Cost in pesos per school "
                     "year, relief in learners, with 95 % intervals.</p>"
                     + _table_html(shown.head(40), float_format=lambda v: f"{v:,.1f}"))
    if map_html:
        parts.append("<h3>The plan on the map</h3><p>ESC schools sized by the slots the plan adds there "
                     "(hover: the school's row of plan_by_school.csv), schools whose ESC amount the plan "
                     "raises, and the congested public JHS.</p>" + map_html)
    if png is not None:
        parts.append(f"<figure><img alt='fig_frontier.png' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode()}'><figcaption class='note'>Learners relieved against "
                     "budget: the optimised plan, a uniform subsidy increase and filling unused contracted "
                     "slots (95 % bands).</figcaption></figure>")
    if len(t):
        by = (t.groupby(["action", "unit"], sort=False)
              .agg(steps=("step", "size"), amount=("amount", "sum"), cost=("cost", "sum"), relief=("relief", "sum"))
              .reset_index())
        parts.append("<p>The plan by kind of action:</p>" + _table_html(by, float_format=lambda v: f"{v:,.1f}"))
        head = t.head(25)[["step", "action", "target", "amount", "unit", "cost", "relief", "relief_lo", "relief_hi",
                           "cumulative_cost", "cumulative_relief"]]
        parts.append(f"<p>First {len(head)} of {len(t)} steps (all in plan.csv):</p>"
                     + _table_html(head, float_format=lambda v: f"{v:,.1f}"))
    return "\n".join(parts)


def write_optimize(opt, out_dir, *, by_school: pd.DataFrame | None = None, plan_csv: pd.DataFrame | None = None,
                   plan_toml: str | None = None, map_html: str = "", footer: str = "") -> dict:
    """Write the optimizer's files into ``out_dir``.

    Parameters
    ----------
    opt : OptimizeResult
    by_school, plan_csv : pandas.DataFrame, optional
        ``plan_by_school.csv`` and the rounded, named ``plan.csv``
        (:mod:`studentflow.optimize.tables`); ``plan_csv`` None: ``opt.plan_table``.
    plan_toml : str, optional
        ``plan.toml`` (:func:`studentflow.optimize.rerun.plan_toml`).
    map_html, footer : str
        The plan's map (:func:`studentflow.report.plan_map.plan_map`) and a provenance
        footer for ``optimize.html``.

    Returns
    -------
    dict
        Output name → path.
    """
    from studentflow.report.cost_figures import frontier_plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frontier = opt.frontier.copy()
    for col in frontier.columns:  # whole pesos, learners to one decimal
        frontier[col] = frontier[col].round(0 if ("cost" in col or col in ("budget", "uniform_subsidy")) else 1)
    written = {"plan.csv": _write_csv(out / "plan.csv", plan_csv if plan_csv is not None else opt.plan_table),
               "frontier.csv": _write_csv(out / "frontier.csv", frontier)}
    if by_school is not None:
        written["plan_by_school.csv"] = _write_csv(out / "plan_by_school.csv", by_school)
    if plan_toml is not None:
        written["plan.toml"] = _write_text(out / "plan.toml", plan_toml)
    png = _png(frontier_plot(opt.frontier))
    written["fig_frontier.png"] = atomic_write(out / "fig_frontier.png", lambda tmp: tmp.write_bytes(png))
    title = "studentflow: where the budget relieves most learners"
    page = f"{page_open(title)}{optimize_section(opt, png, by_school, map_html)}{footer}</body></html>"
    written["optimize.html"] = _write_text(out / "optimize.html", page)
    return written
