"""The demand nobody saw: full ESC schools' latent demand, its probability and its draws.

A school that placed exactly its billed slots ``t`` either was full (capacity ``t``, demand
``D >= t`` of which ``D - t`` learners were turned away) or only looks full (its capacity
was larger and its demand happened to be ``t``; it billed what it admitted). The model's
expected flows into the school give ``D`` a negative binomial law (mean ``M = sum_i mu_ij``,
variance ``M + alpha sum_i mu_ij^2``, the NB2 sum moment-matched). Two pieces follow.

- :func:`full_probability`: ``P(full | t)`` with a flat prior on the billable capacity
  over ``t … K`` (the contracted slots): full explains ``t`` with ``P(D >= t)``, not full
  with ``P(D = t)`` for each of the ``K - t`` larger capacities, so
  ``p = S / (S + (K - t) f)``. A school billing its whole contract (``K <= t``) is full.
- :func:`latent_demand_draws`: for each Monte Carlo draw, each full school's demand is
  drawn from its law given ``D >= t`` (and, with ``p < 1``, whether it was full at all),
  as a multiplier of its calibrated expected demand (mean 1). A scenario's draws then
  place ``min(D, capacity)`` learners draw by draw, whose average is the expected
  placement, where one expected demand would give ``min(E[D], capacity)``, too many
  whenever a school's new capacity is within reach of its demand (Jensen).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from studentflow.allocation.calibrate import demand_law

__all__ = ["demand_law", "demand_multipliers", "full_probability", "latent_demand_draws"]

#: The latent-demand draws' seed is the run's plus this (the coefficient draws use the seed).
SEED_OFFSET = 7_919


def full_probability(placed, slots, demand, demand_sq, alpha: float) -> np.ndarray:
    """P(capacity bound | placed ``t``) of schools that placed their billed slots.

    Parameters
    ----------
    placed : array-like
        Learners placed (= billed slots), ``t``.
    slots : array-like
        Contracted slots ``K`` (learners); the billable capacity is taken as equally
        likely to be any whole number in ``t … K``.
    demand, demand_sq : array-like
        ``sum_i mu_ij`` and ``sum_i mu_ij^2`` of the school (learners, learners²).
    alpha : float
        NB2 dispersion (0: Poisson).

    Returns
    -------
    numpy.ndarray
        Probability in [0, 1]; 1 where ``K <= t`` or the model expects no demand.
    """
    t = np.asarray(placed, float)
    gap = np.maximum(np.asarray(slots, float) - t, 0.0)
    law = _law(demand, demand_sq, alpha)
    tail, point = law.sf(t - 1), law.pmf(t)
    den = tail + gap * point
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, tail / den, 1.0)
    return np.where(np.asarray(demand, float) > 0, out, 1.0)


class _law:
    """The school demand's law: negative binomial, or Poisson where alpha sum mu^2 is ~0."""

    def __init__(self, demand, demand_sq, alpha):
        self.m = np.asarray(demand, float)
        self.n, self.p, self.poisson = demand_law(demand, demand_sq, alpha)

    def _both(self, f, k):
        nb = getattr(stats.nbinom, f)(k, np.where(self.poisson, 1.0, self.n), np.where(self.poisson, 0.5, self.p))
        return np.where(self.poisson, getattr(stats.poisson, f)(k, self.m), nb)

    def sf(self, k):
        return self._both("sf", k)

    def pmf(self, k):
        return self._both("pmf", k)

    def cdf(self, k):
        return self._both("cdf", k)

    def ppf(self, q):
        return self._both("ppf", q)


def school_demand(mat: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """``(sum_i mu_ij, sum_i mu_ij^2)`` per column of an origins × schools matrix."""
    mat = sp.csr_matrix(mat)
    return (np.asarray(mat.sum(axis=0), float).ravel(),
            np.asarray(mat.multiply(mat).sum(axis=0), float).ravel())


def _school_uniforms(ids, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two draws × schools arrays of uniforms, each school's from its own stream (seed and
    the school id), so a school gets the same draws whichever other schools a table holds."""
    first, second = np.empty((draws, len(ids))), np.empty((draws, len(ids)))
    for k, sid in enumerate(ids):
        key = zlib.crc32(str(sid).encode("utf-8"))
        u = np.random.default_rng([int(seed), key]).random(2 * draws)
        first[:, k], second[:, k] = u[:draws], u[draws:]
    return first, second


def latent_demand_draws(schools: pd.DataFrame, alpha: float, draws: int, seed: int) -> pd.DataFrame | None:
    """Per draw, each full school's demand as a multiplier of its calibrated demand.

    Parameters
    ----------
    schools : pandas.DataFrame
        A calibration's school table (:class:`studentflow.scenarios.calibrate.Calibration`
        ``schools``): ``observed``, ``capacity``, ``factor``, ``demand``, ``demand_sq``,
        ``p_full``.
    alpha : float
        NB2 dispersion.
    draws : int
        Monte Carlo draws.
    seed : int
        Seed of the draws.

    Returns
    -------
    pandas.DataFrame or None
        Draws × school ids (only schools with ``p_full > 0``), dimensionless, each column
        of mean about 1; None when no school is full. Each school's draws come from its own
        random stream (``seed`` and its id), the same whatever else the table holds.
    """
    full = schools.loc[(schools["p_full"] > 0) & (schools["demand"] > 0)]
    if full.empty:
        return None
    t = np.minimum(full["observed"], full["capacity"]).to_numpy(float)
    law = _law(full["demand"], full["demand_sq"], alpha)
    below = law.cdf(t - 1)  # P(D < t): the draws start above it
    first, second = _school_uniforms(full.index, draws, seed)
    u = below + (1.0 - below) * first
    latent = law.ppf(np.minimum(u, 1 - 1e-12))
    latent = np.where(np.isfinite(latent), np.maximum(latent, t), t)
    is_full = second < full["p_full"].to_numpy(float)
    demand = np.where(is_full, latent, t)
    mean = (full["factor"] * full["demand"]).to_numpy(float)
    return pd.DataFrame(demand / mean, columns=full.index)


def demand_multipliers(calibration, school_ids, draws: int, seed: int) -> np.ndarray:
    """Draws × ``school_ids``: each school's demand multiplier per draw (1 where it is not
    full), from a calibration (:class:`studentflow.scenarios.calibrate.Calibration`); the
    same for the scenarios and the optimizer at the same ``seed``."""
    out = np.ones((draws, len(school_ids)))
    frame = latent_demand_draws(calibration.schools, calibration.dispersion, draws, seed + SEED_OFFSET)
    if frame is not None:
        pos = pd.Index(np.asarray(school_ids).astype(str)).get_indexer(frame.columns.astype(str))
        ok = pos >= 0
        out[:, pos[ok]] = frame.to_numpy()[:, ok]
    return out
