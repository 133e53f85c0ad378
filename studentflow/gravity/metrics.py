"""Flow metrics, term names and plain-language readings for the gravity model.

Pure functions over arrays and Series; :class:`studentflow.gravity.fit.GravityModel` wraps
them. References: Knudsen & Fotheringham (1986) for SRMSE; Lenormand, Huet, Gargiulo &
Deffuant (2012) for the common part of commuters (CPC); Cameron & Trivedi (1990) for the
overdispersion test; Self & Liang (1987) for the boundary chi-bar-squared LR test.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = [
    "srmse", "cpc", "deviance", "term_label", "term_key", "elasticity_table",
    "ct_dispersion_test", "lr_dispersion_pvalue",
]

_VAR_LABEL = {
    "distance_km": ("distance km", "road distance"),
    "net_cost_k": ("net cost, thousand pesos", "net cost"),
    "origin_lgu_revenue": ("origin LGU revenue", "origin LGU revenue"),
    "esc_rating": ("ESC rating rank", "ESC rating rank (1 best, 8 worst)"),
    "tuition": ("tuition, pesos", "tuition"),
}
_SIDE = {"origin_region": "origin", "destination_region": "destination"}
_LOG1P = re.compile(r"^np\.log1p\((\w+)\)$")
_LOG = re.compile(r"^np\.log\((\w+)\)$")
_CAT = re.compile(r"^C\((\w+)[^\[]*\)\[(?:T\.)?(.+)\]$")


def _check(observed, predicted) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(observed, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"observed ({t.size}) and predicted ({p.size}) differ in length")
    if t.size == 0:
        raise ValueError("observed/predicted flows are empty")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError("observed/predicted flows contain NaN or infinite values")
    return t, p


def srmse(observed, predicted) -> float:
    """Standardised root mean square error of flows.

    ``SRMSE = sqrt(sum (T - That)^2 / N) / (sum T / N)``; 0 is a perfect fit.

    Parameters
    ----------
    observed, predicted : array_like
        Flows per pair (learners), same length N.

    Returns
    -------
    float
    """
    t, p = _check(observed, predicted)
    mean = t.mean()
    if mean <= 0:
        raise ValueError("SRMSE needs a positive observed total")
    return float(np.sqrt(np.mean((t - p) ** 2)) / mean)


def cpc(observed, predicted) -> float:
    """Common part of commuters: ``2 sum min(T, That) / (sum T + sum That)``.

    1 means identical flow tables, 0 no overlap.

    Parameters
    ----------
    observed, predicted : array_like
        Non-negative flows per pair (learners), same length.

    Returns
    -------
    float
    """
    t, p = _check(observed, predicted)
    if np.any(t < 0) or np.any(p < 0):
        raise ValueError("CPC needs non-negative flows")
    total = t.sum() + p.sum()
    if total <= 0:
        raise ValueError("CPC needs a positive total flow")
    return float(2.0 * np.minimum(t, p).sum() / total)


def deviance(observed, predicted, alpha: float = 0.0) -> float:
    """Poisson (``alpha = 0``) or NB2 deviance ``2 (llf_saturated - llf_model)``.

    Parameters
    ----------
    observed : array_like
        Counts (learners).
    predicted : array_like
        Means ``mu`` (learners), all > 0.
    alpha : float
        NB2 dispersion (held at this value in the saturated model).

    Returns
    -------
    float
    """
    y, mu = _check(observed, predicted)
    if np.any(mu <= 0):
        raise ValueError("deviance needs predicted means > 0")
    ylog = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    if alpha <= 0:
        return float(2.0 * np.sum(ylog - (y - mu)))
    r = 1.0 / alpha
    return float(2.0 * np.sum(ylog - (y + r) * np.log((y + r) / (mu + r))))


def ct_dispersion_test(observed, predicted) -> tuple[float, float, float]:
    """Cameron-Trivedi auxiliary regression test of Poisson equidispersion.

    OLS without intercept of ``((y - mu)^2 - y) / mu`` on ``mu``; under Poisson the
    slope is 0, under NB2 it estimates ``alpha``. One-sided test (alternative: over-).

    Returns
    -------
    (alpha_hat, t_statistic, p_value)
    """
    from scipy import stats  # lazily: 0.4 s of import, not needed before the fit

    y, mu = _check(observed, predicted)
    z = ((y - mu) ** 2 - y) / mu
    a = float(np.sum(mu * z) / np.sum(mu * mu))
    resid = z - a * mu
    s2 = float(np.sum(resid**2) / (y.size - 1))
    se = np.sqrt(s2 / np.sum(mu * mu))
    t = a / se
    return a, float(t), float(stats.norm.sf(t))


def lr_dispersion_pvalue(lr: float) -> float:
    """p-value of the LR test of ``alpha = 0`` on the boundary: ``0.5 P(chi2_1 > LR)``."""
    from scipy import stats  # lazily: 0.4 s of import, not needed before the fit

    return float(0.5 * stats.chi2.sf(max(float(lr), 0.0), 1))


def term_label(name: str) -> str:
    """The study's label for a design column, e.g. ``"ln(1+distance km)"``.

    Parameters
    ----------
    name : str
        Column name from the formula engine (``np.log1p(distance_km)``,
        ``C(origin_region, Treatment('NCR'))[T.Region III]``, ``Intercept``).
    """
    if name == "Intercept":
        return "intercept"
    if m := _LOG1P.match(name):
        return f"ln(1+{_VAR_LABEL.get(m[1], (m[1],))[0]})"
    if m := _LOG.match(name):
        return f"ln({_VAR_LABEL.get(m[1], (m[1],))[0]})"
    if m := _CAT.match(name):
        return f"{_SIDE.get(m[1], m[1])} {m[2]}"
    return _VAR_LABEL.get(name, (name,))[0]


def term_key(name: str) -> str:
    """Key of a design column in :data:`studentflow.synth.STUDY_PARAMS` style.

    ``np.log1p(distance_km)`` -> ``log1p_distance_km``,
    ``C(origin_region, Treatment('NCR'))[T.Region III]`` -> ``origin_region[Region III]``.
    """
    if name == "Intercept":
        return "intercept"
    if m := _LOG1P.match(name):
        return f"log1p_{m[1]}"
    if m := _LOG.match(name):
        return f"log_{m[1]}"
    if m := _CAT.match(name):
        return f"{m[1]}[{m[2]}]"
    return name


def _pct(x: float) -> str:
    return f"{abs(x) * 100:.1f} %"


def _reading(name: str, beta: float) -> str:
    more_fewer = lambda c: "more" if c >= 0 else "fewer"  # noqa: E731
    if m := _LOG1P.match(name) or _LOG.match(name):
        what = _VAR_LABEL.get(m[1], (m[1], m[1]))[1]
        change = 1.1**beta - 1.0
        text = f"10 % more {what} → {_pct(change)} {more_fewer(change)} learners"
        if name.startswith("np.log1p"):
            text += (
                f" (elasticity {beta:+.3f}; for ln(1+x) the elasticity at x is "
                f"β·x/(1+x), so this holds where x ≫ 1 and is smaller near 0)"
            )
        return text
    if m := _CAT.match(name):
        side = _SIDE.get(m[1], m[1])
        change = np.exp(beta) - 1.0
        return f"{side} in {m[2]} rather than the reference → {_pct(change)} {more_fewer(change)} learners"
    what = _VAR_LABEL.get(name, (name, name))[1]
    change = np.exp(beta) - 1.0
    return f"one unit higher {what} → {_pct(change)} {more_fewer(change)} learners"


def elasticity_table(params: pd.Series, bse: pd.Series, level: float = 0.05) -> pd.DataFrame:
    """Elasticities / semi-elasticities of expected flow, one row per term.

    For ``ln(1+x)`` and ``ln x`` terms the coefficient is the elasticity of expected
    flow (at large x for ``ln(1+x)``: ``d ln mu / d ln x = beta x / (1+x)``), read as
    the effect of 10 % more x: ``1.1^beta - 1``. For other terms it is a
    semi-elasticity read as ``exp(beta) - 1`` per unit (or versus the reference level).

    Returns
    -------
    pandas.DataFrame
        ``term`` (study label), ``estimate``, ``std_err``, ``ci_low``, ``ci_high``,
        ``reading``; indexed by the design column name; intercept excluded.
    """
    from scipy import stats  # lazily: 0.4 s of import, not needed before the fit

    z = stats.norm.ppf(1 - level / 2)
    rows = []
    for name in params.index:
        if name == "Intercept":
            continue
        b, s = float(params[name]), float(bse[name])
        rows.append(
            {"name": name, "term": term_label(name), "estimate": b, "std_err": s,
             "ci_low": b - z * s, "ci_high": b + z * s, "reading": _reading(name, b)}
        )
    return pd.DataFrame(rows).set_index("name")
