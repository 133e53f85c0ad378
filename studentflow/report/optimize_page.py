"""The optimizer's outputs: ``plan.csv``, ``frontier.csv``, ``fig_frontier.png`` and a
report section (``optimize.html``, also embedded in ``report.html`` when given)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from studentflow.report.write import _CSS, _png, _table_html, _write_csv, _write_text, atomic_write

__all__ = ["write_optimize", "optimize_section"]


def optimize_section(opt, png: bytes | None = None) -> str:
    """HTML section: what the budget buys, the plan's steps and the frontier figure."""
    r, c = opt.relief, opt.cost
    t = opt.plan_table
    f = opt.frontier.iloc[-1]
    parts = [
        "<h2>What the budget buys</h2>",
        f"<div class='key'>Budget ₱{opt.budget:,.0f} per school year ({opt.draws} Monte Carlo draws). "
        f"The plan costs ₱{c[0]:,.0f} (95 % interval ₱{c[1]:,.0f}–₱{c[2]:,.0f}) and relieves "
        f"<b>{r[0]:,.0f}</b> learners ({r[1]:,.0f}–{r[2]:,.0f}) from congested public JHS"
        + (f", ₱{c[0] / r[0]:,.0f} per learner" if r[0] > 0 else "") + ". "
        f"A uniform subsidy increase within the same budget relieves {f['uniform_relief']:,.0f} "
        f"(+₱{f['uniform_subsidy']:,.0f} per learner); opening unused contracted slots relieves "
        f"{f['fill_slots_relief']:,.0f}.</div>",
        "<p>Steps are chosen one at a time by learners relieved per peso, ranked with the allocator's "
        "capacity duals and confirmed by re-solving every draw; means over the draws with 95 % intervals. "
        "Costs are pesos per school year against the status quo (subsidy paid for the placed learners, "
        "the raise paid to those already placed included; public seats at the given cost). A learner counts "
        "as relieved while the public JHS is above its seats.</p>",
    ]
    if png is not None:
        parts.append(f"<figure><img alt='fig_frontier.png' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode()}'><figcaption class='note'>Learners relieved against "
                     "budget: the optimised plan, a uniform subsidy increase and filling unused contracted "
                     "slots (95 % bands).</figcaption></figure>")
    if len(t):
        by = (t.groupby(["action", "unit"], sort=False)
              .agg(steps=("step", "size"), amount=("amount", "sum"), cost=("cost", "sum"), relief=("relief", "sum"))
              .reset_index())
        by["cost"] = by["cost"].map("₱{:,.0f}".format)
        parts.append("<p>The plan by kind of action:</p>" + _table_html(by, float_format=lambda v: f"{v:,.1f}"))
        head = t.head(25)[["step", "action", "target", "amount", "unit", "cost", "relief", "relief_lo", "relief_hi",
                           "cumulative_cost", "cumulative_relief"]]
        parts.append(f"<p>First {len(head)} of {len(t)} steps (all in plan.csv):</p>"
                     + _table_html(head, float_format=lambda v: f"{v:,.1f}"))
    return "\n".join(parts)


def write_optimize(opt, out_dir) -> dict:
    """Write ``plan.csv``, ``frontier.csv``, ``fig_frontier.png`` and ``optimize.html``.

    Returns
    -------
    dict
        Output name → path.
    """
    from studentflow.report.cost_figures import frontier_plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"plan.csv": _write_csv(out / "plan.csv", opt.plan_table),
               "frontier.csv": _write_csv(out / "frontier.csv", opt.frontier)}
    png = _png(frontier_plot(opt.frontier))
    written["fig_frontier.png"] = atomic_write(out / "fig_frontier.png", lambda tmp: tmp.write_bytes(png))
    title = "studentflow: where the budget relieves most learners"
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{optimize_section(opt, png)}</body></html>")
    written["optimize.html"] = _write_text(out / "optimize.html", page)
    return written
