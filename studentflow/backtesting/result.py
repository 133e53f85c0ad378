"""The result of a backtest: plain tables and a summary a budget officer can read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["BacktestResult"]


def _num(x):
    if isinstance(x, (bool,)) or x is None:
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return x
    return None if math.isnan(v) else (int(v) if v.is_integer() and abs(v) < 2 ** 53 else v)


@dataclass(frozen=True)
class BacktestResult:
    """A school year predicted from the one before and compared with what happened.

    Attributes
    ----------
    train, test : str
        School years fitted on and predicted.
    schools : pandas.DataFrame
        Per ESC school (index ``school_id``): ``observed``, ``predicted`` (mean),
        ``predicted_lo``/``_hi`` (95 %), ``persistence`` (the train year's learners),
        ``in_interval``, ``tier``, ``region``, and the forecast-pool prediction
        ``forecast``/``forecast_lo``/``forecast_hi`` (learners).
    changes : pandas.DataFrame
        Observed vs predicted change from the train year, in total, per tier and per
        region (:func:`studentflow.backtesting.score.change_table`), actual pools.
    scores : pandas.DataFrame
        One row per predictor ("model", "model, forecast pools", "persistence",
        "study estimator", "oracle"): the error keys of :mod:`studentflow.backtesting.score`.
    intervals : dict
        Predictor → ``{"predicted_lo", "predicted_hi", "schools_within_interval"}``.
    coefficients : pandas.DataFrame
        Per term: ``train``, ``train_se``, ``test`` (refitted on the test year),
        ``test_se``, ``z`` (difference over its standard error).
    pools : dict
        ``actual`` and ``forecast`` learners in all pools, ``abs_error`` (Σ |forecast −
        actual| over origins), ``method`` of the forecast.
    observed_total, observed_train : float
        Learners placed in ESC schools in the test and the train year.
    truth_change : float or None
        The synthetic truth's change (oracle test − oracle train), learners.
    capacity_rule : str
    draws, seed : int
    notes : tuple of str
    """

    train: str
    test: str
    schools: pd.DataFrame
    changes: pd.DataFrame
    scores: pd.DataFrame
    intervals: dict
    coefficients: pd.DataFrame
    pools: dict
    observed_total: float
    observed_train: float
    truth_change: float | None = None
    capacity_rule: str = ""
    draws: int = 0
    seed: int = 0
    notes: tuple = field(default_factory=tuple)

    @property
    def observed_change(self) -> float:
        """Observed change in ESC placements from the train to the test year, learners."""
        return self.observed_total - self.observed_train

    def _row(self, name: str) -> dict:
        if name not in self.scores.index:
            return {}
        return {k: _num(v) for k, v in self.scores.loc[name].items()}

    def as_dict(self) -> dict:
        """One JSON-ready object (the ``--json`` output of ``studentflow backtest``)."""
        model = self._row("model")
        iv = self.intervals.get("model", {})
        out = {
            "train": self.train, "test": self.test,
            "observed_train": _num(self.observed_train), "observed_total": _num(self.observed_total),
            "predicted_total": model.get("predicted_total"),
            "predicted_lo": _num(iv.get("predicted_lo")), "predicted_hi": _num(iv.get("predicted_hi")),
            "observed_change": _num(self.observed_change), "predicted_change": model.get("predicted_change"),
            "predicted_change_lo": _num(iv.get("predicted_lo", float("nan")) - self.observed_train),
            "predicted_change_hi": _num(iv.get("predicted_hi", float("nan")) - self.observed_train),
            "schools_within_interval": _num(iv.get("schools_within_interval")),
            "schools_within_predictive_interval": _num(iv.get("schools_within_predictive_interval")),
            **{k: model.get(k) for k in ("total_error", "school_mae", "school_rmse", "srmse", "cpc")},
            "persistence": self._row("persistence"),
            "forecast_pools": {**self._row("model, forecast pools"),
                               **{k: _num(v) for k, v in self.intervals.get("model, forecast pools", {}).items()}},
            "study_estimator": {**self._row("study estimator"),
                                **{k: _num(v) for k, v in self.intervals.get("study estimator", {}).items()}},
            "oracle": self._row("oracle") or None,
            "truth_change": _num(self.truth_change),
            "truth_change_error": None if self.truth_change is None else {
                name: _num(r["predicted_change"] - self.truth_change) for name, r in self.scores.iterrows()},
            "changes": [{k: _num(v) for k, v in r.items()} for r in self.changes.to_dict("records")],
            "coefficients": {t: {k: _num(v) for k, v in r.items()}
                             for t, r in self.coefficients.to_dict("index").items()},
            "pools": {k: _num(v) for k, v in self.pools.items()},
            "capacity_rule": self.capacity_rule, "draws": self.draws, "seed": self.seed,
            "notes": list(self.notes),
        }
        return out

    def summary(self) -> str:
        """Totals, changes with intervals, the predictors side by side and the stability check."""
        d = self.as_dict()
        lines = [
            f"Backtest: fitted on {self.train}, predicted {self.test} ({self.draws} draws, seed {self.seed})",
            f"  ESC placements: {self.train} observed {self.observed_train:,.0f}; {self.test} observed "
            f"{self.observed_total:,.0f}, predicted {d['predicted_total']:,.0f} "
            f"[{d['predicted_lo']:,.0f}, {d['predicted_hi']:,.0f}]",
            f"  change: observed {self.observed_change:+,.0f}, predicted {d['predicted_change']:+,.0f} "
            f"[{d['predicted_change_lo']:+,.0f}, {d['predicted_change_hi']:+,.0f}]"
            + (f"; the truth's change {self.truth_change:+,.0f}" if self.truth_change is not None else ""),
            f"  schools within their 95 % interval: {100 * (d['schools_within_interval'] or 0):.1f} % "
            f"of {int(self.schools['test_year_esc'].sum()) if 'test_year_esc' in self.schools else len(self.schools)}"
            f" ESC schools (expected intake); with one year's demand noise "
            f"{100 * (d['schools_within_predictive_interval'] or 0):.1f} %",
            "  predictor                 total  error   change  school MAE  RMSE   SRMSE  CPC",
        ]
        for name, r in self.scores.iterrows():
            lines.append(f"  {name:<24} {r['predicted_total']:7,.0f} {r['total_error']:+6,.0f} "
                         f"{r['predicted_change']:+8,.0f} {r['school_mae']:10.2f} {r['school_rmse']:6.2f} "
                         f"{r['srmse']:6.2f} {r['cpc']:5.3f}")
        if d["truth_change_error"]:
            lines.append("  error against the truth's change: " + ", ".join(
                f"{k} {v:+,.0f}" for k, v in d["truth_change_error"].items()))
        ch = self.changes[self.changes["kind"] != "total"]
        if len(ch):
            lines.append("  change by group: observed / predicted [95 %]")
            for r in ch.itertuples(index=False):
                lines.append(f"    {r.kind:<6} {r.group:<14} {r.observed_change:+7,.0f} / {r.predicted_change:+7,.0f} "
                             f"[{r.predicted_change_lo:+,.0f}, {r.predicted_change_hi:+,.0f}]"
                             f"{'' if r.inside else '  outside'}")
        p = self.pools
        lines.append(f"  pools: actual {p.get('actual', 0):,.0f} learners, forecast {p.get('forecast', 0):,.0f} "
                     f"({p.get('method', '')}), Σ|forecast − actual| {p.get('abs_error', 0):,.0f}")
        if len(self.coefficients):
            lines.append("  coefficients: train year vs refitted on the test year (z of the difference)")
            for t, r in self.coefficients.iterrows():
                lines.append(f"    {t:<44} {r['train']:+.3f} vs {r['test']:+.3f} (z {r['z']:+.1f})")
        lines.append(f"  capacity: {self.capacity_rule}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
