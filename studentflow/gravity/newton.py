"""Numerical core of the gravity model: count likelihoods, a Newton solver, sandwiches.

Plain numpy/scipy, no statsmodels: :func:`studentflow.gravity.fit.fit_gravity` uses it for
``method="fast"`` and checks it against statsmodels in the tests.

Likelihoods (one row i, linear predictor ``eta = x'beta``, ``mu = exp(eta)``, NB2
size ``r = 1/alpha``; Cameron & Trivedi 2013, *Regression Analysis of Count Data*,
ch. 3-4)::

    Poisson  l = y eta - mu - log y!
    NB2      l = lgamma(y+r) - lgamma(r) - log y! + r log r - (r+y) log(r+mu) + y eta
    zero-truncated: l - log(1 - p0),  p0 = exp(-mu)  or  (r/(r+mu))^r

The solver works on ``(beta, log alpha)`` with exact gradient and Hessian (derivatives
are taken in ``(eta, r)`` row by row and chained), Newton steps with step halving and a
Levenberg ridge where the Hessian is not negative definite. Covariances are reported in
``(beta, alpha)`` like statsmodels: model-based ``-H^-1`` or the cluster sandwich
``H^-1 (sum_g s_g s_g') H^-1 * G/(G-1) * (n-1)/(n-k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, polygamma, psi

__all__ = ["FastFit", "fit_counts", "null_llf", "row_derivatives", "loglike", "cluster_cov"]

_ETA_MAX = 700.0
_LOG_ALPHA_MIN = np.log(1e-8)
_START_ROWS = 100_000
_QUADRATIC_STOP = 1e-5
#: NB2 alpha below this is taken as the boundary alpha = 0 (the fit is then Poisson's).
ALPHA_BOUNDARY: float = 1e-5


class _Counts:
    """Counts with ``log y!`` and their distinct values cached.

    The NB2 terms ``lgamma(y+r) - lgamma(r)`` and its ``r``-derivatives depend on the
    row only through ``y``, and counts take few distinct values: evaluating the special
    functions on those values alone is what makes the fast path fast.
    """

    def __init__(self, y, weights=None):
        self.y = np.asarray(y, dtype=float)
        self.uniq, self.inv = np.unique(self.y, return_inverse=True)
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
    """``X' diag(w) X``; a symmetric rank-k update when ``w`` has one sign."""
    if np.all(w <= 0):
        Z = X * np.sqrt(-w)[:, None]
        return -(Z.T @ Z)
    if np.all(w >= 0):
        Z = X * np.sqrt(w)[:, None]
        return Z.T @ Z
    return X.T @ (X * w[:, None])


def _grad_hess(y, X, theta, family, truncated, order=2):
    """Log-likelihood, gradient and Hessian in ``(beta, log alpha)``."""
    nb = family == "negbin"
    k = X.shape[1]
    beta = theta[:k]
    r = float(np.exp(-theta[k])) if nb else 1.0
    d = row_derivatives(y, X @ beta, r, family, truncated, order)
    w = getattr(y, "w", None)
    if w is not None:  # frequency weights
        d = {key: v * w for key, v in d.items()}
    ll = float(np.sum(d["ll"]))
    if order == 0:
        return ll, None, None
    gb = X.T @ d["e"]
    if not nb:
        return ll, gb, (_xtwx(X, d["ee"]) if order >= 2 else None)
    gt = -r * np.sum(d["r"])
    grad = np.append(gb, gt)
    if order < 2:
        return ll, grad, None
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = _xtwx(X, d["ee"])
    H[:k, k] = H[k, :k] = X.T @ (-r * d["er"])
    H[k, k] = r**2 * np.sum(d["rr"]) + r * np.sum(d["r"])
    return ll, grad, H


@dataclass(frozen=True)
class FastFit:
    """Raw result of :func:`fit_counts` (numpy only)."""

    beta: np.ndarray
    alpha: float
    llf: float
    cov: np.ndarray  # (beta, alpha) for NB2, beta for Poisson
    converged: bool
    iterations: int
    max_abs_grad: float
    boundary: bool = False  # NB2 alpha at its boundary 0 (then a Poisson fit)


