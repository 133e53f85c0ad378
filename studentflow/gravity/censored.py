"""The pooled NB2 fit with capacity-censored ESC schools (demand above a full school's slots).

A school that filled its billable capacity admitted ``C_j`` learners out of a demand
``D_j >= C_j`` that nobody observed; the learners it turned away went elsewhere. Its pair
counts are therefore rationed: fitting the NB2 to them as if they were demand biases the
coefficients (the dearer, emptier schools look as popular as the cheap, full ones) and,
because the rationing repeats every year at the same school, it leaves a school-level
residual that only destination-clustered standard errors absorb. This module fits the
likelihood that knows which counts are censored (Tobit-style, for counts)::

    not full:  sum_i log NB2(y_ij; mu_ij, alpha)
    full:      log P(D_j >= C_j) + sum_i y_ij log(mu_ij / M_j)

per school and year, ``M_j = sum_i mu_ij``. A full school still tells how its admitted
learners split over the origins (a multinomial given the total, which the rationing by
lot leaves unbiased) and that its demand reached its capacity: ``D_j`` is the NB2 sum,
moment-matched to a negative binomial with mean ``M_j`` and variance
``M_j + alpha sum_i mu_ij^2``. The rows are the outcome-independent radius candidate
set with its zeros (``zeros="include"``). A school is taken as full in a year when it
placed at least its billed slots, placed at least one learner, and its billing history
does not show it below capacity (:func:`capacity_bound_years`).

Standard errors are the two-way (origin, ESC school) cluster sandwich of the censored
likelihood; a full school's ``P(D >= C)`` term is spread over its rows by their shares
``mu_ij / M_j`` so that each row has one origin and one school.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import optimize, special

from studentflow.gravity.likelihood import row_derivatives, two_way_cluster_cov
from studentflow.pairs import BILLED_SHARE_BEFORE

__all__ = ["below_by_billing", "capacity_bound_years", "fit_censored", "fit_censored_rows"]

_STEP = 1e-5


def below_by_billing(billed, slots, share_before, tolerance: float = 1.0):
    """Below capacity by the billing history: billed ``< slots × share_before − tolerance``
    (learners; the largest share of its contracted slots the school billed in an earlier
    year). Missing values give False. Same type as ``billed`` (array or Series)."""
    billed, slots, share = (pd.to_numeric(x, errors="coerce") for x in (billed, slots, share_before))
    return (billed < slots * share - tolerance).fillna(False).astype(bool)


def capacity_bound_years(study_pairs: pd.DataFrame, year_column: str = "school_year", *,
                         tolerance: float = 1.0, observed: pd.Series | None = None) -> pd.DataFrame:
    """Which ESC school was full in which year, from placements, billing and its history.

    Parameters
    ----------
    study_pairs : pandas.DataFrame
        Stacked study PairTables (every observed flow; ``esc_beneficiaries``,
        ``destination_slots`` and ``destination_billed`` in learners, optionally
        :data:`studentflow.pairs.BILLED_SHARE_BEFORE`) with ``year_column``.
    tolerance : float
        Slots of slack for the billing-history rule (learners), as
        :func:`studentflow.scenarios.calibrate.below_capacity`.
    observed : pandas.Series, optional
        Learners placed per (``destination_id``, year), e.g. from each year's flows;
        default the sum of ``esc_beneficiaries`` over the rows.

    Returns
    -------
    pandas.DataFrame
        Index (``destination_id``, ``year_column``); ``observed`` (learners placed),
        ``billed``, ``below_capacity`` and ``capacity_bound``: observed >= billed, observed
        > 0 and not below capacity by its billing in earlier years.
    """
    key = [study_pairs["destination_id"].astype(str), study_pairs[year_column].astype(str)]
    g = study_pairs.groupby(key)
    out = pd.DataFrame({"observed": g["esc_beneficiaries"].sum().astype(float),
                        "billed": pd.to_numeric(g["destination_billed"].first(), errors="coerce")})
    out.index.names = ["destination_id", year_column]
    if observed is not None:
        out["observed"] = observed.reindex(out.index).fillna(0.0).to_numpy(float)
    below = pd.Series(False, index=out.index)
    if BILLED_SHARE_BEFORE in study_pairs:
        below = below_by_billing(out["billed"], g["destination_slots"].first(), g[BILLED_SHARE_BEFORE].first(),
                                 tolerance)
    out["below_capacity"] = below.astype(bool)
    out["capacity_bound"] = (out["observed"] >= out["billed"]) & (out["observed"] > 0) & ~out["below_capacity"]
    return out


def _tail(M, Q, alpha, C):
    """log P(D >= C), D negative binomial with mean M and variance M + alpha Q."""
    n = M * M / np.maximum(alpha * Q, 1e-300)
    return np.log(np.maximum(special.betainc(C, n, M / (n + M)), 1e-300))  # I_{1-p}(C, n), p = n / (n + M)


def _tail_log(z, C):
    """:func:`_tail` at log coordinates ``z = (log M, log Q, log alpha)`` (3 × G)."""
    return _tail(np.exp(z[0]), np.exp(z[1]), np.exp(z[2]), C)


def _log_coords(M, Q, alpha) -> np.ndarray:
    return np.array([np.log(M), np.log(Q), np.full(len(M), np.log(alpha))])


def _moved(z, *steps):
    out = z.copy()
    for k, d in steps:
        out[k] = out[k] + d
    return out


def _tail_first(M, Q, alpha, C, h: float = _STEP):
    """d log P(D >= C) / d(log M, log Q, log alpha), central differences."""
    z = _log_coords(M, Q, alpha)
    return [(_tail_log(_moved(z, (k, h)), C) - _tail_log(_moved(z, (k, -h)), C)) / (2 * h) for k in range(3)]


def _tail_second(M, Q, alpha, C, h: float = 1e-3):
    """Second derivatives of log P(D >= C) in (log M, log Q, log alpha): a 3 x 3 x G array."""
    z = _log_coords(M, Q, alpha)

    def at(*steps):
        return _tail_log(_moved(z, *steps), C)

    out = np.empty((3, 3, len(M)))
    centre = at()
    for k in range(3):
        out[k, k] = (at((k, h)) - 2 * centre + at((k, -h))) / (h * h)
        for j in range(k):
            out[k, j] = out[j, k] = (at((k, h), (j, h)) - at((k, h), (j, -h)) - at((k, -h), (j, h))
                                     + at((k, -h), (j, -h))) / (4 * h * h)
    return out


class _Censored:
    """The censored log-likelihood and its row scores in ``theta = (beta, log alpha)``."""

    def __init__(self, y, X, group, bound, total):
        self.y, self.X, self.group = y, X, group
        self.sum = sp.csr_matrix((np.ones(len(y)), (group, np.arange(len(y)))), shape=(len(bound), len(y)))
        self.bound_row = bound[group]
        self.bound, self.total = bound, total
        self.G = len(bound)

    def _parts(self, theta):
        beta, alpha = theta[:-1], float(np.exp(theta[-1]))
        eta = self.X @ beta
        mu = np.exp(np.minimum(eta, 700.0))
        M = np.bincount(self.group, mu, minlength=self.G)
        Q = np.bincount(self.group, mu * mu, minlength=self.G)
        return beta, alpha, eta, mu, M, Q

    def rows(self, theta, scores: bool = True):
        """Per-row log-likelihood (n,) and scores (n, p+1) at ``theta``."""
        _, alpha, eta, mu, M, Q = self._parts(theta)
        r = 1.0 / alpha
        nb = row_derivatives(self.y, eta, r, "negbin", False, order=1 if scores else 0)
        b, g = self.bound_row, self.group
        Mr = np.where(M > 0, M, 1.0)[g]
        share = mu / Mr
        tail = np.zeros(self.G)
        cb = self.bound & (M > 0)
        tail[cb] = _tail(M[cb], Q[cb], alpha, self.total[cb])
        ll = np.where(b, self.y * (eta - np.log(Mr)) + share * tail[g], nb["ll"])
        if not scores:
            return ll, None
        X = self.X
        # d tail / d(M, Q, alpha), numerically (central, relative steps)
        dM, dQ, dA = (np.zeros(self.G) for _ in range(3))
        if cb.any():
            m, q = M[cb], Q[cb]
            tu, tv, tl = _tail_first(m, q, alpha, self.total[cb])
            dM[cb], dQ[cb], dA[cb] = tu / m, tv / q, tl
        wsum = self.sum @ (mu[:, None] * X)  # sum_i mu_i x_i per group
        xbar = wsum / np.where(M > 0, M, 1.0)[:, None]
        qsum = self.sum @ ((2.0 * mu * mu)[:, None] * X)  # sum_i 2 mu_i^2 x_i per group
        tail_beta = dM[:, None] * wsum + dQ[:, None] * qsum  # (G, p)
        multi = self.y[:, None] * (X - xbar[g]) + share[:, None] * tail_beta[g]
        S = np.empty((len(self.y), X.shape[1] + 1))
        S[:, :-1] = np.where(b[:, None], multi, nb["e"][:, None] * X)
        S[:, -1] = np.where(b, share * dA[g], -nb["r"] * r)  # dA is already d/d log alpha
        return ll, S

    def negative(self, theta):
        ll, S = self.rows(theta)
        n = len(self.y)
        return -ll.sum() / n, -S.sum(axis=0) / n

    def hessian(self, theta):
        """Hessian of the total log-likelihood in ``(beta, log alpha)``: analytic but for
        the tail's second derivatives in (M, Q, alpha), taken by central differences."""
        _, alpha, eta, mu, M, Q = self._parts(theta)
        r = 1.0 / alpha
        X, y, g, b = self.X, self.y, self.group, self.bound_row
        k = X.shape[1]
        H = np.zeros((k + 1, k + 1))
        u = ~b
        nb = row_derivatives(y[u], eta[u], r, "negbin", False, order=2)
        Xu = X[u]
        H[:k, :k] += (Xu * nb["ee"][:, None]).T @ Xu
        H[:k, k] += Xu.T @ (-r * nb["er"])
        H[k, k] += np.sum(r * r * nb["rr"] + r * nb["r"])
        cb = self.bound & (M > 0)
        if not cb.any():
            H[k, :k] = H[:k, k]
            return H
        Mg = np.where(M > 0, M, 1.0)
        Y = np.bincount(g, y, minlength=self.G)
        TM, TQ = np.zeros(self.G), np.zeros(self.G)
        d2 = np.zeros((3, 3, self.G))
        m, q = M[cb], Q[cb]
        tu, tv, _ = _tail_first(m, q, alpha, self.total[cb])
        TM[cb], TQ[cb] = tu / m, tv / q
        d2[:, :, cb] = _tail_second(m, q, alpha, self.total[cb])
        TMM, TQQ = np.zeros(self.G), np.zeros(self.G)
        TMM[cb] = (d2[0, 0, cb] - tu) / (m * m)
        TQQ[cb] = (d2[1, 1, cb] - tv) / (q * q)
        TMQ = np.where(cb, d2[0, 1] / (Mg * np.where(Q > 0, Q, 1.0)), 0.0)
        TML = np.where(cb, d2[0, 2] / Mg, 0.0)
        TQL = np.where(cb, d2[1, 2] / np.where(Q > 0, Q, 1.0), 0.0)
        gb = np.where(self.bound, 1.0, 0.0)  # groups of full schools
        # sum_i w_i x_i x_i' over rows of full schools: multinomial -Y/M mu, tail T_M mu + 4 T_Q mu^2
        w = (gb * (-Y / Mg + TM))[g] * mu + (gb * 4.0 * TQ)[g] * mu * mu
        Xb = X[b]
        H[:k, :k] += (Xb * w[b][:, None]).T @ Xb
        a = self.sum @ (mu[:, None] * X)  # (G, k): sum_i mu_i x_i
        bq = self.sum @ ((2.0 * mu * mu)[:, None] * X)  # sum_i 2 mu_i^2 x_i
        c1 = gb * (Y / (Mg * Mg) + TMM)
        H[:k, :k] += (a * c1[:, None]).T @ a + (bq * (gb * TQQ)[:, None]).T @ bq
        H[:k, :k] += (a * (gb * TMQ)[:, None]).T @ bq + (bq * (gb * TMQ)[:, None]).T @ a
        H[:k, k] += a.T @ (gb * TML) + bq.T @ (gb * TQL)
        H[k, k] += np.sum(np.where(cb, d2[2, 2], 0.0))
        H[k, :k] = H[:k, k]
        return H

    def numeric_hessian(self, theta):
        """Hessian of the total log-likelihood by central differences of the scores."""
        k = len(theta)
        H = np.empty((k, k))
        for j in range(k):
            e = np.zeros(k)
            e[j] = 1e-5 * max(1.0, abs(theta[j]))
            H[:, j] = (self.rows(theta + e)[1].sum(axis=0) - self.rows(theta - e)[1].sum(axis=0)) / (2 * e[j])
        return (H + H.T) / 2.0


