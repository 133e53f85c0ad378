"""Count likelihoods of the gravity model, their row derivatives, and sandwiches.

Likelihoods (one row i, linear predictor ``eta = x'beta``, ``mu = exp(eta)``, NB2
size ``r = 1/alpha``; Cameron & Trivedi 2013, *Regression Analysis of Count Data*,
ch. 3-4)::

    Poisson  l = y eta - mu - log y!
    NB2      l = lgamma(y+r) - lgamma(r) - log y! + r log r - (r+y) log(r+mu) + y eta
    zero-truncated: l - log(1 - p0),  p0 = exp(-mu)  or  (r/(r+mu))^r

Covariances are reported in ``(beta, alpha)`` like statsmodels: model-based ``-H^-1``
or the cluster sandwich ``H^-1 (sum_g s_g s_g') H^-1 * G/(G-1) * (n-1)/(n-k)``.
Plain numpy/scipy; the solver is :mod:`studentflow.gravity.newton`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln, polygamma, psi

__all__ = ["row_derivatives", "loglike", "score_hessian_alpha", "cluster_cov", "two_way_cluster_cov", "covariance"]

_ETA_MAX = 700.0
_XTWX_BLOCK = 32_768  # rows per block of X' W X


def _distinct(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(y, return_inverse=True)``; by counting when ``y`` holds small whole
    numbers (learner counts), which avoids sorting a million rows."""
    if y.size and np.all(np.isfinite(y)):
        lo, hi = y.min(), y.max()
        if lo >= 0 and hi <= 4 * y.size + 1000:
            yi = y.astype(np.int64)
            if np.array_equal(yi, y):
                present = np.bincount(yi) > 0
                position = np.cumsum(present) - 1
                return np.flatnonzero(present).astype(float), position[yi]
    return np.unique(y, return_inverse=True)


class _Counts:
    """Counts with ``log y!`` and their distinct values cached.

    The NB2 terms ``lgamma(y+r) - lgamma(r)`` and its ``r``-derivatives depend on the
    row only through ``y``, and counts take few distinct values: evaluating the special
    functions on those values alone is what makes the fast path fast.
    """

    def __init__(self, y, weights=None):
        self.y = np.asarray(y, dtype=float)
        self.uniq, self.inv = _distinct(self.y)
        self.lgy1 = gammaln(self.y + 1.0)
        self.w = None if weights is None else np.asarray(weights, dtype=float)

    def nb_terms(self, r: float, order: int):
        u = self.uniq
        out = [gammaln(u + r) - gammaln(r)]
        if order >= 1:
            out.append(psi(u + r) - psi(r))
        if order >= 2:
            out.append(polygamma(1, u + r) - polygamma(1, r))
        return [a[self.inv] for a in out]


def _as_counts(y) -> _Counts:
    return y if isinstance(y, _Counts) else _Counts(y)


def row_derivatives(y, eta, r, family: str, truncated: bool, order: int = 2):
    """Per-row log-likelihood and its derivatives in ``(eta, r)``.

    Parameters
    ----------
    y : numpy.ndarray
        Counts (learners).
    eta : numpy.ndarray
        Linear predictor ``log mu``.
    r : float
        NB2 size ``1/alpha`` (ignored for Poisson).
    family : {"poisson", "negbin"}
    truncated : bool
        Zero-truncated likelihood (rows must have ``y >= 1``).
    order : {0, 1, 2}
        Highest derivative order wanted.

    Returns
    -------
    dict
        ``ll`` and, up to ``order``, ``e``, ``r``, ``ee``, ``er``, ``rr`` arrays
        (derivatives of ``ll`` in ``eta`` and ``r``; the ``r`` ones are 0 for Poisson).
    """
    yc = _as_counts(y)
    y = yc.y
    eta = np.minimum(eta, _ETA_MAX)
    mu = np.exp(eta)
    zeros = np.zeros_like(mu)
    out: dict[str, np.ndarray] = {}
    if family == "poisson":
        out["ll"] = y * eta - mu - yc.lgy1
        if order >= 1:
            out["e"], out["r"] = y - mu, zeros
        if order >= 2:
            out["ee"], out["er"], out["rr"] = -mu, zeros, zeros
        if truncated:
            g = -mu
            ge, gee, gr, grr, ger = -mu, -mu, zeros, zeros, zeros
    else:
        rm = r + mu
        log_rm = np.log(rm)
        terms = yc.nb_terms(r, order)
        out["ll"] = terms[0] - yc.lgy1 + r * np.log(r) - (r + y) * log_rm + y * eta
        if order >= 1:
            out["e"] = (y - mu) * r / rm
            out["r"] = terms[1] + np.log(r) + 1.0 - log_rm - (r + y) / rm
        if order >= 2:
            rm2 = rm * rm
            out["ee"] = -mu * r * (r + y) / rm2
            out["er"] = (y - mu) * mu / rm2
            out["rr"] = terms[2] + 1.0 / r - 2.0 / rm + (r + y) / rm2
        if truncated:
            l1p = np.log1p(mu / r)
            g = -r * l1p
            ge = -r * mu / rm
            gr = -l1p + mu / rm
            gee = -(r**2) * mu / rm**2
            ger = -(mu**2) / rm**2
            grr = mu**2 / (r * rm**2)
    if truncated:
        # ll_t = ll - log(1 - e^g);  d log(1-e^g) = -w dg,  w = e^g / (1 - e^g)
        w = 1.0 / np.expm1(-g)
        out["ll"] = out["ll"] - np.log(-np.expm1(g))
        if order >= 1:
            out["e"] = out["e"] + w * ge
            out["r"] = out["r"] + w * gr
        if order >= 2:
            w2 = w * (1.0 + w)
            out["ee"] = out["ee"] + w * gee + w2 * ge * ge
            out["er"] = out["er"] + w * ger + w2 * ge * gr
            out["rr"] = out["rr"] + w * grr + w2 * gr * gr
    return out


