"""Calibration of the status quo: a named step between the gravity fit and the scenarios.

The fitted gravity model, allocated under today's capacities, does not give back today:
on the bundled sample it places 11,725 learners in ESC schools (point estimate) where
12,788 were observed, because predicted demand scatters around each school's actual
enrolment and the status quo caps every school at its billed slots (docs/design.md,
"Calibration", has the decomposition). :func:`calibrate_status_quo` computes one factor
``w_j`` per ESC school (:func:`studentflow.allocation.calibrate.calibrate_destinations`)
so that the baseline scenario, at the model's point estimate, places exactly the
observed learners at every school; :func:`studentflow.scenarios.run.run_scenarios` then
multiplies every scenario's expected flows into school ``j`` by ``w_j``, so each
scenario's levers (subsidy, slots, radius) act on top of the calibrated state.

Schools that were full today (observed placements reach their status-quo capacity) are
only raised to fill, never lowered: their observed count is a floor on their demand,
not a measure of it, and lowering it would hide exactly the excess demand that more
slots or a lower net cost would serve.

**Several school years.** A school that bills exactly the learners it admitted looks
full whether or not it was. Its billing in earlier years tells the two apart: a school
that billed a larger share of its contracted slots before was below its capacity now
(:func:`below_capacity`, from the PairTable's ``destination_billed_share_before``,
which :func:`studentflow.pairs.build_pairs` fills from a multi-year manifest). With that
history the calibration (rule ``"auto"``) calibrates those schools as demand-bound and
raises the demand of the schools that stay capacity-bound to its expected value given
that they filled their slots (rule ``"unconstrain"`` of
:mod:`studentflow.allocation.calibrate`); for a model fitted with full schools' counts
censored (the pooled default, :mod:`studentflow.gravity.censored`) it weighs each school
that looks full by its probability of being full and its demand is drawn in every draw
(rule ``"posterior"``, :mod:`studentflow.scenarios.latent`); without a history, the floor
rule (docs/design.md, "Fitting on several years" and "Calibration").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from studentflow.pairs import BILLED_SHARE_BEFORE
from studentflow.scenarios.levers import scenario_capacities, scenario_pairs
from studentflow.scenarios.spec import Scenario
from studentflow.schema import id_map, id_positions

__all__ = ["BILLED_SHARE_BEFORE", "Calibration", "CalibratedModel", "below_capacity", "calibrate_status_quo",
           "status_quo_fit", "status_quo_inputs"]


@dataclass(frozen=True, eq=False)
class Calibration:
    """Result of :func:`calibrate_status_quo`.

    Attributes
    ----------
    scenario : str
        The scenario calibrated to today (the baseline).
    factors : pandas.Series
        ``w_j`` by ``destination_id`` (dimensionless); schools not listed keep 1.
    schools : pandas.DataFrame
        One row per ESC school (index ``school_id``): ``observed`` placements,
        ``capacity`` (status quo, learners), ``capacity_bound`` (observed >= capacity and
        not known to be below capacity), ``below_capacity`` (by the billing history),
        ``predicted`` (uncalibrated status quo at the point estimate), ``calibrated``
        (after), ``factor``; ``demand`` and ``demand_sq`` (sum of the model's expected
        flows into the school and of their squares at the point estimate, learners and
        learners²) and ``p_full`` (probability that its capacity bound: 1 for a
        capacity-bound school, 0 for the others, between under the "posterior" rule).
    capacity_rule : str
        ``"floor"``, ``"match"``, ``"unconstrain"`` (:mod:`studentflow.allocation.calibrate`)
        or ``"posterior"`` (:func:`calibrate_status_quo`).
    converged : bool
    iterations : int
    max_violation : float
        Largest gap between calibrated and observed placements, learners.
    dispersion : float
        The model's NB2 alpha used for the demand of full schools (0: Poisson).
    """

    scenario: str
    factors: pd.Series
    schools: pd.DataFrame
    capacity_rule: str
    converged: bool
    iterations: int
    max_violation: float
    dispersion: float = 0.0

    @property
    def observed(self) -> float:
        """Observed ESC placements, learners."""
        return float(self.schools["observed"].sum())

    @property
    def predicted(self) -> float:
        """Status-quo placements before calibration (point estimate), learners."""
        return float(self.schools["predicted"].sum())

    @property
    def calibrated(self) -> float:
        """Status-quo placements after calibration (point estimate), learners."""
        return float(self.schools["calibrated"].sum())

    def factor_of(self, destination_ids) -> np.ndarray:
        """``w_j`` for each destination id (1 where the school was not calibrated)."""
        ids = destination_ids
        if not (isinstance(ids, (pd.Series, pd.Index)) and isinstance(ids.dtype, pd.StringDtype)):
            ids = np.asarray(ids).astype(str)
        out = id_map(self.factors, ids, fill=1.0)
        out[np.isnan(out)] = 1.0
        return out

    def summary(self) -> str:
        """Totals before and after, schools by kind and the factors' spread."""
        s = self.schools
        w = s["factor"].to_numpy(dtype=float)
        q = np.percentile(w, [10, 50, 90]) if w.size else np.full(3, np.nan)
        bound = s["capacity_bound"].to_numpy(dtype=bool)
        below = int(s["below_capacity"].sum()) if "below_capacity" in s else 0
        how = {"floor": "raised to fill, never lowered", "match": "matched to capacity",
               "unconstrain": "raised to their expected demand given a full school",
               "posterior": "full with their probability given what they placed; demand drawn given a full "
                            "school"}.get(self.capacity_rule, "")
        history = (f"; {below} school(s) below capacity by their billing in earlier years, matched"
                   if below else "")
        return "\n".join([
            f"Calibration of {self.scenario!r} to observed ESC placements ({self.capacity_rule} rule)",
            f"  observed {self.observed:,.0f} learners in {len(s)} ESC schools; status quo before "
            f"{self.predicted:,.1f} ({100 * (self.predicted / max(self.observed, 1) - 1):+.1f} %), "
            f"after {self.calibrated:,.1f}",
            f"  {int(bound.sum())} capacity-bound schools ({how}), "
            f"{int((~bound).sum())} demand-bound (matched){history}",
            f"  factors: 10 % {q[0]:.2f}, median {q[1]:.2f}, 90 % {q[2]:.2f}; "
            f"converged {self.converged} in {self.iterations} rounds, max gap {self.max_violation:.1e} learners",
        ])


