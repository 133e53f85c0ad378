"""Stochastic gravity model of learner flows: NB2 / Poisson, plain or zero-truncated.

``E[F_ij] = mu_ij = exp(x_ij' beta)``, ``Var = mu + alpha mu^2`` (NB2), one row per
origin school -> ESC school pair, standard errors clustered by origin school
(Cameron & Trivedi 2013, *Regression Analysis of Count Data*; the study: arXiv
2602.17972). :func:`fit_gravity` returns a :class:`GravityModel`.

Which zeros handling is consistent when
----------------------------------------
Suppose the counts are NB2 over *all* candidate pairs (a pair within reach can carry
zero learners), as in :func:`studentflow.synth.make_pairs`.

- ``zeros="drop"`` (the study): plain NB2 on the positive pairs only. Inconsistent:
  ``E[y | y > 0] = mu / (1 - p0) > mu``, with the gap largest where ``mu`` is small,
  so the intercept is biased up and the slopes toward zero; predicting all candidate
  pairs with it overstates flows. Kept for replication.
- ``zeros="truncate"`` (the default): zero-truncated NB2 on the positive pairs.
  Consistent for beta and alpha when the NB2 distribution is right (the truncation uses
  ``p0``, so it leans on the distributional assumption, not just the mean). Use when
  only positive flows are observed. ``predict`` returns the untruncated mean ``mu``.
- ``zeros="include"``: NB2 (or Poisson) on all candidate pairs, zeros included.
  Consistent when the candidate set is the one flows could take; Poisson here is
  consistent under a correct mean alone (pseudo-ML). Use when the zeros are known.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.gravity import newton as gf
from studentflow.gravity.collinear import collinear_columns, separated_columns
from studentflow.gravity.metrics import term_label
from studentflow.gravity.design import (
    _engine_error, _na_action, as_categoricals, check_finite, check_missing, design_matrix,
)
from studentflow.gravity.direct import fit_design
from studentflow.gravity.model import DispersionTest, GravityModel
from studentflow.gravity.reference import fit_statsmodels, null_llf_statsmodels

__all__ = [
    "STUDY_FORMULA", "NESTED_FORMULAS", "fit_gravity", "compare_models", "GravityModel",
    "DispersionTest", "design_matrix", "GravityWarning", "GravityConvergenceWarning",
    "AlphaBoundaryWarning", "CollinearityWarning",
]

STUDY_FORMULA = (
    "esc_beneficiaries ~ np.log1p(distance_km) + np.log1p(net_cost_k) + esc_rating + "
    "np.log1p(origin_lgu_revenue) + C(origin_region, Treatment('NCR')) + "
    "C(destination_region, Treatment('NCR'))"
)

_Y = "esc_beneficiaries ~ np.log1p(distance_km) + np.log1p(net_cost_k)"
_OR = " + C(origin_region, Treatment('NCR'))"
_DR = " + C(destination_region, Treatment('NCR'))"
#: The study's nested sequence: baseline distance + cost -> + rating -> + origin region
#: -> + destination region -> + origin revenue (the last equals STUDY_FORMULA's terms).
NESTED_FORMULAS: dict[str, str] = {
    "baseline": _Y,
    "+ rating": _Y + " + esc_rating",
    "+ origin region": _Y + " + esc_rating" + _OR,
    "+ destination region": _Y + " + esc_rating" + _OR + _DR,
    "+ origin revenue": _Y + " + esc_rating" + _OR + _DR + " + np.log1p(origin_lgu_revenue)",
}

Family = Literal["negbin", "poisson"]
Zeros = Literal["drop", "truncate", "include"]


class GravityWarning(UserWarning):
    """Base class of the gravity model's warnings."""


class GravityConvergenceWarning(GravityWarning):
    """The gravity fit did not converge (or a coefficient ran away); check the estimates."""


class CollinearityWarning(GravityWarning):
    """A term was dropped from the fit: collinear with earlier terms, or no variation."""


class AlphaBoundaryWarning(GravityWarning):
    """The NB2 dispersion's MLE is on its boundary 0: the fitted model is Poisson's."""