def _newton(y, X, theta0, family, truncated, maxiter, tol):
    theta = np.asarray(theta0, float).copy()
    nb = family == "negbin"
    ll, grad, H = _grad_hess(y, X, theta, family, truncated)
    converged = False
    it = 0
    for it in range(1, maxiter + 1):
        negH = -H
        ridge = 0.0
        scale = np.maximum(np.abs(np.diag(negH)), 1e-12)
        while True:
            try:
                L = np.linalg.cholesky(negH + ridge * np.diag(scale))
                break
            except np.linalg.LinAlgError:
                ridge = 1e-6 if ridge == 0.0 else ridge * 10.0
                if ridge > 1e12:
                    raise ValueError("gravity fit: Hessian is singular (collinear terms?)")
        step = np.linalg.solve(L.T, np.linalg.solve(L, grad))
        t = 1.0
        while True:
            cand = theta + t * step
            if nb:
                cand[-1] = max(cand[-1], _LOG_ALPHA_MIN)
            # the full step usually succeeds: evaluate all derivatives there at once
            order = 2 if t == 1.0 else 0
            ll_new, g_new, H_new = _grad_hess(y, X, cand, family, truncated, order)
            if np.isfinite(ll_new) and ll_new >= ll - 1e-12 * max(1.0, abs(ll)):
                break
            t *= 0.5
            if t < 1e-10:
                break
        if t < 1e-10:
            break
        theta = cand
        if order == 2:
            ll, grad, H = ll_new, g_new, H_new
        else:
            ll, grad, H = _grad_hess(y, X, theta, family, truncated)
        size = np.max(np.abs(t * step))
        # a full, unridged Newton step of size s leaves an error of order s^2
        if size < tol or (t == 1.0 and ridge == 0.0 and size < _QUADRATIC_STOP):
            converged = True
            break
        if nb and theta[-1] <= _LOG_ALPHA_MIN + 1e-9 and grad[-1] <= 0:
            break  # alpha pushed to its floor: the MLE of alpha is on the boundary 0
    return theta, ll, grad, H, converged, it


