"""``studentflow optimize``: ingest → distances → pairs → fit → optimize → plan files.

Sits on top with :mod:`studentflow.pipeline` (whose stage functions it reuses); the
optimizer itself is :func:`studentflow.optimize.optimize`.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable

__all__ = ["run_optimize"]


def run_optimize(manifest=None, *, budget: float, levers=None, out_dir="studentflow-output", draws: int = 20,
                 seed: int = 0, zeros: str = "truncate", radius_km: float = 5.0, max_km: float | None = None,
                 fit_method: str = "fast", log: Callable[[str], None] | None = None, write: bool = True,
                 client=None):
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
    client : dask.distributed.Client, optional
        Read the learner files, compute the distances and run the optimizer's full
        re-solves on this Dask cluster (the plan is the same as without).

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

    bundle = stage("ingest", lambda: load_bundle(manifest, client=client))
    distances = stage("distances", lambda: compute_distances(bundle, max_km=max_km, client=client))
    pairs = stage("pairs", lambda: build_pairs(bundle, distances, radius_km=radius_km))
    model = stage("fit", lambda: next(iter(fit_models(pairs, zeros, method=fit_method).values())))
    result = stage("optimize", lambda: optimize(bundle, model, budget=budget, pairs=pairs, distances=distances,
                                                levers=lev, draws=draws, seed=seed, client=client))
    written = {}
    if write:
        from studentflow.report.optimize_page import write_optimize

        written = stage("report", lambda: write_optimize(result, Path(out_dir)))
    return result, written, timings