@dataclass(frozen=True)
class CalibratedModel:
    """A gravity model whose predictions are multiplied by the calibration factors.

    Used by :func:`studentflow.scenarios.run.run_scenarios` when it cannot recover the
    model's design matrix; ``predict(pairs, params)`` = ``model.predict(...) * w_j``.
    """

    model: object
    calibration: Calibration

    @property
    def params(self):
        return self.model.params

    def draw_params(self, n, seed):
        return self.model.draw_params(n, seed)

    def predict(self, pairs, params=None):
        mu = np.asarray(self.model.predict(pairs, params=params), dtype=float)
        return mu * self.calibration.factor_of(pairs["destination_id"])


def status_quo_inputs(scenario: Scenario, pairs: pd.DataFrame, model, *, bundle=None, distances=None,
                      params=None):
    """Expected flows, pools, capacities and observed placements of one scenario.

    Returns
    -------
    (scipy.sparse.csr_matrix, numpy.ndarray, numpy.ndarray, numpy.ndarray, pandas.Index)
        μ (origins × ESC schools, learners, at ``params`` or the point estimate), origin
        pools (learners, by ``scenario.pool``), capacities (learners, by the scenario's
        slot levers), observed ESC placements per school (learners) and the school ids.
    """
    p = scenario_pairs(scenario, pairs, bundle, distances)
    origins = pd.Index(pd.unique(p["origin_id"]))
    schools = pd.Index(np.sort(pd.unique(p["destination_id"])))
    r = id_positions(origins, p["origin_id"])
    c = id_positions(schools, p["destination_id"])
    mu = np.asarray(model.predict(p, params=params), dtype=float)
    mat = sp.csr_matrix((mu, (r, c)), shape=(len(origins), len(schools)))
    o = p.groupby("origin_id", sort=False)[["origin_pool", "origin_esc_beneficiaries"]].first().reindex(origins)
    pools = o["origin_pool"].to_numpy(dtype=float)
    if scenario.pool == "non_beneficiaries":
        pools = pools - o["origin_esc_beneficiaries"].to_numpy(dtype=float)
    pools = np.clip(pools, 0, None)
    d = p.groupby("destination_id")
    s = d[["destination_slots", "destination_billed"]].first().reindex(schools)
    caps = scenario_capacities(scenario, s["destination_slots"], s["destination_billed"], schools).astype(float)
    observed = d["esc_beneficiaries"].sum().reindex(schools).to_numpy(dtype=float)
    return mat, pools, caps, observed, schools