def fit_counts(
    y: np.ndarray,
    X: np.ndarray,
    *,
    family: str = "negbin",
    truncated: bool = False,
    groups: np.ndarray | None = None,
    maxiter: int = 100,
    tol: float = 1e-10,
) -> FastFit:
    """Maximum-likelihood Poisson / NB2 (optionally zero-truncated) by Newton's method.

    Parameters
    ----------
    y : numpy.ndarray
        Counts (learners), shape (n,).
    X : numpy.ndarray
        Design matrix, shape (n, k).
    family : {"negbin", "poisson"}
    truncated : bool
        Zero-truncated likelihood (all ``y >= 1``).
    groups : numpy.ndarray, optional
        Cluster labels for the sandwich covariance; None gives ``-H^-1``.
    maxiter : int
        Newton iterations at most.
    tol : float
        Convergence: largest absolute step in ``(beta, log alpha)``; a full Newton
        step below 1e-5 also stops (the error after it is of order its square).

    Returns
    -------
    FastFit
        ``beta``, ``alpha`` (0 for Poisson, or NB2 on its boundary with
        ``boundary=True``), ``llf``, ``cov`` in ``(beta, alpha)``, ``converged``.
    """
    y = np.asarray(y, float)
    X = np.asfortranarray(X, dtype=float)  # column-major: fast X @ b and X' v
    yc = _Counts(y)
    k = X.shape[1]
    const = np.flatnonzero(np.all(X == 1.0, axis=0))
    b0 = np.zeros(k)
    if const.size:
        b0[const[0]] = np.log(max(y.mean(), 1e-3))
    it0 = 0
    if y.size > 2 * _START_ROWS:
        # large table: the same model on an evenly strided subsample is a start within
        # a few standard errors, so the full-data Newton needs only 2-3 steps
        step = y.size // _START_ROWS
        sub = fit_counts(y[::step], X[::step], family=family, truncated=truncated,
                         maxiter=maxiter, tol=1e-6)
        start = sub.beta if family == "poisson" else np.append(
            sub.beta, np.log(max(sub.alpha, 0.05)))
        it0 = sub.iterations
    else:
        # Poisson start (untruncated, as statsmodels does), intercept at log mean
        pois, _, _, _, _, it0 = _newton(yc, X, b0, "poisson", False, maxiter, 1e-4)
        if family == "poisson":
            start = pois
        else:
            mu = np.exp(np.minimum(X @ pois, _ETA_MAX))
            a0 = np.sum((y - mu) ** 2 - y) / np.sum(mu**2)
            start = np.append(pois, np.log(np.clip(a0, 0.05, 10.0)))
    theta, ll, grad, H, converged, it = _newton(yc, X, start, family, truncated, maxiter, tol)
    nb = family == "negbin"
    if nb and np.exp(theta[k]) < ALPHA_BOUNDARY:
        # boundary: no overdispersion given the regressors, NB2 reduces to Poisson
        sub = fit_counts(yc.y, X, family="poisson", truncated=truncated, groups=groups,
                         maxiter=maxiter, tol=tol)
        cov = np.zeros((k + 1, k + 1))
        cov[:k, :k] = sub.cov
        return FastFit(beta=sub.beta, alpha=0.0, llf=sub.llf, cov=cov,
                       converged=sub.converged, iterations=it + it0 + sub.iterations,
                       max_abs_grad=sub.max_abs_grad, boundary=True)
    alpha = float(np.exp(theta[k])) if nb else 0.0
    cov = covariance(yc, X, theta[:k], alpha, family, truncated, groups)
    return FastFit(
        beta=theta[:k], alpha=alpha, llf=ll, cov=cov, converged=converged,
        iterations=it + it0, max_abs_grad=float(np.max(np.abs(grad))),
    )


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
    Sg = np.column_stack([np.bincount(inv, weights=S[:, j], minlength=G)
                          for j in range(S.shape[1])])
    Hinv = np.linalg.inv(H)
    n, p = S.shape
    cov = Hinv @ (Sg.T @ Sg) @ Hinv
    return cov * G / (G - 1.0) * (n - 1.0) / (n - p)


def covariance(y, X, beta, alpha, family, truncated, groups=None) -> np.ndarray:
    """Model-based (``groups=None``) or cluster-robust covariance in ``(beta, alpha)``."""
    S, H = score_hessian_alpha(_as_counts(y), np.asarray(X, float), beta, alpha,
                               family, truncated)
    if groups is None:
        return -np.linalg.inv(H)
    return cluster_cov(S, H, groups)


def null_llf(y: np.ndarray, family: str = "negbin", truncated: bool = False) -> float:
    """Maximised log-likelihood of the intercept-only model (for McFadden's R²).

    The intercept-only likelihood depends on the counts only through how often each
    value occurs, so it is fitted on the distinct values with frequency weights.
    """
    u, n = np.unique(np.asarray(y, dtype=float), return_counts=True)
    yc = _Counts(u, weights=n)
    X = np.ones((u.size, 1), order="F")
    b0 = np.array([np.log(max(float(np.sum(u * n) / np.sum(n)), 1e-3))])
    pois, *_ = _newton(yc, X, b0, "poisson", truncated, 100, 1e-12)
    if family == "poisson":
        return float(_grad_hess(yc, X, pois, "poisson", truncated, 0)[0])
    theta, ll, *_ = _newton(yc, X, np.append(pois, np.log(0.5)), "negbin", truncated, 100,
                            1e-12)
    if np.exp(theta[-1]) < ALPHA_BOUNDARY:
        return float(_grad_hess(yc, X, pois, "poisson", truncated, 0)[0])
    return float(ll)
