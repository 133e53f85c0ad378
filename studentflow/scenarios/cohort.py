"""Origin pools of a school year not yet seen: the Grade 6 cohort moved on one year.

A planner deciding next school year's ESC budget knows this year's Grade 6 enrolment
per school, not next year's Grade 7 learners. :func:`forecast_pools` turns the one into
the other: the Grade 7 learners an origin school sends next year (its *pool*, learners)
are forecast as

.. math::

    \\hat E_{i,t+1} = G6_{i,t} \\times s_{g(i)},

where ``G6_{i,t}`` is school i's Grade 6 enrolment in the last year seen and ``s_g`` the
observed Grade 6 → 7 transition share of its group ``g`` (sector × region): the learners
origins of the group sent into Grade 7 in year t (the transitions of year t, whose origin
is the Grade 6 school of year t − 1) over their Grade 6 enrolment of year t − 1, pooled
over every consecutive pair of years seen. With a single year there is no such pair; the
share is then that year's Grade 7 pool over the same year's Grade 6 enrolment (stable
cohorts assumed; ``method="same year"``).

Each share's uncertainty is the standard error of the ratio estimator over the group's
schools; :meth:`PoolForecast.draw` draws one share per group and Monte Carlo draw, so
intervals built on the draws carry the pools' uncertainty, not only the coefficients'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PoolForecast", "forecast_pools", "origin_pools"]

GROUP = ("sector", "region")


def origin_pools(bundle) -> pd.Series:
    """Grade 7 learners per origin (Grade 6) school in a bundle's transitions, learners."""
    f = bundle.flows
    learners = pd.to_numeric(f["learners"], errors="coerce").fillna(0)
    out = learners.groupby(f["origin_id"].astype(str)).sum().astype(float)
    out.index.name = "school_id"
    return out


