"""Subsidy and slot scenarios with Monte Carlo over the gravity coefficients.

For each scenario and draw d = 1..D:

1. a coefficient vector β_d is drawn from the fitted model (``model.draw_params``);
2. expected flows μ_ij = exp(x_ij β_d) are computed on the scenario's pair table
   (the design matrix X is built once per scenario; each draw is one ``X @ β``);
3. the capacity-constrained allocator (:func:`studentflow.allocation.solve.allocate`) scales
   μ to the origin pools and school slots, on a sparse origin × ESC-school matrix whose
   structure is built once per scenario (only its data vector changes per draw);
4. the allocation is rounded to whole learners (``Allocation.to_integer``) and the
   metrics of :data:`studentflow.scenarios.result.DRAW_METRICS` are recorded.

Every scenario uses the same coefficient draws and the same rounding seeds (common
random numbers), so differences between scenarios are not blurred by sampling noise.

Scenarios run one at a time (on Dask, at most ``in_flight`` at once; with draw threads
the next scenario draws while one scenario's draws are summarised): a scenario's work
unit is built just before it runs and dropped after, and only its summaries (and the
per-draw arrays ``keep_draws`` asks for) are kept, so a sweep's memory does not grow
with its number of scenarios beyond those summaries.

:func:`run_scenarios` reads as its steps: check the scenarios and options, build every
pair table of the run once (:class:`studentflow.scenarios.work.PairTables`; a scenario
is a change to one of them), index origins and schools, draw the coefficients, sweep
(scenario work units built one at a time, here or on Dask) and collect
(:mod:`studentflow.scenarios.collect`).

Learners relieved from public JHS: each origin's placements above its observed ESC
beneficiaries are taken out of its public-JHS destinations in proportion to its
observed flows (at most the learners it actually sent to public JHS).
"""

from __future__ import annotations

import dataclasses
import sys
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pandas as pd

from studentflow.malloc import large_thresholds, trim
from studentflow.scenarios.draws import simulate_draws
from studentflow.scenarios.drill import pair_positions
from studentflow.scenarios.levers import scenario_capacities, scenario_pairs
from studentflow.scenarios.collect import _Accumulator
from studentflow.scenarios.result import ScenarioResult, relief_matrix
from studentflow.scenarios.spec import Scenario, load_scenarios
from studentflow.scenarios.steps import (  # noqa: F401 - _threads: scripts/bench_national.py
    PAIR_COLUMNS, _calibration, _check_options, _coefficient_draws, _comparisons, _demand_draws, _pair_table,
    _point_runs, _pool_draws, _run_order, _scenario_list, _threads,
)
from studentflow.scenarios.work import PairTables, _global_index, _Kept, _prepare

__all__ = [
    "Scenario", "ScenarioResult", "load_scenarios", "run_scenarios", "scenario_capacities",
    "scenario_pairs",
]

#: Scenarios with fewer pairs run their draws on one thread (their draws are short and
#: mostly hold the GIL; the compiled kernels, which release it, start at
#: allocation.plan.MIN_PAIRS).
THREAD_MIN_PAIRS = 100_000


#: Threaded draws queued ahead of the reader, per thread: enough to keep the threads busy
#: while the caller summarises a scenario, few enough that finished draws waiting to be
#: read stay a few MB (a national draw's outcome is about 0.8 MB).
AHEAD_PER_THREAD = 8