def _build(pairs: pd.DataFrame, formula: str, direct: bool = True):
    """Counts, design and design spec; the design computed directly when ``direct`` and
    the formula allows (:mod:`.direct`), else by the formula engine."""
    from statsmodels.formula._manager import FormulaManager

    if not isinstance(pairs, pd.DataFrame) or len(pairs) == 0:
        raise ValueError("fit_gravity: pairs must be a non-empty DataFrame")
    if "~" not in formula:
        raise ValueError(f"fit_gravity: formula needs 'count ~ terms', got {formula!r}")
    lhs = formula.split("~")[0].strip()
    if lhs not in pairs.columns:
        raise ValueError(f"fit_gravity: count column {lhs!r} (formula left-hand side) is "
                         f"not in the pair table")
    y = pd.to_numeric(pairs[lhs], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"fit_gravity: column {lhs!r} has missing/non-numeric counts at "
                         f"rows {list(pairs.index[bad][:5])}")
    if (y < 0).any():
        raise ValueError(f"fit_gravity: column {lhs!r} has negative counts at rows "
                         f"{list(pairs.index[y < 0][:5])}")
    if (y != np.round(y)).any():
        raise ValueError(f"fit_gravity: column {lhs!r} has non-integer counts at rows "
                         f"{list(pairs.index[y != np.round(y)][:5])}")
    if not (y > 0).any():
        raise ValueError(f"fit_gravity: column {lhs!r} is all zero: nothing to fit")
    rhs = formula.split("~", 1)[1]
    check_missing(pairs, rhs, "fit_gravity")
    built = fit_design(pairs, rhs, "fit_gravity") if direct else None
    if built is not None:
        check_finite(built[0], "fit_gravity")
        return y, built[0], built[1]
    mgr = FormulaManager()
    data = as_categoricals(pairs, rhs, "fit_gravity") if mgr.engine == "patsy" else pairs
    try:
        with np.errstate(invalid="ignore", divide="ignore"):  # check_finite names it
            _, X = mgr.get_matrices(formula, data, eval_env={"np": np}, pandas=True,
                                    na_action=_na_action())
    except Exception as exc:  # patsy.PatsyError / formulaic errors
        raise _engine_error(exc, pairs, "fit_gravity") from exc
    check_finite(X, "fit_gravity")
    return y, X, mgr.spec


def _reduce_design(y: np.ndarray, X: pd.DataFrame, zeros: str):
    """Drop the collinear and constant columns (:mod:`.collinear`), check what is left.

    Returns ``(X, dropped)``: the kept columns and a tuple of DroppedTerm.
    """
    keep, dropped = collinear_columns(X.to_numpy(float), X.columns)
    if zeros != "drop" and keep.any():  # fitted zeros (include) or truncation: separation
        low = 1 if zeros == "truncate" else 0
        sub = X.loc[:, keep]
        keep2, sep = separated_columns(sub.to_numpy(float), sub.columns, y > low, low)
        keep[np.flatnonzero(keep)[~keep2]] = False
        order = {c: i for i, c in enumerate(X.columns)}
        dropped = tuple(sorted(dropped + sep, key=lambda d: order[d.column]))
    if not keep.any():
        raise DataError(f"fit_gravity: nothing to fit: every term of the formula was dropped "
                        f"(zeros={zeros!r}, {len(y)} rows): "
                        + "; ".join(d.summary() for d in dropped))
    if dropped:
        X = X.loc[:, keep]
    Xn = X.to_numpy(float)
    for j, name in enumerate(X.columns):
        col = Xn[:, j]
        if col.min() == 0.0 and col.max() == 1.0 and np.all((col == 0.0) | (col == 1.0)):
            flows_at_one = float(y @ col)  # learners where the dummy is 1 (exact sum)
            for v, flows in ((0.0, float(y.sum()) - flows_at_one), (1.0, flows_at_one)):
                if flows == 0:
                    raise ValueError(
                        f"fit_gravity: perfect separation: no positive count where "
                        f"{term_label(name)!r} = {v:g} ({int((col == v).sum())} rows), so "
                        f"its coefficient would run to -inf"
                    )
    if len(y) <= Xn.shape[1] + 1:
        raise ValueError(f"fit_gravity: {len(y)} rows for {Xn.shape[1]} terms: too few")
    return X, dropped


def _null_llf(y, family, truncated, method) -> float:
    if method == "fast":
        return gf.null_llf(y, family, truncated)
    return null_llf_statsmodels(y, family, truncated)


