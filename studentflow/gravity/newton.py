"""The fast gravity estimator: Newton's method on ``(beta, log alpha)``.

Plain numpy/scipy, no statsmodels: :func:`studentflow.gravity.fit.fit_gravity` uses it for
``method="fast"`` and checks it against statsmodels in the tests. The likelihoods, their
row derivatives and the covariances are in :mod:`studentflow.gravity.likelihood`.

The solver works on ``(beta, log alpha)`` with exact gradient and Hessian (derivatives
are taken in ``(eta, r)`` row by row and chained), Newton steps with step halving and a
Levenberg ridge where the Hessian is not negative definite. Covariances are reported in
``(beta, alpha)`` like statsmodels: model-based ``-H^-1`` or the cluster sandwich.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studentflow.gravity.likelihood import (  # re-exported: the old gravity_fast names
    _ETA_MAX, _Counts, _xtwx, cluster_cov, covariance, loglike, row_derivatives,
    score_hessian_alpha,
)

__all__ = ["FastFit", "fit_counts", "null_llf", "row_derivatives", "loglike", "cluster_cov",
           "covariance", "score_hessian_alpha"]

_LOG_ALPHA_MIN = np.log(1e-8)
_START_ROWS = 100_000
_QUADRATIC_STOP = 1e-5
#: NB2 alpha below this is taken as the boundary alpha = 0 (the fit is then Poisson's).
ALPHA_BOUNDARY: float = 1e-5
#: Newton stops once alpha is below this and still falling (it ends on the boundary).
_LOG_ALPHA_GIVE_UP = float(np.log(ALPHA_BOUNDARY / 10.0))
_MAX_LOG_ALPHA_STEP = 3.0


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
        if nb and abs(step[-1]) > _MAX_LOG_ALPHA_STEP:
            # far from the optimum in alpha (e.g. on the way to its boundary 0): a
            # shorter step in the same direction, instead of halving a wild one
            step *= _MAX_LOG_ALPHA_STEP / abs(step[-1])
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
        if nb and grad[-1] <= 0 and theta[-1] < _LOG_ALPHA_GIVE_UP:
            break  # alpha still falling far below the boundary threshold: its MLE is 0
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
    start: np.ndarray | None = None,
    with_cov: bool = True,
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
    start : numpy.ndarray, optional
        Starting ``beta`` (and ``log alpha`` last, for NB2); default: a Poisson fit
        (on an evenly strided subsample for large tables).
    with_cov : bool
        Compute the covariance (False: ``cov`` is empty; for start values).

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
    if start is not None:
        start = np.asarray(start, dtype=float)
    elif y.size > 2 * _START_ROWS:
        # large table: the same model on an evenly strided subsample is a start within
        # a few standard errors, so the full-data Newton needs only 2-3 steps
        step = y.size // _START_ROWS
        sub = fit_counts(y[::step], X[::step], family=family, truncated=truncated,
                         maxiter=maxiter, tol=1e-6, with_cov=False)
        # alpha on the boundary in the subsample: start near it, not at 0.05
        a_start = 10 * ALPHA_BOUNDARY if sub.boundary else max(sub.alpha, 0.05)
        start = sub.beta if family == "poisson" else np.append(sub.beta, np.log(a_start))
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
                         maxiter=maxiter, tol=tol, start=theta[:k], with_cov=with_cov)
        cov = np.zeros((k + 1, k + 1))
        cov[:k, :k] = sub.cov
        return FastFit(beta=sub.beta, alpha=0.0, llf=sub.llf, cov=cov,
                       converged=sub.converged, iterations=it + it0 + sub.iterations,
                       max_abs_grad=sub.max_abs_grad, boundary=True)
    alpha = float(np.exp(theta[k])) if nb else 0.0
    p = k + nb
    cov = (covariance(yc, X, theta[:k], alpha, family, truncated, groups) if with_cov
           else np.full((p, p), np.nan))
    return FastFit(
        beta=theta[:k], alpha=alpha, llf=ll, cov=cov, converged=converged,
        iterations=it + it0, max_abs_grad=float(np.max(np.abs(grad))),
    )



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
