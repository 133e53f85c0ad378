"""The whole pipeline, stage by stage: what ``studentflow run`` and the notebook call.

ingest → distances → pairs → fit → scenarios → report. Each stage is a plain function
of the previous stages' outputs; :func:`run_pipeline` times them, reports one line per
stage and writes the ingest ledger as soon as ingestion finishes (so a later failure
still leaves the record of what was dropped or changed).

The model used for scenarios
----------------------------
The study fit a plain NB2 on positive flows only and then predicted every candidate pair;
conditioning on a positive count biases that fit (the intercept up, slopes toward zero). By
default the scenarios use a consistent estimator, the zero-truncated NB2 on the positive pairs
(``zeros="truncate"``); ``zeros="include"`` fits NB2 on every pair of the table, zeros included,
which is consistent only when the table holds every pair learners could take (the study's table
adds zero pairs only near congested feeders, so far observed pairs are over-represented and the
distance effect is biased upward); ``zeros="drop"`` replicates the study. The study's fit is
always estimated as well and shown beside the one used in the report.
"""

from __future__ import annotations

import gc
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

from studentflow import forked
from studentflow.errors import DataError
from studentflow.report.provenance import close_run, open_run
from studentflow.report.truth import synthetic_truth, truth_placements as _truth_placements

__all__ = ["PipelineResult", "run_pipeline", "compute_distances", "fit_models", "synthetic_truth", "STAGES",
           "ORIGIN_REGION_FORMULA"]

#: The study's formula with the origin region term only (the default formula works too at
#: national scale: the destination dummies collinear with the origin ones are dropped).
ORIGIN_REGION_FORMULA = (
    "esc_beneficiaries ~ np.log1p(distance_km) + np.log1p(net_cost_k) + esc_rating + "
    "np.log1p(origin_lgu_revenue) + C(origin_region, Treatment('NCR'))"
)
STAGES = ("ingest", "distances", "pairs", "fit", "scenarios", "report")
#: Independent work goes to the other core (:mod:`studentflow.forked`) up to these sizes: the
#: earlier years at ingest (bytes of the manifest's files: the sample 16 MB over three years, one
#: national year 43 MB); their pair tables, the other estimators' point estimates and the figures
#: (schools: the sample 3,000, national 59,000, where a child's pages would add to the peak).
FORK_MAX_BYTES, FORK_MAX_SCHOOLS = 32 << 20, 20_000
MODEL_LABELS = {"truncate": "zero-truncated NB2, positive pairs", "include": "NB2, all pairs within the radius",
                "drop": "NB2, positive pairs only (study)"}


@dataclass(frozen=True)
class PipelineResult:
    """Everything one run produced.

    Attributes
    ----------
    bundle, distances, pairs : the canonical data, road distances (km; None when released,
        ``keep_distances``) and PairTable
    model : GravityModel used for the scenarios
    models : dict, Label → fitted model (the one used and the study's positive-only NB2).
    result : ScenarioResult
    comparisons : dict, Label → ScenarioResult under each other model (point estimate, ``draws=0``).
    outputs, timings : dict, Output name → path written; stage → seconds.
    """

    bundle: object
    distances: pd.DataFrame | None
    pairs: pd.DataFrame
    model: object
    models: dict
    result: object
    comparisons: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def summary(self) -> str:
        """Stage timings, the model used and the scenario summary."""
        lines = ["studentflow run", *[f"  {k:<10} {v:7.1f} s" for k, v in self.timings.items()],
                 f"  {'total':<10} {sum(self.timings.values()):7.1f} s",
                 f"  model for scenarios: {next(iter(self.models))}"]
        return "\n".join(lines) + "\n" + self.result.summary()