def calibrate_status_quo(
    model,
    pairs: pd.DataFrame,
    scenario: Scenario,
    *,
    bundle=None,
    distances=None,
    capacity_bound: Literal["auto", "floor", "match", "unconstrain", "posterior"] = "auto",
) -> Calibration:
    """Calibrate ``scenario`` (the status quo) to the observed ESC placements per school.

    Parameters
    ----------
    model : GravityModel
        Anything with ``predict(pairs, params=None)`` (expected learners per pair).
    pairs : pandas.DataFrame
        PairTable (docs/contracts.md §3); ``esc_beneficiaries`` are the observed placements.
    scenario : Scenario
        The state to calibrate, normally the baseline (billed slots, today's amounts).
    bundle, distances : optional
        Only for a scenario whose radius needs the pairs rebuilt.
    capacity_bound : {"auto", "floor", "match", "unconstrain"}
        Rule for schools whose observed placements reach their capacity (see
        :mod:`studentflow.allocation.calibrate`). "auto" (default): with a billing history
        in ``pairs`` (:data:`BILLED_SHARE_BEFORE`), whose :func:`below_capacity` schools are
        then calibrated as demand-bound, "posterior" for a model fitted with censored full
        schools (:mod:`studentflow.gravity.censored`, whose demand at full schools is
        unbiased) and "unconstrain" for the others; without a history "floor", which never
        lowers their demand. "unconstrain" uses the model's NB2 ``alpha``.
        "posterior": as "unconstrain", but a school that placed its billed slots is full
        only with its probability given what it placed
        (:func:`studentflow.scenarios.latent.full_probability`, a flat prior on the
        billable capacity up to the contracted slots); its demand is that mixture's mean.
        Under "posterior" a school that placed nobody is not taken as full (a capacity of 0
        is no contract in use).

    Returns
    -------
    Calibration
    """
    from studentflow.allocation.calibrate import calibrate_destinations
    from studentflow.scenarios.latent import full_probability, school_demand

    mat, pools, caps, observed, schools = status_quo_inputs(scenario, pairs, model, bundle=bundle,
                                                            distances=distances)
    below = below_capacity(pairs).reindex(schools.astype(str), fill_value=False).to_numpy(dtype=bool)
    history = BILLED_SHARE_BEFORE in pairs and bool(pairs[BILLED_SHARE_BEFORE].notna().any())
    if capacity_bound == "auto":
        censored = getattr(getattr(model, "model", model), "censored_schools", 0) > 0
        capacity_bound = ("posterior" if censored else "unconstrain") if history else "floor"
    if capacity_bound == "posterior":  # a school that placed nobody was not full (no contract in use)
        below = below | (observed <= 0)
        history = True
    alpha = float(getattr(model, "alpha", 0.0) or 0.0) if getattr(model, "family", "negbin") != "poisson" else 0.0
    alpha = alpha if np.isfinite(alpha) else 0.0
    rule = "unconstrain" if capacity_bound == "posterior" else capacity_bound
    res = calibrate_destinations(mat, pools, caps, observed, capacity_bound=rule, dispersion=alpha,
                                 below_capacity=below if history else None)
    demand, demand_sq = school_demand(mat)
    factors, p_full = np.asarray(res.factors, float), res.capacity_bound.astype(float)
    if capacity_bound == "posterior":
        slots = pairs.groupby("destination_id")["destination_slots"].first()
        slots = slots.set_axis(slots.index.astype(str)).reindex(schools.astype(str)).to_numpy(float)
        bound = res.capacity_bound & (demand > 0)
        t = np.minimum(observed, caps)
        p_full = np.where(bound, full_probability(t, slots, demand, demand_sq, alpha), p_full)
        with np.errstate(divide="ignore", invalid="ignore"):
            factors = np.where(bound, p_full * factors + (1 - p_full) * t / demand, factors)
    table = pd.DataFrame({
        "observed": observed, "capacity": caps, "capacity_bound": res.capacity_bound, "below_capacity": below,
        "predicted": res.predicted, "calibrated": res.placed, "factor": factors,
        "demand": demand, "demand_sq": demand_sq, "p_full": p_full,
    }, index=pd.Index(schools.astype(str), name="school_id"))
    return Calibration(
        scenario=scenario.name, factors=pd.Series(factors, index=table.index, name="factor"),
        schools=table, capacity_rule=capacity_bound, converged=res.converged,
        iterations=res.iterations, max_violation=res.max_violation, dispersion=alpha,
    )