def loglike(y, X, beta, alpha, family: str, truncated: bool) -> float:
    """Total log-likelihood at ``beta`` (and ``alpha`` for NB2)."""
    r = 1.0 / alpha if family == "negbin" else 1.0
    return float(np.sum(row_derivatives(y, X @ beta, r, family, truncated, 0)["ll"]))


def _xtwx(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``X' diag(w) X``; symmetric rank-k updates when ``w`` has one sign, over blocks
    of rows small enough to stay in cache (the weighted copy of a block is reused)."""
    n, k = X.shape
    sign = -1.0 if np.all(w <= 0) else 1.0 if np.all(w >= 0) else 0.0
    root = np.sqrt(np.abs(w)) if sign else None
    H = np.zeros((k, k))
    for a in range(0, n, _XTWX_BLOCK):
        Xb = X[a:a + _XTWX_BLOCK]
        if sign:
            Z = Xb * root[a:a + _XTWX_BLOCK, None]
            H += Z.T @ Z
        else:
            H += Xb.T @ (Xb * w[a:a + _XTWX_BLOCK, None])
    return sign * H if sign else H


def score_hessian_alpha(y, X, beta, alpha, family, truncated):
    """Row scores and the Hessian in ``(beta, alpha)`` (statsmodels' parameterisation)."""
    nb = family == "negbin"
    r = 1.0 / alpha if nb else 1.0
    d = row_derivatives(y, X @ beta, r, family, truncated, 2)
    S = X * d["e"][:, None]
    H = _xtwx(X, d["ee"])
    if nb:
        # dr/dalpha = -r^2, d2r/dalpha2 = 2 r^3
        S = np.column_stack([S, -(r**2) * d["r"]])
        k = X.shape[1]
        Hn = np.empty((k + 1, k + 1))
        Hn[:k, :k] = H
        Hn[:k, k] = Hn[k, :k] = X.T @ (-(r**2) * d["er"])
        Hn[k, k] = r**4 * np.sum(d["rr"]) + 2.0 * r**3 * np.sum(d["r"])
        H = Hn
    return S, H


def cluster_cov(S: np.ndarray, H: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cluster-robust sandwich with statsmodels' small-sample correction.

    Parameters
    ----------
    S : numpy.ndarray
        Row scores, shape (n, p).
    H : numpy.ndarray
        Hessian of the total log-likelihood, shape (p, p).
    groups : numpy.ndarray
        Cluster label per row.

    Returns
    -------
    numpy.ndarray
        ``H^-1 M H^-1 * G/(G-1) * (n-1)/(n-p)``, ``M = sum_g s_g s_g'``.
    """
    groups = np.asarray(groups)
    if groups.dtype.kind in "iu" and groups.min() >= 0 and np.bincount(groups).all():
        inv = groups  # already dense codes 0..G-1 (pandas.factorize)
    else:
        inv = np.unique(groups, return_inverse=True)[1]
    G = int(inv.max()) + 1
    if inv.size > 1 and np.all(inv[1:] >= inv[:-1]):
        # clusters in contiguous blocks (pair tables sorted by origin): one pass
        Sg = np.add.reduceat(S, np.flatnonzero(np.r_[True, inv[1:] != inv[:-1]]), axis=0)
    else:
        Sg = np.column_stack([np.bincount(inv, weights=S[:, j], minlength=G)
                              for j in range(S.shape[1])])
    Hinv = np.linalg.inv(H)
    n, p = S.shape
    cov = Hinv @ (Sg.T @ Sg) @ Hinv
    return cov * G / (G - 1.0) * (n - 1.0) / (n - p)


def two_way_cluster_cov(S: np.ndarray, H: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two-way cluster-robust covariance (Cameron, Gelbach and Miller 2011).

    ``V = V_first + V_second - V_both``, each term :func:`cluster_cov` with its own
    small-sample correction (as statsmodels' ``cov_cluster_2groups``), ``both`` the
    intersection of the two clusterings. Negative eigenvalues, which the difference can
    leave in small samples, are set to 0 (CGM's remedy), so ``V`` is a covariance.

    Parameters
    ----------
    S, H : numpy.ndarray
        Row scores (n, p) and the Hessian of the total log-likelihood (p, p).
    first, second : numpy.ndarray
        Cluster labels per row (e.g. origin and destination school).
    """
    first = pd.factorize(np.asarray(first))[0]
    second = pd.factorize(np.asarray(second))[0]
    both = pd.factorize(first.astype(np.int64) * (int(second.max()) + 1) + second)[0]
    V = cluster_cov(S, H, first) + cluster_cov(S, H, second) - cluster_cov(S, H, both)
    V = (V + V.T) / 2.0
    w, U = np.linalg.eigh(V)
    return (U * np.maximum(w, 0.0)) @ U.T


def covariance(y, X, beta, alpha, family, truncated, groups=None) -> np.ndarray:
    """Model-based (``groups=None``) or cluster-robust covariance in ``(beta, alpha)``."""
    S, H = score_hessian_alpha(_as_counts(y), np.asarray(X, float), beta, alpha,
                               family, truncated)
    if groups is None:
        return -np.linalg.inv(H)
    return cluster_cov(S, H, groups)