def _newton(lik: _Censored, theta: np.ndarray, steps: int = 8, tol: float = 1e-7):
    """Newton steps from ``theta`` (each halved until the likelihood does not fall).

    Returns the parameters and whether the mean score is below ``tol`` in every entry."""
    value, grad = lik.negative(theta)
    for _ in range(steps):
        if np.max(np.abs(grad)) < tol:
            return theta, True
        step = np.linalg.solve(lik.hessian(theta), grad * len(lik.y))  # H is of the total, grad of the mean
        for _ in range(20):
            trial = theta + step
            v, g = lik.negative(trial)
            if np.isfinite(v) and v <= value:
                theta, value, grad = trial, v, g
                break
            step = step / 2.0
        else:
            break
    return theta, bool(np.max(np.abs(grad)) < tol)


def _solve(lik: _Censored, start: np.ndarray, with_flag: bool = False):
    """Newton from ``start``; if it stalls (far from the optimum, the Hessian not negative
    definite), quasi-Newton first, then Newton again."""
    theta, converged = _newton(lik, start, steps=50)
    if not converged:
        res = optimize.minimize(lik.negative, theta, jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 1000})
        theta, converged = _newton(lik, res.x)
    return (theta, converged) if with_flag else theta


def _null_start(names, null, y, log_alpha):
    """Start of the null model (intercept and year effects): the mean count, no year effect."""
    return np.array([np.log(max(float(np.mean(y)), 1e-9)) if names[i] == "Intercept" else 0.0 for i in null]
                    + [log_alpha])


