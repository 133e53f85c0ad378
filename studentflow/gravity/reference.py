"""The reference gravity fit with statsmodels (``fit_gravity(..., method="statsmodels")``).

statsmodels' NegativeBinomial / Poisson and their zero-truncated versions, started and
polished so that they reach the maximum the fast Newton path finds (see the comments);
the tests hold the two paths to the same estimates.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from studentflow.gravity.newton import ALPHA_BOUNDARY

__all__ = ["fit_statsmodels", "null_llf_statsmodels"]


def fit_statsmodels(y, X: pd.DataFrame, family, truncated, groups):
    """Reference fit with statsmodels; returns (beta, alpha, llf, cov, converged)."""
    import statsmodels.api as sm
    from statsmodels.discrete.truncated_model import (
        TruncatedLFNegativeBinomialP, TruncatedLFPoisson,
    )
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning

    cov_kw = ({"cov_type": "cluster", "cov_kwds": {"groups": groups}} if groups is not None
              else {"cov_type": "nonrobust"})
    k = X.shape[1]

    def ok(r):
        return r is not None and np.all(np.isfinite(np.asarray(r.params, float)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", HessianInversionWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        if family == "poisson":
            cls = TruncatedLFPoisson if truncated else sm.Poisson
            res = cls(y, X).fit(method="newton", maxiter=100, disp=0, **cov_kw)
        else:
            nb2 = sm.NegativeBinomial(y, X, loglike_method="nb2")
            res = nb2.fit(method="newton", maxiter=100, disp=0,
                          **({} if truncated else cov_kw))
            if not ok(res) or not res.mle_retvals.get("converged", False):
                # Newton on alpha itself can step to alpha < 0; BFGS works on log alpha
                res = nb2.fit(method="bfgs", maxiter=5000, gtol=1e-10, disp=0,
                              **({} if truncated else cov_kw))
            if ok(res) and truncated:
                # statsmodels' own start (NegativeBinomialP by BFGS) can diverge when a
                # covariate is large (ln revenue ~ 21): start from NB2 on the positives
                # and alpha at a few values (BFGS on raw alpha can leave alpha > 0),
                # keep the best, then polish with Newton
                tm = TruncatedLFNegativeBinomialP(y, X, p=2)
                best = None
                for a0 in (0.5, 2.0, max(float(res.params.iloc[k]), 0.05)):
                    start = np.array(res.params, dtype=float)
                    start[k] = a0
                    r = tm.fit(start_params=start, method="bfgs", maxiter=5000, gtol=1e-9,
                               disp=0, **cov_kw)
                    if ok(r) and np.isfinite(r.llf) and (best is None or r.llf > best.llf):
                        best = r
                res = best
                if ok(res):
                    r = tm.fit(start_params=np.asarray(res.params), method="newton",
                               maxiter=50, disp=0, **cov_kw)
                    if ok(r) and np.isfinite(r.llf) and r.llf >= res.llf - 1e-9:
                        res = r
            if ok(res) and float(np.asarray(res.params)[k]) < ALPHA_BOUNDARY:
                # alpha on its boundary 0: NB2 reduces to Poisson
                sub = fit_statsmodels(y, X, "poisson", truncated, groups)
                cov = np.zeros((k + 1, k + 1))
                cov[:k, :k] = sub[3]
                return sub[0], 0.0, sub[2], cov, sub[4]
    if not ok(res):
        raise ValueError("fit_gravity: the statsmodels fit failed (non-finite estimates); "
                         "check the covariates for separation or scale")
    # judged on the final fit only: warnings of abandoned starts are not about it
    conv = bool(res.mle_retvals.get("converged", True))
    params = np.asarray(res.params, float)
    cov = np.asarray(res.cov_params(), float)
    alpha = float(params[k]) if family == "negbin" else 0.0
    return params[:k], alpha, float(res.llf), cov, conv


def null_llf_statsmodels(y: np.ndarray, family: str, truncated: bool) -> float:
    """Maximised log-likelihood of the intercept-only model, fitted by statsmodels."""
    X = pd.DataFrame({"Intercept": np.ones(len(y))})
    return fit_statsmodels(y, X, family, truncated, None)[2]