def fit_gravity(
    pairs: pd.DataFrame,
    formula: str = STUDY_FORMULA,
    *,
    family: Family = "negbin",
    zeros: Zeros = "truncate",
    cluster: str | None = "origin_id",
    method: Literal["fast", "statsmodels"] = "fast",
) -> GravityModel:
    """Fit the gravity model of learner flows to a pair table.

    The defaults are the recommended estimator: the zero-truncated NB2 on the positive
    flows (consistent), fitted by this package's Newton path. The study's model is one
    argument away (``zeros="drop"``), statsmodels' optimiser another
    (``method="statsmodels"``); both paths give the same estimates (to ~1e-8 relative).

    Parameters
    ----------
    pairs : pandas.DataFrame
        PairTable (docs/contracts.md section 3): one row per origin -> ESC pair with
        the count (``esc_beneficiaries``, learners) and covariates (km, thousand pesos,
        pesos, rank, region).
    formula : str
        Patsy-style formula; ``np`` is available (``np.log1p``).
    family : {"negbin", "poisson"}
        NB2 with alpha by maximum likelihood, or Poisson.
    zeros : {"truncate", "drop", "include"}
        Zero-truncated likelihood on positive flows (default; consistent), positive
        flows only with the plain likelihood (the study's; biased), or all candidate
        pairs (consistent). See the module text.
    cluster : str or None
        Column of cluster labels for cluster-robust covariance (default: origin
        school, as the study); None gives the model-based ``-H^-1``.
    method : {"fast", "statsmodels"}
        This package's Newton on ``(beta, log alpha)`` with exact derivatives, on a
        design computed directly with numpy when the formula's terms are simple (the
        study's are; otherwise the formula engine builds it) - the default; or
        statsmodels' Newton/BFGS on the formula engine's design (the reference). Same
        estimates (see ``scripts/bench_gravity.py``); with ``zeros="truncate"`` the
        statsmodels path is slow on large tables (its truncated models rebuild a model
        for every score evaluation).

    Returns
    -------
    GravityModel

    Raises
    ------
    ValueError
        Unknown option, a formula naming a missing column, missing/negative/non-integer
        or all-zero counts, non-finite covariates, perfect separation (a category level
        with no positive flow); a DataError (a ValueError) when every term is dropped.

    Collinear terms are dropped, not fatal (as R's ``lm`` and fixest do,
    :mod:`.collinear`): a column in the span of earlier columns (formula order), or
    with no variation in the estimation sample (e.g. the region dummies when the
    sample holds one region), is left out of the fit, named in ``model.dropped`` and
    in a CollinearityWarning, and contributes 0 to predictions and draws.

    Warns
    -----
    CollinearityWarning
        One per dropped term: its name and why (``collinear with …``, ``no variation``).
    GravityConvergenceWarning
        The optimiser did not converge (the model's ``converged`` is False).
    AlphaBoundaryWarning
        NB2's alpha is estimated at 0 (no overdispersion left, e.g. positive flows that
        are mostly 1): the reported model is the Poisson fit, ``alpha == 0``.
    """
    for name, val, ok in (("family", family, ("negbin", "poisson")),
                          ("zeros", zeros, ("drop", "truncate", "include")),
                          ("method", method, ("statsmodels", "fast"))):
        if val not in ok:
            raise ValueError(f"fit_gravity: {name} must be one of {ok}, got {val!r}")
    y, X, spec = _build(pairs, formula, direct=method == "fast")
    groups = None
    if cluster is not None:
        if cluster not in pairs.columns:
            raise ValueError(f"fit_gravity: cluster column {cluster!r} is not in the pair table")
        if pairs[cluster].isna().any():
            raise ValueError(f"fit_gravity: cluster column {cluster!r} has missing values at "
                             f"rows {list(pairs.index[pairs[cluster].isna()][:5])}")
        groups = pd.factorize(pairs[cluster])[0]
    if zeros in ("drop", "truncate"):
        keep = y > 0
        y, X = y[keep], X.loc[keep]
        groups = groups[keep] if groups is not None else None
    X, dropped = _reduce_design(y, X, zeros)
    for d in dropped:
        warnings.warn(f"fit_gravity: dropped term {d.summary()}", CollinearityWarning, stacklevel=2)
    if groups is not None and np.unique(groups).size < 2:
        raise ValueError(f"fit_gravity: cluster column {cluster!r} has fewer than 2 clusters")
    truncated = zeros == "truncate"
    Xn = X.to_numpy(float)
    if method == "fast":
        fit = gf.fit_counts(y, Xn, family=family, truncated=truncated, groups=groups)
        beta, alpha, llf, cov, conv = fit.beta, fit.alpha, fit.llf, fit.cov, fit.converged
    else:
        beta, alpha, llf, cov, conv = fit_statsmodels(y, X, family, truncated, groups)
    names = list(X.columns) + (["alpha"] if family == "negbin" else [])
    if not (np.all(np.isfinite(beta)) and np.isfinite(llf) and np.all(np.isfinite(cov))):
        raise ValueError(f"fit_gravity: the {method} fit failed (non-finite estimates or "
                         f"covariance); check the covariates for separation or scale")
    if family == "negbin" and alpha == 0.0:
        warnings.warn(f"fit_gravity: NB2 alpha is on its boundary 0 (zeros={zeros!r}): no "
                      f"overdispersion given the regressors, the fit is Poisson's",
                      AlphaBoundaryWarning, stacklevel=2)
    if not conv:
        warnings.warn(f"fit_gravity: the {method} fit ({family}, zeros={zeros!r}) did not "
                      f"converge; estimates may be unreliable", GravityConvergenceWarning,
                      stacklevel=2)
    if np.max(np.abs(beta)) > 50:
        warnings.warn("fit_gravity: a coefficient exceeds 50 in absolute value: possible "
                      "quasi-separation", GravityConvergenceWarning, stacklevel=2)
    cov_df = pd.DataFrame(cov, index=names, columns=names)
    bse = np.sqrt(np.diag(cov))[: X.shape[1]]
    return GravityModel(
        params=pd.Series(beta, index=X.columns, name="coef"),
        bse=pd.Series(bse, index=X.columns, name="std_err"),
        alpha=alpha, cov_params=cov_df, llf=llf,
        llnull=_null_llf(y, family, truncated, method), nobs=int(len(y)),
        formula=formula, family=family, zeros=zeros, cluster=cluster, method=method,
        converged=conv, n_clusters=None if groups is None else int(np.unique(groups).size),
        design_info=spec, endog=y, exog=Xn, groups=groups, dropped=dropped,
    )


