"""``studentflow optimize``: ingest → distances → pairs → fit → optimize → plan files.

Sits on top with :mod:`studentflow.pipeline` (whose stage functions it reuses); the
optimizer itself is :func:`studentflow.optimize.optimize`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Callable

__all__ = ["run_optimize"]


def run_optimize(manifest=None, *, budget: float, levers=None, out_dir="studentflow-output", draws: int = 20,
                 seed: int = 0, zeros: str = "truncate", radius_km: float = 5.0, max_km: float | None = None,
                 fit_method: str = "fast", formula: str | None = None, log: Callable[[str], None] | None = None,
                 write: bool = True, budget_quantile=0.95, overwrite: bool = False, argv=None,
                 fit_years: str = "all", for_year: str | None = None, client=None):
    """Fit the model on the data of ``manifest`` and choose the plan for ``budget`` pesos.

    Parameters
    ----------
    manifest : path, optional
        ``manifest.toml`` (default: the bundled sample).
    budget : float
        Pesos per school year.
    levers : path or Levers, optional
        The levers TOML (:mod:`studentflow.optimize.levers`); read first, so a bad file
        fails before any work.
    out_dir : path
        Where ``plan_by_school.csv``, ``plan.csv``, ``plan.toml``, ``frontier.csv``,
        ``fig_frontier.png``, ``optimize.html`` and ``run.json`` go. A non-empty folder
        without studentflow's ``run.json`` is refused unless ``overwrite``
        (:func:`studentflow.report.provenance.check_out_dir`).
    budget_quantile : float or "mean"
        The budget rule (:mod:`studentflow.optimize.budget_rule`; default 0.95).
    argv : list of str, optional
        The command line as typed (recorded in ``run.json``).
    draws, seed, zeros, radius_km, max_km, fit_method, formula, fit_years
        As for :func:`studentflow.pipeline.run_pipeline` (``fit_years="all"``: on a multi-year
        manifest the model is the pooled fit with year effects; the plan is for the latest year
        either way; default "all").
    log : callable, optional
        Receives one line per stage and, as "note:" lines, the warnings a stage raised
        (e.g. a term dropped from the fit).
    for_year : {None, "next"}
        "next": plan the school year after the latest: origin pools forecast from its Grade 6
        (:mod:`studentflow.next_year`; the plan's intervals carry the coefficients' uncertainty
        only), calibrated on the latest year; ``plan.csv`` and ``frontier.csv`` get a
        ``school_year`` column and ``optimize.html`` names the year.
    client : dask.distributed.Client, optional
        Read the learner files, compute the distances and run the optimizer's full
        re-solves on this Dask cluster (the plan is the same as without).

    Returns
    -------
    (OptimizeResult, dict, dict)
        The result, output name → path, stage → seconds.
    """
    from studentflow.optimize import Levers, load_levers
    from studentflow.optimize.budget_rule import parse_quantile

    say = log or (lambda line: None)
    lev = levers if isinstance(levers, Levers) else load_levers(levers)
    quantile = parse_quantile(budget_quantile)
    timings: dict[str, float] = {}
    record = None
    if write:  # run.json first, as `studentflow run` does: marks the folder and records the attempt
        from studentflow.report.provenance import open_run, optimize_command
        from studentflow.scenarios.spec import study_scenarios

        arguments = dict(manifest=manifest, budget=float(budget), levers=levers if not isinstance(levers, Levers)
                         else None, out_dir=out_dir, draws=draws, seed=seed, zeros=zeros, radius_km=radius_km,
                         max_km=max_km, fit_method=fit_method, formula=formula, budget_quantile=quantile,
                         fit_years=fit_years, for_year=for_year)
        record = open_run(out_dir, arguments, study_scenarios()[:1], overwrite=overwrite, argv=argv,
                          function="studentflow.optimize_run.run_optimize", command=optimize_command)
    try:
        return _stages(manifest, budget, lev, quantile, out_dir, draws, seed, zeros, radius_km, max_km, fit_method,
                       formula, say, write, timings, record, fit_years, for_year, client)
    except BaseException as exc:
        if record is not None:
            from studentflow.report.provenance import close_run

            close_run(out_dir, record, timings=timings, error=exc)
        raise


def _stages(manifest, budget, lev, quantile, out_dir, draws, seed, zeros, radius_km, max_km, fit_method, formula,
            say, write, timings, record, fit_years="all", for_year=None, client=None):
    from studentflow.gravity.panel import fit_years_panel, pooled_fit
    from studentflow.optimize import optimize
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances, fit_models

    def stage(name, fn):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn()
        timings[name] = time.perf_counter() - t0
        say(f"{name} done in {timings[name]:.1f} s")
        for message in dict.fromkeys(str(w.message) for w in caught):
            say(f"note: {message}")
        return out

    panel, bundle = stage("ingest", lambda: fit_years_panel(manifest, fit_years, client=client))
    distances = stage("distances", lambda: compute_distances(panel or bundle, max_km=max_km, client=client))
    pairs = stage("pairs", lambda: build_pairs(bundle, distances, radius_km=radius_km))
    model = stage("fit", lambda: next(iter(fit_models(pairs, zeros, method=fit_method, formula=formula).values()))
                  if panel is None else pooled_fit(panel, distances, zeros, radius_km=radius_km, method=fit_method,
                                                   formula=formula))
    plan = None
    if for_year is not None:  # next year's pools, calibrated on the latest year
        from studentflow.next_year import check_for_year, plan_next_year, year_bundles

        check_for_year(for_year)
        years = [panel.bundles[y] for y in panel.years] if panel is not None else year_bundles(manifest, bundle)
        plan = stage("pools", lambda: plan_next_year(years, model, pairs, draws=draws, seed=seed))
        say(f"forecast for school year {plan.school_year}: {plan.forecast.total:,.0f} learners in the pools")
    result = stage("optimize", lambda: optimize(
        bundle, model, budget=budget, pairs=plan.pairs if plan else pairs, distances=distances, levers=lev,
        draws=draws, seed=seed, budget_quantile=quantile, calibrate=plan.calibration if plan else True,
        client=client, pool_draws=plan.pool_draws if plan and draws else None))
    if plan is not None:  # the outputs say which school year they plan
        result = dataclasses.replace(result, plan_table=result.plan_table.assign(school_year=plan.school_year),
                                     frontier=result.frontier.assign(school_year=plan.school_year))
        if record is not None:
            record["forecast_school_year"] = plan.school_year
    written = {}
    if write:
        written = stage("report", lambda: _write(result, bundle, Path(out_dir), plan))
        from studentflow.report.provenance import close_run

        written["run.json"] = close_run(out_dir, record, bundle=bundle, timings=timings, outputs=written)
    return result, written, timings


def _write(result, bundle, out: Path, plan=None) -> dict:
    """Every output file of ``optimize`` but run.json (``plan``: a next-year plan, named in them)."""
    from studentflow.optimize.rerun import plan_toml, raised_schools
    from studentflow.optimize.tables import plan_by_school, rounded_plan
    from studentflow.report.maps import boundaries_of
    from studentflow.report.names import school_labels
    from studentflow.report.optimize_page import write_optimize

    from studentflow.report.plan_map import plan_map

    labels = school_labels(bundle)
    by_school = plan_by_school(result.plan, labels, result.problem)
    raised = raised_schools(result.problem, result.plan)
    map_html = plan_map(by_school, bundle, raised=raised, boundaries=boundaries_of(bundle))
    plan_csv = rounded_plan(result.plan_table, labels)
    if plan is not None:
        plan_csv = plan_csv.assign(school_year=plan.school_year)
    written = write_optimize(result, out, by_school=by_school, plan_csv=plan_csv, plan_toml=plan_toml(result),
                             map_html=map_html)
    if plan is not None:  # the page's title names the year, and a section says where the pools come from
        page = Path(written["optimize.html"])
        text = page.read_text(encoding="utf-8").replace("</h1>", "</h1>" + plan.section_html(), 1)
        page.write_text(text.replace("budget relieves most learners",
                                     f"budget relieves most learners in school year {plan.school_year}"),
                        encoding="utf-8")
    return written
