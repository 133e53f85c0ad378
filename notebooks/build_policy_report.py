"""Build ``notebooks/policy_report.ipynb`` (without outputs) with nbformat.

Run from the repository root: ``python notebooks/build_policy_report.py``.
Edit the cells here, not in the .ipynb, so the notebook stays reviewable.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", """# ESC subsidy and slots: what would decongest public junior high schools?

This notebook answers, for the bundled synthetic region (replace the manifest with real data):

* **How many Grade 7 learners would ESC private schools absorb** if the ESC subsidy rose, or if more
  ESC slots were filled?
* **Which public junior high schools (JHS) would be relieved**, and by how many learners?
* **How sure are we?** Every figure comes with a 95 % interval from 20 Monte Carlo draws of the
  model's coefficients (use 100 or more for a final report).

The steps are the package's pipeline: read the raw files → road distances → origin–school pairs →
gravity model of learner flows → capacity-constrained allocation under each scenario → report."""),
    ("code", """%matplotlib inline
import warnings
from pathlib import Path

import pandas as pd

from studentflow.ingest import load_bundle
from studentflow.pairs import build_pairs
from studentflow.pipeline import compute_distances, fit_models, synthetic_truth
from studentflow.report import write_report
from studentflow.report.figures import coefficient_plot, congestion_map, placed_plot
from studentflow.report.cost_figures import cost_effectiveness_plot, frontier_plot
from studentflow.report.optimize_page import write_optimize
from studentflow.report.backtest_page import backtest_plot, write_backtest
from studentflow.backtesting import backtest
from studentflow.optimize import optimize
from studentflow.scenarios.spec import study_scenarios
from studentflow.scenarios import run_scenarios

warnings.simplefilter("ignore")  # convergence notes are in the model summaries
pd.set_option("display.width", 160)
DRAWS, SEED = 20, 0"""),
    ("md", """## 1. The data

`load_bundle()` reads every raw file named in the manifest (enrolment, coordinates, seats,
learner transitions, ESC billing, slots, tuition, …), repairs what it can and records every dropped,
merged, corrected or imputed row in a **ledger**. Without an argument it loads the bundled sample."""),
    ("code", """bundle = load_bundle()  # or load_bundle("path/to/manifest.toml")
print(bundle.summary())"""),
    ("md", """## 2. Who could move where

For every elementary school (origin) we list the ESC schools its Grade 7 learners went to today
(*observed* pairs) and, for origins feeding congested public JHS, the ESC schools with slots within
5 km by road (*new* pairs)."""),
    ("code", """distances = compute_distances(bundle)
pairs = build_pairs(bundle, distances, radius_km=5.0)
pairs.groupby("pair_type").agg(pairs=("origin_id", "size"), esc_beneficiaries=("esc_beneficiaries", "sum"))"""),
    ("md", """## 3. What drives the choice of an ESC school

