"""Report section: the calibrated status quo against what was observed, and what calibration changes.

* a scatter of observed vs status-quo ESC placements per school (95 % interval bars, the
  45° line where the two agree), from :func:`studentflow.scenarios.calibrate.status_quo_fit`;
* per scenario, the change vs the baseline calibrated and as fitted (uncalibrated), for
  the estimator used and for the study's, with the status quo against the observed count
  and, on synthetic data, against the synthetic world's truth.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

__all__ = ["status_quo_scatter", "calibration_table", "calibration_html"]


def status_quo_scatter(fit: pd.DataFrame):
    """Observed vs status-quo placements per ESC school (learners), with the 45° line.

    Parameters
    ----------
    fit : pandas.DataFrame
        :func:`studentflow.scenarios.calibrate.status_quo_fit` output.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure  # not pyplot: no global backend, no figure kept open

    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.subplots()
    x = fit["observed"].to_numpy(float)
    y = fit["placed_mean"].to_numpy(float)
    err = np.vstack([y - fit["placed_lo"].to_numpy(float), fit["placed_hi"].to_numpy(float) - y])
    inside = fit["within"].to_numpy(bool)
    for mask, colour, label in ((inside, "tab:blue", "observed within interval"),
                                (~inside, "tab:red", "observed outside interval")):
        if mask.any():
            ax.errorbar(x[mask], y[mask], yerr=np.clip(err[:, mask], 0, None), fmt="o", ms=3, alpha=0.6,
                        color=colour, elinewidth=0.6, label=f"{label} ({int(mask.sum())})")
    top = max(float(np.nanmax(x)) if x.size else 1.0, float(np.nanmax(y)) if y.size else 1.0) * 1.05
    ax.plot([0, top], [0, top], color="black", lw=1, label="45° line (status quo = observed)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("observed ESC placements per school (learners)")
    ax.set_ylabel("status quo, mean of draws (learners)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def calibration_table(result, comparisons: dict | None = None, truth: pd.Series | None = None) -> pd.DataFrame:
    """Change vs the baseline per scenario (learners), one column per run.

    Parameters
    ----------
    result : ScenarioResult
        The run used for the report (calibrated unless turned off).
    comparisons : dict, optional
        Label → ScenarioResult of the same scenarios (e.g. as fitted, the study's estimator).
    truth : pandas.Series, optional
        Learners placed per scenario in the synthetic world
        (:func:`studentflow.synth.oracle.oracle_placements`).

    Returns
    -------
    pandas.DataFrame
        Index scenario; first row the status quo's placements (and ``observed``), then
        every scenario's change vs the baseline.
    """
    runs = {"used" + (" (calibrated)" if result.calibration is not None else " (as fitted)"): result,
            **(comparisons or {})}
    out = {}
    names = [s.name for s in result.scenarios]
    for label, run in runs.items():
        placed = run.table.set_index("scenario")["placed_mean"].reindex(names)
        out[label] = placed - placed[run.baseline]
        out[label][run.baseline] = placed[run.baseline]
    if truth is not None:
        t = truth.reindex(names)
        out["synthetic truth"] = t - t[result.baseline]
        out["synthetic truth"][result.baseline] = t[result.baseline]
    table = pd.DataFrame(out)
    table.insert(0, "observed", np.where(table.index == result.baseline, float(result.observed_esc), np.nan))
    table.index.name = "scenario"
    return table


def calibration_html(result, comparisons: dict | None = None, truth: pd.Series | None = None,
                     scatter_png: str | None = None) -> str:
    """The report's "Status quo and calibration" section (HTML)."""
    parts = ["<h2>Status quo and calibration</h2>"]
    cal = result.calibration
    if cal is not None:
        if cal.capacity_rule == "posterior":
            full = ("The model was fitted with full schools' counts as censored demand. A school that "
                    "placed exactly its billed slots was full only with a probability, given what it placed "
                    "and its contracted slots (a school billing what it admitted only looks full); a school "
                    "that billed a larger share of its slots in an earlier year, or placed nobody, was not "
                    "full. In every draw, each full school's demand is drawn given that it filled its "
                    "slots, so the draws place what it turned away only as far as new slots reach. ")
        elif cal.capacity_rule == "unconstrain":
            full = ("Schools that were full today (every status-quo slot taken) get the demand a full "
                    "school is expected to have, given that it filled its slots: their count is a floor on "
                    "their demand. A school whose billing equals its admissions but that billed a larger "
                    "share of its contracted slots in an earlier school year was not full, and is matched. ")
        else:
            full = ("Schools that were full today (every status-quo slot taken) are only raised to fill, "
                    "never lowered: their count is a floor on their demand. ")
        parts.append("<p>Before any scenario, the model is calibrated to today: one factor per ESC school "
                     "so that the status quo, at the point estimate, places the learners each school "
                     "actually enrolled. " + full + "Every scenario then applies its levers on top of this "
                     "calibrated state.</p>")
        parts.append("<pre>" + html.escape(cal.summary()) + "</pre>")
    else:
        parts.append("<p>This run was not calibrated (<code>calibrate=False</code> / "
                     "<code>--no-calibrate</code>): the status quo is the model as fitted.</p>")
    if scatter_png:
        parts.append(f"<figure><img alt='fig_status_quo.png' src='data:image/png;base64,{scatter_png}'>"
                     "<figcaption class='note'>Observed vs status-quo ESC placements per school (95 % "
                     "intervals over the draws); on the 45° line the status quo gives back today.</figcaption>"
                     "</figure>")
    table = calibration_table(result, comparisons, truth)
    parts.append("<p>First row: learners placed in the status quo (and observed); other rows: each "
                 "scenario's change vs the status quo, learners, for every run (point estimates for "
                 "the comparisons)" + (", and the synthetic world's own answer" if truth is not None else "")
                 + ".</p>")
    from studentflow.report.tables import table_html

    parts.append(table_html(table.reset_index(), float_format=lambda v: f"{v:,.0f}"))
    return "".join(parts)
