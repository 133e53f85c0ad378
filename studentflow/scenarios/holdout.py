"""Out-of-sample checks of the status quo: fit on part of the pairs, predict the rest.

:func:`holdout_validation` holds out the learners of one region at a time (pairs whose
origin is in it; or any other split of the pair table, e.g. a second school year via
:func:`out_of_sample`), fits the gravity model on the remaining pairs, and predicts the
held-out pairs' ESC placements under today's capacities, with Monte Carlo over the
coefficients. It reports, for the held-out pairs and, beside them, for the pairs the
model was fitted on (in-sample):

* SRMSE and CPC of placements per origin→school pair (observed ESC beneficiaries vs the
  mean over draws of the allocated flows, learners);
* the observed total and the predicted total with its 95 % interval (learners);
* the share of ESC schools whose observed placements fall within their interval.

Each split is allocated against what is left of each school's status-quo capacity
once the other split's observed learners are seated (``max(0, K_j - P_j^other)``), so
the two splits compete for slots as they do in reality. Every figure is given without
and with the calibrated status quo (:mod:`studentflow.scenarios.calibrate`): factors are
calibrated on the fitting split's observed placements only (schools seen only in the
held-out split keep factor 1), so the held-out figures never see held-out margins.

Region terms: a held-out region has no coefficient in a fit that never saw it, so the
formula's terms naming that region column are dropped for that fit (reported as the
``formula`` column).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from studentflow.scenarios.calibrate import CalibratedModel, calibrate_status_quo
from studentflow.scenarios.draws import draw_seed
from studentflow.scenarios.spec import Scenario

__all__ = ["HoldoutValidation", "holdout_validation", "out_of_sample"]

STATUS_QUO = Scenario("status quo", "Today: billed slots as capacity.", baseline=True, capacity="billed")


@dataclass(frozen=True)
class HoldoutValidation:
    """Result of :func:`holdout_validation`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per held-out part × sample (``"held out"`` / ``"in sample"``) ×
        ``calibrated``: ``pairs``, ``observed`` and ``predicted_mean/_lo/_hi`` (learners),
        ``srmse``, ``cpc``, ``schools``, ``schools_within`` (share of ESC schools whose
        observed placements lie within their 95 % interval), ``formula``.
    by : str
        Column the pairs were split on.
    draws, seed : int
    """

    table: pd.DataFrame
    by: str
    draws: int
    seed: int

    def summary(self) -> str:
        """One line per held-out part and sample: totals, SRMSE, CPC, share within interval."""
        lines = [f"Out-of-sample validation: one {self.by} held out at a time "
                 f"({self.draws} draws, seed {self.seed}); fit on the rest"]
        for r in self.table.itertuples(index=False):
            lines.append(
                f"  {r.held_out:<12} {r.sample:<9} {'calibrated' if r.calibrated else 'as fitted':<10} "
                f"observed {r.observed:7,.0f}  predicted {r.predicted_mean:8,.0f} "
                f"[{r.predicted_lo:,.0f}, {r.predicted_hi:,.0f}]  SRMSE {r.srmse:5.2f}  "
                f"CPC {r.cpc:4.2f}  schools within interval {100 * r.schools_within:5.1f} %")
        return "\n".join(lines)


def _formula_without(formula: str, column: str) -> str:
    """``formula`` without the right-hand terms that mention ``column``."""
    lhs, rhs = formula.split("~", 1)
    terms = [t.strip() for t in re.split(r"\+(?![^(]*\))", rhs)]
    keep = [t for t in terms if column not in t]
    return f"{lhs.strip()} ~ {' + '.join(keep) if keep else '1'}"


def pair_index(pairs: pd.DataFrame):
    """``(origins, schools, rows, cols, pools)`` of a PairTable: origin ids (first seen first),
    school ids (sorted), each pair's row and column in them, and each origin's pool (learners)."""
    origins = pd.Index(pd.unique(pairs["origin_id"]))
    schools = pd.Index(np.sort(pd.unique(pairs["destination_id"])))
    pools = pairs.groupby("origin_id", sort=False)["origin_pool"].first().reindex(origins).to_numpy(float)
    return (origins, schools, origins.get_indexer(pairs["origin_id"]), schools.get_indexer(pairs["destination_id"]),
            pools)


def _status_quo_draws(model, pairs, caps, betas, seeds):
    """Per draw: allocated flows per pair row (fractional) and whole placements per school."""
    from studentflow.allocation.solve import allocate

    origins, schools, r, c, pools = pair_index(pairs)
    k = caps.reindex(schools).fillna(0).to_numpy(float)
    flows = np.zeros((len(betas), len(pairs)))
    per_school = np.zeros((len(betas), len(schools)))
    coo = sp.coo_matrix((np.arange(1, len(pairs) + 1, dtype=float), (r, c)), shape=(len(origins), len(schools)))
    slot = sp.csr_matrix(coo)  # data = pair row + 1, in CSR order
    row_of = slot.data.astype(np.int64) - 1
    for d, beta in enumerate(betas):
        mu = np.asarray(model.predict(pairs, params=pd.Series(beta, index=model.params.index)), dtype=float)
        mat = sp.csr_matrix((mu[row_of], slot.indices, slot.indptr), shape=slot.shape)
        alloc = allocate(mat, pools, k)
        flows[d, row_of] = sp.csr_matrix(alloc.flows).data if sp.issparse(alloc.flows) else 0.0
        whole = sp.csr_matrix(alloc.to_integer(seeds[d]))
        per_school[d] = np.asarray(whole.sum(axis=0), dtype=float).ravel()
    return flows, per_school, schools


def _scores(part, model, caps, betas, seeds, label, sample, calibrated, formula):
    from studentflow.gravity.metrics import cpc, srmse

    flows, per_school, schools = _status_quo_draws(model, part, caps, betas, seeds)
    observed = part["esc_beneficiaries"].to_numpy(float)
    total = flows.sum(axis=1)
    obs_school = part.groupby("destination_id")["esc_beneficiaries"].sum().reindex(schools).to_numpy(float)
    lo, hi = np.percentile(per_school, [2.5, 97.5], axis=0)
    within = (obs_school >= np.floor(lo)) & (obs_school <= np.ceil(hi))
    t_lo, t_hi = np.percentile(per_school.sum(axis=1), [2.5, 97.5])
    return {
        "held_out": label, "sample": sample, "calibrated": calibrated, "pairs": len(part),
        "observed": float(observed.sum()), "predicted_mean": float(total.mean()),
        "predicted_lo": float(t_lo), "predicted_hi": float(t_hi),
        "srmse": srmse(observed, flows.mean(axis=0)) if observed.sum() > 0 else np.nan,
        "cpc": cpc(observed, flows.mean(axis=0)) if observed.sum() + flows.sum() > 0 else np.nan,
        "schools": len(schools), "schools_within": float(within.mean()) if len(within) else np.nan,
        "formula": formula,
    }


def out_of_sample(train: pd.DataFrame, test: pd.DataFrame, *, formula: str | None = None,
                  zeros: str = "truncate", draws: int = 20, seed: int = 0, label: str = "test",
                  fit_method: str = "fast") -> pd.DataFrame:
    """Fit on ``train`` pairs, score the status quo on ``test`` and on ``train``.

    Parameters
    ----------
    train, test : pandas.DataFrame
        Pair tables (docs/contracts.md §3): e.g. one region's learners against the
        rest, or two school years.
    formula : str, optional
        Gravity formula (default the study's); region terms for levels that ``train``
        lacks are dropped.
    zeros : {"truncate", "include", "drop"}
        Estimator (:func:`studentflow.gravity.fit.fit_gravity`).
    draws, seed : int
        Monte Carlo draws of the coefficients; the seed of draws and rounding.
    label : str
        Name of the held-out part in the table.

    Returns
    -------
    pandas.DataFrame
        Rows of :attr:`HoldoutValidation.table` for this split (4 rows).
    """
    from studentflow.gravity.fit import STUDY_FORMULA, fit_gravity

    formula = STUDY_FORMULA if formula is None else formula
    for col in ("origin_region", "destination_region"):
        if col in test and not set(test[col].dropna()) <= set(train[col].dropna()):
            formula = _formula_without(formula, col)
    model = None
    for col in (None, "destination_region", "origin_region"):
        if col is not None:  # a region level missing from the estimation rows: not identified
            formula = _formula_without(formula, col)
        try:
            model = fit_gravity(train, formula, zeros=zeros, method=fit_method)
            break
        except ValueError as exc:
            if "not identified" not in str(exc) or col == "origin_region":
                raise
    betas = model.draw_params(draws, seed)[list(model.params.index)].to_numpy(float) if draws else \
        model.params.to_numpy(float)[None, :]
    seeds = [draw_seed(seed, d) for d in range(len(betas))]
    billed = pd.concat([train, test]).groupby("destination_id")["destination_billed"].first()

    def residual(other):  # capacity left once the other split's observed learners are seated
        taken = other.groupby("destination_id")["esc_beneficiaries"].sum()
        return (billed - taken.reindex(billed.index).fillna(0)).clip(lower=0)

    calibration = calibrate_status_quo(model, train.assign(destination_billed=train["destination_id"].map(
        residual(test))), STATUS_QUO)
    rows = []
    for calibrated in (False, True):
        m = CalibratedModel(model, calibration) if calibrated else model
        rows.append(_scores(test, m, residual(train), betas, seeds, label, "held out", calibrated, formula))
        rows.append(_scores(train, m, residual(test), betas, seeds, label, "in sample", calibrated, formula))
    return pd.DataFrame(rows)


def holdout_validation(pairs: pd.DataFrame, *, by: str = "origin_region", formula: str | None = None,
                       zeros: str = "truncate", draws: int = 20, seed: int = 0,
                       fit_method: str = "fast") -> HoldoutValidation:
    """Hold out each value of ``by`` in turn (default: each origin region), fit on the rest.

    Parameters
    ----------
    pairs : pandas.DataFrame
        PairTable (docs/contracts.md §3) with observed ``esc_beneficiaries``.
    by : str
        Column whose values define the held-out parts (e.g. ``origin_region``).
    formula, zeros, draws, seed, fit_method
        As in :func:`out_of_sample`.

    Returns
    -------
    HoldoutValidation
    """
    values = sorted(pd.unique(pairs[by].dropna()))
    if len(values) < 2:
        raise ValueError(f"holdout_validation: {by!r} has {len(values)} value(s); need at least 2")
    parts = []
    for v in values:
        test = pairs.loc[pairs[by] == v].reset_index(drop=True)
        train = pairs.loc[pairs[by] != v].reset_index(drop=True)
        parts.append(out_of_sample(train, test, formula=formula, zeros=zeros, draws=draws, seed=seed,
                                   label=str(v), fit_method=fit_method))
    return HoldoutValidation(table=pd.concat(parts, ignore_index=True), by=by, draws=draws, seed=seed)
