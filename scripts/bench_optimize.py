"""Benchmark of the budget optimizer (studentflow.optimize).

Named baselines, run in the same process:

* **re-solve everything**: every feasible candidate re-solved exactly at every step,
  one action per step, lots of at most ``slot_step`` slots (``confirm=0,
  batch_max=1, slot_share=0``): the plan the search must stay within 2 % of;
* **previous search**: the code's behaviour before the batched search (lazy
  single-action steps, every re-solve in full: ``batch_max=1, slot_share=0,
  local_changes=False``), for time.

1. On the bundled sample (20 draws, calibrated status quo), every action (slots, tier,
   catchment, uniform), at four budgets: the search (default levers) against both
   baselines (each run once, at the largest budget: their paths do not depend on it):
   wall and CPU seconds, re-solves, steps, relief, and the plan's gap to the
   re-solve-everything baseline. Also how stale exact ratios kept by the lazy
   search compare with their re-solves (relief is not submodular: some rise).
2. Against the number of actions (the ESC schools' slot actions cut to the N first, all
   subsidy actions kept), at one budget: the search against re-solve-everything (time
   ratio, relief ratio, gap).
3. Small random instances with ten or twelve one-time actions: gap of the plan to the
   exhaustive optimum (every subset re-solved) and the time of each.

Run: ``python scripts/bench_optimize.py [--budget PESOS] [--small N]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def _sample_problem(draws: int):
    from studentflow.ingest import load_bundle
    from studentflow.optimize import build_problem
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances, fit_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = load_bundle()
        distances = compute_distances(bundle)
        pairs = build_pairs(bundle, distances)
        model = next(iter(fit_models(pairs).values()))
        t0 = time.perf_counter()
        problem = build_problem(bundle, model, pairs, draws=draws, seed=0)
    return problem, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=10e6, help="largest budget, pesos (default 10,000,000)")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--small", type=int, default=10, help="small instances per size (default 10)")
    args = ap.parse_args()

    from studentflow.optimize import Levers, best_within, make_actions, optimize, search
    from studentflow.optimize.exhaustive import exhaustive_best, small_problem
    from studentflow.optimize.problem import State, evaluate
    from studentflow.optimize.actions import apply

    problem, t_build = _sample_problem(args.draws)
    n, m = problem.shape
    print(f"sample: {n:,} origins x {m:,} ESC schools, {problem.indices.size:,} pairs, {problem.draws} draws; "
          f"problem built in {t_build:.2f} s; load average {os.getloadavg()[0]:.1f}")
    every = make_actions(problem, ("slots", "tier", "catchment", "uniform"))

    def timed(**kw):
        problem._cache.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        res = search(problem, kw.pop("actions", every), kw.pop("budget"), **kw)
        return res, time.perf_counter() - t0, time.process_time() - c0

    def own(res, budget):  # the search's own plans (uniform and fill-slots comparisons left out)
        return best_within(res.plans, budget, "optimised").mean_relief

    print(f"\n1. every action ({len(every):,}): search vs 're-solve everything' (gap = (baseline - search) / "
          "baseline relief) and vs the previous search (time)")
    print(f"{'budget, PHP':>14} {'search s':>9} {'cpu s':>6} {'re-solves':>10} {'steps':>6} {'relief':>8} "
          f"{'baseline relief':>16} {'gap':>7} {'previous relief':>16} {'time vs previous':>17}")
    gaps = []
    # the baselines' paths do not depend on the budget: one run at the largest serves all
    base, bsec, _ = timed(budget=args.budget, confirm=0, batch_max=1, slot_share=0.0)
    prev, psec, pcpu = timed(budget=args.budget, batch_max=1, slot_share=0.0, local_changes=False)
    print(f"(baselines run once at PHP {args.budget:,.0f}: re-solve everything {bsec:.1f} s, "
          f"{base.evaluations:,} re-solves; previous search {psec:.1f} s, {pcpu:.1f} s CPU, {prev.evaluations:,})")
    for budget in (args.budget / 10, args.budget / 4, args.budget / 2, args.budget):
        res, sec, cpu = timed(budget=budget)
        r, rb, rp = own(res, budget), own(base, budget), own(prev, budget)
        gaps.append((rb - r) / max(rb, 1e-9))
        print(f"{budget:>14,.0f} {sec:>9.2f} {cpu:>6.1f} {res.evaluations:>10,} {len(res.path):>6,} {r:>8,.1f} "
              f"{rb:>16,.1f} {100 * gaps[-1]:>6.2f}% {rp:>16,.1f} {psec / sec:>16.1f}x")
    print(f"worst gap to re-solve everything: {100 * max(gaps):.2f} % (target <= 2 %)")

    old, new = np.array(res.stale).T if res.stale else (np.zeros(0), np.zeros(0))
    fin = np.isfinite(old) & np.isfinite(new) & (old > 0)
    rise = new[fin] / old[fin] - 1
    print(f"stale exact ratios re-solved at PHP {budget:,.0f}: {old.size:,}; of the finite ones ({fin.sum():,}) "
          f"{(rise > 0.01).mean():.1%} rose by > 1 %, {(rise > 0.10).mean():.1%} by > 10 % "
          f"(largest +{100 * max(rise.max(initial=0), 0):.0f} %), {(rise < -0.01).mean():.1%} fell by > 1 %")

    budget = args.budget / 10
    print(f"\n2. time against number of actions, budget PHP {budget:,.0f}: search vs 're-solve everything'")
    print(f"{'actions':>8} {'search s':>9} {'baseline s':>11} {'time ratio':>11} {'search relief':>14} "
          f"{'baseline relief':>16} {'relief ratio':>13} {'gap':>7}")
    subsidy = [a for a in every if a.kind == "subsidy"]
    slots = [a for a in every if a.kind == "slots"]
    for n_slots in (25, 50, 100):
        acts = subsidy[:20] + slots[:n_slots]
        fast, fsec, _ = timed(budget=budget, actions=acts)
        slow, ssec, _ = timed(budget=budget, actions=acts, confirm=0, batch_max=1, slot_share=0.0)
        rf, rs = own(fast, budget), own(slow, budget)
        print(f"{len(acts):>8} {fsec:>9.2f} {ssec:>11.2f} {ssec / fsec:>10.1f}x "
              f"{rf:>14,.1f} {rs:>16,.1f} {rf / max(rs, 1e-9):>13.3f} {100 * (rs - rf) / max(rs, 1e-9):>6.2f}%")

    print(f"\n3. small instances: gap to the exhaustive optimum ({args.small} seeds x 3 budgets per size)")
    print(f"{'actions':>8} {'cases':>6} {'mean gap':>9} {'worst gap':>10} {'>2% cases':>10} "
          f"{'path worst':>11} {'path >2%':>9} {'search s':>9} {'exhaustive s':>13}")
    for n_slots, n_seats in ((4, 1), (5, 2)):
        gaps, own_gaps, t_s, t_e = [], [], [], []
        for seed in range(args.small):
            prob, acts, seat_cost = small_problem(seed, n_slots=n_slots, n_seats=n_seats)
            ref = evaluate(prob, State.status_quo(prob), seat_cost=seat_cost)
            state = State.status_quo(prob)
            for a in acts:
                state = apply(prob, state, a, a.amount if a.amount is not None else prob.subsidy_step)
            everything = evaluate(prob, state, seat_cost=seat_cost, reference=ref).spent
            lev = Levers(actions=("slots", "tier", "catchment", "uniform", "public_seats"),
                         public_seat_cost=seat_cost, confirm=0)
            for frac in (0.1, 0.3, 0.6):
                t0 = time.perf_counter()
                best = exhaustive_best(prob, acts, frac * everything, seat_cost=seat_cost)[0]
                t_e.append(time.perf_counter() - t0)
                res = optimize(problem=prob, budget=frac * everything, actions=acts, levers=lev, budget_quantile="mean")
                t_s.append(res.seconds)
                gaps.append((best - res.relief[0]) / best if best > 0 else 0.0)
                own = best_within(res.search.plans, frac * everything, "optimised").mean_relief
                own_gaps.append((best - own) / best if best > 0 else 0.0)
        g, o = np.array(gaps), np.array(own_gaps)
        print(f"{len(acts):>8} {g.size:>6} {100 * g.mean():>8.2f}% {100 * g.max():>9.2f}% {(g > 0.02).sum():>10} "
              f"{100 * o.max():>10.2f}% {(o > 0.02).sum():>9} {np.mean(t_s):>9.3f} {np.mean(t_e):>13.3f}")
    print("(gap = (exhaustive − plan) / exhaustive; negative: the plan beats every subset, e.g. with a "
          "uniform increase of several steps or opened contracted slots, which are outside the subsets; "
          "'path': the search's own plans only, without those comparisons)")


if __name__ == "__main__":
    main()