def compute_distances(bundle, *, max_km: float | None = None, client=None) -> pd.DataFrame:
    """Road distances (km) from every origin (Grade 6 school in the flows) to every ESC school.

    Uses the bundle's precomputed matrix (``extras["road_distances"]``), else its road
    network (``extras["road_network"]``), else great-circle km × circuity 1.3.

    Parameters
    ----------
    bundle : studentflow.schema.Bundle or Panel
        A Panel: every year's origins and ESC schools, once (:mod:`studentflow.gravity.panel`).
    max_km : float, optional
        Keep only pairs within this road distance, km (the network search stops there, origin block
        by origin block). None: every origin × every ESC school, fine for a region, not for the
        country. Observed pairs beyond it get great-circle × circuity km in the pair table (flagged).
    client : dask.distributed.Client or str, optional
        Compute the origin blocks on this Dask cluster (identical table).
    """
    from studentflow.gravity.panel import panel_distances
    return panel_distances(bundle, max_km=max_km, client=client)


def fit_models(pairs: pd.DataFrame, zeros: str = "truncate", *, method: str = "fast",
               formula: str | None = None, estimation_pairs: pd.DataFrame | None = None) -> dict:
    """Fit the model used for scenarios (``zeros``) and the study's NB2 on positives.

    ``formula`` defaults to :data:`studentflow.gravity.fit.STUDY_FORMULA`. Where pairs never
    cross a region border (islands), the destination dummies equal the origin ones and are
    dropped, each named in a CollinearityWarning and ``model.dropped``. A formula the pair
    table cannot carry (unknown column, nothing left to fit) is a DataError.

    ``zeros="include"`` needs zeros that do not depend on the outcome: pass ``estimation_pairs``,
    the ``within_radius`` rows of ``build_pairs(..., candidates="radius")``. The study's candidate
    set (observed pairs at any distance, zeros only near congested feeders) biases that fit; on
    the sample the distance coefficient comes out −0.79 against a truth of −0.45.

    Returns
    -------
    dict
        Label → GravityModel, the model used for scenarios first.
    """
    from studentflow.gravity.fit import STUDY_FORMULA, fit_gravity

    if zeros not in MODEL_LABELS:
        raise ValueError(f"zeros must be one of {sorted(MODEL_LABELS)}, got {zeros!r}")
    formula = STUDY_FORMULA if formula is None else formula
    used = estimation_pairs if (zeros == "include" and estimation_pairs is not None) else pairs
    try:
        models = {f"{MODEL_LABELS[zeros]} (used)": fit_gravity(used, formula, zeros=zeros, method=method)}
        if zeros != "drop":
            models[MODEL_LABELS["drop"]] = fit_gravity(pairs, formula, zeros="drop", method=method)
    except ValueError as exc:  # bad formula or data: one line at the CLI, not a traceback
        raise DataError(str(exc)) from exc
    return models


