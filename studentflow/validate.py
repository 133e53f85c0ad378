"""How good are the answers? Out-of-sample checks and, on synthetic data, the truth.

:func:`validate` (``studentflow validate``) runs, on one data set:

1. the **status quo check**: observed ESC placements vs the calibrated status quo, in
   total and per ESC school (share within the 95 % interval);
2. the **out-of-sample check** (:func:`studentflow.scenarios.holdout.holdout_validation`):
   one origin region held out at a time, the model fitted on the rest, the held-out
   pairs' SRMSE, CPC, total and share of schools within interval beside the in-sample ones;
3. on a **synthetic region** (a ``truth/`` folder beside the manifest), each study
   scenario's change vs the status quo against the synthetic world's own answer
   (:func:`studentflow.synth.oracle.oracle_placements`), for every estimator, as fitted
   and calibrated (:func:`compare_with_truth`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

__all__ = ["ValidationResult", "validate", "compare_with_truth", "change_errors"]

ESTIMATORS = ("drop", "truncate", "include")


@dataclass(frozen=True)
class ValidationResult:
    """Result of :func:`validate`.

    Attributes
    ----------
    status_quo : pandas.DataFrame
        Per ESC school: observed vs calibrated status quo
        (:func:`studentflow.scenarios.calibrate.status_quo_fit`).
    status_quo_total : dict
        ``observed``, ``placed_mean``, ``placed_lo``, ``placed_hi`` (learners).
    holdout : HoldoutValidation
    truth : pandas.DataFrame or None
        Per study scenario: learners placed by the truth and by each estimator
        (``<estimator>`` as fitted, ``<estimator> calibrated``), and each column's change
        vs the status quo (``... vs status quo``); None for real data.
    draws, seed : int
    fit : str
        What the model was fitted on ("latest school year", or the years pooled).
    """

    status_quo: pd.DataFrame
    status_quo_total: dict
    holdout: object
    truth: pd.DataFrame | None
    draws: int
    seed: int
    fit: str = "latest school year"

    def change_errors(self) -> pd.Series:
        """Mean absolute error of scenario changes vs the truth, learners, per column."""
        return change_errors(self.truth) if self.truth is not None else pd.Series(dtype=float)

    def summary(self) -> str:
        """Status quo vs observed, the held-out figures and the errors against the truth."""
        t = self.status_quo_total
        inside = t["placed_lo"] <= t["observed"] <= t["placed_hi"]
        lines = [
            f"Model: fitted on the {self.fit}",
            f"Status quo (calibrated) vs observed, {self.draws} draws, seed {self.seed}: observed "
            f"{t['observed']:,.0f}, status quo {t['placed_mean']:,.0f} [{t['placed_lo']:,.0f}, "
            f"{t['placed_hi']:,.0f}] ({'inside' if inside else 'OUTSIDE'} the interval); "
            f"{100 * self.status_quo['within'].mean():.1f} % of {len(self.status_quo)} ESC schools "
            "within their interval",
            self.holdout.summary(),
        ]
        if self.truth is not None:
            lines.append("Error of scenario changes vs the synthetic truth (mean absolute, learners):")
            for col, err in self.change_errors().items():
                lines.append(f"  {col:<20} {err:8,.0f}")
        return "\n".join(lines)


def change_errors(table: pd.DataFrame) -> pd.Series:
    """Mean absolute error (learners) of each column's change vs status quo against the
    truth's, over the non-baseline scenarios of a :func:`compare_with_truth` table."""
    cols = [c[: -len(" vs status quo")] for c in table.columns
            if c.endswith(" vs status quo") and not c.startswith("truth")]
    truth = table["truth vs status quo"].drop(index="status quo")
    return pd.Series({c: float((table[f"{c} vs status quo"].drop(index="status quo") - truth).abs().mean())
                      for c in cols}, name="change error")


def compare_with_truth(bundle, distances, pairs, truth_dir, *, draws: int = 20, seed: int = 0,
                       estimators=ESTIMATORS, calibrate=(False, True), formula: str | None = None,
                       radius_km: float = 5.0, log: Callable[[str], None] | None = None,
                       panel=None) -> pd.DataFrame:
    """Learners placed per study scenario: the synthetic truth and each estimator.

    Parameters
    ----------
    bundle, distances, pairs
        The synthetic region's Bundle, road distances (km) and PairTable.
    truth_dir : path
        Its ``truth/`` folder.
    draws, seed : int
        Monte Carlo draws (package) and simulated years (truth); seed of both.
    estimators : sequence of {"drop", "truncate", "include"}
    calibrate : sequence of bool
        Run each estimator as fitted (False) and/or calibrated (True).
    formula : str, optional
        Gravity formula (default the study's); ``radius_km`` the zero pairs' radius, km.
    log : callable, optional
        Receives one line per estimator.
    panel : studentflow.schema.Panel, optional
        Fit each estimator pooled over the panel's years with year effects
        (:func:`studentflow.gravity.panel.pooled_fit`; ``distances`` must cover every year).

    Returns
    -------
    pandas.DataFrame
        Indexed by scenario: ``truth``, one column per estimator run (``truncate``,
        ``truncate calibrated``, …), ``<column> err %`` and ``<column> vs status quo``.
    """
    from studentflow.gravity.fit import STUDY_FORMULA, fit_gravity
    from studentflow.gravity.panel import pooled_fit
    from studentflow.pairs import build_pairs
    from studentflow.scenarios.run import run_scenarios
    from studentflow.scenarios.spec import study_scenarios
    from studentflow.synth.oracle import oracle_placements

    say = log or (lambda line: None)
    scenarios = study_scenarios()
    table = oracle_placements(truth_dir, scenarios, draws=draws, seed=seed).to_frame()
    within = None
    for zeros in estimators:
        if zeros == "include" and within is None and panel is None:  # outcome-independent zeros
            radius = build_pairs(bundle, distances, radius_km=radius_km, candidates="radius")
            within = radius.loc[radius["within_radius"]]
        model = pooled_fit(panel, distances, zeros, radius_km=radius_km, formula=formula) if panel is not None \
            else fit_gravity(within if zeros == "include" else pairs, formula or STUDY_FORMULA, zeros=zeros,
                             method="fast")
        for cal in calibrate:
            res = run_scenarios(bundle, model, scenarios, pairs=pairs, distances=distances, draws=draws,
                                seed=seed, progress=False, calibrate=cal)
            col = f"{zeros} calibrated" if cal else zeros
            table[col] = res.table.set_index("scenario")["placed_mean"]
            table[f"{col} err %"] = 100.0 * (table[col] / table["truth"] - 1.0)
            say(f"{col}: status quo {table.loc['status quo', col]:,.0f} (observed {res.observed_esc:,})")
    base = table.loc["status quo"]
    for col in ["truth", *[c for c in table.columns if c != "truth" and not c.endswith("err %")]]:
        table[f"{col} vs status quo"] = table[col] - base[col]
    return table