@dataclass(frozen=True)
class PoolForecast:
    """Forecast origin pools of one school year.

    Attributes
    ----------
    pools : pandas.Series
        Forecast Grade 7 learners per origin school (index ``school_id``), learners.
    grade6 : pandas.Series
        Grade 6 enrolment the forecast starts from (same index), learners.
    group : pandas.Series
        Each school's group label ("public / NCR"), same index.
    shares : pandas.DataFrame
        One row per group: ``share``, ``se`` (standard error), ``schools``, ``grade6``
        and ``grade7`` (learners behind the share).
    method : str
        "consecutive years" or "same year" (module text).
    from_year, for_year : str or None
        The school year whose Grade 6 is used and the year forecast.
    """

    pools: pd.Series
    grade6: pd.Series
    group: pd.Series
    shares: pd.DataFrame
    method: str
    from_year: str | None = None
    for_year: str | None = None

    @property
    def total(self) -> float:
        """Forecast learners in all pools."""
        return float(self.pools.sum())

    def draw(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` draws of the pools (draws × schools in ``pools`` order), whole learners.

        One share per group and draw, ``Normal(share, se)`` clipped at 0; the same
        seed gives the same draws.
        """
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 21]))
        sh = self.shares
        draws = rng.normal(sh["share"].to_numpy(float), sh["se"].to_numpy(float), size=(int(n), len(sh)))
        cols = pd.Index(sh.index).get_indexer(self.group.reindex(self.pools.index))
        g6 = self.grade6.reindex(self.pools.index).fillna(0).to_numpy(float)
        return np.round(g6[None, :] * np.clip(draws, 0, None)[:, cols])

    def summary(self) -> str:
        """The forecast total and the share of each group with its standard error."""
        lines = [f"Pool forecast for {self.for_year or 'the next year'} from Grade 6 of "
                 f"{self.from_year or 'the last year'} ({self.method}): {self.total:,.0f} learners "
                 f"from {int((self.pools > 0).sum()):,} origin schools"]
        for g, r in self.shares.iterrows():
            lines.append(f"  {g:<28} share {r['share']:.3f} ± {r['se']:.3f} ({int(r['schools'])} schools)")
        return "\n".join(lines)


def _groups(schools: pd.DataFrame, ids) -> pd.Series:
    s = schools.reindex(pd.Index(ids, dtype=str))
    sector = s["sector"].fillna("unknown").astype(str) if "sector" in s else "unknown"
    region = s["region"].fillna("unknown").astype(str) if "region" in s else "unknown"
    return pd.Series(np.asarray(sector + " / " + region, dtype=str), index=s.index)


def _grade6(bundle) -> pd.Series:
    s = bundle.schools
    g6 = pd.to_numeric(s["enrol_g6"], errors="coerce").fillna(0).astype(float)
    return g6.set_axis(s.index.astype(str))


def _share_table(pairs: list[tuple[pd.Series, pd.Series, pd.Series]]) -> pd.DataFrame:
    """Per group: the pooled ratio Σ grade7 / Σ grade6 and its ratio-estimator standard error."""
    rows = []
    for g6, g7, grp in pairs:
        ids = g6.index[g6 > 0]
        rows.append(pd.DataFrame({"grade6": g6.reindex(ids).to_numpy(float),
                                  "grade7": g7.reindex(ids).fillna(0).to_numpy(float),
                                  "group": grp.reindex(ids).to_numpy()}))
    d = pd.concat(rows, ignore_index=True)
    out = {}
    for g, part in d.groupby("group", sort=True):
        n, k = part["grade6"].to_numpy(), part["grade7"].to_numpy()
        share = k.sum() / n.sum()
        m = len(part)
        resid = k - share * n
        se = np.sqrt(m / max(m - 1, 1) * np.sum(resid ** 2)) / n.sum() if m > 1 else share
        out[g] = {"share": share, "se": se, "schools": m, "grade6": n.sum(), "grade7": k.sum()}
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = "group"
    return table


def forecast_pools(bundles, *, for_year: str | None = None) -> PoolForecast:
    """Forecast next year's origin pools from the last bundle's Grade 6 enrolment.

    Parameters
    ----------
    bundles : sequence of Bundle, or a Panel
        The school years seen, oldest first (a ``Panel``'s bundles in year order); the
        last one's Grade 6 enrolment (``schools.enrol_g6``, learners) is moved on.
        Transition shares come from every consecutive pair (module text).
    for_year : str, optional
        Label of the year forecast (default: the year after the last bundle's
        ``school_year``, when it has one).

    Returns
    -------
    PoolForecast
    """
    if hasattr(bundles, "years") and hasattr(bundles, "bundles"):
        bundles = [bundles.bundles[y] for y in bundles.years]
    bundles = list(bundles)
    if not bundles:
        raise ValueError("forecast_pools: no school year given")
    last = bundles[-1]
    pairs = [(_grade6(a), origin_pools(b), _groups(a.schools, _grade6(a).index))
             for a, b in zip(bundles[:-1], bundles[1:])]
    method = "consecutive years"
    if not pairs:
        g6 = _grade6(last)
        pairs = [(g6, origin_pools(last), _groups(last.schools, g6.index))]
        method = "same year"
    shares = _share_table(pairs)
    g6 = _grade6(last)
    g6 = g6[g6 > 0]
    group = _groups(last.schools, g6.index)
    known = group.isin(shares.index)
    if not known.all():  # a group never seen: the pooled share of all schools
        total = shares["grade7"].sum() / shares["grade6"].sum()
        extra = pd.DataFrame({"share": total, "se": float(shares["se"].max()), "schools": 0,
                              "grade6": 0.0, "grade7": 0.0}, index=pd.Index(sorted(set(group[~known])), name="group"))
        shares = pd.concat([shares, extra])
    pools = np.round(g6 * group.map(shares["share"]).astype(float))
    year = getattr(last, "school_year", None)
    if for_year is None:
        first = int(str(year)[:4]) + 1 if year and str(year)[:4].isdigit() else None
        for_year = f"{first}-{first + 1}" if first else "the year after the latest"
    return PoolForecast(pools=pools.rename("pool"), grade6=g6.rename("grade6"), group=group.rename("group"),
                        shares=shares, method=method, from_year=year, for_year=for_year)