def run_pipeline(
    manifest=None,
    *,
    scenarios=None,
    out_dir="studentflow-output",
    draws: int = 100, seed: int = 0,
    zeros: Literal["truncate", "include", "drop"] = "truncate",
    radius_km: float = 5.0, max_km: float | None = None,
    fit_method: Literal["statsmodels", "fast"] = "fast", formula: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    write: bool = True, client=None, keep_draws=True,
    calibrate: bool = True, overwrite: bool = False, argv=None,
    fit_years: Literal["all", "latest"] = "all", for_year: str | None = None,
    keep_distances: bool = True,
) -> PipelineResult:
    """Run ingest → distances → pairs → fit → scenarios → report.

    Parameters
    ----------
    manifest : str or Path, optional
        ``manifest.toml`` of the raw data; default: the bundled synthetic sample.
    scenarios : path, list of Scenario, optional
        Default: the study's scenarios (:func:`studentflow.scenarios.spec.study_scenarios`,
        the same as ``scenarios/study.toml``).
    out_dir : str or Path
        Output folder (created), default ``./studentflow-output``.
    draws, seed : int
        Monte Carlo draws of the gravity coefficients and the seed (same seed → same outputs).
    zeros : {"truncate", "include", "drop"}
        Estimator for the scenarios (see the module text); "drop" is the study's.
    radius_km : float
        New candidate pairs: ESC schools within this road distance of origins feeding
        congested public JHS, km (study: 5).
    max_km : float, optional
        Road distances only up to this many km (:func:`compute_distances`); needed at
        national scale. Must be at least ``radius_km`` (and any scenario radius).
    fit_method : {"fast", "statsmodels"}
        Gravity optimiser (same estimates; "fast" is much quicker).
    formula : str, optional
        Gravity formula (default the study's; collinear terms dropped, :func:`fit_models`).
    progress : bool, optional
        Progress bar over Monte Carlo draws (default: when stderr is a terminal).
    log : callable, optional
        Receives one line per stage (e.g. ``print``) and, as "note:" lines, the warnings
        a stage raised (e.g. a fit that did not converge).
    write : bool
        Write the outputs (False: compute only).
    client : dask.distributed.Client or str, optional
        Run the parts that split naturally on this Dask cluster (a Client, or a scheduler
        address, connected once and closed at the end): reading the learner-level files,
        the origin blocks of the distance computation and the Monte Carlo scenario
        sweep. Results are identical to the single-process run with the same seed.
        None (default): Dask is not imported.
    keep_draws : bool or path
        Per-draw arrays of the scenario result (see
        :func:`studentflow.scenarios.run.run_scenarios`); the report does not need them, so
        ``studentflow run`` passes False and memory stays flat however many scenarios.
    calibrate : bool
        Calibrate the status quo to the observed ESC placements per school and run every
        scenario on that calibrated state (default; :mod:`studentflow.scenarios.calibrate`);
        False runs the model as fitted. The other estimators' comparisons are calibrated
        alike.
    overwrite, argv : bool, list of str
        Write into a non-empty ``out_dir`` lacking studentflow's ``run.json``; the command line as typed.
    fit_years : {"all", "latest"}
        Multi-year manifest: the pooled NB2 with year effects (default,
        :mod:`studentflow.gravity.panel`) or the latest year alone.
    for_year : {None, "next"}
        "next": plan the year after the latest (forecast pools, :mod:`studentflow.next_year`).
    keep_distances : bool
        Keep the road distance table in the result (default). False releases it after the
        fit when no scenario reaches beyond the pair table's radius (nothing later reads it;
        :func:`studentflow.scenarios.levers.needs_distances`), and the result's
        ``distances`` is None: 118 MB less held through the scenarios and the report at
        national scale. ``studentflow run`` passes False.

    Returns
    -------
    PipelineResult
    """
    from studentflow.scenarios.spec import load_scenarios, study_scenarios

    if max_km is not None and not max_km >= radius_km:
        raise ValueError(f"max_km ({max_km} km) must be >= radius_km ({radius_km} km)")
    say = log or (lambda line: None)
    out = Path(out_dir)
    scenarios_arg = scenarios
    if isinstance(scenarios, (str, Path)):
        scenarios = load_scenarios(scenarios)  # fail early on a bad scenario file
    scenarios = list(scenarios) if scenarios is not None else study_scenarios()
    timings: dict[str, float] = {}
    outputs: dict[str, Path] = {}

    freeze = gc.get_freeze_count() == 0  # what stages 1-4 build lives to the end: frozen after the fit (below)

    def stage(k: int, name: str, fn, detail=lambda r: ""):
        say(f"[{k}/{len(STAGES)}] {name} ...")
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fn()
        if freeze and name == "fit":  # 250,000 objects nationally: the scenario runs' gc passes skip them
            gc.freeze()
        timings[name] = time.perf_counter() - t0
        extra = detail(res)
        say(f"[{k}/{len(STAGES)}] {name} done in {timings[name]:.1f} s" + (f": {extra}" if extra else ""))
        for message in dict.fromkeys(str(w.message) for w in caught):
            say(f"      note: {message}")
        return res

    record = None
    if write:  # run.json first: marks the folder as studentflow's and records what is attempted
        record = open_run(out, dict(manifest=manifest, scenarios=scenarios_arg, out_dir=out, draws=draws, seed=seed,
                                    zeros=zeros, radius_km=radius_km, max_km=max_km, fit_method=fit_method,
                                    formula=formula, calibrate=calibrate, client=client, fit_years=fit_years,
                                    for_year=for_year),
                          scenarios, overwrite=overwrite, argv=argv)
    owned = False
    if client is not None:
        from studentflow.dask_client import resolve

        client, owned = resolve(client)
    try:
        res = _run_stages(manifest, scenarios, out, draws, seed, zeros, radius_km, max_km, fit_method,
                          formula, progress, write, client, keep_draws, stage, timings, outputs,
                          calibrate, record, fit_years, for_year, keep_distances)
    except BaseException as exc:
        if record is not None:  # run.json says the run failed, and why
            close_run(out, record, timings=timings, error=exc)
        raise
    finally:
        if freeze:
            gc.unfreeze()
        if owned:
            from studentflow.dask_client import close

            close(client)
    if record is not None:
        outputs["run.json"] = close_run(out, record, bundle=res.bundle, timings=timings, outputs=outputs)
    return res


