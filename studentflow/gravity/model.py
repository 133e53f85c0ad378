"""The fitted gravity model: :class:`GravityModel` (results, prediction, metrics).

Built by :func:`studentflow.gravity.fit.fit_gravity`; see that module for the estimators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from studentflow.gravity import metrics as gm
from studentflow.gravity.design import design_from_state, design_matrix, design_state

__all__ = ["GravityModel", "DispersionTest", "design_matrix"]

@dataclass(frozen=True)
class DispersionTest:
    """Overdispersion test result (H0: Poisson, ``alpha = 0``)."""

    method: str
    statistic: float
    pvalue: float
    alpha: float

    def summary(self) -> str:
        """One line: method, statistic, p-value, alpha."""
        return (f"{self.method}: statistic {self.statistic:.3f}, p = {self.pvalue:.3g}, "
                f"alpha = {self.alpha:.4f}")


@dataclass(frozen=True, eq=False)
class GravityModel:
    """A fitted stochastic gravity model (statsmodels-results-like).

    ``params``/``bse`` are indexed by the formula's design columns (e.g.
    ``np.log1p(distance_km)``); :func:`studentflow.gravity.metrics.term_label` gives the
    study's names. ``alpha`` is the NB2 dispersion (0 for Poisson). ``cov_params``
    covers the coefficients and, for NB2, ``alpha`` (cluster-robust when ``cluster``).
    """

    params: pd.Series
    bse: pd.Series
    alpha: float
    cov_params: pd.DataFrame
    llf: float
    llnull: float
    nobs: int
    formula: str
    family: str
    zeros: str
    cluster: str | None
    method: str
    converged: bool
    n_clusters: int | None
    design_info: Any = field(repr=False, compare=False)
    endog: np.ndarray = field(repr=False, compare=False)
    exog: np.ndarray = field(repr=False, compare=False)
    groups: np.ndarray | None = field(repr=False, compare=False)
    #: Terms left out of the fit (collinear or without variation), as
    #: :class:`~studentflow.gravity.collinear.DroppedTerm`; they contribute 0 to ``predict``.
    dropped: tuple = ()

    # ---- pickling: patsy's DesignInfo does not pickle, so it travels as a recipe ----
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["design_info"] = design_state(self.design_info, self.formula)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["design_info"] = design_from_state(state["design_info"])
        for k, v in state.items():
            object.__setattr__(self, k, v)

    # ---- statsmodels-like summaries -------------------------------------------------
    @property
    def k_params(self) -> int:
        """Number of estimated parameters (coefficients, plus alpha for NB2)."""
        return len(self.params) + (self.family == "negbin")

    @property
    def aic(self) -> float:
        """Akaike information criterion ``-2 llf + 2 k``."""
        return -2.0 * self.llf + 2.0 * self.k_params

    @property
    def bic(self) -> float:
        """Bayesian information criterion ``-2 llf + k ln(nobs)``."""
        return -2.0 * self.llf + self.k_params * np.log(self.nobs)

    @property
    def pseudo_r2(self) -> float:
        """McFadden's pseudo R²: ``1 - llf / llnull`` (intercept-only, same family/zeros)."""
        return 1.0 - self.llf / self.llnull

    @property
    def tvalues(self) -> pd.Series:
        """z statistics ``params / bse``."""
        return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided normal p-values."""
        from scipy import stats  # lazily: 0.4 s of import, not needed before the fit

        return pd.Series(2 * stats.norm.sf(np.abs(self.tvalues)), index=self.params.index)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald confidence intervals (columns ``lower``, ``upper``) at level ``1 - alpha``."""
        from scipy import stats  # lazily: 0.4 s of import, not needed before the fit

        z = stats.norm.ppf(1 - alpha / 2)
        return pd.DataFrame(
            {"lower": self.params - z * self.bse, "upper": self.params + z * self.bse}
        )

    @property
    def irr(self) -> pd.Series:
        """Incidence-rate ratios ``exp(beta)`` (flow multiplier per unit of the term)."""
        return np.exp(self.params)

    @property
    def elasticities(self) -> pd.DataFrame:
        """Elasticities with 95 % CIs and plain-language readings (see gravity_metrics)."""
        return gm.elasticity_table(self.params, self.bse)

    def _column(self, term: str) -> str:
        if term in self.params.index:
            return term
        for n in self.params.index:
            if gm.term_key(n) == term:
                return n
        raise ValueError(f"no term {term!r} in the model (terms: {list(self.params.index)})")

    def elasticity_ratio(self, num: str = "log1p_distance_km",
                         den: str = "log1p_net_cost_k") -> tuple[float, float]:
        """Ratio of two coefficients with its delta-method standard error.

        The study's headline is distance elasticity / cost elasticity ≈ 4.1
        ("proximity constrains choice four times more strongly than tuition").

        Parameters
        ----------
        num, den : str
            Terms, by design column (``np.log1p(distance_km)``) or key
            (``log1p_distance_km``).

        Returns
        -------
        (ratio, std_err)
            ``b_num / b_den`` and ``sqrt(g' V g)``, ``g = (1/b_den, -b_num/b_den^2)``,
            with V the (clustered) covariance of the two coefficients.
        """
        a, b = self._column(num), self._column(den)
        ba, bb = float(self.params[a]), float(self.params[b])
        V = self.cov_params.loc[[a, b], [a, b]].to_numpy(float)
        g = np.array([1.0 / bb, -ba / bb**2])
        return ba / bb, float(np.sqrt(g @ V @ g))

    def summary(self) -> str:
        """A statsmodels-like text summary with the study's term names and dropped terms."""
        from studentflow.gravity.summary import model_summary

        return model_summary(self)

    # ---- prediction --------------------------------------------------------------------
    def _param_vector(self, params) -> np.ndarray:
        names = list(self.params.index)
        if params is None:
            return self.params.to_numpy(float)
        if isinstance(params, (pd.Series, Mapping)):
            p = dict(params.items())
            vals = []
            for n in names:
                if n in p:
                    vals.append(p[n])
                elif gm.term_key(n) in p:
                    vals.append(p[gm.term_key(n)])
                else:
                    raise ValueError(
                        f"predict: params lacks term {n!r} (or key {gm.term_key(n)!r}); "
                        f"given: {list(p)}"
                    )
            return np.asarray(vals, dtype=float)
        arr = np.asarray(params, dtype=float).ravel()
        if arr.size != len(names):
            raise ValueError(f"predict: params has {arr.size} values, model has {len(names)}")
        return arr

    def predict(self, pairs: pd.DataFrame, params=None) -> np.ndarray:
        """Expected flows ``mu`` (learners) for the rows of a pair table.

        Parameters
        ----------
        pairs : pandas.DataFrame
            PairTable with the formula's covariates.
        params : pandas.Series, mapping or array, optional
            Coefficients to use instead of the fitted ones, e.g. a row of
            :meth:`draw_params`; indexed by design column or by ``term_key``.

        Returns
        -------
        numpy.ndarray
            Untruncated NB2/Poisson mean per row (also for ``zeros="truncate"``).
        """
        X = design_matrix(self.design_info, pairs)
        if self.dropped:  # the design has every formula column; the fit only the kept ones
            X = X.loc[:, list(self.params.index)]
        beta = self._param_vector(params)
        eta = X.to_numpy(float) @ beta
        return np.exp(np.minimum(eta, 700.0))

    def fitted_values(self) -> np.ndarray:
        """Expected flows on the estimation sample: ``mu``, or ``E[y | y > 0]`` if truncated."""
        mu = np.exp(self.exog @ self.params.to_numpy(float))
        if self.zeros != "truncate":
            return mu
        if self.family == "poisson":
            p0 = np.exp(-mu)
        else:
            p0 = np.exp(-np.log1p(self.alpha * mu) / self.alpha)
        return mu / (1.0 - p0)

    def draw_params(self, n: int, seed: int | None = 0) -> pd.DataFrame:
        """Draw coefficient vectors from ``N(params, cov(beta))`` for Monte Carlo.

        Parameters
        ----------
        n : int
            Number of draws.
        seed : int
            Seed of :func:`numpy.random.default_rng` (same seed, same draws).

        Returns
        -------
        pandas.DataFrame
            ``n`` rows, columns = ``params.index``.
        """
        if n < 1:
            raise ValueError(f"draw_params: n must be >= 1, got {n}")
        names = list(self.params.index)
        cov = self.cov_params.loc[names, names].to_numpy(float)
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(self.params.to_numpy(float), cov, size=n,
                                        method="cholesky" if _is_pd(cov) else "eigh")
        return pd.DataFrame(draws, columns=names)

    # ---- metrics -----------------------------------------------------------------------
    def _obs_pred(self, pairs, count):
        if pairs is None:
            return self.endog, self.fitted_values()
        col = count or self.formula.split("~")[0].strip()
        if col not in pairs.columns:
            raise ValueError(f"metrics: pair table has no observed-count column {col!r}")
        return pairs[col].to_numpy(float), self.predict(pairs)

    def srmse(self, pairs: pd.DataFrame | None = None, count: str | None = None) -> float:
        """Standardised RMSE of observed vs expected flows (0 = perfect).

        Parameters
        ----------
        pairs : pandas.DataFrame, optional
            Pairs to score, with observed counts (learners); default: the estimation
            sample, compared with :meth:`fitted_values` (``E[y | y > 0]`` when the
            model is zero-truncated). On new pairs the untruncated ``mu`` is used.
        count : str, optional
            Observed-count column (default: the formula's left-hand side).

        Returns
        -------
        float
        """
        return gm.srmse(*self._obs_pred(pairs, count))

    def cpc(self, pairs: pd.DataFrame | None = None, count: str | None = None) -> float:
        """Common part of commuters ``2 sum min(T, That) / (sum T + sum That)``, in [0, 1].

        Parameters and choice of expected flows as in :meth:`srmse`.
        """
        return gm.cpc(*self._obs_pred(pairs, count))

    def deviance(self, pairs: pd.DataFrame | None = None, count: str | None = None) -> float:
        """Deviance ``2 (llf_saturated - llf)`` of the untruncated family at ``mu``, ``alpha``.

        On the estimation sample by default (for ``zeros="truncate"`` this is the
        untruncated NB2/Poisson deviance of the positive rows, a descriptive figure).

        Parameters
        ----------
        pairs : pandas.DataFrame, optional
            Pairs with observed counts (learners); default the estimation sample.
        count : str, optional
            Observed-count column (default: the formula's left-hand side).
        """
        if pairs is None:
            y, mu = self.endog, np.exp(self.exog @ self.params.to_numpy(float))
        else:
            y, mu = self._obs_pred(pairs, count)
        return gm.deviance(y, mu, self.alpha if self.family == "negbin" else 0.0)

    def dispersion_test(self, method: str = "lr") -> DispersionTest:
        """Test of Poisson equidispersion against NB2 on the estimation sample.

        Parameters
        ----------
        method : {"lr", "ct"}
            ``"lr"``: likelihood ratio NB2 vs Poisson (same zeros handling), p-value
            from the boundary mixture ``0.5 chi2_0 + 0.5 chi2_1``. ``"ct"``:
            Cameron-Trivedi auxiliary regression on Poisson fitted means (not for
            ``zeros="truncate"``).
        """
        from studentflow.gravity.newton import fit_counts

        trunc = self.zeros == "truncate"
        if method == "lr":
            other = "poisson" if self.family == "negbin" else "negbin"
            fit = fit_counts(self.endog, self.exog, family=other, truncated=trunc)
            ll_nb, ll_p = ((self.llf, fit.llf) if self.family == "negbin"
                           else (fit.llf, self.llf))
            a = self.alpha if self.family == "negbin" else fit.alpha
            lr = 2.0 * (ll_nb - ll_p)
            return DispersionTest("LR test of alpha = 0 (chi-bar-squared)", lr,
                                  gm.lr_dispersion_pvalue(lr), a)
        if method == "ct":
            if trunc:
                raise ValueError("dispersion_test: method='ct' needs zeros='drop' or 'include'")
            if self.family == "poisson":
                mu = np.exp(self.exog @ self.params.to_numpy(float))
            else:
                fit = fit_counts(self.endog, self.exog, family="poisson")
                mu = np.exp(self.exog @ fit.beta)
            a, t, p = gm.ct_dispersion_test(self.endog, mu)
            return DispersionTest("Cameron-Trivedi auxiliary regression", t, p, a)
        raise ValueError(f"dispersion_test: method must be 'lr' or 'ct', got {method!r}")


def _is_pd(cov: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(cov)
        return True
    except np.linalg.LinAlgError:
        return False