def below_capacity(pairs: pd.DataFrame, *, tolerance: float = 1.0) -> pd.Series:
    """ESC schools known to have been below their capacity, from their billing history.

    A school billed ``billed_j`` of its ``slots_j`` contracted slots this year and, in an
    earlier year, at most the share ``s_j`` (:data:`BILLED_SHARE_BEFORE`, the largest over
    the earlier years). If ``billed_j < slots_j s_j - tolerance`` it could have billed
    more this year, so its billing was not capped by its capacity.

    Parameters
    ----------
    pairs : pandas.DataFrame
        PairTable with ``destination_slots`` and ``destination_billed`` (learners) and,
        optionally, :data:`BILLED_SHARE_BEFORE` (dimensionless).
    tolerance : float
        Slots of slack for rounding of shares between years (learners).

    Returns
    -------
    pandas.Series
        Bool by ``destination_id`` (all False without the history column).
    """
    cols = ["destination_slots", "destination_billed"] + ([BILLED_SHARE_BEFORE] if BILLED_SHARE_BEFORE in pairs else [])
    d = pairs.groupby(pairs["destination_id"].astype(str))[cols].first()
    if BILLED_SHARE_BEFORE not in d:
        return pd.Series(False, index=d.index, name="below_capacity")
    from studentflow.gravity.censored import below_by_billing

    return below_by_billing(d["destination_billed"], d["destination_slots"], d[BILLED_SHARE_BEFORE],
                            tolerance).rename("below_capacity")


def status_quo_fit(result, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Observed vs status-quo placements per ESC school of a scenario run.

    Parameters
    ----------
    result : ScenarioResult
        Its baseline is the status quo; observed placements come from its calibration
        or, for an uncalibrated run, from ``pairs``.
    pairs : pandas.DataFrame, optional
        PairTable with observed ``esc_beneficiaries`` (needed when ``result`` is uncalibrated).

    Returns
    -------
    pandas.DataFrame
        Index ``school_id``: ``observed``, ``placed_mean``, ``placed_lo``, ``placed_hi``
        (learners, 95 % interval over draws) and ``within`` (observed inside the interval).
    """
    if result.calibration is not None:
        observed = result.calibration.schools["observed"]
    elif pairs is not None:
        observed = pairs.groupby("destination_id")["esc_beneficiaries"].sum().astype(float)
    else:
        raise ValueError("status_quo_fit: the result is uncalibrated; give pairs= for the observed placements")
    esc = result.esc_schools
    sq = esc.loc[esc["scenario"] == result.baseline].set_index("school_id")
    out = pd.DataFrame({"observed": observed.reindex(sq.index).fillna(0.0)})
    out[["placed_mean", "placed_lo", "placed_hi"]] = sq[["placed_mean", "placed_lo", "placed_hi"]]
    out["within"] = (out["observed"] >= np.floor(out["placed_lo"])) & (out["observed"] <= np.ceil(out["placed_hi"]))
    out.index.name = "school_id"
    return out
