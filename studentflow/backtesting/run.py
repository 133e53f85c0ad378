"""``studentflow.backtest``: fit on one school year, predict the next, compare with what happened.

Steps (every one reuses the pipeline's own functions):

1. train year: distances, pairs, the default estimator and the study's (``zeros="drop"``),
   each calibrated to the train year's placements as ``run_scenarios(calibrate=True)`` does;
2. test year's levers without its outcomes (:mod:`studentflow.backtesting.prepare`: pairs,
   capacity rule, actual pools);
3. Monte Carlo of the test year (:func:`studentflow.backtesting.simulate.simulate_year`) with the
   actual pools, with pools forecast from the years up to train (drawn per draw from the
   transition shares' uncertainty) and with the study's estimator;
4. scores against the observed test year beside persistence and, on synthetic data, the
   oracle (:mod:`studentflow.backtesting.score`); the coefficients refitted on the test year.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.backtesting.prepare import lever_pairs, observed_pairs, resolve_years, year_capacity
from studentflow.backtesting.result import BacktestResult
from studentflow.backtesting.score import change_table, errors, pair_frame, school_table
from studentflow.backtesting.simulate import oracle_flows, simulate_year

__all__ = ["backtest"]

CAPACITY_RULE = ("test-year contracted slots x each school's train-year billing ratio "
                 "(billed / contracted); schools without a train-year contract: the pooled train ratio")


def _fit_year(bundle, zeros, radius_km, max_km, fit_method, formula):
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances, fit_models

    pairs = build_pairs(bundle, compute_distances(bundle, max_km=max_km), radius_km=radius_km)
    return pairs, fit_models(pairs, zeros, method=fit_method, formula=formula)


def _coefficients(train_model, test_model) -> pd.DataFrame:
    t = pd.DataFrame({"train": train_model.params, "train_se": train_model.bse})
    t["test"] = test_model.params.reindex(t.index)
    t["test_se"] = test_model.bse.reindex(t.index)
    t["z"] = (t["test"] - t["train"]) / np.sqrt(t["train_se"] ** 2 + t["test_se"] ** 2)
    t.index.name = "term"
    return t


def _labels(train, test, schools: pd.Index) -> dict:
    """Tier and region per school: the test year's, else the train year's."""
    out = {}
    for kind, frame, col in (("tier", "subsidy", "tier"), ("region", "schools", "region")):
        a = getattr(test, frame)
        b = getattr(train, frame)
        sa = a[col].set_axis(a.index.astype(str)) if col in a else pd.Series(dtype=object)
        sb = b[col].set_axis(b.index.astype(str)) if col in b else pd.Series(dtype=object)
        out[kind] = sa.reindex(schools).fillna(sb.reindex(schools)).fillna("unknown").astype(str)
    return out


def _interval(sim, table: pd.DataFrame, scope) -> dict:
    lo, hi = np.percentile(sim.totals, [2.5, 97.5])
    out = {"predicted_lo": float(lo), "predicted_hi": float(hi),
           "schools_within_interval": float(table.loc[scope, "in_interval"].mean())}
    if "in_predictive_interval" in table:
        out["schools_within_predictive_interval"] = float(table.loc[scope, "in_predictive_interval"].mean())
    return out


def backtest(data=None, *, train=None, test=None, draws: int = 100, seed: int = 0, zeros: str = "truncate",
             radius_km: float = 5.0, max_km: float | None = None, fit_method: str = "fast",
             formula: str | None = None, truth=None, log=None) -> BacktestResult:
    """Fit and calibrate on the train year, predict the test year under its real levers.

    Parameters
    ----------
    data : str, Path or Panel, optional
        A multi-year manifest (or its folder; default the bundled sample) or a ``Panel``.
    train, test : str or Bundle, optional
        School years of ``data`` (default the two latest), or two bundles.
    draws, seed : int
        Monte Carlo draws of the coefficients (and of the forecast pools); the seed.
    zeros : {"truncate", "include", "drop"}
        Estimator of the model (the study's, "drop", is always scored beside it).
    radius_km, max_km, fit_method, formula
        As in :func:`studentflow.pipeline.run_pipeline`.
    truth : path or tuple of paths, optional
        A synthetic world's folder (holding ``truth/``), or its truth folders ``(train,
        test)``; default: the truth beside the manifest, when present (``truth/years.json``
        names each year's folder, else ``truth/<year>/``).
    log : callable, optional
        Receives one line per step.

    Returns
    -------
    BacktestResult
    """
    from studentflow.pipeline import MODEL_LABELS
    from studentflow.scenarios.calibrate import calibrate_status_quo
    from studentflow.scenarios.cohort import forecast_pools, origin_pools
    from studentflow.scenarios.holdout import STATUS_QUO

    say = log or (lambda line: None)
    t0 = time.perf_counter()
    years = resolve_years(data, train, test)
    tb, sb = years.train, years.test
    say(f"backtest: train {years.train_year}, test {years.test_year}")
    train_pairs, models = _fit_year(tb, zeros, radius_km, max_km, fit_method, formula)
    model = next(iter(models.values()))
    study = models.get(MODEL_LABELS["drop"], model)
    cal = calibrate_status_quo(model, train_pairs, STATUS_QUO)
    cal_study = calibrate_status_quo(study, train_pairs, STATUS_QUO) if study is not model else cal
    say(f"  fitted and calibrated on {years.train_year} ({time.perf_counter() - t0:.1f} s)")

    lp = lever_pairs(tb, sb, radius_km=radius_km, max_km=max_km)
    capacity, _, _ = year_capacity(tb, sb)
    forecast = forecast_pools(years.history, for_year=years.test_year)
    origins = pd.Index(pd.unique(lp["origin_id"]))
    pool_draws = pd.DataFrame(forecast.draw(max(draws, 1), seed), columns=forecast.pools.index).reindex(
        columns=origins, fill_value=0.0).to_numpy(float)
    sim = simulate_year(model, lp, capacity, calibration=cal, draws=draws, seed=seed)
    sim_f = simulate_year(model, lp, capacity, calibration=cal, draws=draws, seed=seed, pool_draws=pool_draws)
    sim_s = simulate_year(study, lp, capacity, calibration=cal_study, draws=draws, seed=seed)
    say(f"  simulated {years.test_year}: 3 x {draws} draws ({time.perf_counter() - t0:.1f} s)")

    obs_test, obs_train = observed_pairs(sb), observed_pairs(tb)
    school_obs = obs_test.groupby(level="destination_id").sum()
    school_train = obs_train.groupby(level="destination_id").sum()
    esc_test = sb.schools.index[sb.schools["esc"].fillna(False).astype(bool)].astype(str)
    esc_train = tb.schools.index[tb.schools["esc"].fillna(False).astype(bool)].astype(str)
    schools = pd.Index(sorted(set(esc_test) | set(esc_train) | set(school_obs.index) | set(school_train.index)),
                       name="school_id")
    scope = schools.isin(esc_test.union(school_obs.index))  # the test year's ESC schools
    table = school_table(schools, school_obs, school_train, sim)
    fc_table = school_table(schools, school_obs, school_train, sim_f)
    st_table = school_table(schools, school_obs, school_train, sim_s)
    labels = _labels(tb, sb, schools)
    table["tier"], table["region"], table["test_year_esc"] = labels["tier"], labels["region"], scope
    table["forecast"] = fc_table["predicted"]
    table["forecast_lo"], table["forecast_hi"] = fc_table["predicted_lo"], fc_table["predicted_hi"]
    changes = change_table(sim, schools, school_obs, school_train, labels)

    keys = pd.MultiIndex.from_frame(lp[["origin_id", "destination_id"]]).union(obs_test.index)
    pred = pd.Series(sim.pair_mean, index=pd.MultiIndex.from_frame(lp[["origin_id", "destination_id"]]))
    frame = pair_frame(keys, observed=obs_test, model=pred,
                       forecast=pd.Series(sim_f.pair_mean, index=pred.index),
                       study=pd.Series(sim_s.pair_mean, index=pred.index), persistence=obs_train)
    observed_train = float(school_train.sum())
    obs_s = table.loc[scope, "observed"]
    scores, intervals = {}, {}

    def add(name, column, per_school):
        scores[name] = errors(frame["observed"].to_numpy(), frame[column].to_numpy(), obs_s,
                              per_school.reindex(obs_s.index).fillna(0.0), observed_train)

    add("model", "model", table["predicted"])
    add("model, forecast pools", "forecast", fc_table["predicted"])
    add("persistence", "persistence", table["persistence"])
    add("study estimator", "study", st_table["predicted"])
    for name, s, t in (("model", sim, table), ("model, forecast pools", sim_f, fc_table),
                       ("study estimator", sim_s, st_table)):
        intervals[name] = _interval(s, t, scope)
    for name in ("persistence", "model, forecast pools", "study estimator"):  # totals over every school
        scores[name]["predicted_total"] = float({"persistence": observed_train,
                                                 "model, forecast pools": sim_f.totals.mean(),
                                                 "study estimator": sim_s.totals.mean()}[name])
    scores["model"]["predicted_total"] = float(sim.totals.mean())
    truth_change = _oracle(years, truth, frame, keys, obs_s, observed_train, scores, seed)
    for r in scores.values():
        r["total_error"] = r["predicted_total"] - float(school_obs.sum())
        r["predicted_change"] = r["predicted_total"] - observed_train

    refit = _fit_year(sb, zeros, radius_km, max_km, fit_method, formula)[1]
    coefficients = _coefficients(model, next(iter(refit.values())))
    actual = origin_pools(sb)
    pools = {"actual": float(actual.sum()), "forecast": forecast.total, "method": forecast.method,
             "abs_error": float((forecast.pools.reindex(actual.index.union(forecast.pools.index)).fillna(0)
                                 - actual.reindex(actual.index.union(forecast.pools.index)).fillna(0)).abs().sum())}
    unmatched = float(obs_test[~obs_test.index.get_level_values(0).isin(origins)].sum())
    notes = [f"{int((scope & ~schools.isin(esc_train)).sum())} ESC school(s) "
             f"new in {years.test_year} (calibration factor 1); {int((~scope).sum())} no longer ESC",
             f"{unmatched:,.0f} observed {years.test_year} beneficiaries come from origins without a "
             f"{years.train_year} record (outside the prediction)"]
    say(f"  scored ({time.perf_counter() - t0:.1f} s)")
    return BacktestResult(
        train=years.train_year, test=years.test_year, schools=table, changes=changes,
        scores=pd.DataFrame(scores).T.rename_axis("predictor"), intervals=intervals,
        coefficients=coefficients, pools=pools, observed_total=float(school_obs.sum()),
        observed_train=observed_train, truth_change=truth_change, capacity_rule=CAPACITY_RULE,
        draws=int(draws), seed=int(seed), notes=tuple(notes))


def _oracle(years, truth, frame, keys, obs_s, observed_train, scores, seed):
    """Score the synthetic truth's μ (the floor) and return the truth's change, or None."""
    from studentflow.backtesting.prepare import _truth_dir

    if isinstance(truth, (str, Path)):  # a synthetic world's folder, holding truth/
        truth = (_truth_dir(truth, years.train_year), _truth_dir(truth, years.test_year))
    train_dir, test_dir = (truth if truth is not None else (years.truth_train, years.truth_test))
    if test_dir is None:
        return None
    oracle = oracle_flows(test_dir, seed=seed)
    if oracle is None:
        return None
    pairs = oracle.set_index(["origin_id", "destination_id"])["oracle"]
    per_school = pairs.groupby(level="destination_id").sum()
    scores["oracle"] = errors(frame["observed"].to_numpy(), pairs.reindex(keys).fillna(0.0).to_numpy(),
                               obs_s, per_school.reindex(obs_s.index).fillna(0.0), observed_train)
    scores["oracle"]["predicted_total"] = float(pairs.sum())
    before = oracle_flows(train_dir, seed=seed) if train_dir is not None else None
    return None if before is None else float(pairs.sum() - before["oracle"].sum())
