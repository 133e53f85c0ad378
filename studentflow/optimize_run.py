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
                 fit_method: str = "fast", log: Callable[[str], None] | None = None, write: bool = True,
                 for_year: str | None = None):
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
        Where ``plan.csv``, ``frontier.csv``, ``fig_frontier.png`` and ``optimize.html``
        go.
    draws, seed, zeros, radius_km, max_km, fit_method
        As for :func:`studentflow.pipeline.run_pipeline`.
    log : callable, optional
        Receives one line per stage.
    for_year : {None, "next"}
        "next": plan the school year after the latest: origin pools forecast from its Grade 6
        (:mod:`studentflow.next_year`; the plan's intervals carry the coefficients' uncertainty
        only), calibrated on the latest year; ``plan.csv`` and ``frontier.csv`` get a
        ``school_year`` column and ``optimize.html`` names the year.

    Returns
    -------
    (OptimizeResult, dict, dict)
        The result, output name → path, stage → seconds.
    """
    from studentflow.ingest import load_bundle
    from studentflow.optimize import Levers, load_levers, optimize
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances, fit_models

    say = log or (lambda line: None)
    lev = levers if isinstance(levers, Levers) else load_levers(levers)
    timings: dict[str, float] = {}

    def stage(name, fn):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fit's notes are in `studentflow run`'s model.txt
            out = fn()
        timings[name] = time.perf_counter() - t0
        say(f"{name} done in {timings[name]:.1f} s")
        return out

    bundle = stage("ingest", lambda: load_bundle(manifest))
    distances = stage("distances", lambda: compute_distances(bundle, max_km=max_km))
    pairs = stage("pairs", lambda: build_pairs(bundle, distances, radius_km=radius_km))
    model = stage("fit", lambda: next(iter(fit_models(pairs, zeros, method=fit_method).values())))
    plan = None
    if for_year is not None:
        from studentflow.next_year import check_for_year, plan_next_year, year_bundles

        check_for_year(for_year)
        plan = stage("pools", lambda: plan_next_year(year_bundles(manifest, bundle), model, pairs, draws=draws,
                                                     seed=seed))
        say(f"forecast for school year {plan.school_year}: {plan.forecast.total:,.0f} learners in the pools")
    result = stage("optimize", lambda: optimize(
        bundle, model, budget=budget, pairs=plan.pairs if plan else pairs, distances=distances, levers=lev,
        draws=draws, seed=seed, calibrate=plan.calibration if plan else True))
    if plan is not None:  # the outputs say which school year they plan
        result = dataclasses.replace(result, plan_table=result.plan_table.assign(school_year=plan.school_year),
                                     frontier=result.frontier.assign(school_year=plan.school_year))
    written = {}
    if write:
        from studentflow.report.optimize_page import write_optimize

        written = stage("report", lambda: write_optimize(result, Path(out_dir)))
        if plan is not None:
            page = Path(written["optimize.html"])
            text = page.read_text(encoding="utf-8").replace("<body>", "<body>" + plan.section_html(), 1)
            page.write_text(text.replace("budget relieves most learners", "budget relieves most learners in "
                                         f"school year {plan.school_year}"), encoding="utf-8")
    return result, written, timings
