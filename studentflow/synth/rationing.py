"""Capacity-rationed ESC admissions: latent NB2 demand, contracted slots, billable capacity.

The synthetic region's ESC side is drawn in two stages.

1. **Latent demand** (the gravity model's count). On every candidate origin→ESC pair
   (origin × ESC school within the candidate radius of road),
   ``demand_ij ~ NB2(mu_ij, alpha)`` with the study's slopes and dispersion
   (:data:`studentflow.synth.STUDY_PARAMS`, ``STUDY_ALPHA``) and an intercept calibrated
   so that the *admitted* learners are ``target`` in total (about 4 % of Grade 7).
2. **Rationing by capacity.** ESC school *j* holds contracted slots
   ``K_j = max(MIN_SLOTS, ceil(M_j * s_j))`` with ``M_j = sum_i mu_ij`` its expected
   demand and ``s_j ~ lognormal(log SLOTS_FACTOR_MEDIAN, SLOTS_FACTOR_SIGMA)``; it can bill
   ``C_j = round(K_j * u_j)`` learners, ``u_j`` an administrative utilisation factor
   (Beta with mean :data:`UTILISATION_MEAN`, or with probability
   :data:`OVERBILLED_SHARE` uniform in [1.02, 1.3]: billed beyond contract). If the
   school's applicants ``D_j = sum_i demand_ij`` fit (``D_j <= C_j``) all are admitted;
   otherwise exactly ``C_j`` are admitted, drawn at random among the applicants
   (multivariate hypergeometric over the origins' counts). Applicants turned away
   (rationed out) enter Grade 7 elsewhere (:func:`studentflow.synth.flows.learner_flows`).

Why: real ESC schools stop admitting once their billable slots are used, so where slots
bind a lower tuition cannot raise enrolment while more slots can: the study's headline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.synth.flows import draw_esc

#: Contracted slots per learner of expected demand: lognormal median and log-sd.
SLOTS_FACTOR_MEDIAN = 1.0
SLOTS_FACTOR_SIGMA = 0.35
#: Every ESC school holds at least this many contracted slots (learners).
MIN_SLOTS = 10
#: Administrative utilisation u_j: Beta(UTILISATION_MEAN * k, (1 - UTILISATION_MEAN) * k)
#: except a share OVERBILLED_SHARE of schools with u_j ~ U(OVERBILLED_RANGE).
UTILISATION_MEAN = 0.8
UTILISATION_CONCENTRATION = 8.0
OVERBILLED_SHARE = 0.12
OVERBILLED_RANGE = (1.02, 1.3)
#: Calibration passes of the intercept (a pilot draw, then the final draw).
PASSES = 2


def rationing_parameters() -> dict:
    """The rationing parameters as a plain dict (recorded in truth/params.json)."""
    return {
        "slots": "K_j = max(min_slots, ceil(expected_demand_j * s_j)), s_j ~ lognormal",
        "slots_factor_median": SLOTS_FACTOR_MEDIAN, "slots_factor_sigma": SLOTS_FACTOR_SIGMA,
        "min_slots": MIN_SLOTS,
        "capacity": "C_j = round(K_j * u_j); u_j ~ Beta(mean, concentration) or U(overbilled_range)",
        "utilisation_mean": UTILISATION_MEAN, "utilisation_concentration": UTILISATION_CONCENTRATION,
        "overbilled_share": OVERBILLED_SHARE, "overbilled_range": list(OVERBILLED_RANGE),
        "admission": "all applicants if demand_j <= C_j, else C_j drawn by multivariate hypergeometric",
    }


def contracted_slots(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contracted ESC slots ``K_j = max(MIN_SLOTS, ceil(expected_j * s_j))`` (learners).

    Parameters
    ----------
    expected : numpy.ndarray
        Expected demand of each ESC school, sum of mu over its candidate pairs (learners).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        int64 slots, one per school.
    """
    expected = np.asarray(expected, float)
    s = np.exp(rng.normal(np.log(SLOTS_FACTOR_MEDIAN), SLOTS_FACTOR_SIGMA, len(expected)))
    return np.maximum(MIN_SLOTS, np.ceil(expected * s)).astype(np.int64)


