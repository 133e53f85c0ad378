"""Benchmark: a scenario run builds its pair tables once, against rebuilding per scenario.

    python scripts/bench_pair_tables.py [--draws 5] [--repeat 3]

On the bundled sample (distances to 12 km, pairs at 5 km, the zero-truncated NB2), runs
five scenarios, four of them with a wider candidate radius (7, 8, 9 and 10 km, two with a
subsidy), through

- "new": :func:`studentflow.scenarios.run_scenarios` (one table at 10 km, filtered per
  scenario);
- "baseline (8a626b8)": ``run_scenarios`` as of commit 8a626b8 (read with ``git show``),
  which rebuilt a scenario's table with ``build_pairs`` twice per wider scenario.

Prints the best time of each, their ratio, ``build_pairs`` calls, and whether the two
give the same scenario table.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import studentflow.pairs as pairs_mod
from benchlib import load_baseline
from studentflow.gravity import fit_gravity
from studentflow.ingest import load_bundle
from studentflow.pairs import build_pairs
from studentflow.pipeline import compute_distances
from studentflow.scenarios import Scenario, run_scenarios

BASELINE_COMMIT = "8a626b8"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    bundle = load_bundle()
    distances = compute_distances(bundle, max_km=12.0)
    pairs = build_pairs(bundle, distances, radius_km=5.0)
    model = fit_gravity(pairs, zeros="truncate", method="fast")
    scenarios = [Scenario("status quo"), Scenario("r7", radius_km=7.0), Scenario("r8", radius_km=8.0, subsidy=5000),
                 Scenario("r9", radius_km=9.0), Scenario("r10", radius_km=10.0, subsidy=10000)]
    old = load_baseline("scenarios/run", BASELINE_COMMIT).run_scenarios
    calls = []
    real = pairs_mod.build_pairs

    def counting(*a, **k):
        calls.append(k.get("radius_km"))
        return real(*a, **k)

    pairs_mod.build_pairs = counting
    out, times, builds = {}, {}, {}
    for name, fn in (("new", run_scenarios), (f"baseline ({BASELINE_COMMIT})", old)):
        best = np.inf
        for _ in range(args.repeat):
            calls.clear()
            t0 = time.perf_counter()
            out[name] = fn(bundle, model, scenarios, pairs=pairs, distances=distances, draws=args.draws,
                           seed=0, progress=False, keep_draws=False)
            best = min(best, time.perf_counter() - t0)
        times[name], builds[name] = best, len(calls)
    pairs_mod.build_pairs = real
    print(f"sample: {len(pairs):,} pairs at 5 km; {len(scenarios)} scenarios, {args.draws} draws, best of {args.repeat}")
    for name in times:
        print(f"  {name:22s} {times[name]:7.2f} s   build_pairs calls: {builds[name]}")
    (a, ta), (b, tb) = times.items()
    print(f"  ratio new / baseline: {ta / tb:.2f}")
    same = np.allclose(*(out[k].table["placed_mean"].to_numpy() for k in out))
    print(f"  same placed_mean per scenario: {same}")


if __name__ == "__main__":
    main()
