"""Monte Carlo of one school year's ESC placements on a fixed pair table.

The same steps as a scenario of :func:`studentflow.scenarios.run.run_scenarios`: per draw
a coefficient vector β_d (``model.draw_params``), expected flows μ_ij = exp(x_ij β_d) × w_j
(the train year's calibration factors; 1 for a school it never saw), the
capacity-constrained allocator on origin pools and school capacities, and rounding to
whole learners. Here the pools may change per draw too (forecast pools with their
uncertainty), and the allocated flows are kept per pair, for SRMSE and CPC.

The oracle of a synthetic world (:func:`oracle_flows`) rations the truth's own μ at each
school's true capacity, as the generator did, and averages over simulated years.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from studentflow.scenarios.draws import draw_seed
from studentflow.scenarios.holdout import pair_index
from studentflow.scenarios.work import _design

__all__ = ["Simulated", "simulate_year", "oracle_flows"]


@dataclass(frozen=True)
class Simulated:
    """Placements of one simulated school year.

    Attributes
    ----------
    pair_mean : numpy.ndarray
        Mean allocated learners per pair row (fractional, over draws).
    schools : pandas.Index
        ESC school ids (columns of ``school_draws``).
    school_draws : numpy.ndarray
        Whole learners placed per draw × school.
    school_predictive : numpy.ndarray or None
        Per draw × school, one school year's intake with the demand's own noise: NB2 demand
        around the allocation's unconstrained demand (dispersion ``model.alpha``), capped at
        the school's capacity (:func:`simulate_year`).
    """

    pair_mean: np.ndarray
    schools: pd.Index
    school_draws: np.ndarray
    school_predictive: np.ndarray | None = None

    @property
    def totals(self) -> np.ndarray:
        """Whole learners placed per draw."""
        return self.school_draws.sum(axis=1)


def simulate_year(model, pairs: pd.DataFrame, capacity: pd.Series, *, calibration=None, draws: int = 100,
                  seed: int = 0, pool_draws: np.ndarray | None = None) -> Simulated:
    """Allocate a school year's learners ``draws`` times.

    Parameters
    ----------
    model : GravityModel
    pairs : pandas.DataFrame
        PairTable of the year's levers (covariates, ``origin_pool`` in learners).
    capacity : pandas.Series
        Slots per ESC school (index ``school_id``), learners; missing schools get 0.
    calibration : Calibration, optional
        Factors w_j (1 where a school is not listed).
    draws, seed : int
        Coefficient draws (0: the point estimate once) and the seed of draws and rounding.
    pool_draws : numpy.ndarray, optional
        Pools per draw × origin in the order of ``pd.unique(pairs.origin_id)`` (learners);
        default ``origin_pool`` in every draw.

    Returns
    -------
    Simulated
    """
    from studentflow.allocation.solve import allocate

    origins, schools, r, c, pools = pair_index(pairs)
    caps = capacity.reindex(schools).fillna(0).to_numpy(float)
    if draws:
        betas = model.draw_params(draws, seed)[list(model.params.index)].to_numpy(float)
    else:
        betas = model.params.to_numpy(float)[None, :]
    X, off = _design(model, pairs) or (None, None)
    if calibration is not None and X is not None:
        with np.errstate(divide="ignore"):
            off = off + np.log(calibration.factor_of(pairs["destination_id"]))
    coo = sp.coo_matrix((np.arange(1, len(pairs) + 1, dtype=float), (r, c)), shape=(len(origins), len(schools)))
    slot = sp.csr_matrix(coo)
    row_of = slot.data.astype(np.int64) - 1
    flow_sum = np.zeros(len(pairs))
    per_school = np.zeros((len(betas), len(schools)))
    predictive = np.zeros_like(per_school)
    alpha = float(getattr(model, "alpha", 0.0) or 0.0)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    for d, beta in enumerate(betas):
        if X is not None:
            mu = np.exp(off + X @ beta)
        else:
            mu = np.asarray(model.predict(pairs, params=pd.Series(beta, index=model.params.index)), float)
            if calibration is not None:
                mu = mu * calibration.factor_of(pairs["destination_id"])
        pool = pools if pool_draws is None else np.asarray(pool_draws[d % len(pool_draws)], float)
        mat = sp.csr_matrix((mu[row_of], slot.indices, slot.indptr), shape=slot.shape)
        seed_d = draw_seed(seed, d)
        alloc = allocate(mat, np.clip(pool, 0, None), caps, seed=seed_d)
        flows = sp.csr_matrix(alloc.flows)
        flows.sort_indices()
        dense = np.asarray(flows[r, c]).ravel()
        flow_sum += dense
        whole = sp.csr_matrix(alloc.to_integer(seed_d))
        per_school[d] = np.asarray(whole.sum(axis=0), dtype=float).ravel()
        predictive[d] = _intake(flows, alloc.destination_factors, caps, alpha, rng)
    return Simulated(flow_sum / len(betas), schools, per_school, predictive)


def _intake(flows, factors, caps, alpha, rng) -> np.ndarray:
    """One year's intake per school: NB2 demand (sum over origins of NB2(μ_ij, α), matched in
    mean and variance by one gamma-Poisson draw) around the unconstrained demand
    ``T_ij / b_j`` of the allocation, capped at capacity; learners."""
    b = np.asarray(factors, dtype=float)
    b = np.where(np.isfinite(b) & (b > 0), b, 1.0)
    demand = np.asarray(flows.sum(axis=0), dtype=float).ravel() / b
    square = np.asarray(flows.multiply(flows).sum(axis=0), dtype=float).ravel() / b ** 2
    extra = np.maximum(alpha * square, 1e-12)  # variance beyond Poisson's
    lam = np.where(demand > 0, rng.gamma(np.maximum(demand ** 2 / extra, 1e-12), extra / np.maximum(demand, 1e-12)),
                   0.0)
    return np.minimum(rng.poisson(lam), np.floor(caps + 1e-9))


def _file(folder: Path, name: str) -> Path:
    """``name.csv`` in ``folder``, else ``name.csv.gz`` (earlier years' truth is compressed)."""
    plain = folder / f"{name}.csv"
    return plain if plain.is_file() else folder / f"{name}.csv.gz"


def oracle_flows(truth_dir, *, capacity: str = "capacity", draws: int = 20, seed: int = 0,
                 rename: dict | None = None) -> pd.DataFrame | None:
    """Expected ESC placements per pair in a synthetic world: its truth's μ, rationed.

    Per simulated year: NB2 demand on every candidate pair (the truth's μ and α); a school
    whose demand exceeds its true capacity admits its capacity, each pair in proportion
    to its demand (the expectation of the generator's hypergeometric draw).

    Parameters
    ----------
    truth_dir : path
        A synthetic year's ``truth/`` folder (``params.json``, ``pairs.csv`` with ``mu``,
        ``esc_capacity.csv``; or the same ``.csv.gz``).
    capacity : str
        Column of ``esc_capacity.csv`` used as the true capacity, learners.
    draws, seed : int
        Simulated years and their seed.
    rename : dict, optional
        Old → current school id, for truth files written with a year's own ids.

    Returns
    -------
    pandas.DataFrame or None
        ``origin_id, destination_id, oracle`` (learners); None without a usable truth.
    """
    folder = Path(truth_dir)
    try:
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        pairs = pd.read_csv(_file(folder, "pairs"), dtype={"origin_id": str, "destination_id": str})
        cap = pd.read_csv(_file(folder, "esc_capacity"), dtype={"school_id": str}).set_index("school_id")
    except (OSError, ValueError, KeyError):
        return None
    if "mu" not in pairs or capacity not in cap:
        return None
    alpha = float(params.get("alpha", 0.0))
    mu = pairs["mu"].to_numpy(float)
    schools = pd.Index(cap.index)
    j = schools.get_indexer(pairs["destination_id"])
    ok = j >= 0
    k = cap[capacity].to_numpy(float)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    total = np.zeros(len(pairs))
    for _ in range(int(draws)):
        if alpha > 0:
            lam = rng.gamma(1.0 / alpha, alpha * mu)
        else:
            lam = mu
        demand = rng.poisson(lam).astype(float)
        per = np.bincount(j[ok], weights=demand[ok], minlength=len(schools))
        scale = np.where(per > k, k / np.where(per > 0, per, 1), 1.0)
        total += np.where(ok, demand * scale[np.clip(j, 0, None)], 0.0)
    out = pairs[["origin_id", "destination_id"]].copy()
    if rename:
        out = out.replace({"origin_id": rename, "destination_id": rename})
    out["oracle"] = total / max(int(draws), 1)
    return out.groupby(["origin_id", "destination_id"], as_index=False)["oracle"].sum()