def compare_models(
    pairs: pd.DataFrame, formulas: dict[str, str] | None = None, **fit_kwargs
) -> pd.DataFrame:
    """Fit a nested sequence of gravity models and compare them by LR tests.

    Parameters
    ----------
    pairs : pandas.DataFrame
        PairTable.
    formulas : dict, optional
        Model name -> formula, each nested in the next (default
        :data:`NESTED_FORMULAS`, the study's sequence).
    **fit_kwargs
        Passed to :func:`fit_gravity` (family, zeros, cluster, method; its defaults:
        zero-truncated NB2 by the fast path).

    Returns
    -------
    pandas.DataFrame
        One row per model: ``model``, ``nobs``, ``k``, ``llf``, ``aic``, ``bic``,
        ``pseudo_r2``, ``lr`` and ``lr_df`` and ``lr_pvalue`` (vs the previous model;
        NaN for the first), ``alpha``.
    """
    from scipy import stats

    formulas = NESTED_FORMULAS if formulas is None else formulas
    rows, prev = [], None
    for name, f in formulas.items():
        m = fit_gravity(pairs, f, **fit_kwargs)
        row = {"model": name, "nobs": m.nobs, "k": m.k_params, "llf": m.llf, "aic": m.aic,
               "bic": m.bic, "pseudo_r2": m.pseudo_r2, "lr": np.nan, "lr_df": np.nan,
               "lr_pvalue": np.nan, "alpha": m.alpha}
        if prev is not None:
            df = m.k_params - prev.k_params
            if m.nobs != prev.nobs or df <= 0:
                raise ValueError(f"compare_models: {name!r} is not nested in the previous "
                                 f"model (nobs {prev.nobs} -> {m.nobs}, extra terms {df})")
            lr = 2.0 * (m.llf - prev.llf)
            row.update(lr=lr, lr_df=df, lr_pvalue=float(stats.chi2.sf(max(lr, 0.0), df)))
        rows.append(row)
        prev = m
    return pd.DataFrame(rows)
