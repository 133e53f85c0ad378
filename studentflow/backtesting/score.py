"""Errors of a predicted school year against the observed one, with the same keys for
every predictor (model, persistence, study estimator, oracle).

Error keys (:data:`ERROR_KEYS`):

* ``predicted_total`` and ``total_error`` (predicted − observed learners placed in ESC);
* ``predicted_change``: predicted minus the train year's observed learners (its error
  against the observed change equals ``total_error``);
* ``school_mae`` / ``school_rmse``: per ESC school, learners;
* ``srmse`` / ``cpc`` on origin → school pairs (:mod:`studentflow.gravity.metrics`), over one
  key set for all predictors: the test year's candidate pairs plus every pair with an
  observed test-year beneficiary (a pair a predictor lacks counts as 0 learners).

Per-school intervals (95 %, over the Monte Carlo draws) add ``predicted_lo``/``_hi`` and
``schools_within_interval`` (share of ESC schools whose observed placements lie inside,
the interval widened to whole learners as :func:`studentflow.scenarios.calibrate.status_quo_fit`
does): the uncertainty of the expected intake. ``predictive_lo``/``_hi`` add one school
year's demand noise (:func:`studentflow.backtesting.simulate.simulate_year`), the interval a
single year's observed intake should fall in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.gravity.metrics import cpc, srmse

__all__ = ["ERROR_KEYS", "errors", "school_table", "change_table", "pair_frame"]

ERROR_KEYS = ("predicted_total", "total_error", "predicted_change", "school_mae",
              "school_rmse", "srmse", "cpc")


def pair_frame(keys: pd.MultiIndex, **columns: pd.Series) -> pd.DataFrame:
    """Pair values on ``keys`` (origin_id, destination_id), 0 where a series lacks a pair."""
    return pd.DataFrame({k: v.reindex(keys).fillna(0.0).to_numpy(float) for k, v in columns.items()}, index=keys)


def errors(observed_pairs: np.ndarray, predicted_pairs: np.ndarray, observed_school: pd.Series,
           predicted_school: pd.Series, observed_train: float) -> dict:
    """The :data:`ERROR_KEYS` of one predictor.

    Parameters
    ----------
    observed_pairs, predicted_pairs : numpy.ndarray
        Learners per pair, aligned, on the common key set.
    observed_school, predicted_school : pandas.Series
        Learners per ESC school (same index).
    observed_train : float
        Learners placed in the train year (for the change).
    """
    obs_total = float(observed_school.sum())
    pred_total = float(predicted_school.sum())
    diff = (predicted_school - observed_school).to_numpy(float)
    return {
        "predicted_total": pred_total,
        "total_error": pred_total - obs_total,
        "predicted_change": pred_total - observed_train,
        "school_mae": float(np.mean(np.abs(diff))) if diff.size else float("nan"),
        "school_rmse": float(np.sqrt(np.mean(diff ** 2))) if diff.size else float("nan"),
        "srmse": srmse(observed_pairs, predicted_pairs) if observed_pairs.sum() > 0 else float("nan"),
        "cpc": cpc(observed_pairs, predicted_pairs) if observed_pairs.sum() + predicted_pairs.sum() > 0
        else float("nan"),
    }


def school_table(schools: pd.Index, observed: pd.Series, train: pd.Series, sim) -> pd.DataFrame:
    """Per ESC school: observed, predicted mean and 95 % interval, persistence, within.

    ``sim`` is a :class:`~studentflow.backtesting.simulate.Simulated`; schools it lacks are
    predicted 0 with the interval [0, 0].
    """
    draws = pd.DataFrame(sim.school_draws, columns=sim.schools).reindex(columns=schools, fill_value=0.0)
    lo, hi = np.percentile(draws.to_numpy(float), [2.5, 97.5], axis=0)
    out = pd.DataFrame({
        "observed": observed.reindex(schools).fillna(0.0).to_numpy(float),
        "predicted": draws.mean(axis=0).to_numpy(float),
        "predicted_lo": lo, "predicted_hi": hi,
        "persistence": train.reindex(schools).fillna(0.0).to_numpy(float),
    }, index=pd.Index(schools, name="school_id"))
    out["in_interval"] = (out["observed"] >= np.floor(out["predicted_lo"])) & (
        out["observed"] <= np.ceil(out["predicted_hi"]))
    if getattr(sim, "school_predictive", None) is not None:  # with one year's demand noise
        pred = pd.DataFrame(sim.school_predictive, columns=sim.schools).reindex(columns=schools, fill_value=0.0)
        out["predictive_lo"], out["predictive_hi"] = np.percentile(pred.to_numpy(float), [2.5, 97.5], axis=0)
        out["in_predictive_interval"] = (out["observed"] >= out["predictive_lo"]) & (
            out["observed"] <= out["predictive_hi"])
    return out


def change_table(sim, schools: pd.Index, observed: pd.Series, train: pd.Series, groups: dict) -> pd.DataFrame:
    """Observed and predicted change from the train year per group of ESC schools.

    Parameters
    ----------
    sim : Simulated
    schools : pandas.Index
        Every ESC school of either year.
    observed, train : pandas.Series
        Learners per school in the test and the train year.
    groups : dict
        Kind ("tier", "region") → Series school_id → group label.

    Returns
    -------
    pandas.DataFrame
        One row per kind × group (and ``"total"``): ``observed_train``, ``observed_test``,
        ``observed_change``, ``predicted_change`` with ``_lo``/``_hi`` (95 %), ``inside``.
    """
    draws = pd.DataFrame(sim.school_draws, columns=sim.schools).reindex(columns=schools, fill_value=0.0)
    obs = observed.reindex(schools).fillna(0.0)
    base = train.reindex(schools).fillna(0.0)
    rows = []
    parts = [("total", pd.Series("all", index=schools))] + [(k, v.reindex(schools).fillna("unknown"))
                                                          for k, v in groups.items()]
    for kind, label in parts:
        for g in sorted(pd.unique(label.astype(str))):
            m = (label.astype(str) == g).to_numpy()
            t = float(base[m].sum())
            per_draw = draws.loc[:, m].sum(axis=1).to_numpy(float) - t
            lo, hi = np.percentile(per_draw, [2.5, 97.5])
            oc = float(obs[m].sum()) - t
            rows.append({"kind": kind, "group": g, "schools": int(m.sum()), "observed_train": t,
                         "observed_test": float(obs[m].sum()), "observed_change": oc,
                         "predicted_change": float(per_draw.mean()), "predicted_change_lo": float(lo),
                         "predicted_change_hi": float(hi), "inside": bool(np.floor(lo) <= oc <= np.ceil(hi))})
    return pd.DataFrame(rows)