def fit_censored(model, group: np.ndarray, bound: np.ndarray, total: np.ndarray, first: np.ndarray,
                 second: np.ndarray, *, cluster_names: tuple = ("origin_id", "destination_id")):
    """Refit a pooled NB2 ``model`` (``zeros="include"``) with capacity-censored schools.

    Parameters
    ----------
    model : studentflow.gravity.model.GravityModel
        The uncensored NB2 fit on the rows (start values; its ``endog``, ``exog`` and
        names are used).
    group : numpy.ndarray of int
        Row → school-year index (0 … G-1).
    bound : numpy.ndarray of bool
        Per school-year: full (censored) that year.
    total : numpy.ndarray
        Per school-year: learners placed from these rows (``C_j``, learners).
    first, second : numpy.ndarray
        Cluster labels per row (origin and ESC school).

    Returns
    -------
    GravityModel
        ``model`` with the censored ``params``, ``alpha``, two-way cluster ``cov_params``
        and ``bse``, ``llf`` and ``llnull`` of the censored likelihood (the null keeps
        only the intercept and the year effects) and ``converged``.
    """
    if model.family != "negbin":
        raise ValueError("fit_censored: needs an NB2 model (family 'negbin')")
    y = np.asarray(model.endog, float)
    X = np.asarray(model.exog, float)
    lik = _Censored(y, X, np.asarray(group), np.asarray(bound, bool), np.asarray(total, float))
    start = np.r_[model.params.to_numpy(float), np.log(max(model.alpha, 1e-4))]
    theta, converged = _solve(lik, start, with_flag=True)
    H = lik.hessian(theta)
    S = lik.rows(theta)[1]
    V = two_way_cluster_cov(S, H, first, second)
    alpha = float(np.exp(theta[-1]))
    J = np.ones(len(theta))
    J[-1] = alpha  # d alpha / d log alpha
    V = V * np.outer(J, J)
    names = list(model.params.index)
    cov = pd.DataFrame(V, index=names + ["alpha"], columns=names + ["alpha"])
    params = pd.Series(theta[:-1], index=model.params.index, name=model.params.name)
    bse = pd.Series(np.sqrt(np.diag(V)[:-1]), index=model.params.index, name=model.bse.name)
    llf = -lik.negative(theta)[0] * len(y)
    null = [i for i, n in enumerate(names) if n == "Intercept" or n.startswith("C(school_year")]
    lik0 = _Censored(y, X[:, null], lik.group, lik.bound, lik.total)
    ll0 = -lik0.negative(_solve(lik0, _null_start(names, null, y, theta[-1])))[0]
    return dataclasses.replace(
        model, params=params, bse=bse, alpha=alpha, cov_params=cov, llf=float(llf), llnull=float(ll0 * len(y)),
        converged=converged, cluster=" and ".join(cluster_names),
        n_clusters=int(pd.unique(np.asarray(first)).size))


def fit_censored_rows(model, rows: pd.DataFrame, censored: pd.DataFrame, cluster: tuple, year_column: str):
    """:func:`fit_censored` of ``model`` fitted on ``rows`` (a stacked pair table with
    ``destination_id`` and ``year_column``), full schools from ``censored``
    (:func:`capacity_bound_years`). Returns the model and the number of full school-years."""
    keys = pd.MultiIndex.from_arrays([rows["destination_id"].astype(str), rows[year_column].astype(str)])
    group, uniq = pd.factorize(keys)
    bound = censored["capacity_bound"].reindex(uniq).fillna(False).to_numpy(bool)
    total = np.bincount(group, np.asarray(model.endog, float), minlength=len(uniq))
    fit = fit_censored(model, group, bound, total, rows[cluster[0]].to_numpy(), rows[cluster[1]].to_numpy(),
                       cluster_names=cluster)
    return fit, int(bound.sum())
