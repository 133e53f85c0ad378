"""Stacked pair tables of several school years drawn from a known NB2 gravity model.

:func:`make_panel_pairs` is the test bench of the pooled fit
(:func:`studentflow.gravity.panel.fit_panel_gravity`): the same origins and ESC schools
every year (the covariates of :func:`studentflow.synth.pairs.make_pairs`), tuition
inflating from year to year, one subsidy increase for one tier between the last two
years (so the net cost of the same pair changes over time), a known year effect on the
flow level, and fresh NB2 counts every year.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from studentflow.synth import STUDY_ALPHA
from studentflow.synth.pairs import linear_predictor, make_pairs

__all__ = ["make_panel_pairs"]


def make_panel_pairs(
    years: Sequence[str] = ("2022-2023", "2023-2024", "2024-2025"),
    *,
    n_origins: int = 400,
    dests_per_origin: int = 40,
    params: Mapping[str, float] | None = None,
    alpha: float = STUDY_ALPHA,
    year_effects: Mapping[str, float] | None = None,
    inflation: float = 0.05,
    subsidy_increase: float = 4_000.0,
    tier: str = "other",
    seed: int = 0,
) -> pd.DataFrame:
    """Draw one PairTable per school year from a known NB2 model with year effects.

    Parameters
    ----------
    years : sequence of str
        School years, oldest first; the last is the reference (year effect 0).
    n_origins, dests_per_origin, params, alpha
        As :func:`studentflow.synth.pairs.make_pairs` (its covariates are the first
        year's; its intercept is the truth's).
    year_effects : mapping, optional
        Year → true effect on ``log mu`` (default: 0.15 per year before the last, e.g.
        +0.30, +0.15, 0: earlier cohorts larger). The last year's is forced to 0.
    inflation : float
        Tuition growth per year (share; 0.05 = 5 %).
    subsidy_increase : float
        ESC amount added (pesos) in the last year at destinations of tier ``tier``
        ("NCR", "HUC" or "other"; tiers as in ``make_pairs``).
    seed : int
        Seed of every draw (same seed, same table).

    Returns
    -------
    pandas.DataFrame
        ``make_pairs``'s columns for every year stacked, plus ``school_year``; ``mu`` is
        each row's true mean (learners). ``attrs``: ``params`` (the intercept is the
        reference year's), ``alpha``, ``year_effects``, ``seed``.
    """
    years = [str(y) for y in years]
    if len(years) < 1 or len(set(years)) != len(years):
        raise ValueError(f"make_panel_pairs: years must be distinct and non-empty, got {years}")
    base = make_pairs(n_origins, dests_per_origin, params=params, alpha=alpha, seed=seed)
    truth = dict(base.attrs["params"])
    n = len(years)
    effects = {y: 0.15 * (n - 1 - t) for t, y in enumerate(years)} if year_effects is None else \
        {y: float(year_effects.get(y, 0.0)) for y in years}
    effects[years[-1]] = 0.0
    # the tier of each destination, as make_pairs derived esc_amount from it
    from studentflow.schema import SUBSIDY_TIERS

    amount_tier = {v: k for k, v in SUBSIDY_TIERS.items()}
    dest_tier = base["esc_amount"].map(amount_tier)
    rng = np.random.default_rng([int(seed), 21])
    parts = []
    for t, year in enumerate(years):
        p = base.drop(columns=["mu"]).copy()
        p["tuition"] = np.round(base["tuition"] * (1.0 + inflation) ** t, -2)
        if t == n - 1 and n > 1:
            p["esc_amount"] = base["esc_amount"] + np.where(dest_tier == tier, subsidy_increase, 0.0)
        p["net_cost_k"] = np.minimum(np.maximum(0.0, p["tuition"] - p["esc_amount"]) / 1000.0, 60.0)
        mu = np.exp(linear_predictor(p, truth) + effects[year])
        lam = mu * rng.gamma(1.0 / alpha, alpha, mu.size) if alpha > 0 else mu
        y = rng.poisson(lam).astype(np.int64)
        p["esc_beneficiaries"] = y
        p["learners"] = y + rng.poisson(0.4 * y)
        p["pair_type"] = np.where(p["learners"] > 0, "observed", "new")
        p["mu"] = mu
        p["school_year"] = year
        parts.append(p)
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(params=truth, alpha=float(alpha), year_effects=effects, seed=int(seed))
    return out
