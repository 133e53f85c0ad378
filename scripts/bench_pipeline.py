"""Benchmark: `studentflow run --draws 100` on the bundled sample, stage by stage.

    python scripts/bench_pipeline.py [--draws 100] [--data MANIFEST] [--no-cli]

Prints each stage's time and the total beside the target of issue 22 (`studentflow run`
on the sample at 100 draws in at most 10 s on 2 cores; main 2f59500 took 15.4 s), with
CPU seconds (this process and its forked children, :mod:`studentflow.forked`) and the
load average (others may share the cores); then the command itself by the clock,
process start and imports included, against the baseline of the same command with
``STUDENTFLOW_FORK=0`` (everything in one process, as before the forks; the forked run is
given ``STUDENTFLOW_FORK=1``, forking whatever the load); then, in the
same process and on the same fitted model and pairs, the scenario stage against named
baselines:

- "draws=1": the scenario stage with a single draw (fixed cost: design matrices,
  sparse structure, relief matrix), so the per-draw cost is (t_N - t_1) / (N - 1);
- "sequential": the study's shuffled sequential allocator instead of balancing,
  10 draws each.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from studentflow import forked
from studentflow.pipeline import STAGES, run_pipeline
from studentflow.scenarios.spec import study_scenarios
from studentflow.scenarios import run_scenarios


def _time(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _cpu() -> float:
    """CPU seconds of this process and of its children waited for (forked work, commands)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _cli(args, out: str, fork: str) -> tuple[float, float]:
    """``studentflow run`` in a new process with ``STUDENTFLOW_FORK=fork``: wall seconds (start
    to exit) and its CPU seconds."""
    cmd = [sys.executable, "-m", "studentflow.cli", "run", "--draws", str(args.draws), "--out", out, "--no-progress"]
    cmd += ["--data", args.data] if args.data else []
    env = dict(os.environ, STUDENTFLOW_FORK=fork)
    c0 = _cpu()
    wall, proc = _time(lambda: subprocess.run(cmd, env=env, capture_output=True, text=True))
    if proc.returncode:
        raise SystemExit(f"studentflow run failed:\n{proc.stderr[-2000:]}")
    return wall, _cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--data", default=None)
    ap.add_argument("--no-cli", action="store_true", help="skip the three timed `studentflow run` commands")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    forks = forked.wanted()
    with tempfile.TemporaryDirectory() as out:
        c0 = _cpu()
        total, res = _time(lambda: run_pipeline(args.data, out_dir=out, draws=args.draws, progress=False))
        cpu = _cpu() - c0
        html_mb = (Path(out) / "report.html").stat().st_size / 1e6
    print(f"studentflow run --draws {args.draws} (sample: {len(res.pairs):,} pairs, "
          f"{len(res.result.origin_ids):,} origins, {len(res.result.school_ids):,} ESC schools; "
          f"forked work: {'yes' if forks else 'no'}, STUDENTFLOW_FORK={os.environ.get('STUDENTFLOW_FORK', '')!r})")
    for name in STAGES:
        print(f"  {name:<10} {res.timings.get(name, float('nan')):7.2f} s")
    print(f"  {'total':<10} {total:7.2f} s   (cpu {cpu:.2f} s, load {os.getloadavg()[0]:.1f}; target <= 10 s: "
          f"{'OK' if total <= 10 else 'MISSED'}; main 2f59500: 15.4 s)")
    print(f"  report.html {html_mb:.1f} MB (main 2f59500: 9 MB)")

    if not args.no_cli:
        print(f"\nstudentflow run --draws {args.draws}, by the clock (process start, imports and exit included)")
        base_wall = None
        for fork, label in (("0", "baseline STUDENTFLOW_FORK=0"), ("1", "forked work, STUDENTFLOW_FORK=1"),
                            ("", "default (forks when a core is free)")):
            with tempfile.TemporaryDirectory() as cli_out:
                load0 = os.getloadavg()[0]
                wall, cpu = _cli(args, cli_out, fork)
            base_wall = base_wall or wall
            print(f"  {label:<36} {wall:7.2f} s   (cpu {cpu:.2f} s, load {load0:.1f})   ratio {wall / base_wall:4.2f}x"
                  + (f"; target <= 10 s: {'OK' if wall <= 10 else 'MISSED'}" if fork != "0" else ""))

    scen = study_scenarios()
    b, m, p, d = res.bundle, res.model, res.pairs, res.distances
    t1, _ = _time(lambda: run_scenarios(b, m, scen, pairs=p, distances=d, draws=1, progress=False))
    tn, _ = _time(lambda: run_scenarios(b, m, scen, pairs=p, distances=d, draws=args.draws, progress=False))
    per = (tn - t1) / max(args.draws - 1, 1)
    print(f"\nscenario stage, {len(scen)} scenarios (main model only)")
    print(f"  baseline draws=1            {t1:7.2f} s")
    print(f"  draws={args.draws:<21} {tn:7.2f} s   ratio {tn / t1:5.1f}x; "
          f"{1000 * per / len(scen):.1f} ms per scenario-draw")

    seq = [dataclasses.replace(s, method="sequential") for s in scen]
    tb, rb = _time(lambda: run_scenarios(b, m, scen, pairs=p, draws=10, progress=False))
    ts, rs = _time(lambda: run_scenarios(b, m, seq, pairs=p, draws=10, progress=False))
    print("\nallocator, 10 draws")
    print(f"  baseline sequential (study) {ts:7.2f} s   placed (fill contracted) "
          f"{rs.table.set_index('scenario').loc['fill contracted slots', 'placed_mean']:,.0f}")
    print(f"  balance                     {tb:7.2f} s   placed (fill contracted) "
          f"{rb.table.set_index('scenario').loc['fill contracted slots', 'placed_mean']:,.0f}   "
          f"ratio {tb / ts:4.2f}x of sequential")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
