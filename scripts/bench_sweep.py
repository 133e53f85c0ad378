"""Benchmark: national scenario sweeps (hundreds of scenarios x 100 draws) within memory.

    python scripts/bench_sweep.py [--scenarios 200] [--draws 100] [--workers 2]
                                  [--baseline-scenarios 20] [--keep none|memory|disk]
                                  [--no-single] [--no-dask] [--scale 10,20,40]

Loads the cached national region (``.cache/national``, as ``scripts/bench_national.py``:
load_bundle → compute_distances(max_km=15) → build_pairs(radius_km=5) → fit_models(
"truncate", method="fast", formula=ORIGIN_REGION_FORMULA)) and runs a grid of scenarios
(a status-quo baseline, then subsidy levels x slot multipliers) with
:func:`studentflow.scenarios.run_scenarios`:

* **new**: the streaming sweep (one scenario's work unit at a time; on Dask a bounded
  number of scenarios in flight), ``--scenarios`` scenarios, per-draw arrays kept as
  ``--keep`` says (``none``: summaries only, the default for a sweep);
* **baseline (eager, 851522a)**: ``studentflow/scenarios.py`` as of commit 851522a (read
  with ``git show`` into a temporary module): every work unit prepared up front, every
  per-draw array kept (int64), on Dask every work unit scattered at once; run on
  ``--baseline-scenarios`` scenarios.

Per path (single process, then a local Dask cluster from
:func:`studentflow.dask_client.local_cluster`) it runs the new sweep on ``--scenarios``
and on ``--baseline-scenarios`` scenarios, then the baseline on ``--baseline-scenarios``.
Each run is measured in this process: seconds, peak resident memory of this process
(plus the Dask workers for the cluster runs; psutil, sampled every 20 ms) and its growth
over the memory held before the run. MB per scenario: for the new sweep the peak's
growth per added scenario (peak at N vs at the small N), for the baseline its growth /
scenarios. The baseline's scenarios are checked to give identical table, per-draw, ESC
and public-JHS rows in the new run. ``--scale 10,20,40`` first runs the baseline single
process at each N (the "measure first" step) to show its memory grows per scenario.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import psutil
from benchlib import GB, PeakRSS, load_baseline

MB = 2.0**20
BASELINE_COMMIT = "851522a"
ROOT = Path(__file__).resolve().parents[1]


def scenario_grid(n: int) -> list:
    """A status-quo baseline and n - 1 scenarios: subsidy +0..9,500 pesos (20 levels) x
    slot multipliers 0.80, 0.82, ... (contracted slots)."""
    from studentflow.scenarios.spec import Scenario

    out = [Scenario("status quo", baseline=True, capacity="billed")]
    for i in range(n - 1):
        subsidy, scale = 500.0 * (i % 20), round(0.80 + 0.02 * (i // 20), 2)
        out.append(Scenario(f"+{subsidy:,.0f} pesos x{scale:.2f} slots", subsidy=subsidy, scale_slots=scale))
    return out


RUNS: list[dict] = []


def measure(label: str, n: int, fn, children: bool = False):
    print(f"  {label} ...", file=sys.stderr, flush=True)
    with PeakRSS(children) as mem:
        t0 = time.perf_counter()
        out = fn()
        sec = time.perf_counter() - t0
    grow = (mem.peak - mem.start) / MB
    RUNS.append(dict(label=label, n=n, sec=sec, peak=mem.peak / GB, grow=grow))
    print(f"  {label:<34} N={n:<4} {sec:8.1f} s  {1000 * sec / max(n, 1):7.0f} ms/scenario   "
          f"peak {mem.peak / GB:6.2f} GB   growth {grow / 1024:6.2f} GB   {grow / max(n, 1):7.1f} MB/scenario",
          flush=True)
    return out


def same_rows(new, old) -> bool:
    """The baseline's scenarios give identical rows in the new run's tables (on the
    baseline's columns: the new code adds per-JHS ``relieved_vs_baseline_*``)."""
    import pandas as pd

    names = [s.name for s in old.scenarios]
    try:
        for attr in ("table", "per_draw", "esc_schools", "public_jhs"):
            a, b = getattr(new, attr), getattr(old, attr)
            a = a.loc[a["scenario"].isin(names), list(b.columns)].reset_index(drop=True)
            if attr in ("table",):
                a = a.iloc[: len(b)]
            pd.testing.assert_frame_equal(a, b.reset_index(drop=True), check_exact=True)
        return True
    except AssertionError as exc:
        print(f"    differs: {str(exc)[:300]}")
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=200)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline-scenarios", type=int, default=20)
    ap.add_argument("--keep", choices=("none", "memory", "disk"), default="none",
                    help="per-draw arrays of the new run: none (summaries only), memory, disk")
    ap.add_argument("--scale", default="", help="baseline single process at these N first, e.g. 10,20,40")
    ap.add_argument("--no-single", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=str(ROOT / ".cache/national"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from studentflow.ingest import load_bundle
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import ORIGIN_REGION_FORMULA, compute_distances, fit_models
    from studentflow.scenarios import run_scenarios
    from studentflow.synth.national import make_national

    old = load_baseline("scenarios", BASELINE_COMMIT)
    # the eager sweep's Dask path calls studentflow.distributed.run_draws, which the package
    # no longer has: hand it the baseline's own
    import studentflow.scenarios.sweep_dask

    studentflow.distributed.run_draws = load_baseline("distributed", BASELINE_COMMIT).run_draws
    print(f"sweep benchmark: {os.cpu_count()} cores, {psutil.virtual_memory().total / GB:.1f} GB RAM, "
          f"{args.scenarios} scenarios x {args.draws} draws (baseline {BASELINE_COMMIT}: "
          f"{args.baseline_scenarios} scenarios)")
    t0 = time.perf_counter()
    info = make_national(args.seed, cache_dir=args.cache_dir, institutions=59_000, radius_km=5.0)
    bundle = load_bundle(Path(info.manifest))
    dist = compute_distances(bundle, max_km=15)
    pairs = build_pairs(bundle, dist, radius_km=5)
    model = next(iter(fit_models(pairs, "truncate", method="fast", formula=ORIGIN_REGION_FORMULA).values()))
    print(f"national region loaded and fitted in {time.perf_counter() - t0:.0f} s: {len(pairs):,} pairs, "
          f"{pairs['origin_id'].nunique():,} origins, {pairs['destination_id'].nunique():,} ESC schools, "
          f"{len(model.params)} terms; held {psutil.Process().memory_info().rss / GB:.2f} GB")
    kw = dict(pairs=pairs, distances=dist, draws=args.draws, seed=args.seed, progress=False)
    tmp = tempfile.TemporaryDirectory(prefix="sweep-draws-")
    keep = {"none": False, "memory": True, "disk": tmp.name}[args.keep]
    grid = scenario_grid(max(args.scenarios, args.baseline_scenarios))
    new_grid, base_grid = grid[: args.scenarios], grid[: args.baseline_scenarios]

    if args.scale:
        print("\nbaseline (eager) single process, memory against the number of scenarios")
        for n in [int(v) for v in args.scale.split(",")]:
            measure(f"baseline (eager, {BASELINE_COMMIT})", n,
                    lambda: old.run_scenarios(bundle, model, grid[:n], **kw))
        done = [r for r in RUNS if r["label"].startswith("baseline")]
        if len(done) > 1:
            a, b = done[0], done[-1]
            print(f"  baseline: {(b['peak'] - a['peak']) * 1024 / (b['n'] - a['n']):.1f} MB per added scenario "
                  f"(peak at N={b['n']} vs N={a['n']})")

    small = args.baseline_scenarios
    results = {}
    paths = [] if args.no_single else ["single"]
    paths += [] if args.no_dask else ["dask"]
    for path in paths:
        cluster = client = None
        extra = {}
        if path == "dask":
            from dask.distributed import Client

            from studentflow.dask_client import local_cluster

            print(f"\nlocal Dask cluster ({args.workers} workers x 1 thread); memory = this process + workers")
            cluster = local_cluster(args.workers)
            client = Client(cluster)
            extra = {"client": client}
        else:
            print("\nsingle process")
        tag = " dask" if client else ""
        ch = client is not None
        results[path, "new"] = measure(f"new (streaming, keep={args.keep}){tag}", len(new_grid),
                                       lambda: run_scenarios(bundle, model, new_grid, keep_draws=keep, **extra, **kw),
                                       children=ch)
        results[path, "new small"] = measure(f"new (streaming, keep={args.keep}){tag}", small,
                                             lambda: run_scenarios(bundle, model, base_grid, keep_draws=keep,
                                                                   **extra, **kw), children=ch)
        if client is not None:
            client.run(lambda: __import__("gc").collect())
        results[path, "old"] = measure(f"baseline (eager, {BASELINE_COMMIT}){tag}", small,
                                       lambda: old.run_scenarios(bundle, model, base_grid, **extra, **kw),
                                       children=ch)
        ident = same_rows(results[path, "new"], results[path, "old"])
        results[path, "new"] = results[path, "new small"] = results[path, "old"] = None
        rs = RUNS[-3:]
        big, lit, base = rs
        slope_new = (big["peak"] - lit["peak"]) * 1024 / max(big["n"] - lit["n"], 1)
        print(f"  -> {path}: new {big['n']} scenarios {big['sec']:.1f} s ({big['sec'] / big['n']:.2f} s/scenario), "
              f"peak {big['peak']:.2f} GB; new {lit['n']}: peak {lit['peak']:.2f} GB; "
              f"MB per added scenario (new, peak {big['n']} vs {lit['n']}) {slope_new:.1f}")
        print(f"  -> {path}: baseline {base['n']} scenarios {base['sec']:.1f} s ({base['sec'] / base['n']:.2f} "
              f"s/scenario), peak {base['peak']:.2f} GB, growth {base['grow'] / base['n']:.1f} MB/scenario; "
              f"ratio baseline/new MB per scenario {base['grow'] / base['n'] / (big['grow'] / big['n']):.0f}x "
              f"(new: growth / {big['n']}, an upper bound); "
              f"s/scenario new/baseline {(big['sec'] / big['n']) / (base['sec'] / base['n']):.2f}; "
              f"identical rows {ident}")
        if client is not None:
            client.close()
            cluster.close()


if __name__ == "__main__":
    main()
