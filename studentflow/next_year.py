"""Plan the next school year: ``run --for-year next`` and ``optimize --for-year next``.

The latest school year's data are fitted and calibrated as usual (its observed placements
are the calibration target); the scenarios then run on *next* year's learners: each
origin's pool is its Grade 6 enrolment of the latest year times the observed Grade 6 → 7
transition share of its sector and region (:func:`studentflow.scenarios.cohort.forecast_pools`),
drawn anew in every Monte Carlo draw from the shares' uncertainty, so the intervals carry
the pools' uncertainty as well as the coefficients'. Slots and ESC amounts are the latest
year's; next year's contracts enter as the scenario file's (or levers file's) slot and
subsidy levers. An origin without Grade 6 learners in the latest year sends no one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["NextYear", "plan_next_year", "year_bundles", "FOR_YEARS"]

FOR_YEARS = ("next",)


@dataclasses.dataclass(frozen=True)
class NextYear:
    """Inputs of a next-year run.

    Attributes
    ----------
    forecast : PoolForecast
    pairs : pandas.DataFrame
        The latest year's PairTable with ``origin_pool`` = the forecast pools, learners.
    calibration : Calibration or None
        Calibrated on the latest year's observed placements and actual pools.
    pool_draws : pandas.DataFrame
        Pools per draw × origin id, learners (for ``run_scenarios(pool_draws=...)``).
    """

    forecast: object
    pairs: pd.DataFrame
    calibration: object
    pool_draws: pd.DataFrame
    actual_pairs: pd.DataFrame | None = None
    baseline: object = None
    bundle: object = None

    def calibration_for(self, model):
        """Another model calibrated on the latest year (actual pools), as :attr:`calibration`."""
        from studentflow.scenarios.calibrate import calibrate_status_quo

        return calibrate_status_quo(model, self.actual_pairs, self.baseline, bundle=self.bundle)

    def label(self, result, record: dict | None = None):
        """``result`` with a ``school_year`` column, ``record["forecast_school_year"]`` set, and
        the report's title and section (``write_report`` keywords)."""
        if record is not None:
            record["forecast_school_year"] = self.school_year
        result = dataclasses.replace(result, table=result.table.assign(school_year=self.school_year))
        return result, dict(title=f"studentflow: ESC scenarios for school year {self.school_year}",
                            sections=(self.section_html(),))

    def section_html(self) -> str:
        """A report section: which year is forecast, and the pools behind it."""
        import html

        f = self.forecast
        rows = "".join(f"<tr><td>{html.escape(str(g))}</td><td>{r['share']:.3f}</td><td>{r['se']:.3f}</td>"
                       f"<td>{int(r['schools'])}</td></tr>" for g, r in f.shares.iterrows())
        return (f"<h2>Forecast for school year {html.escape(str(self.school_year or 'next'))}</h2>"
                f"<div class='key'>Every scenario is next year's: origin pools are {html.escape(str(f.from_year))}'s "
                f"Grade 6 enrolment × the observed Grade 6 → 7 transition share ({html.escape(f.method)}), "
                f"{f.total:,.0f} learners in all; the shares are drawn anew in each Monte Carlo draw, so the "
                "intervals include the pools' uncertainty. Slots and amounts: the latest year's, changed by "
                "the scenarios' levers.</div><table><tr><th>group</th><th>share</th><th>standard error</th>"
                f"<th>schools</th></tr>{rows}</table>")

    @property
    def school_year(self) -> str | None:
        """The school year forecast."""
        return self.forecast.for_year

    def summary(self) -> str:
        return self.forecast.summary()


def year_bundles(manifest, latest) -> list:
    """Every school year's bundle of ``manifest`` (a path, or a Panel already loaded), oldest
    first, ending with ``latest``."""
    from studentflow.ingest import load_panel, manifest_years

    if hasattr(manifest, "years") and hasattr(manifest, "bundles"):
        return [manifest.bundles[y] for y in manifest.years[:-1]] + [latest]
    if manifest is None:
        from studentflow.paths import sample_manifest

        manifest = sample_manifest()
    if len(manifest_years(manifest)) < 2:
        return [latest]
    panel = load_panel(manifest)
    return [panel.bundles[y] for y in panel.years[:-1]] + [latest]


def plan_inputs(for_year, manifest, bundle, model, pairs, scenarios, draws, seed, calibrate):
    """What :func:`studentflow.pipeline.run_pipeline` needs for ``for_year``.

    Returns
    -------
    (NextYear or None, pairs, calibration of a model, pool draws or None)
        Without ``for_year``: ``(None, pairs, lambda m: calibrate, None)``.
    """
    check_for_year(for_year)
    if for_year is None:
        return None, pairs, (lambda m: calibrate), None
    plan = plan_next_year(year_bundles(manifest, bundle), model, pairs, scenarios=scenarios, draws=draws,
                          seed=seed, calibrate=calibrate)

    def cal(m):
        if not calibrate:
            return False
        return plan.calibration if m is model else plan.calibration_for(m)

    return plan, plan.pairs, cal, plan.pool_draws if draws else None


def check_for_year(for_year) -> None:
    """ValueError unless ``for_year`` is None or one of :data:`FOR_YEARS`."""
    if for_year is not None and for_year not in FOR_YEARS:
        raise ValueError(f"for_year must be None or one of {FOR_YEARS}, got {for_year!r}")


def plan_next_year(bundles, model, pairs: pd.DataFrame, *, scenarios=None, draws: int = 100, seed: int = 0,
                   calibrate: bool = True) -> NextYear:
    """Forecast pools, the calibration on the latest year and the pools per draw.

    Parameters
    ----------
    bundles : sequence of Bundle
        The school years seen, oldest first (:func:`year_bundles`).
    model : GravityModel
    pairs : pandas.DataFrame
        The latest year's PairTable (actual pools).
    scenarios : list of Scenario, optional
        Their baseline is calibrated (default the status quo with billed slots).
    draws, seed : int
        Monte Carlo draws of the pools (one per coefficient draw) and their seed.
    calibrate : bool
        Calibrate to the latest year (False: the model as fitted).

    Returns
    -------
    NextYear
    """
    from studentflow.scenarios.calibrate import calibrate_status_quo
    from studentflow.scenarios.cohort import forecast_pools
    from studentflow.scenarios.holdout import STATUS_QUO
    from studentflow.scenarios.spec import baseline_of

    bundles = list(bundles)
    forecast = forecast_pools(bundles)
    base = baseline_of(scenarios) if scenarios else STATUS_QUO
    plain = dataclasses.replace(base, subsidy=0.0, subsidy_by_tier={}, subsidy_targeted=None, radius_km=None)
    calibration = calibrate_status_quo(model, pairs, plain, bundle=bundles[-1]) if calibrate else None
    pools = forecast.pools.reindex(pairs["origin_id"].astype(str)).fillna(0).to_numpy()
    nxt = pairs.assign(origin_pool=pools.astype(np.int64))
    nxt.attrs = dict(pairs.attrs)
    origins = pd.Index(pd.unique(pairs["origin_id"].astype(str)))
    draws_ = pd.DataFrame(forecast.draw(max(int(draws), 1), seed), columns=forecast.pools.index.astype(str))
    return NextYear(forecast, nxt, calibration, draws_.reindex(columns=origins, fill_value=0.0), pairs, plain,
                    bundles[-1])