def billable_capacity(slots: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Administrative utilisation ``u_j`` and billable capacity ``C_j = round(K_j u_j)``.

    Parameters
    ----------
    slots : numpy.ndarray
        Contracted slots K_j (learners).
    rng : numpy.random.Generator

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        u (float, > 1 for schools billed beyond contract) and C (int64 learners, >= 0).
    """
    slots = np.asarray(slots, np.int64)
    n = len(slots)
    k = UTILISATION_CONCENTRATION
    beta = rng.beta(UTILISATION_MEAN * k, (1.0 - UTILISATION_MEAN) * k, n)
    over = rng.random(n) < OVERBILLED_SHARE
    u = np.where(over, rng.uniform(*OVERBILLED_RANGE, n), beta)
    return u, np.round(slots * u).astype(np.int64)


def admit(destination: np.ndarray, demand: np.ndarray, capacity: pd.Series,
          rng: np.random.Generator) -> np.ndarray:
    """Admitted applicants per pair under each school's capacity (learners).

    Parameters
    ----------
    destination : numpy.ndarray
        ESC school id of each pair.
    demand : numpy.ndarray
        Applicants on each pair (int learners).
    capacity : pandas.Series
        Billable capacity C_j by school id (int learners); every destination must be in it.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        int64 admitted per pair: the demand itself at schools with
        ``sum demand <= C_j``; otherwise a multivariate hypergeometric draw of exactly
        ``C_j`` applicants over the school's pairs.
    """
    demand = np.asarray(demand, np.int64)
    pos = capacity.index.get_indexer(destination)
    if (pos < 0).any():
        raise ValueError(f"destination: {int((pos < 0).sum())} pairs name a school without capacity")
    cap = capacity.to_numpy(np.int64)
    total = np.bincount(pos, weights=demand, minlength=len(cap)).astype(np.int64)
    out = demand.copy()
    full = np.flatnonzero(total > cap)
    if len(full):
        order = np.argsort(pos, kind="stable")
        starts = np.searchsorted(pos[order], np.arange(len(cap) + 1))
        for j in full:  # sorted school positions: a fixed draw order for a given seed
            rows = order[starts[j] : starts[j + 1]]
            out[rows] = rng.multivariate_hypergeometric(demand[rows], int(cap[j]))
    return out


def draw_admissions(pairs: pd.DataFrame, esc_schools: pd.Index, params: dict, alpha: float, target: float,
                    rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Latent NB2 demand on the candidate pairs, slots, capacity and rationed admissions.

    The intercept is calibrated in :data:`PASSES` passes: a pilot draw measures the
    share of expected demand that is admitted, and the final draw sets the expected
    demand to ``target / share``, so that admitted learners are close to ``target``.

    Parameters
    ----------
    pairs : pandas.DataFrame
        Candidate pairs with the model covariates (:func:`studentflow.synth.flows.candidate_pairs`).
    esc_schools : pandas.Index
        Every ESC school id (schools without candidate pairs still get slots).
    params : dict
        NB2 slopes (keys of STUDY_PARAMS; the intercept is ignored).
    alpha : float
        NB2 dispersion.
    target : float
        Admitted ESC beneficiaries wanted in total (learners).
    rng : numpy.random.Generator

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame, float)
        The pairs with ``mu``, ``demand`` (latent NB2 count) and ``esc_beneficiaries``
        (admitted); per ESC school (index school_id): ``expected_demand`` (learners,
        float), ``slots`` (K), ``utilisation`` (u), ``capacity`` (C), ``demand``,
        ``admitted`` (learners), ``full`` (demand > capacity); and the intercept.
    """
    share = 1.0
    for _ in range(PASSES):
        out, intercept = draw_esc(pairs, params, alpha, target / share, rng)
        out = out.rename(columns={"esc_beneficiaries": "demand"})
        dest = out["destination_id"].to_numpy()
        pos = esc_schools.get_indexer(dest)
        if (pos < 0).any():
            raise ValueError("pairs: destination_id outside esc_schools")
        expected = np.bincount(pos, weights=out["mu"].to_numpy(), minlength=len(esc_schools))
        slots = contracted_slots(expected, rng)
        u, cap = billable_capacity(slots, rng)
        admitted = admit(dest, out["demand"].to_numpy(), pd.Series(cap, index=esc_schools), rng)
        share = max(admitted.sum(), 1) / out["mu"].sum()
    out["esc_beneficiaries"] = admitted
    demand = np.bincount(pos, weights=out["demand"].to_numpy(), minlength=len(esc_schools)).astype(np.int64)
    got = np.bincount(pos, weights=admitted, minlength=len(esc_schools)).astype(np.int64)
    schools = pd.DataFrame({"expected_demand": expected, "slots": slots, "utilisation": u, "capacity": cap,
                            "demand": demand, "admitted": got, "full": demand > cap},
                           index=pd.Index(esc_schools, name="school_id"))
    return out, schools, intercept