def _local_sweep(make, order, betas, seeds, allocator, bar, threads: int = 1):
    """Yield ``(i, kept, outcomes)`` per scenario; ``outcomes`` is an iterator over the
    draws in draw order, to be read before the next scenario.

    With ``threads`` > 1 the draws of a scenario of at least :data:`THREAD_MIN_PAIRS`
    pairs run on that many threads (the compiled rounding kernels, numpy and scipy's
    sparse products release the GIL; smaller draws mostly hold it), at most
    :data:`AHEAD_PER_THREAD` per thread ahead of the reader (every draw when the unit
    keeps its pair placements: the drill-down's summaries take seconds), pipelined: once a
    scenario's last draw is read, its work unit is dropped and the next one built and
    its first draws queued, before the caller summarises the scenario (one unit alive
    at a time; the threads draw during the summaries). Each draw depends only on its
    coefficients and seed, and outcomes are read in draw order, so the result is the
    one-thread result."""
    pool = ThreadPoolExecutor(threads) if threads > 1 and len(betas) > 1 else None
    ahead = AHEAD_PER_THREAD * threads
    queued: list = []  # the next scenario's unit, its first draws queued on the threads

    def launch(i):
        work, kept = make(i)

        def one(d, work=work):
            return simulate_draws(work, betas[d], [d], [seeds[d]], allocator)

        # the drill-down's summaries are long: its draws may all run ahead meanwhile
        unit = SimpleNamespace(i=i, kept=kept, one=one, futures=None,
                               ahead=len(betas) if work.keep_pairs else ahead)
        if pool is not None and work.indices.size >= THREAD_MIN_PAIRS:
            unit.futures = [pool.submit(one, d) if d < unit.ahead else None for d in range(len(betas))]
        return unit  # else drawn on this thread as the caller reads

    def stream(unit, nxt):  # read as the draws finish, in draw order
        futures = unit.futures
        for d in range(len(betas)):
            if futures is None:
                got = unit.one(d)
            else:
                if d + unit.ahead < len(futures):
                    futures[d + unit.ahead] = pool.submit(unit.one, d + unit.ahead)
                got, futures[d] = futures[d].result(), None
            bar.update(1)
            yield from got
        if futures is not None and nxt is not None:  # every draw read: the work unit is
            del got  # gone with its last task; the next one builds and draws meanwhile
            unit.one = unit.futures = None
            queued.append(launch(nxt))

    try:
        for k, i in enumerate(order):
            unit = queued.pop() if queued else launch(i)
            yield unit.i, unit.kept, stream(unit, order[k + 1] if k + 1 < len(order) else None)
            unit = None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def run_scenarios(
    bundle,
    model,
    scenarios,
    *,
    pairs: pd.DataFrame | None = None,
    distances: pd.DataFrame | None = None,
    draws: int = 100,
    seed: int = 0,
    progress: bool | None = None,
    allocator=None,
    client=None,
    keep_draws=True,
    in_flight: int = 2,
    calibrate=True,
    school_flows: bool = False,
    threads: int | None = None,
    pool_draws: pd.DataFrame | None = None,
    points: dict | None = None,
    latent_demand: bool | None = None,
) -> ScenarioResult:
    """Run policy scenarios with Monte Carlo over the gravity coefficients.

    Scenarios run one after another: each scenario's work unit (design matrix, sparse
    structure) is built just before it runs and dropped after, and only its summaries
    (and the per-draw arrays ``keep_draws`` asks for) are kept, so a sweep of hundreds
    of scenarios needs the memory of one (plus its summaries).

    Parameters
    ----------
    bundle : studentflow.schema.Bundle or None
        Canonical data; needed for the public-JHS relief metrics, tier subsidies (else
        tiers are read off today's ESC amounts) and to build/rebuild pairs.
    model : GravityModel
        Anything with ``params`` (Series), ``predict(pairs, params=None)`` (expected
        learners per pair) and ``draw_params(n, seed)``.
    scenarios : list of Scenario, a Scenario, or a path to a TOML scenario file
    pairs : pandas.DataFrame, optional
        PairTable (docs/contracts.md §3); built with ``build_pairs(bundle, distances)``
        if omitted.
    distances : pandas.DataFrame, optional
        Road distances (km), used to build pairs or widen a scenario's radius.
    draws : int
        Monte Carlo draws of the coefficients; 0 uses the point estimate once.
    seed : int
        Same seed → identical results.
    progress : bool, optional
        tqdm bar over draws; default: only when stderr is a terminal.
    allocator : callable, optional
        Replacement for :func:`studentflow.allocation.solve.allocate` (same signature and
        result contract), e.g. for experiments with other allocators. Must be picklable
        (a module-level function) when ``client`` is given.
    client : dask.distributed.Client or str, optional
        Run the (scenario, draw) allocations on this Dask cluster (a Client, or a
        scheduler address such as ``"tcp://10.0.0.5:8786"``); see
        :mod:`studentflow.scenarios.sweep_dask`. Results are identical to the single-process run
        with the same seed. None (default): run here; Dask is not imported.
    keep_draws : bool or path
        Per-draw arrays of the result (``origin_placed``, ``school_placed``,
        ``origin_expected``; about 80 MB per scenario × 100 draws at national size):
        True keeps them in memory, a directory path writes them there as ``.npy`` files
        and keeps read-only memory maps, False keeps none (those dicts are empty; every
        table is the same). Use False or a directory for sweeps of many scenarios.
    in_flight : int
        With ``client``: at most this many scenarios' work units on the cluster at once
        (each is sent to every worker), >= 1.
    calibrate : bool, str or Calibration
        True (default): calibrate the baseline to the observed ESC placements per school
        (:func:`studentflow.scenarios.calibrate.calibrate_status_quo`, at the point
        estimate) and run every scenario on top of that calibrated state (its expected
        flows into school j multiplied by w_j); a rule name ("posterior", …) calibrates
        with that ``capacity_bound`` rule; a
        :class:`~studentflow.scenarios.calibrate.Calibration` uses that one; False runs
        the model as fitted. The result's ``calibration`` holds what was used.
    school_flows : bool
        Also summarise per-school drill-down tables (``result.esc_origins``: where each ESC
        school's learners come from; ``result.jhs_destinations``: where each public JHS's
        Grade 7 learners go), see :mod:`studentflow.scenarios.drill`. Holds one scenario's
        draws × pairs whole placements (int32) while it is summarised.
    threads : int, optional
        Without ``client``: run each scenario's draws on this many threads (identical
        results; default: the machine's cores, at most 2). 1 runs them one by one.
    pool_draws : pandas.DataFrame, optional
        Origin pools per draw (row d is draw d; columns origin school ids), learners, e.g.
        forecast pools with their uncertainty
        (:meth:`studentflow.scenarios.cohort.PoolForecast.draw`); an origin not among the
        columns keeps its ``origin_pool``. Intervals then carry the pools' uncertainty too.
    latent_demand : bool, optional
        Default: True when the calibration's rule is "posterior" (a censored fit on
        several school years). With a calibration, draw each full school's demand (given that it reached its
        capacity) in every draw (:func:`studentflow.scenarios.latent.latent_demand_draws`)
        instead of using its expected value: draws then place ``min(demand, capacity)``
        one by one, and intervals carry what is not known of the demand that full schools
        turned away.
    points : dict, optional
        Label → ``(model, calibrate)``: point estimates of other fitted models on the same
        scenarios, in ``result.points[label]``: each the result of ``run_scenarios(bundle,
        model, scenarios, draws=0, calibrate=calibrate, keep_draws=False)`` with this run's
        pairs, seed and allocator, but computed on this run's work units (pair tables, sparse
        structures, and the design matrix where the formulas are the same) instead of
        building them again.

    Returns
    -------
    ScenarioResult
    """
    scenarios = _scenario_list(scenarios)
    keep_draws = _check_options(draws, in_flight, keep_draws)
    threads = _threads(threads)
    large_thresholds()  # temporary arrays of a few MB: reuse heap pages (studentflow.malloc)
    pairs = _pair_table(pairs, bundle, distances)
    base, ref_of = _comparisons(scenarios)
    tables = PairTables.for_run(scenarios, pairs, bundle, distances)  # every pair table, once
    calibration = _calibration(calibrate, model, tables, base, bundle)
    origins, schools = _global_index(tables)
    params, betas, seeds = _coefficient_draws(model, draws, seed)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    origin_pos = pd.Series(np.arange(len(origins)), index=origins.index)
    pools_d = _pool_draws(pool_draws, origins, len(betas))
    school_pos = pd.Series(np.arange(len(schools)), index=schools.index)
    demand_d = _demand_draws(calibration, schools, len(betas), seed, latent_demand)
    others = _point_runs(points, tables, base, bundle, schools, seed)
    siblings: dict = {}  # scenario → [(label, work unit, kept)] of the point estimates, until summarised

    def make(i):
        prep = _prepare(scenarios[i], tables, bundle, model, origin_pos, school_pos, origins, schools,
                        calibration, keep_pairs=school_flows, pool_draws=pools_d, demand_draws=demand_d)
        positions = pair_positions(prep.work, prep.pairs) if school_flows else None
        siblings[i] = [(label, sib.work, _Kept(sib.scenario, sib.rows, sib.cols, sib.pools, sib.caps,
                                               sib.school_extra, sib.origin_extra))
                       for label, o in others.items()
                       for sib in [_prepare(scenarios[i], tables, bundle, o.model, origin_pos, school_pos, origins,
                                            schools, o.calibration, demand_draws=o.demand, sibling_of=(prep, model))]]
        return prep.work, _Kept(prep.scenario, prep.rows, prep.cols, prep.pools, prep.caps,
                                prep.school_extra, prep.origin_extra, positions)

    order = _run_order(scenarios, base, ref_of)
    stream, bar = _sweep(make, order, betas, seeds, allocator, client, show, in_flight, len(scenarios), threads)
    relief = relief_matrix(bundle, origins.index) if bundle is not None else None
    observed = int(pairs["esc_beneficiaries"].sum())
    acc = _Accumulator(origins, schools, observed, len(betas), base.name, ref_of, relief, keep_draws)
    point_accs = {label: _Accumulator(origins, schools, observed, 1, base.name, ref_of, relief, False)
                  for label in others}
    large = len(pairs) >= THREAD_MIN_PAIRS  # heap pages back to the OS: on large tables only
    # with a large table, once the draws are read: the draw threads' freed temporaries
    # sit in their own arenas, back to the OS before the scenario's summaries
    after = (lambda: trim(collect=False)) if large else None
    for i, kept, outs in stream:
        for label, work, kept_point in siblings.pop(i):  # while the threads draw this scenario (its unit alive)
            o = others[label]
            point_accs[label].add(i, kept_point, simulate_draws(work, o.betas[0], [0], [o.seeds[0]], allocator))
        work = None  # the last point unit: not held through the summaries
        acc.add(i, kept, outs, after)
        if large:
            trim(collect=False)  # the work unit and draws (freed by their counts: no cycles) back to the OS
    if bar is not None:
        bar.close()
    result = dataclasses.replace(acc.result(scenarios, seed, params), calibration=calibration, points={
        label: dataclasses.replace(point_accs[label].result(scenarios, seed, o.params), calibration=o.calibration)
        for label, o in others.items()})
    if large:  # the accumulator's draws x origins arrays (the reference's expected placements,
        del acc  # the baseline's placements) back to the OS before the next stage
        trim(collect=False)
    return result


def _sweep(make, order, betas, seeds, allocator, client, show, in_flight, n_scenarios, threads=1):
    """The stream of ``(i, kept, outcomes)`` per scenario, here or on Dask, and its bar."""
    if client is not None:
        from studentflow.scenarios.sweep_dask import run_sweep

        return run_sweep(client, make, order, betas, seeds, allocator=allocator, progress=show,
                         in_flight=int(in_flight)), None
    from tqdm.auto import tqdm

    bar = tqdm(total=len(betas) * n_scenarios, desc="scenario draws", unit="draw", disable=not show)
    return _local_sweep(make, order, betas, seeds, allocator, bar, threads), bar
