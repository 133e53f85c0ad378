"""A bare origin -> ESC-school pair table drawn from a known NB2 gravity model.

:func:`make_pairs` is the estimator's test bench: it returns a PairTable
(``docs/contracts.md`` section 3) whose ``esc_beneficiaries`` are NB2 draws with known
slopes, dispersion and intercept, plus the true mean ``mu`` of every pair. No geography
is simulated: distances are drawn per pair, destinations are shared between origins
so that schools receive learners from many origins, as in the real data.

The truth follows ``paper-facts.md`` ("Using the study's coefficients as a synthetic
truth"): the study's slopes and dispersion, with an intercept recalibrated so that the
mean count over all candidate pairs is realistic (about 0.25 learners per candidate
pair, about 10 ESC beneficiaries per origin school with 40 candidate destinations).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from studentflow.schema import REGIONS, SUBSIDY_TIERS
from studentflow.synth import STUDY_ALPHA, STUDY_PARAMS

__all__ = ["make_pairs", "linear_predictor", "TARGET_MEAN_COUNT"]

#: Mean ESC beneficiaries per candidate pair that the default intercept aims at (learners).
TARGET_MEAN_COUNT: float = 0.25

_REGION_SHARES = np.array([0.35, 0.35, 0.30])  # NCR, Region III, Region IV-A


def linear_predictor(pairs: pd.DataFrame, params: Mapping[str, float]) -> np.ndarray:
    """Linear predictor ``log mu`` of the study's gravity model from PairTable columns.

    Parameters
    ----------
    pairs : pandas.DataFrame
        PairTable with ``distance_km`` (km), ``net_cost_k`` (thousand pesos),
        ``esc_rating`` (rank 1-8), ``origin_lgu_revenue`` (pesos), ``origin_region``,
        ``destination_region``.
    params : mapping
        Coefficients keyed like :data:`studentflow.synth.STUDY_PARAMS`; a missing
        key counts as 0 (``intercept`` included).

    Returns
    -------
    numpy.ndarray
        ``log mu`` per row (log learners).
    """
    p = {k: float(v) for k, v in params.items()}
    eta = (
        p.get("intercept", 0.0)
        + p.get("log1p_distance_km", 0.0) * np.log1p(pairs["distance_km"].to_numpy(float))
        + p.get("log1p_net_cost_k", 0.0) * np.log1p(pairs["net_cost_k"].to_numpy(float))
        + p.get("esc_rating", 0.0) * pairs["esc_rating"].to_numpy(float)
        + p.get("log1p_origin_lgu_revenue", 0.0)
        * np.log1p(pairs["origin_lgu_revenue"].to_numpy(float))
    )
    for side in ("origin", "destination"):
        reg = pairs[f"{side}_region"].to_numpy(object)
        for level in REGIONS[1:]:
            eta = eta + p.get(f"{side}_region[{level}]", 0.0) * (reg == level)
    return np.asarray(eta, dtype=float)


def make_pairs(
    n_origins: int = 500,
    dests_per_origin: int = 40,
    *,
    params: Mapping[str, float] | None = None,
    alpha: float = STUDY_ALPHA,
    seed: int = 0,
    intercept: float | None = None,
) -> pd.DataFrame:
    """Draw a synthetic PairTable from a known NB2 gravity model.

    Parameters
    ----------
    n_origins : int
        Number of origin (public elementary) schools.
    dests_per_origin : int
        Candidate ESC destinations per origin (distinct); rows = ``n_origins *
        dests_per_origin``.
    params : mapping, optional
        True coefficients keyed like :data:`studentflow.synth.STUDY_PARAMS`
        (default: the study's slopes). Any ``intercept`` key is ignored: use the
        ``intercept`` argument.
    alpha : float
        NB2 dispersion: ``Var = mu + alpha mu^2``. ``alpha = 0`` gives Poisson counts.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same table.
    intercept : float, optional
        True intercept. Default: chosen so that the mean of ``mu`` over all pairs is
        :data:`TARGET_MEAN_COUNT` (0.25 learners, about 10 per origin with 40
        destinations). The value used is stored in ``df.attrs["params"]``.

    Returns
    -------
    pandas.DataFrame
        PairTable columns (``origin_id``, ``destination_id``, ``pair_type``,
        ``learners``, ``esc_beneficiaries``, ``distance_km``, ``tuition``,
        ``esc_amount``, ``net_cost_k``, ``esc_rating``, ``esc_unrated``,
        ``origin_lgu_revenue``, ``origin_region``, ``destination_region``,
        ``origin_pool``, ``origin_esc_beneficiaries``, ``destination_slots``,
        ``destination_billed``, ``origin_feeds_congested``,
        ``origin_congested_share``) plus ``mu``, the true NB2 mean (learners).
        ``attrs`` holds ``params`` (with the intercept used), ``alpha`` and ``seed``.
    """
    if n_origins < 1 or dests_per_origin < 1:
        raise ValueError(
            f"make_pairs: n_origins ({n_origins}) and dests_per_origin "
            f"({dests_per_origin}) must be >= 1"
        )
    if not alpha >= 0:
        raise ValueError(f"make_pairs: alpha must be >= 0, got {alpha}")
    rng = np.random.default_rng(seed)
    truth = dict(STUDY_PARAMS if params is None else params)
    k = int(dests_per_origin)

    # destinations, in blocks by region so that origins mostly draw from their own region
    n_dest = max(3 * k, n_origins // 4, 8)
    dest_region_idx = np.sort(rng.choice(3, size=n_dest, p=_REGION_SHARES))
    dest_region = np.asarray(REGIONS)[dest_region_idx]
    tuition = np.round(np.exp(rng.normal(np.log(26_000.0), 0.55, n_dest)), -2)
    tier = np.where(dest_region_idx == 0, "NCR", np.where(rng.random(n_dest) < 0.3, "HUC", "other"))
    esc_amount = np.array([SUBSIDY_TIERS[t] for t in tier])
    net_cost_k = np.minimum(np.maximum(0.0, tuition - esc_amount) / 1000.0, 60.0)
    rating = rng.integers(1, 9, n_dest)
    dest_ids = np.array([f"{400000 + i:06d}" for i in range(n_dest)])

    # origins
    org_region_idx = rng.choice(3, size=n_origins, p=_REGION_SHARES)
    revenue = np.clip(np.exp(rng.normal(np.log(1.5e9), 1.1, n_origins)), 1e8, 3e10)
    org_ids = np.array([f"{100000 + i:06d}" for i in range(n_origins)])
    block_start = np.searchsorted(dest_region_idx, np.arange(3))
    block_len = np.bincount(dest_region_idx, minlength=3)
    own = block_start[org_region_idx] + np.floor(
        rng.random(n_origins) * np.maximum(block_len[org_region_idx], 1)
    ).astype(int)
    # a quarter of the origins sit near a regional border and draw across regions
    start = np.where(rng.random(n_origins) < 0.25, rng.integers(0, n_dest, n_origins), own)
    stride = rng.integers(1, max(1, min(3, n_dest // k)) + 1, n_origins)
    dest_idx = (start[:, None] + stride[:, None] * np.arange(k)[None, :]) % n_dest
    o = np.repeat(np.arange(n_origins), k)
    d = dest_idx.ravel()

    distance = 0.3 + 14.7 * rng.beta(1.6, 1.8, o.size)  # km, mode mid-range
    pairs = pd.DataFrame(
        {
            "origin_id": org_ids[o],
            "destination_id": dest_ids[d],
            "distance_km": np.round(distance, 3),
            "tuition": tuition[d],
            "esc_amount": esc_amount[d],
            "net_cost_k": net_cost_k[d],
            "esc_rating": rating[d].astype(np.int64),
            "esc_unrated": np.zeros(o.size, dtype=bool),
            "origin_lgu_revenue": revenue[o],
            "origin_region": np.asarray(REGIONS)[org_region_idx][o],
            "destination_region": dest_region[d],
        }
    )
    slopes = {key: v for key, v in truth.items() if key != "intercept"}
    eta0 = linear_predictor(pairs, slopes)
    if intercept is None:
        b0 = float(np.log(TARGET_MEAN_COUNT) - np.log(np.mean(np.exp(eta0))))
    else:
        b0 = float(intercept)
    mu = np.exp(b0 + eta0)
    if alpha > 0:
        lam = mu * rng.gamma(shape=1.0 / alpha, scale=alpha, size=mu.size)
    else:
        lam = mu
    y = rng.poisson(lam).astype(np.int64)
    learners = y + rng.poisson(0.4 * y)  # fee-paying learners on the same pairs

    pairs["pair_type"] = np.where(learners > 0, "observed", "new")
    pairs["learners"] = learners.astype(np.int64)
    pairs["esc_beneficiaries"] = y
    pairs["mu"] = mu
    org_ben = np.bincount(o, weights=y, minlength=n_origins)
    org_learners = np.bincount(o, weights=learners, minlength=n_origins)
    pool = np.maximum(
        np.round(np.exp(rng.normal(np.log(180.0), 0.45, n_origins))), org_learners + 1
    )
    billed = np.bincount(d, weights=y, minlength=n_dest)
    slots = np.ceil(billed * rng.uniform(0.9, 1.8, n_dest)) + rng.integers(0, 15, n_dest)
    share = rng.beta(1.2, 1.0, n_origins) * (rng.random(n_origins) < 0.75)
    pairs["origin_pool"] = pool[o].astype(np.int64)
    pairs["origin_esc_beneficiaries"] = org_ben[o].astype(np.int64)
    pairs["destination_slots"] = slots[d].astype(np.int64)
    pairs["destination_billed"] = billed[d].astype(np.int64)
    pairs["origin_feeds_congested"] = share[o] > 0
    pairs["origin_congested_share"] = share[o]
    cols = [
        "origin_id", "destination_id", "pair_type", "learners", "esc_beneficiaries",
        "distance_km", "tuition", "esc_amount", "net_cost_k", "esc_rating", "esc_unrated",
        "origin_lgu_revenue", "origin_region", "destination_region", "origin_pool",
        "origin_esc_beneficiaries", "destination_slots", "destination_billed",
        "origin_feeds_congested", "origin_congested_share", "mu",
    ]
    out = pairs[cols].reset_index(drop=True)
    out.attrs["params"] = {**{"intercept": b0}, **slopes}
    out.attrs["alpha"] = float(alpha)
    out.attrs["seed"] = int(seed)
    return out
