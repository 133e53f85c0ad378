"""Grade 6 → Grade 7 flows of a synthetic region, with ESC demand from a known NB2.

Latent ESC demand on every candidate origin→ESC pair (origin × ESC school within
``radius_km`` of road) is drawn from the study's NB2 gravity model (slopes and dispersion
of :data:`studentflow.synth.STUDY_PARAMS` / ``STUDY_ALPHA``, plus synthetic
:data:`REGION_EFFECTS` for regions the study did not cover) by :func:`draw_esc`;
:mod:`studentflow.synth.rationing` calibrates its intercept (admitted beneficiaries about
4 % of Grade 7 learners, paper-facts.md, last section) and rations it by the schools'
billable slots. The remaining learners, rationed-out applicants included, go to nearby
public JHS and private schools, gravity-like on distance (:func:`learner_flows`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from studentflow.schema import OFFERS_JHS
from studentflow.synth import STUDY_PARAMS
from studentflow.synth.roads import project

#: Target ESC beneficiaries as a share of Grade 7 learners (74,232 / 1,788,916 ≈ 4.1 %).
ESC_SHARE = 0.041
#: Mean share of a public origin's learners entering private schools (NCR, HUC, other).
PRIVATE_SHARE = {"NCR": 0.20, "HUC": 0.17, "other": 0.12}
PRIVATE_SHARE_OF_PRIVATE_ORIGINS = 0.80
#: An origin's ESC beneficiaries may use at most this share of its cohort.
MAX_ESC_SHARE_OF_COHORT = 0.5
#: ESC applicants turned away by a full school enter a public JHS with this probability
#: (else a private school without the subsidy).
RATIONED_TO_PUBLIC = 0.85


#: Synthetic region effects (origin, destination) on the NB2 log mean for the regions the
#: study did not estimate (it covered NCR, the reference, Region III and Region IV-A: their
#: effects are in STUDY_PARAMS). Invented in the study's pattern and size (origins outside
#: NCR send slightly fewer ESC learners, destinations there draw slightly more); truth for
#: the national region, not estimates.
REGION_EFFECTS: dict[str, tuple[float, float]] = {
    "Region I": (-0.060, 0.052), "Region II": (-0.041, 0.033), "Region V": (-0.052, 0.061),
    "Region VI": (-0.071, 0.079), "Region VII": (-0.083, 0.091), "Region VIII": (-0.034, 0.024),
    "Region IX": (-0.045, 0.042), "Region X": (-0.063, 0.070), "Region XI": (-0.078, 0.085),
    "Region XII": (-0.049, 0.047), "CAR": (-0.022, 0.031), "Region XIII": (-0.031, 0.029),
    "MIMAROPA": (-0.024, 0.018), "NIR": (-0.066, 0.072), "BARMM": (-0.012, 0.010),
}

_CONTINUOUS = {
    "log1p_distance_km": lambda p: np.log1p(p["distance_km"].to_numpy(float)),
    "log1p_net_cost_k": lambda p: np.log1p(p["net_cost_k"].to_numpy(float)),
    "esc_rating": lambda p: p["esc_rating"].to_numpy(float),
    "log1p_origin_lgu_revenue": lambda p: np.log1p(p["origin_lgu_revenue"].to_numpy(float)),
}
_DUMMY = re.compile(r"^(origin|destination)_region\[(.+)\]$")


def region_params(regions) -> dict[str, float]:
    """NB2 region dummies of ``regions`` beyond the study's (STUDY_PARAMS has those).

    Parameters
    ----------
    regions : iterable of str
        Canonical region names of the area.

    Returns
    -------
    dict
        ``origin_region[R]`` for every such region R in order, then
        ``destination_region[R]``, from :data:`REGION_EFFECTS` (empty for the study area).
    """
    extra = [r for r in regions if r in REGION_EFFECTS]
    out = {f"origin_region[{r}]": REGION_EFFECTS[r][0] for r in extra}
    out.update({f"destination_region[{r}]": REGION_EFFECTS[r][1] for r in extra})
    return out


def design(pairs: pd.DataFrame, names=None) -> pd.DataFrame:
    """Model covariates of the study's NB2 (intercept omitted).

    Parameters
    ----------
    pairs : pandas.DataFrame
        distance_km, net_cost_k, esc_rating, origin_lgu_revenue, origin_region,
        destination_region.
    names : sequence of str, optional
        Columns wanted, in order: the four slopes' names and ``origin_region[R]`` /
        ``destination_region[R]`` dummies (1.0 where the pair's region is R). None: the
        keys of STUDY_PARAMS except the intercept.
    """
    if names is None:
        names = [k for k in STUDY_PARAMS if k != "intercept"]
    cols = {}
    for name in names:
        if name in _CONTINUOUS:
            cols[name] = _CONTINUOUS[name](pairs)
            continue
        m = _DUMMY.match(name)
        if m is None:
            raise ValueError(f"names: unknown NB2 covariate {name!r}")
        cols[name] = (pairs[f"{m.group(1)}_region"] == m.group(2)).to_numpy(float)
    return pd.DataFrame(cols, index=pairs.index)


def candidate_pairs(schools, origin_ids, destination_ids, distance_km, revenue, rating_fill) -> pd.DataFrame:
    """Candidate origin→ESC pairs (those within the radius) with the model covariates.

    Parameters
    ----------
    schools : pandas.DataFrame
        Institutions with tuition, esc_amount, esc_rating, region, psgc_code.
    origin_ids, destination_ids : array-like
        School ids of each pair.
    distance_km : numpy.ndarray
        Road km of each pair.
    revenue : pandas.Series
        LGU revenue (pesos) by psgc_code.
    rating_fill : float
        Rank used for unrated ESC schools (the median rated rank).
    """
    io = schools.index.get_indexer(origin_ids)
    jd = schools.index.get_indexer(destination_ids)

    def col(name, pos, dtype=None):  # positional take: no copy of whole school rows
        return schools[name].to_numpy(dtype=dtype)[pos]

    tuition = col("tuition", jd, float)
    amount = col("esc_amount", jd, float)
    rating = col("esc_rating", jd, float)
    return pd.DataFrame(
        {
            "origin_id": np.asarray(origin_ids),
            "destination_id": np.asarray(destination_ids),
            "distance_km": np.asarray(distance_km, float),
            "tuition": tuition,
            "esc_amount": amount,
            "net_cost_k": np.maximum(0.0, tuition - amount) / 1000.0,
            "esc_rating": np.where(np.isfinite(rating), rating, rating_fill),
            "origin_lgu_revenue": revenue.reindex(schools["psgc_code"]).to_numpy(float)[io],
            "origin_region": col("region", io, object),
            "destination_region": col("region", jd, object),
        }
    )


def draw_esc(pairs: pd.DataFrame, params: dict, alpha: float, target: float, rng) -> tuple[pd.DataFrame, float]:
    """Draw NB2 counts on the pairs with the intercept calibrated to ``target`` in total.

    Every key of ``params`` but the intercept is a covariate of :func:`design`.

    Returns the pairs with ``mu`` and ``esc_beneficiaries`` and the intercept used.
    """
    X = design(pairs, [k for k in params if k != "intercept"])
    eta = X.to_numpy() @ np.array([params[c] for c in X.columns])
    intercept = float(np.log(target / np.exp(eta).sum()))
    mu = np.exp(intercept + eta)
    lam = mu * rng.gamma(shape=1.0 / alpha, scale=alpha, size=len(mu))
    out = pairs.copy()
    out["mu"] = mu
    out["esc_beneficiaries"] = rng.poisson(lam).astype(np.int64)
    return out, intercept


def _spread(rng, n: np.ndarray, src_xy, dst_xy, dst_ids, k: int, scale_km: float, self_idx=None,
            self_weight: float = 0.0) -> pd.DataFrame:
    """Multinomial split of n[i] learners over the k nearest destinations, ∝ exp(-d/scale)."""
    k = min(k, len(dst_xy))
    d, nb = cKDTree(dst_xy).query(src_xy, k=k)
    d, nb = d.reshape(len(src_xy), k), nb.reshape(len(src_xy), k)
    w = np.exp(-(d / 1000.0) / scale_km) + 1e-9
    if self_idx is not None:
        has = self_idx >= 0
        w = np.column_stack([w, np.where(has, self_weight * w.sum(axis=1), 0.0)])
        nb = np.column_stack([nb, np.where(has, self_idx, 0)])
    p = w / w.sum(axis=1, keepdims=True)
    counts = rng.multinomial(n.astype(np.int64), p)
    i, c = np.nonzero(counts)
    return pd.DataFrame({"src": i, "destination_id": dst_ids[nb[i, c]], "learners": counts[i, c]})


def learner_flows(schools: pd.DataFrame, cohort: pd.Series, esc_pairs: pd.DataFrame, rng) -> pd.DataFrame:
    """School-level Grade 6 → 7 flows: ESC beneficiaries + private non-ESC + public JHS.

    An origin's learners are its admitted ESC beneficiaries, learners who never applied
    to ESC (a private share drawn around :data:`PRIVATE_SHARE`, less the origin's ESC
    applicants, the rest public JHS) and ESC applicants turned away by a full school
    (rationed out: public JHS with probability :data:`RATIONED_TO_PUBLIC`, else a
    private school without the subsidy). Every origin sends exactly its cohort.

    Parameters
    ----------
    schools : pandas.DataFrame
        Institutions (index school_id) with sector, offering, tier, lon, lat.
    cohort : pandas.Series
        Grade 7 learners sent by each origin (index origin school_id); at least the
        origin's ESC applicants.
    esc_pairs : pandas.DataFrame
        origin_id, destination_id, esc_beneficiaries (admitted learners; > 0 rows are
        used) and optionally ``demand`` (latent applicants, >= esc_beneficiaries; absent:
        nobody was rationed out).

    Returns
    -------
    pandas.DataFrame
        origin_id, destination_id, learners, esc_beneficiaries (schema.FLOWS), sorted.
    """
    col = "demand" if "demand" in esc_pairs.columns else "esc_beneficiaries"
    applied = esc_pairs.groupby("origin_id")[col].sum().reindex(cohort.index, fill_value=0).to_numpy(np.int64)
    esc_pairs = esc_pairs[esc_pairs["esc_beneficiaries"] > 0]
    esc_by_o = esc_pairs.groupby("origin_id")["esc_beneficiaries"].sum().reindex(cohort.index, fill_value=0)
    admitted = esc_by_o.to_numpy(np.int64)
    o = schools.loc[cohort.index]
    n = cohort.to_numpy(np.int64)
    if (applied > n).any() or (admitted > applied).any():
        raise ValueError("esc_pairs: an origin's ESC applicants exceed its cohort or its admitted its applicants")
    base = np.where(o["sector"].to_numpy() == "private", PRIVATE_SHARE_OF_PRIVATE_ORIGINS,
                    o["tier"].map(PRIVATE_SHARE).to_numpy(float))
    p = rng.beta(base * 12, (1 - base) * 12)
    n_priv = np.maximum(0, np.round(p * n).astype(np.int64) - applied)
    n_priv = np.minimum(n_priv, n - applied)
    rationed = applied - admitted
    n_priv = n_priv + rng.binomial(rationed, 1.0 - RATIONED_TO_PUBLIC)
    n_pub = n - admitted - n_priv
    o_xy = project(o["lon"], o["lat"])
    jhs = schools["offering"].isin(OFFERS_JHS).to_numpy()
    pub = schools[jhs & (schools["sector"] == "public").to_numpy()]
    prv = schools[jhs & (schools["sector"] == "private").to_numpy()]

    def self_index(dst: pd.DataFrame) -> np.ndarray:
        pos = pd.Series(np.arange(len(dst)), index=dst.index)
        return pos.reindex(cohort.index).fillna(-1).to_numpy(np.int64)

    f_pub = _spread(rng, n_pub, o_xy, project(pub["lon"], pub["lat"]), pub.index.to_numpy(), 8, 2.5,
                    self_index(pub), 3.0)
    f_prv = _spread(rng, n_priv, o_xy, project(prv["lon"], prv["lat"]), prv.index.to_numpy(), 6, 2.0,
                    self_index(prv), 4.0)
    parts = []
    for f in (f_pub, f_prv):
        f["origin_id"] = cohort.index.to_numpy()[f["src"].to_numpy()]
        parts.append(f[["origin_id", "destination_id", "learners"]])
    e = esc_pairs[["origin_id", "destination_id", "esc_beneficiaries"]].rename(columns={"esc_beneficiaries": "learners"})
    e = e.assign(esc_beneficiaries=e["learners"])
    flows = pd.concat(parts + [e], ignore_index=True)
    flows["esc_beneficiaries"] = flows["esc_beneficiaries"].fillna(0)
    flows = flows.groupby(["origin_id", "destination_id"], as_index=False)[["learners", "esc_beneficiaries"]].sum()
    flows = flows.astype({"learners": np.int64, "esc_beneficiaries": np.int64})
    return flows.sort_values(["origin_id", "destination_id"], ignore_index=True)