A negative-binomial gravity model: expected ESC learners on a pair fall with road distance and with
the net cost (tuition minus the ESC amount). We fit it two ways: the study's way (only pairs that
already have beneficiaries, which overstates flows) and a consistent way (zero-truncated model).
The **ratio of the distance to the cost coefficient** says how much more proximity matters than price.
The sample is synthetic, so the coefficients it was drawn with are known (black crosses): the
consistent fit finds them, the study's way does not."""),
    ("code", """models = fit_models(pairs, zeros="truncate")
model = next(iter(models.values()))
coefs = pd.DataFrame({label: m.params.round(4) for label, m in models.items()})
display(coefs)
for label, m in models.items():
    d = m.params[[t for t in m.params.index if "distance_km" in t][0]]
    c = m.params[[t for t in m.params.index if "net_cost_k" in t][0]]
    print(f"{label}: distance/cost elasticity ratio = {d / c:.1f}")
truth = synthetic_truth()  # None for real data
coefficient_plot(models, truth)"""),
    ("md", """## 4. Scenarios

The study's scenarios: today's situation (billed slots), all contracted slots available, and the
ESC amount raised by ₱1,000 … ₱20,000 (net cost lowered by 1K … 20K). Each draw re-estimates the
expected flows with new coefficients, scales them to the learners each school has and the slots each
ESC school offers, and rounds to whole learners."""),
    ("code", """scenarios = study_scenarios()
result = run_scenarios(bundle, model, scenarios, pairs=pairs, distances=distances, draws=DRAWS, seed=SEED,
                       progress=False)
study = {label: run_scenarios(bundle, m, scenarios, pairs=pairs, draws=0, seed=SEED, progress=False)
         for label, m in list(models.items())[1:]}
result.scenario_table()"""),
    ("code", """placed_plot(result, study)"""),
    ("code", """t = result.table.set_index("scenario")
lo, hi = t.loc["net cost -1K", "placed_mean"], t.loc["net cost -20K", "placed_mean"]
fill = t.loc["fill contracted slots"]
print(f"Raising the subsidy from +1K to +20K places {hi - lo:,.0f} more learners ({100 * (hi - lo) / lo:+.1f} %).")
print(f"Filling contracted slots: {fill['placed_mean']:,.0f} placed of {int(fill['slots']):,} slots "
      f"({fill['slot_utilisation_mean']:.0%} used); {fill['vs_baseline_mean']:+,.0f} vs today.")
for label, other in study.items():
    s = other.table.set_index("scenario")["placed_mean"]
    print(f"Under the study's estimator ({label}): +1K → +20K adds {s['net cost -20K'] - s['net cost -1K']:,.0f}; "
          f"it fills {s['net cost -20K'] / fill['slots']:.0%} of slots.")"""),
    ("md", """**Reading the numbers.** When the expected demand exceeds the slots (the study's estimator), extra
subsidy cannot place more learners: slots bind. Under the consistent estimator, demand on today's
pairs is lower and the subsidy moves more learners, but most contracted slots stay empty. Compare
scenarios with today (*vs baseline*), which uses the same model and the same draws."""),
    ("md", """## 5. Which public junior high schools are relieved

Each origin's extra ESC placements are taken out of the public JHS its learners go to today, in
proportion to today's flows. The map shows seat utilisation (enrolment ÷ seats; above 1 = congested)
today and after the largest subsidy. The table ranks schools by the scenario's own effect,
*relieved vs baseline*: relief minus the baseline scenario's relief in the same draw (the
baseline itself shows some relief from draw-to-draw noise)."""),
    ("code", """congestion_map(result, bundle, "net cost -20K")"""),
    ("code", """pj = result.public_jhs[result.public_jhs["scenario"] == "net cost -20K"]
top = pj.sort_values("relieved_vs_baseline_mean", ascending=False).head(10)
top.insert(1, "name", bundle.schools["name"].reindex(top["school_id"]).to_numpy())
top[["school_id", "name", "jhs_seats", "enrolment_before", "utilisation_before", "relieved_vs_baseline_mean",
     "relieved_vs_baseline_lo", "relieved_vs_baseline_hi", "utilisation_after_mean"]].round(2)"""),
    ("md", """## 6. What each peso buys

Every scenario is priced in pesos per school year: the ESC amount paid for every learner placed (the
tier's amount plus the scenario's increase). Against today, a subsidy increase is also paid to the
learners who would have come anyway (the *inframarginal* part, Δ × today's placements), while added
slots cost only the amount paid to the learners who fill them. Dividing the added cost by the learners
relieved from congested public JHS (learners above a school's seats taken out) gives the price of relief,
with its 95 % interval over the draws."""),
    ("code", """cost_cols = ["cost_vs_baseline_mean", "cost_inframarginal_mean", "vs_baseline_mean",
             "relieved_congested_vs_baseline_mean", "pesos_per_added_learner_mean", "pesos_per_relieved_mean",
             "pesos_per_relieved_lo", "pesos_per_relieved_hi"]
result.table.set_index("scenario")[cost_cols].round(0)"""),
    ("code", """cost_effectiveness_plot(result)"""),
    ("md", """**Where should a budget go?** `optimize` chooses, within a budget, the ESC slots and subsidy
increases (per tier, or for the schools serving one congested JHS's catchment) that relieve the most
learners on average over the draws, and compares it with a uniform subsidy increase and with opening the
unused contracted slots at the same cost."""),
    ("code", """plan = optimize(bundle, model, budget=20_000_000, pairs=pairs, draws=DRAWS, seed=SEED)
print(plan.summary())
frontier_plot(plan.frontier)"""),
    ("md", """## 7. Did last year's forecast hold? A backtest

A budget officer will ask: *what did this model say about last year's change, and what actually
happened?* `backtest` fits and calibrates the model on one school year only, gives it the next year's
real levers (its pools, contracted slots, subsidy amounts, tuition, the ESC schools that opened or
closed) and compares its prediction with the placements that year actually saw, beside
*persistence* (next year = this year) and the study's estimator. It is scored twice: with the
next year's actual pools (the model's own error) and with the pools a planner would have had, the
train year's Grade 6 moved on (adding the error of the pools). On synthetic data the *oracle*, the
truth's own expected flows, shows the floor no model can beat. The sample's last two school years
straddle a policy change: the NCR amount rose from ₱11,000 to ₱13,000 and 50 full schools got
added slots."""),
    ("code", """bt = backtest(draws=DRAWS, seed=SEED)  # the two latest school years of the sample
print(bt.summary())"""),
    ("code", """d = bt.as_dict()
inside = d["predicted_change_lo"] <= d["observed_change"] <= d["predicted_change_hi"]
print(f"Backtest {bt.train} → {bt.test}: change in ESC placements observed {d['observed_change']:+,.0f}, "
      f"predicted {d['predicted_change']:+,.0f} [{d['predicted_change_lo']:+,.0f}, "
      f"{d['predicted_change_hi']:+,.0f}] ({'inside' if inside else 'outside'} the interval); "
      f"per-school error {d['school_mae']:.2f} learners against persistence's {d['persistence']['school_mae']:.2f}.")
backtest_plot(bt)"""),
    ("md", """## 8. Save the report

`write_report` writes a self-contained `report.html` (tables and figures), the scenario table as CSV,
per-school results with geometry (`schools.gpkg`), the ingest ledger and the model summaries;
`write_optimize` the plan (`plan.csv`, `frontier.csv`, `fig_frontier.png`, `optimize.html`);
`write_backtest` the backtest (`backtest.csv`, `backtest.json`, `fig_backtest.png`, `backtest.html`)."""),
    ("code", """files = write_report(result, Path("policy_report_output"), bundle=bundle, model=model, pairs=pairs,
                     models=models, comparisons=study, truth=truth)
files.update(write_optimize(plan, Path("policy_report_output")))
files.update(write_backtest(bt, Path("policy_report_output")))
sorted(files)"""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, cells in order, no outputs."""
    cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    out = Path(__file__).with_name("policy_report.ipynb")
    nbformat.write(build(), out)
    print(f"wrote {out}")
