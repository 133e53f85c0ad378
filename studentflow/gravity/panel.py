"""The pooled gravity fit over several school years, with year effects.

One school year identifies the net-cost elasticity only from differences *across*
schools (dearer schools draw fewer learners), which the other covariates partly absorb.
Several years add its changes *over time*: a subsidy increase or tuition inflation moves
the net cost of the same pair, and the flows that follow say how much it matters. The
pooled model stacks every year's PairTable (one row per origin → ESC pair and year,
column ``school_year``) and adds year fixed effects to the study's formula::

    log mu_ijt = x_ijt' beta + gamma_t,     gamma_latest = 0

so that everything that moves all flows of a year alike (cohort size, the economy) goes
into ``gamma_t``, and ``beta`` is shared by the years. The latest year is the reference:
its ``gamma`` is 0, so the model predicts the latest year's pairs without a year column
and scenarios, calibration and the optimizer use it as they use a single-year fit.
Standard errors are clustered two ways (Cameron, Gelbach and Miller 2011): by origin
school and by ESC school, each across years (IDs are the current ones after the
crosswalk, so one school is one cluster whatever ID it had). Pooling repeats every ESC
school once a year, and what is particular to a school (its pull, a full school's
rationing) repeats with it; clustering by origin alone treats those years as new
information and gives intervals too narrow to cover the truth (docs/design.md).

- :func:`panel_distances`: road distances (km) once for the union of every year's schools.
- :func:`build_panel_pairs`: every year's :func:`studentflow.pairs.build_pairs`, stacked.
- :func:`fit_panel_gravity` → :class:`PanelGravityModel`: a :class:`GravityModel` of the
  reference year (``params`` without the year effects), carrying ``year_effects`` and the
  full pooled fit (``pooled``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from studentflow.gravity.fit import STUDY_FORMULA, _build, fit_gravity
from studentflow.gravity.likelihood import score_hessian_alpha, two_way_cluster_cov
from studentflow.gravity.model import DispersionTest, GravityModel
from studentflow.gravity.newton import ALPHA_BOUNDARY

__all__ = ["YEAR_COLUMN", "PanelGravityModel", "panel_distances", "build_panel_pairs", "fit_panel_gravity",
           "year_sort_key"]

#: Column of the stacked pair table naming each row's school year ("YYYY-YYYY").
YEAR_COLUMN = "school_year"


def year_sort_key(year: str) -> tuple:
    """Sort key of a school year "YYYY-YYYY": its first calendar year (then the text)."""
    m = re.match(r"\s*(\d{4})", str(year))
    return (int(m.group(1)) if m else 10**9, str(year))


@dataclass(frozen=True, eq=False)
class PanelGravityModel(GravityModel):
    """A gravity model fitted on several school years, for the reference (latest) year.

    ``params``, ``bse`` and ``cov_params`` are the pooled estimates without the year
    effects; ``predict`` gives the reference year's expected flows (learners), whose year
    effect is 0. ``llf``, ``llnull``, ``nobs`` and ``n_clusters`` are the pooled fit's;
    ``endog``/``exog`` hold the reference year's rows (in-sample SRMSE and CPC are that
    year's).

    Attributes
    ----------
    years : tuple of str
        The school years pooled, oldest first.
    reference_year : str
        The year whose effect is 0 (the latest).
    year_effects : pandas.DataFrame
        Index: every year; columns ``coef`` (log of the year's flow level relative to the
        reference year, holding the covariates fixed; NaN if the fit dropped the year's
        term as collinear), ``std_err``, ``pairs`` (rows of the estimation sample that year).
    pooled : GravityModel
        The full fit, year-effect terms included (predicts any year given ``school_year``).
    uncensored : GravityModel or None
        With ``censored=``: the NB2 fit that treats every count as demand (the censored
        fit's start; the overdispersion test is its). None otherwise.
    """

    years: tuple = ()
    reference_year: str = ""
    year_effects: pd.DataFrame = field(default=None, repr=False, compare=False)
    pooled: GravityModel = field(default=None, repr=False, compare=False)
    uncensored: GravityModel = field(default=None, repr=False, compare=False)
    censored_schools: int = 0

    @property
    def k_params(self) -> int:
        """Estimated parameters of the pooled fit (coefficients, year effects, alpha)."""
        return self.pooled.k_params

    def dispersion_test(self, method: str = "lr") -> DispersionTest:
        """Overdispersion test of the pooled fit (the uncensored one when censored;
        see :meth:`GravityModel.dispersion_test`)."""
        return (self.uncensored or self.pooled).dispersion_test(method)

    def summary(self) -> str:
        """The pooled fit's summary, then the year effects (vs the reference year)."""
        lines = [f"Pooled over {len(self.years)} school years ({', '.join(self.years)}) with year "
                 f"effects; reference year {self.reference_year} (effect 0, the year predicted)"
                 + (f"; counts of ESC schools at capacity treated as censored ({self.censored_schools:,} "
                    "school-years: P(demand >= placed) and the split over origins)" if self.uncensored else ""),
                 GravityModel.summary(self), "Year effects (log flow level vs the reference year):"]
        for year, r in self.year_effects.iterrows():
            if year != self.reference_year and not np.isfinite(r["coef"]):
                lines.append(f"  {year}: dropped (collinear with other terms), {int(r['pairs']):,} pairs")
                continue
            se = "reference" if year == self.reference_year else f"std err {r['std_err']:.4f}"
            lines.append(f"  {year}: {r['coef']:+.4f} ({se}), {int(r['pairs']):,} pairs")
        return "\n".join(lines)


def panel_distances(panel, *, max_km: float | None = None, client=None) -> pd.DataFrame:
    """Road distances (km) from every year's origins to every year's ESC schools, once.

    Origins are the Grade 6 schools in any year's flows, ESC schools those with the ESC
    flag or beneficiaries in any year; coordinates and the road network are shared
    across years (the latest year's bundle supplies them, with schools that left before
    it added from their last year). See :func:`studentflow.pairs.bundle_distances`.

    Parameters
    ----------
    panel : studentflow.schema.Panel or Bundle
        Or anything with ``years``, ``panel[year]`` (a Bundle) and ``latest``; a Bundle is
        one year (its origins × its ESC schools).
    max_km : float, optional
        Keep only pairs within this road distance, km.
    client : dask.distributed.Client or str, optional
        Compute the origin blocks on this Dask cluster.
    """
    from studentflow.pairs import bundle_distances

    if not hasattr(panel, "years"):  # one Bundle
        bundles, latest = [panel], panel
    else:  # latest first: its school rows win
        bundles, latest = [panel[y] for y in sorted(panel.years, key=year_sort_key, reverse=True)], panel.latest
    origins, esc, schools = [], [], []
    for b in bundles:
        s, f = b.schools, b.flows
        origins.append(f["origin_id"].astype(str).unique())
        benef = f.loc[pd.to_numeric(f["esc_beneficiaries"]) > 0, "destination_id"].astype(str).unique()
        esc.append(s.index[s["esc"].fillna(False).astype(bool) | s.index.isin(benef)])
        schools.append(s)
    bundle = latest
    if len(bundles) > 1:
        union = pd.concat(schools)
        bundle = dataclasses.replace(latest, schools=union.loc[~union.index.duplicated(keep="first")])
    return bundle_distances(bundle, pd.Index(np.concatenate(origins)).unique(),
                            pd.Index(np.concatenate([np.asarray(e) for e in esc])).unique(),
                            max_km=max_km, client=client)


def build_panel_pairs(panel, distances: pd.DataFrame | None = None, *, radius_km: float = 5.0,
                      candidates: str = "study", year_column: str = YEAR_COLUMN, built=None) -> pd.DataFrame:
    """Every school year's PairTable, stacked, with a ``school_year`` column.

    Parameters
    ----------
    panel : studentflow.schema.Panel
        Or anything with ``years`` and ``panel[year]`` (a Bundle).
    distances : pandas.DataFrame, optional
        Road distances (km) covering every year's pairs (:func:`panel_distances`).
    radius_km : float
        New candidate pairs within this road distance, km (as :func:`studentflow.pairs.build_pairs`).
    candidates : {"study", "radius"}
        Candidate set of each year's table (as :func:`studentflow.pairs.build_pairs`).
    year_column : str
        Name of the year column added.
    built : dict, optional
        Year → that year's PairTable already built with the same distances, radius and
        candidates (e.g. the pipeline's latest year); used instead of building it again.

    Returns
    -------
    pandas.DataFrame
        PairTable columns plus ``year_column``, oldest year first; one row per origin →
        ESC pair and year (learners, km, thousand pesos as in each year's table).
    """
    from studentflow.pairs import build_pairs

    parts = []
    built = built or {}
    for year in sorted(panel.years, key=year_sort_key):
        p = built[year] if year in built else build_pairs(panel[year], distances, radius_km=radius_km,
                                                           candidates=candidates)
        parts.append(p.assign(**{year_column: str(year)}))
    return pd.concat(parts, ignore_index=True)


def fit_panel_gravity(panel_pairs: pd.DataFrame, formula: str = STUDY_FORMULA, *, year_column: str = YEAR_COLUMN,
                      reference: str | None = None, family: str = "negbin", zeros: str = "truncate",
                      cluster: str | tuple[str, str] | None = ("origin_id", "destination_id"),
                      method: str = "fast", censored: pd.DataFrame | None = None) -> PanelGravityModel:
    """Fit the gravity model on stacked school years with year fixed effects.

    Adds ``C(school_year, Treatment(reference))`` to ``formula`` and fits
    :func:`studentflow.gravity.fit.fit_gravity` on every row; clusters are the
    ``cluster`` column's values across years (an origin school is one cluster in every
    year it appears).

    Parameters
    ----------
    panel_pairs : pandas.DataFrame
        Stacked PairTables with ``year_column`` (:func:`build_panel_pairs`): counts in
        learners, distances in km, net costs in thousand pesos.
    formula : str
        Formula without year terms (default the study's).
    year_column : str
        Column naming each row's school year.
    reference : str, optional
        Year whose effect is 0 and that the returned model predicts (default the latest).
    family, zeros, method
        As :func:`studentflow.gravity.fit.fit_gravity`.
    cluster : str, (str, str) or None
        Column(s) of cluster labels: one column as :func:`fit_gravity`; two columns (default
        origin and destination school) for two-way cluster-robust standard errors
        (:func:`studentflow.gravity.likelihood.two_way_cluster_cov`).
    censored : pandas.DataFrame, optional
        Which ESC school was full in which year (:func:`studentflow.gravity.censored.
        capacity_bound_years`: index ``destination_id``, ``year_column``; bool column
        ``capacity_bound``). Its counts are then censored demand
        (:mod:`studentflow.gravity.censored`): needs ``family="negbin"``,
        ``zeros="include"`` and two cluster columns.

    Returns
    -------
    PanelGravityModel
        With one year only, the year effect is dropped (``year_effects`` has its one row)
        and the fit equals ``fit_gravity(panel_pairs, formula, ...)``.

    Raises
    ------
    ValueError
        No ``year_column``, missing years, a ``reference`` not among the years, or any
        error of :func:`fit_gravity` (e.g. a year without a positive flow).
    """
    if year_column not in panel_pairs.columns:
        raise ValueError(f"fit_panel_gravity: the pair table has no {year_column!r} column")
    if panel_pairs.empty:
        raise ValueError("fit_panel_gravity: the pair table is empty")
    if panel_pairs[year_column].isna().any():
        raise ValueError(f"fit_panel_gravity: column {year_column!r} has missing values")
    if year_column in formula:
        raise ValueError(f"fit_panel_gravity: formula already names {year_column!r}; give it without year terms")
    data = panel_pairs.assign(**{year_column: panel_pairs[year_column].astype(str)})
    years = tuple(sorted(data[year_column].unique(), key=year_sort_key))
    reference = years[-1] if reference is None else str(reference)
    if reference not in years:
        raise ValueError(f"fit_panel_gravity: reference year {reference!r} is not among {list(years)}")
    two_way = isinstance(cluster, (tuple, list))
    if two_way and (len(cluster) != 2 or any(c not in data.columns for c in cluster)):
        raise ValueError(f"fit_panel_gravity: cluster must name one or two columns of the pair table, got {cluster!r}")
    kw = dict(family=family, zeros=zeros, cluster=cluster[0] if two_way else cluster, method=method)
    full_formula = formula if len(years) == 1 else f"{formula} + C({year_column}, Treatment({reference!r}))"
    full = fit_gravity(data, full_formula, **kw)
    year_cols = [c for c in full.params.index if c.startswith(f"C({year_column}")]
    _, X, info = _build(data, formula, direct=method == "fast")  # the design without year terms
    names = [c for c in X.columns if c in full.params.index]  # collinear terms dropped by the fit stay out
    if set(names) != set(full.params.index) - set(year_cols):
        raise ValueError(f"fit_panel_gravity: the design without year effects has columns {names}, "
                         f"the pooled fit {list(full.params.index)}")
    y = pd.to_numeric(data[formula.split("~")[0].strip()]).to_numpy(float)
    sample = (y > 0) if zeros in ("drop", "truncate") else np.ones(len(y), bool)
    uncensored, n_censored = None, 0
    if censored is not None:
        if family != "negbin" or zeros != "include" or not two_way:
            raise ValueError("fit_panel_gravity: censored= needs family='negbin', zeros='include' and two cluster "
                             "columns")
        from studentflow.gravity.censored import fit_censored_rows

        uncensored = full
        full, n_censored = fit_censored_rows(full, data.loc[sample], censored, tuple(cluster), year_column)
    elif two_way:
        full = _two_way(full, data.loc[sample, cluster[0]], data.loc[sample, cluster[1]], tuple(cluster))
    ref_rows = (data[year_column].to_numpy() == reference)[sample]
    keep = names + (["alpha"] if "alpha" in full.cov_params.index else [])
    effects = pd.DataFrame({"coef": np.where(np.asarray(years) == reference, 0.0, np.nan),
                            "std_err": np.where(np.asarray(years) == reference, 0.0, np.nan),
                            "pairs": data.loc[sample, year_column].value_counts().reindex(years).to_numpy()},
                           index=pd.Index(years, name=year_column))
    for c in year_cols:
        year = c.split("[T.", 1)[1].rstrip("]")
        effects.loc[year, ["coef", "std_err"]] = [float(full.params[c]), float(full.bse[c])]
    col = full.params.index.get_indexer(names)
    return PanelGravityModel(
        params=full.params[names], bse=full.bse[names], alpha=full.alpha,
        cov_params=full.cov_params.loc[keep, keep], llf=full.llf, llnull=full.llnull, nobs=full.nobs,
        formula=formula, family=full.family, zeros=full.zeros, cluster=full.cluster, method=full.method,
        converged=full.converged, n_clusters=full.n_clusters, design_info=info,
        endog=full.endog[ref_rows], exog=full.exog[ref_rows][:, col],
        groups=None if full.groups is None else full.groups[ref_rows],
        dropped=tuple(d for d in getattr(full, "dropped", ()) if not d.column.startswith(f"C({year_column}")),
        years=years, reference_year=reference, year_effects=effects, pooled=full,
        uncensored=uncensored, censored_schools=n_censored,
    )


def _two_way(model: GravityModel, first: pd.Series, second: pd.Series, names: tuple) -> GravityModel:
    """``model`` with two-way cluster-robust ``cov_params``/``bse`` (rows: its estimation sample)."""
    X = np.asarray(model.exog, float)
    if X.shape[0] != len(first) or X.shape[1] != len(model.params):
        raise ValueError(f"fit_panel_gravity: the estimation sample has {X.shape[0]} rows, the cluster "
                         f"columns {len(first)}: cannot cluster two ways")
    nb = model.family == "negbin" and model.alpha >= ALPHA_BOUNDARY
    S, H = score_hessian_alpha(np.asarray(model.endog, float), X, model.params.to_numpy(float), model.alpha,
                               "negbin" if nb else "poisson", model.zeros == "truncate")
    V = two_way_cluster_cov(S, H, first.to_numpy(), second.to_numpy())
    cov = model.cov_params * 0.0  # alpha on its boundary: its row stays 0, as fit_gravity leaves it
    k, p = len(model.params), V.shape[0]
    cov.iloc[:p, :p] = V
    bse = pd.Series(np.sqrt(np.diag(cov.to_numpy())[:k]), index=model.params.index, name=model.bse.name)
    return dataclasses.replace(model, cov_params=cov, bse=bse, cluster=" and ".join(names),
                               n_clusters=int(pd.unique(first).size))


#: ``fit_years`` values: pool every school year of the manifest, or fit the latest alone.
FIT_YEARS = ("all", "latest")


def fit_years_panel(manifest=None, fit_years: str = "all", *, client=None, load=None, fork: bool = False,
                    meanwhile=None):
    """``(panel, bundle)``: the Panel to pool over (or None) and the latest year's Bundle.

    The panel is None when ``fit_years == "latest"`` or the manifest has one school year
    (both then mean the same); the bundle is then ``load(manifest, client=client)``
    (default :func:`studentflow.ingest.load_bundle`), else ``panel.latest`` of
    :func:`studentflow.ingest.load_panel` (``fork``, ``meanwhile``: its earlier years in a
    forked child, and what this process does while it waits).

    Raises
    ------
    ValueError
        ``fit_years`` not in :data:`FIT_YEARS`.
    """
    if fit_years not in FIT_YEARS:
        raise ValueError(f"fit_years must be one of {FIT_YEARS}, got {fit_years!r}")
    from studentflow.ingest import load_bundle, load_panel, manifest_years
    from studentflow.paths import sample_manifest

    if fit_years == "latest" or len(manifest_years(sample_manifest() if manifest is None else manifest)) < 2:
        return None, (load or load_bundle)(manifest, client=client)
    panel = load_panel(manifest, client=client, fork=fork, meanwhile=meanwhile)
    return panel, panel.latest


def pooled_fit(panel, distances: pd.DataFrame, zeros: str = "truncate", *, radius_km: float = 5.0,
               method: str = "fast", formula: str | None = None, built=None,
               censored: bool = True) -> PanelGravityModel:
    """:func:`fit_panel_gravity` on the panel's stacked pair tables, as the pipeline fits one year.

    ``zeros="include"`` fits every year's outcome-independent radius set
    (``candidates="radius"``, ``within_radius`` rows); the other modes the study's pair
    tables. ``distances`` (km) must cover every year (:func:`panel_distances`). ``built``:
    pair tables already built, by year (:func:`build_panel_pairs`): the radius sets
    (``candidates="radius"``) with ``censored=True``, else the study tables (ignored with
    "include").
    ``censored=True`` (default): the counts of ESC schools at capacity are censored demand
    (:mod:`studentflow.gravity.censored`); the radius set with its zeros is fitted whatever
    ``zeros`` says, and the study tables say which school was full in which year.
    ``censored=False``: every count is demand (the study's way, with ``zeros``).
    """
    if censored:
        from studentflow.gravity.censored import capacity_bound_years

        stacked = build_panel_pairs(panel, distances, radius_km=radius_km, candidates="radius", built=built)
        stacked = stacked.loc[stacked["within_radius"]]
        placed = None  # learners placed per school and year: every flow, not only those within the radius
        if all(getattr(panel[y], "flows", None) is not None for y in panel.years):
            placed = pd.concat({str(y): panel[y].flows.groupby(panel[y].flows["destination_id"].astype(str))
                                ["esc_beneficiaries"].sum() for y in panel.years},
                               names=[YEAR_COLUMN, "destination_id"]).swaplevel().astype(float)
        return fit_panel_gravity(stacked, STUDY_FORMULA if formula is None else formula, zeros="include",
                                 method=method, censored=capacity_bound_years(stacked, observed=placed))
    radius = zeros == "include"
    stacked = build_panel_pairs(panel, distances, radius_km=radius_km, candidates="radius" if radius else "study",
                                built=None if radius else built)
    if radius:
        stacked = stacked.loc[stacked["within_radius"]]
    return fit_panel_gravity(stacked, STUDY_FORMULA if formula is None else formula, zeros=zeros, method=method)


def pooled_models(panel, distances: pd.DataFrame, models: dict, label: str, zeros: str = "truncate", *,
                  censored: bool = True, **kw) -> dict:
    """``models`` (label → single-year fit, the used one first) with the pooled fit first.

    Returns ``models`` unchanged when ``panel`` is None. Else the pooled fit
    (:func:`pooled_fit` with ``zeros``, ``censored`` and ``kw``: ``radius_km``, ``method``,
    ``formula``, ``built``) comes first, labelled ``"…, pooled over N school years with
    year effects (used)"``, and the single-year labels lose "(used)" and name the year.
    """
    if panel is None:
        return models
    pooled = pooled_fit(panel, distances, zeros, censored=censored, **kw)
    what = ("NB2 on every candidate pair, full ESC schools' counts censored" if censored else label)
    first = f"{what}, pooled over {len(pooled.years)} school years with year effects (used)"
    return {first: pooled, **{k.replace(" (used)", f", {pooled.reference_year} alone"): m for k, m in models.items()}}
