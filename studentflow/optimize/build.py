"""A :class:`~studentflow.optimize.problem.Problem` from a bundle, a gravity model and
the status-quo scenario, built with the scenarios' own levers and design.

The status quo is a :class:`~studentflow.scenarios.spec.Scenario` (default: the study's
"status quo", billed slots): its pair table and slots come from
:func:`~studentflow.scenarios.levers.scenario_pairs` and
:func:`~studentflow.scenarios.levers.scenario_capacities`, its expected flows per draw
from the model's coefficient draws (the same draws, for the same seed, as
:func:`~studentflow.scenarios.run.run_scenarios`). A subsidy step changes only the
design columns that depend on the ESC amount (found by rebuilding the design with the
amount raised), so any log-linear model honouring the gravity contract works.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.optimize.actions import group_matrix
from studentflow.optimize.problem import Problem
from studentflow.optimize.slots import added_slot_cap

__all__ = ["build_problem"]


def _draw_betas(model, draws: int, seed: int) -> np.ndarray:
    """Coefficient vectors as run_scenarios draws them (draws = 0: the point estimate)."""
    if draws == 0:
        return model.params.to_numpy(dtype=float)[None, :]
    return model.draw_params(draws, seed)[list(model.params.index)].to_numpy(dtype=float)


def _catchments(bundle, origin_ids, pair_rows, pair_cols, n_schools, share, jhs):
    """Catchment of each congested public JHS: origins sending it most of their public-JHS
    learners; its schools: the ESC schools those origins have candidate pairs with."""
    congested = (jhs["jhs_enrolment"].to_numpy(float) > jhs["jhs_seats"].to_numpy(float))
    main = np.asarray(share.argmax(axis=1)).ravel()
    has = np.asarray(share.sum(axis=1)).ravel() > 0
    origin_jhs = np.where(has & congested[main], main, -1)
    k = origin_jhs[pair_rows]
    keep = k >= 0
    used = np.unique(k[keep])
    labels = [str(jhs.index[i]) for i in used]
    row_of = {int(i): g for g, i in enumerate(used)}
    rows = np.array([row_of[int(i)] for i in k[keep]], dtype=np.int64)
    import scipy.sparse as sp

    mat = sp.csr_matrix((np.ones(rows.size), (rows, pair_cols[keep])), shape=(len(used), n_schools))
    mat.data[:] = 1.0
    return labels, mat


def _calibration(calibrate, model, p, sq, bundle):
    """The calibrated status quo (None: the model as fitted), as run_scenarios makes it."""
    import dataclasses

    if calibrate is True:
        from studentflow.scenarios.calibrate import calibrate_status_quo

        plain = dataclasses.replace(sq, subsidy=0.0, subsidy_by_tier={}, subsidy_targeted=None, subsidy_at={},
                                    radius_km=None)
        return calibrate_status_quo(model, p, plain, bundle=bundle)
    if calibrate is False or calibrate is None:
        return None
    if not hasattr(calibrate, "factor_of"):
        raise ValueError(f"build_problem: calibrate must be True, False or a Calibration, got {calibrate!r}")
    return calibrate


def build_problem(bundle, model, pairs: pd.DataFrame, *, status_quo=None, distances=None, draws: int = 20,
                  seed: int = 0, subsidy_step: float = 1000.0, max_steps: int = 20, calibrate=True,
                  max_added_slots="current", min_lot: float = 5.0, unused_slot_share: float = 0.0,
                  pool_draws=None) -> Problem:
    """The optimizer's problem for the status quo of ``bundle`` under ``model``.

    Parameters
    ----------
    bundle : Bundle
        For relief (public JHS seats, enrolment and today's flows), ESC seats (slot
        limits) and tiers.
    model : GravityModel
        ``params``, ``draw_params`` and a formula design (``design_info``).
    pairs : pandas.DataFrame
        The PairTable (docs/contracts.md §3).
    status_quo : Scenario, optional
        Default: the study's status quo (billed slots, today's amounts).
    draws, seed : int
        Monte Carlo draws of the coefficients, as in ``run_scenarios``.
    subsidy_step : float
        Pesos per subsidy step; ``max_steps`` steps at most per school.
    calibrate : bool or Calibration
        As in ``run_scenarios``: True (default) starts from the status quo calibrated to
        the observed ESC placements per school (expected flows into school j × w_j,
        :func:`~studentflow.scenarios.calibrate.calibrate_status_quo`), a Calibration
        uses that one, False the model as fitted.
    max_added_slots, min_lot, unused_slot_share
        Where slots may be added and what unused ones cost
        (:mod:`studentflow.optimize.slots`): slots only up to a school's free JHS seats
        and, by default, its current slots, in lots of at least ``min_lot``.
    pool_draws : pandas.DataFrame, optional
        Origin pools per draw (``draws`` rows × origin ids, learners); the problem's
        ``pools`` is then draws × origins. Origins it lacks keep the pair table's pool.
    """
    from studentflow.scenarios.levers import _apply_subsidy, _tiers, scenario_capacities, scenario_pairs
    from studentflow.scenarios.result import relief_matrix
    from studentflow.scenarios.work import _design
    from studentflow.scenarios.spec import study_scenarios

    sq = status_quo if status_quo is not None else study_scenarios()[0]
    p = scenario_pairs(sq, pairs, bundle, distances)
    if p.empty:
        raise DataError("optimize: the status quo has no origin→ESC pairs")
    origin_ids, r = np.unique(p["origin_id"].astype(str).to_numpy(), return_inverse=True)
    school_ids, c = np.unique(p["destination_id"].astype(str).to_numpy(), return_inverse=True)
    order = np.lexsort((c, r))
    p = p.iloc[order].reset_index(drop=True)
    r, c = r[order], c[order]
    if len(pd.MultiIndex.from_arrays([r, c]).unique()) != len(p):
        raise DataError("optimize: the pair table has duplicate origin→school pairs")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=origin_ids.size))])
    design = _design(model, p)
    if design is None:
        raise DataError("optimize: the model's expected flows could not be written as exp(X β): "
                        "the optimizer needs a log-linear model with a formula design")
    X, off = design
    calibration = _calibration(calibrate, model, p, sq, bundle)
    if calibration is not None:  # the calibrated state: μ_ij × w_j (log w_j joins the offset)
        with np.errstate(divide="ignore"):
            off = off + np.log(calibration.factor_of(p["destination_id"]))
    betas = _draw_betas(model, draws, seed)
    log_mu = betas @ X.T + off[None, :]
    if calibration is not None and calibration.capacity_rule == "posterior":  # full schools' latent demand
        from studentflow.scenarios.latent import demand_multipliers

        log_mu = log_mu + np.log(demand_multipliers(calibration, school_ids, draws, seed))[:, c]

    probe = _design(model, _apply_subsidy(p, np.full(len(p), subsidy_step)))
    changed = np.flatnonzero(np.any(probe[0] != X, axis=0)) if probe is not None else np.array([], int)

    def shift(n: int) -> np.ndarray:
        if changed.size == 0:
            return np.zeros_like(log_mu)
        Xn = _design(model, _apply_subsidy(p, np.full(len(p), n * subsidy_step)))[0]
        return betas[:, changed] @ (Xn[:, changed] - X[:, changed]).T

    first = p.groupby(c, sort=True).first()  # one row per school, in school_ids order
    caps = scenario_capacities(sq, first["destination_slots"], first["destination_billed"], school_ids)
    contracted = first["destination_slots"].to_numpy(dtype=float)
    schools = bundle.schools.reindex(school_ids)
    free_seats = (pd.to_numeric(schools["jhs_seats"], errors="coerce")
                  - pd.to_numeric(schools["jhs_enrolment"], errors="coerce")).fillna(0).clip(lower=0)
    slot_limit = caps + added_slot_cap(caps, free_seats.to_numpy(dtype=float), max_added_slots, min_lot)
    by_origin = p.groupby(r, sort=True).first()
    pools = by_origin["origin_pool"].to_numpy(dtype=float)
    if pool_draws is not None:
        if len(pool_draws) != draws:
            raise ValueError(f"build_problem: pool_draws has {len(pool_draws)} rows, one per draw ({draws}) needed")
        per_draw = pool_draws.reindex(columns=pd.Index(origin_ids, dtype=str)).to_numpy(dtype=float)
        pools = np.where(np.isnan(per_draw), pools[None, :], per_draw)
    if sq.pool == "non_beneficiaries":
        pools = pools - by_origin["origin_esc_beneficiaries"].to_numpy(dtype=float)
    share, public_total, jhs = relief_matrix(bundle, origin_ids)
    aisle = np.clip(jhs["jhs_enrolment"].to_numpy(float) - jhs["jhs_seats"].to_numpy(float), 0, None)
    tiers = _tiers(first, bundle).to_numpy()
    groups = {"tier": group_matrix(tiers, order=[t for t in ("NCR", "HUC", "other") if t in set(tiers)]),
              "catchment": _catchments(bundle, origin_ids, r, c, school_ids.size, share, jhs)}
    return Problem(
        indptr=indptr, indices=c.astype(np.int64), log_mu=log_mu, pools=np.clip(pools, 0, None),
        capacities=caps.astype(float), slot_limit=slot_limit, contracted=contracted,
        amount=first["esc_amount"].to_numpy(dtype=float), subsidy_step=float(subsidy_step),
        max_steps=int(max_steps), subsidy_shift=shift,
        observed=by_origin["origin_esc_beneficiaries"].to_numpy(dtype=float),
        public_total=public_total, share=share.tocsr(), aisle=aisle, groups=groups,
        origin_ids=origin_ids, school_ids=school_ids, jhs_ids=jhs.index.to_numpy().astype(str),
        min_lot=float(min_lot), unused_slot_share=float(unused_slot_share),
    )
