"""The backtest's outputs: ``backtest.csv`` (per ESC school), ``fig_backtest.png`` (predicted
vs observed per school) and a report section (``backtest.html``).

Takes a :class:`studentflow.backtesting.BacktestResult` as plain data (its tables and
``as_dict()``); this module does not import the backtest.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.report.figures import COLORS, _figure, _styled
from studentflow.report.write import _png, _table_html, _write_csv, _write_text, atomic_write, page_open

__all__ = ["backtest_plot", "backtest_section", "backtest_csv", "write_backtest"]

CSV_COLUMNS = ["school_id", "tier", "region", "observed", "predicted", "predicted_lo", "predicted_hi",
               "in_interval", "predictive_lo", "predictive_hi", "in_predictive_interval", "persistence",
               "forecast", "forecast_lo", "forecast_hi"]


def backtest_csv(result) -> pd.DataFrame:
    """Per ESC school of the test year: observed, predicted with its 95 % interval,
    persistence (the train year's learners), in interval, and the forecast-pool prediction."""
    t = result.schools
    t = t.loc[t["test_year_esc"]] if "test_year_esc" in t else t
    out = t.reset_index().reindex(columns=CSV_COLUMNS)
    out.insert(1, "school_year", result.test)
    return out


@_styled
def backtest_plot(result):
    """Predicted (mean, 95 % interval) vs observed ESC learners per school, with persistence."""
    t = backtest_csv(result)
    fig, (ax, bx) = _figure(1, 2, figsize=(10.5, 4.6))
    top = float(max(t["observed"].max(), t["predicted_hi"].max(), t["persistence"].max(), 1.0)) * 1.05
    inside = t["in_interval"].astype(bool).to_numpy()
    for mask, color, label in ((inside, COLORS[0], "observed inside the interval"),
                               (~inside, COLORS[1], "observed outside")):
        ax.errorbar(t.loc[mask, "observed"], t.loc[mask, "predicted"],
                    yerr=[(t["predicted"] - t["predicted_lo"])[mask].clip(lower=0),
                          (t["predicted_hi"] - t["predicted"])[mask].clip(lower=0)],
                    fmt="o", ms=3, lw=0.6, alpha=0.7, color=color, label=label)
    ax.plot([0, top], [0, top], color="#888", lw=0.8)
    ax.set(xlabel=f"observed ESC learners {result.test}", ylabel="predicted (95 % interval)",
           title=f"Model fitted on {result.train}", xlim=(0, top), ylim=(0, top))
    ax.legend(loc="upper left", fontsize=8)
    bx.scatter(t["observed"], t["persistence"], s=8, alpha=0.6, color=COLORS[5])
    bx.plot([0, top], [0, top], color="#888", lw=0.8)
    bx.set(xlabel=f"observed ESC learners {result.test}", ylabel=f"{result.train} learners (persistence)",
           title="Persistence: next year = this year", xlim=(0, top), ylim=(0, top))
    return fig


def _fmt(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:,.2f}" if abs(v) < 10 else f"{v:,.0f}"


def backtest_section(result, png: bytes | None = None) -> str:
    """HTML section: the change predicted vs observed, the predictors side by side, the figure."""
    d = result.as_dict()
    inside = d["predicted_change_lo"] <= d["observed_change"] <= d["predicted_change_hi"]
    truth = "" if d["truth_change"] is None else f" The synthetic truth's own change: {d['truth_change']:+,.0f}."
    parts = [
        f"<h2>Backtest: {html.escape(result.train)} → {html.escape(result.test)}</h2>",
        f"<div class='key'>Fitted and calibrated on {html.escape(result.train)}, then given "
        f"{html.escape(result.test)}'s levers (pools, contracted slots, subsidy amounts, tuition, schools "
        f"that opened or closed), the model predicted <b>{d['predicted_total']:,.0f}</b> ESC placements "
        f"(95 % interval {d['predicted_lo']:,.0f}–{d['predicted_hi']:,.0f}); <b>{d['observed_total']:,.0f}</b> "
        f"were observed. Change from {html.escape(result.train)}: predicted {d['predicted_change']:+,.0f} "
        f"({d['predicted_change_lo']:+,.0f} to {d['predicted_change_hi']:+,.0f}), observed "
        f"{d['observed_change']:+,.0f}, {'inside' if inside else 'outside'} the interval.{truth} "
        f"{100 * d['schools_within_interval']:.0f} % of ESC schools' observed placements lie within "
        f"the interval of their expected intake, {100 * (d['schools_within_predictive_interval'] or 0):.0f} % "
        f"within the interval that adds one year's demand noise.</div>",
        "<p>Each predictor is scored on the same pairs and schools. <i>persistence</i> says next year "
        "equals this year; <i>model, forecast pools</i> uses the pools a planner would have had (the train "
        "year's Grade 6 moved on), so its extra error is the error of the pools, not of the model; the "
        "<i>oracle</i> (synthetic data only) is the truth's own expected flows, the floor no model beats. "
        f"Capacity: {html.escape(result.capacity_rule)}.</p>",
    ]
    scores = result.scores.reset_index()
    parts.append(_table_html(scores, float_format=_fmt))
    ch = result.changes[["kind", "group", "schools", "observed_change", "predicted_change",
                         "predicted_change_lo", "predicted_change_hi", "inside"]]
    parts.append("<p>Change in ESC placements from the train year, in total, per subsidy tier and per "
                 "region (learners; 95 % interval over the draws):</p>" + _table_html(ch, float_format=_fmt))
    if png is not None:
        parts.append(f"<figure><img alt='fig_backtest.png' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode()}'><figcaption class='note'>Per ESC school: predicted "
                     f"{html.escape(result.test)} placements against the observed (left) and the train "
                     "year's placements against the observed (right).</figcaption></figure>")
    coef = result.coefficients.reset_index()
    parts.append(f"<p>Stability: coefficients fitted on {html.escape(result.train)} and refitted on "
                 f"{html.escape(result.test)} (z of the difference):</p>"
                 + _table_html(coef, float_format=lambda v: f"{v:+.3f}"))
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in result.notes]
    return "\n".join(parts)


def write_backtest(result, out_dir) -> dict:
    """Write ``backtest.csv``, ``backtest.json``, ``fig_backtest.png`` and ``backtest.html``.

    Returns
    -------
    dict
        Output name → path.
    """
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"backtest.csv": _write_csv(out / "backtest.csv", backtest_csv(result))}
    written["backtest.json"] = _write_text(out / "backtest.json", json.dumps(result.as_dict(), indent=1))
    png = _png(backtest_plot(result))
    written["fig_backtest.png"] = atomic_write(out / "fig_backtest.png", lambda tmp: tmp.write_bytes(png))
    title = f"studentflow: backtest {result.train} → {result.test}"
    page = f"{page_open(title)}{backtest_section(result, png)}</body></html>"
    written["backtest.html"] = _write_text(out / "backtest.html", page)
    return written