def _run_stages(manifest, scenarios, out, draws, seed, zeros, radius_km, max_km, fit_method, formula,
                progress, write, client, keep_draws, stage, timings, outputs, calibrate=True,
                record=None, fit_years="all", for_year=None, keep_distances=True) -> PipelineResult:
    """The six stages of :func:`run_pipeline`, in order (``stage`` times and logs each)."""
    from studentflow.gravity.panel import fit_years_panel, pooled_models
    from studentflow.ingest import load_bundle
    from studentflow.ingest.manifest import manifest_bytes
    from studentflow.malloc import trim
    from studentflow.pairs import build_pairs
    from studentflow.paths import sample_manifest
    from studentflow.report.write import _write_csv, write_report
    from studentflow.scenarios.levers import needs_distances
    from studentflow.scenarios.run import run_scenarios

    truth = synthetic_truth(manifest)
    spare = client is None and forked.wanted()  # a core free now, before this run's own forks make it busy
    raw_small = spare and manifest_bytes(manifest or sample_manifest()) <= FORK_MAX_BYTES  # forked ingest
    panel, bundle = stage(1, "ingest", lambda: fit_years_panel(manifest, fit_years, client=client, load=load_bundle,
                                                               fork=raw_small, meanwhile=_import_later_stages),
                          lambda pb: f"{len(pb[1].schools):,} schools, {len(pb[1].flows):,} flows, {len(pb[1].ledger):,} "
                                     f"ledger rows" + (f"; {len(pb[0].years)} school years to fit on" if pb[0] else ""))
    bundle = bundle if panel is None else replace(bundle, ledger=panel.ledger)  # every year's: files, run.json
    if write:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.html").unlink(missing_ok=True)  # an older run's report no longer applies
        outputs["ledger.csv"] = _write_csv(out / "ledger.csv", bundle.ledger)
        if len(bundle.sources):
            outputs["sources.csv"] = _write_csv(out / "sources.csv", bundle.sources)
    small = spare and len(bundle.schools) <= FORK_MAX_SCHOOLS  # independent work forked
    distances = stage(2, "distances", lambda: compute_distances(panel or bundle, max_km=max_km, client=client),
                      lambda d: f"{len(d):,} origin-school distances ({', '.join(sorted(d['method'].unique()))})")
    earlier = [y for y in (panel.years if panel is not None else ()) if y != bundle.school_year]
    with forked.start(lambda: {y: build_pairs(panel[y], distances, radius_km=radius_km, candidates="radius")
                               for y in earlier}, fork=small and bool(earlier)) as side:  # pooled fit's radius sets
        pairs = stage(3, "pairs", lambda: build_pairs(bundle, distances, radius_km=radius_km),
                      lambda p: f"{int((p['pair_type'] == 'observed').sum()):,} observed + "
                                f"{int((p['pair_type'] == 'new').sum()):,} new pairs")

        def fit_stage():
            radius = (build_pairs(bundle, distances, radius_km=radius_km, candidates="radius")  # outcome-independent
                      if zeros == "include" or panel is not None else None)
            estimation = radius.loc[radius["within_radius"]] if zeros == "include" else None
            single = fit_models(pairs, zeros, method=fit_method, formula=formula, estimation_pairs=estimation)
            return pooled_models(panel, distances, single, MODEL_LABELS[zeros], zeros, radius_km=radius_km,
                                 method=fit_method, formula=formula, built={**side.result(), bundle.school_year: radius})

        models = stage(4, "fit", fit_stage, lambda m: "; ".join(f"{k}: {_slopes(v)}" for k, v in m.items()))
    model = next(iter(models.values()))

    from studentflow.next_year import plan_inputs  # next year's pools, calibrated on the latest year
    plan, p, cal, pool_draws = plan_inputs(for_year, panel or manifest, bundle, model, pairs, scenarios, draws, seed, calibrate)
    if not keep_distances and not needs_distances(scenarios, p):  # nothing later reads them
        distances = None
        trim()  # their pages back to the OS before the scenarios' peak (studentflow.malloc)

    points = {label: (m, cal(m)) for label, m in list(models.items())[1:]}  # other estimators' point estimates
    if calibrate:  # what calibration changes: every estimator as fitted too
        points.update({f"{label.replace(' (used)', '')} as fitted": (m, False) for label, m in models.items()})

    def side_work():  # on small runs the point estimates too; a synthetic region's truth
        return ({label: run_scenarios(bundle, m, scenarios, pairs=p, distances=distances, draws=0, seed=seed, progress=False,
                                      calibrate=c, keep_draws=False) for label, (m, c) in points.items()} if small else {},
                None if plan or not write else _truth_placements(manifest, scenarios, draws, seed))

    def scenario_stage():  # small runs: the side work on the other core while the main model's draws run;
        if small:  # else the point estimates on the main run's work units, between its scenarios' draws
            _import_later_stages()  # once, for both processes (numba's kernels: not again in the child)
        with forked.start(side_work, fork=small) as side:
            main = run_scenarios(bundle, model, scenarios, pairs=p, distances=distances, draws=draws,
                                 seed=seed, progress=progress, client=client, keep_draws=keep_draws,
                                 calibrate=cal(model), school_flows=write, pool_draws=pool_draws,
                                 points=None if small else points)
            others, truth = side.result()
            return main, others if small else main.points, truth

    result, comparisons, truth_placed = stage(5, "scenarios", scenario_stage,
                                lambda r: f"{len(r[0].scenarios)} scenarios x {r[0].draws} draws"
                                          + (f" (+ point estimates under {len(r[1])} other estimator(s))"
                                             if r[1] else ""))
    result, extra = plan.label(result, record) if plan is not None else (result, {})
    if write:
        written = stage(6, "report", lambda: write_report(result, out, bundle=bundle, model=model, pairs=pairs,
                                                          models=models, comparisons=comparisons,
                                                          truth=truth, timings=timings, provenance=record,
                                                          ledger=False,  # written after ingest
                                                          truth_placements=truth_placed, fork=small, **extra),
                        lambda w: f"{len(w)} files in {out}")
        outputs.update(written)
    return PipelineResult(bundle, distances, pairs, model, models, result, comparisons, outputs, timings)


def _import_later_stages() -> None:
    """Import what the stages after ingest use (1.3 s), while a forked ingest's child reads."""
    import plotly.io, pyogrio, scipy.stats  # noqa: E401,F401 -- the map, schools.gpkg, the fit's p-values
    import studentflow.gravity.fit, studentflow.report.interactive, studentflow.scenarios.calibrate  # noqa
    import studentflow.report.figures  # noqa: F401 -- matplotlib, then in the figures' child already
    from studentflow.allocation.plan import kernels
    kernels()  # numba


def _slopes(model) -> str:
    p = model.params
    pick = {"distance": "distance_km", "net cost": "net_cost_k"}
    return ", ".join(f"{label} {p[[t for t in p.index if col in t][0]]:+.3f}"
                     for label, col in pick.items() if any(col in t for t in p.index))


def check_manifest(manifest) -> Path | None:
    """Resolve ``manifest`` (a file or a folder holding ``manifest.toml``); DataError if absent
    (the path check only; ``studentflow.ingest.check_manifest`` is the dry run of the sources)."""
    if manifest is None:
        return None
    from studentflow.ingest.manifest import manifest_path

    return manifest_path(manifest)
