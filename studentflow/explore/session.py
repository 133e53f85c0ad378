"""What the explore page computes: the model fitted once, then one answer per lever setting.

:func:`start_session` does everything that does not depend on the levers (ingest,
distances, pairs, the gravity fit, the calibration to today's placements, the school
list, the municipal outlines). :meth:`ExploreSession.answer` then runs the status quo and
the levers' scenario through :func:`~studentflow.scenarios.run_scenarios` with that
calibration: ``draws=0`` for the point estimate (a fraction of a second on the bundled
sample) and ``draws=N`` for the 95 % intervals. These are the figures ``studentflow run``
gives for the same scenario file, seed and draws.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from studentflow.explore.levers import GROUPS, Levers, levers_scenario, parse_levers, status_quo
from studentflow.scenarios import run_scenarios

__all__ = ["ExploreSession", "Answer", "start_session", "HEADLINES"]

#: Figures the page shows: column of the scenario table → (label, unit).
HEADLINES = {
    "placed": ("learners placed in ESC schools", "learners"),
    "relieved_congested": ("learners relieved from congested public JHS", "learners"),
    "cost": ("ESC subsidy paid", "pesos per school year"),
    "pesos_per_relieved": ("pesos per added learner relieved", "pesos"),
}


@dataclass(frozen=True)
class Answer:
    """The answer to one lever setting.

    Attributes
    ----------
    levers : Levers
    draws : int
        0 for the point estimate, else Monte Carlo draws of the coefficients.
    seconds : float
        Wall time of the computation, s.
    figures : dict
        Headline (keys of :data:`HEADLINES`) → ``{"value", "lo", "hi", "status_quo"}``:
        the scenario's mean over draws (the point estimate when ``draws`` is 0), its
        95 % interval (None at ``draws=0``), and the status quo's value. Learners and
        pesos; ``pesos_per_relieved`` is vs the status quo (None for the status quo).
    table : pandas.DataFrame
        ``run_scenarios``' scenario table (status quo, then the scenario).
    public_jhs : pandas.DataFrame
        The scenario's rows of ``public_jhs`` with names, most relieved first.
    result : ScenarioResult
    """

    levers: Levers
    draws: int
    seconds: float
    figures: dict
    table: pd.DataFrame
    public_jhs: pd.DataFrame
    result: object = field(repr=False, default=None)

    def summary(self) -> str:
        """One line per headline: value [interval] (status quo)."""
        lines = [f"explore answer ({self.draws} draws, {self.seconds:.2f} s)"]
        for key, (label, unit) in HEADLINES.items():
            f = self.figures[key]
            iv = "" if f["lo"] is None else f" [{f['lo']:,.0f}, {f['hi']:,.0f}]"
            sq = "" if f["status_quo"] is None else f"  (status quo {f['status_quo']:,.0f})"
            lines.append(f"  {label}: {f['value']:,.0f}{iv} {unit}{sq}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ExploreSession:
    """Everything the page reuses between lever changes.

    Attributes
    ----------
    bundle, pairs, model, distances : the data, pair table, fitted GravityModel and road km
    calibration : Calibration
        Today's calibrated status quo, shared by every answer.
    schools : pandas.DataFrame
        One row per ESC school (index school_id): name, municipality, province, tier,
        amount (pesos), billed and contracted slots (learners).
    amounts : dict
        Lever group → lowest ESC amount today in it, pesos.
    draws, seed : int
        Monte Carlo draws of the interval and the seed.
    boundaries : GeoDataFrame or None
        Approximate municipal outlines for the map.
    source : str
        The manifest read.
    timings : dict
        Set-up step → seconds.
    """

    bundle: object
    pairs: pd.DataFrame
    model: object
    distances: pd.DataFrame
    calibration: object
    schools: pd.DataFrame
    amounts: dict
    draws: int
    seed: int
    boundaries: object = None
    source: str = ""
    timings: dict = field(default_factory=dict)

    def levers(self, raw: dict) -> Levers:
        """Check raw page values (see :func:`~studentflow.explore.levers.parse_levers`)."""
        slots = {sid: (int(b), int(c)) for sid, b, c in
                 zip(self.schools.index, self.schools["billed"], self.schools["contracted"])}
        return parse_levers(raw, amounts=self.amounts, slots=slots)

    def answer(self, levers: Levers, *, draws: int | None = None) -> Answer:
        """Run the status quo and ``levers``' scenario; ``draws=0`` is the point estimate.

        Same figures as ``run_scenarios(bundle, model, [status quo, scenario], pairs=pairs,
        draws=draws, seed=seed)`` (the calibration is computed once and reused).
        """
        draws = self.draws if draws is None else int(draws)
        t0 = time.perf_counter()
        scenario = levers_scenario(levers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_scenarios(self.bundle, self.model, [status_quo(levers), scenario], pairs=self.pairs,
                                distances=self.distances, draws=draws, seed=self.seed, progress=False,
                                calibrate=self.calibration, keep_draws=False)
        t = res.table.set_index("scenario")
        figures = {}
        for key in HEADLINES:
            row, base = t.loc[scenario.name], t.loc[res.baseline]
            figures[key] = {
                "value": _num(row.get(f"{key}_mean")),
                "lo": _num(row.get(f"{key}_lo")) if draws else None,
                "hi": _num(row.get(f"{key}_hi")) if draws else None,
                "status_quo": None if key == "pesos_per_relieved" else _num(base.get(f"{key}_mean")),
            }
        pj = res.public_jhs[res.public_jhs["scenario"] == scenario.name].copy()
        if len(pj):
            names = self.bundle.schools.reindex(pj["school_id"])[["name", "municipality"]]
            pj.insert(2, "name", names["name"].to_numpy())
            pj.insert(3, "municipality", names["municipality"].to_numpy())
            pj = pj.sort_values(["relieved_vs_baseline_mean", "school_id"], ascending=[False, True])
        return Answer(levers=levers, draws=draws, seconds=time.perf_counter() - t0, figures=figures,
                      table=res.table, public_jhs=pj.reset_index(drop=True), result=res)


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else float("inf") if v > 0 else None


def start_session(manifest=None, *, draws: int = 20, seed: int = 0, max_km: float | None = None,
                  radius_km: float = 5.0, zeros: str = "truncate", formula: str | None = None,
                  log=None) -> ExploreSession:
    """Fit and calibrate once, ready for :meth:`ExploreSession.answer`.

    Parameters
    ----------
    manifest : str or Path, optional
        ``manifest.toml`` of the raw files; default the bundled sample.
    draws : int
        Monte Carlo draws behind each interval (default 20).
    seed : int
        Seed of the draws (same seed → the figures of ``studentflow run --seed``).
    max_km, radius_km : float
        Road distance limit and new-pair radius, km (as ``studentflow run``).
    zeros, formula : str
        Estimator and gravity formula (as ``studentflow run``).
    log : callable, optional
        Receives one line per set-up step.
    """
    from studentflow.geo.boundaries import municipal_boundaries
    from studentflow.ingest import load_bundle
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances, fit_models
    from studentflow.scenarios.calibrate import calibrate_status_quo

    say = log or (lambda _msg: None)
    timings = {}

    def step(name, fn):
        t0 = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - t0
        say(f"{name:<12} {timings[name]:5.1f} s")
        return out

    if manifest is None:
        from studentflow.paths import sample_manifest

        manifest = sample_manifest()
    bundle = step("ingest", lambda: load_bundle(manifest))
    distances = step("distances", lambda: compute_distances(bundle, max_km=max_km))
    pairs = step("pairs", lambda: build_pairs(bundle, distances, radius_km=radius_km))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = step("fit", lambda: next(iter(fit_models(pairs, zeros, formula=formula).values())))
        cal = step("calibrate", lambda: calibrate_status_quo(model, pairs, status_quo(), bundle=bundle,
                                                             distances=distances))
    schools = _esc_schools(bundle, pairs)
    amounts = {g: float(schools["amount"].min() if g == "all" else
                        schools.loc[schools["tier"] == g, "amount"].min() if (schools["tier"] == g).any() else 0.0)
               for g in GROUPS}
    codes = bundle.schools["psgc_code"].dropna().astype(str).unique()
    try:
        outlines = step("outlines", lambda: municipal_boundaries(codes))
    except Exception:  # outlines are decoration: a map without them still answers
        outlines = None
    return ExploreSession(bundle=bundle, pairs=pairs, model=model, distances=distances, calibration=cal,
                          schools=schools, amounts=amounts, draws=int(draws), seed=int(seed),
                          boundaries=outlines, source=str(manifest), timings=timings)


def _esc_schools(bundle, pairs) -> pd.DataFrame:
    """ESC schools the scenarios can reach (destinations of the pair table)."""
    s = bundle.schools
    esc = s[s["esc"].fillna(False).astype(bool) & s.index.isin(pairs["destination_id"].astype(str).unique())]
    sub = bundle.subsidy.reindex(esc.index)
    out = pd.DataFrame({
        "name": esc["name"].fillna("").astype(str), "municipality": esc["municipality"].fillna("").astype(str),
        "province": esc["province"].fillna("").astype(str), "tier": sub["tier"].fillna("other").astype(str),
        "amount": pd.to_numeric(sub["amount"], errors="coerce").fillna(0.0),
        "billed": pd.to_numeric(esc["esc_slots_billed"], errors="coerce").fillna(0).astype(int),
        "contracted": pd.to_numeric(esc["esc_slots"], errors="coerce").fillna(0).astype(int),
    }, index=esc.index)
    return out.sort_values("name", kind="stable")