def validate(manifest=None, *, draws: int = 20, seed: int = 0, zeros: str = "truncate",
             by: str = "origin_region", truth: bool = True, radius_km: float = 5.0,
             max_km: float | None = None, formula: str | None = None,
             log: Callable[[str], None] | None = None, fit_years: str = "all") -> ValidationResult:
    """Status quo check, out-of-sample check and (synthetic data) errors against the truth.

    Parameters
    ----------
    manifest : path, optional
        ``manifest.toml`` (or its folder); default the bundled sample.
    draws, seed : int
        Monte Carlo draws and seed of every step.
    zeros : {"truncate", "include", "drop"}
        Estimator for the status quo and out-of-sample checks.
    by : str
        Pair-table column whose values are held out one at a time.
    truth : bool
        Compare with the synthetic truth when the data carry one.
    radius_km, max_km, formula
        As for :func:`studentflow.pipeline.run_pipeline` (new-pair radius and road-distance
        limit, km; the gravity formula, default the study's).
    log : callable, optional
        Receives progress lines.
    fit_years : {"all", "latest"}
        Multi-year manifest: the status quo check and the truth comparison use the pooled
        fit with year effects (default) or the latest year alone; the out-of-sample check
        holds regions out of the latest year's pairs.

    Returns
    -------
    ValidationResult
    """
    from studentflow.gravity.panel import fit_years_panel, pooled_fit
    from studentflow.pairs import build_pairs
    from studentflow.paths import sample_manifest
    from studentflow.pipeline import compute_distances, fit_models
    from studentflow.scenarios.calibrate import status_quo_fit
    from studentflow.scenarios.holdout import holdout_validation
    from studentflow.scenarios.run import run_scenarios
    from studentflow.scenarios.spec import study_scenarios

    say = log or (lambda line: None)
    path = Path(manifest) if manifest is not None else sample_manifest()
    folder = path if path.is_dir() else path.parent
    panel, bundle = fit_years_panel(path, fit_years)
    distances = compute_distances(panel or bundle, max_km=max_km)
    pairs = build_pairs(bundle, distances, radius_km=radius_km)
    estimation = None
    if zeros == "include" and panel is None:
        radius = build_pairs(bundle, distances, radius_km=radius_km, candidates="radius")
        estimation = radius.loc[radius["within_radius"]]
    model = pooled_fit(panel, distances, zeros, radius_km=radius_km, formula=formula) if panel is not None else \
        next(iter(fit_models(pairs, zeros, formula=formula, estimation_pairs=estimation).values()))
    fitted_on = "latest school year" if panel is None else \
        f"{len(panel.years)} school years pooled, with year effects (scenarios on {model.reference_year})"
    res = run_scenarios(bundle, model, study_scenarios()[:1], pairs=pairs, distances=distances, draws=draws,
                        seed=seed, progress=False, keep_draws=False)
    fit = status_quo_fit(res)
    row = res.table.iloc[0]
    total = {"observed": float(res.observed_esc), "placed_mean": float(row["placed_mean"]),
             "placed_lo": float(row["placed_lo"]), "placed_hi": float(row["placed_hi"])}
    say(f"status quo: observed {total['observed']:,.0f}, placed {total['placed_mean']:,.0f} "
        f"[{total['placed_lo']:,.0f}, {total['placed_hi']:,.0f}]")
    holdout = holdout_validation(pairs, by=by, formula=formula, zeros=zeros, draws=draws, seed=seed)
    say("out-of-sample check done")
    table = None
    if truth and (folder / "truth" / "params.json").is_file():
        table = compare_with_truth(bundle, distances, pairs, folder / "truth", draws=draws, seed=seed,
                                   formula=formula, radius_km=radius_km, log=say, panel=panel)
    return ValidationResult(status_quo=fit, status_quo_total=total, holdout=holdout, truth=table,
                            draws=draws, seed=seed, fit=fitted_on)
