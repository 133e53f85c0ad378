"""Benchmark of ``studentflow backtest`` on the bundled multi-year sample (not run by the tests).

Prints wall and CPU time (``time.process_time``) and the load average for, in one process:

(a) the baseline: ``run_pipeline`` on the latest year with the study's scenarios and the same
    draws, nothing written (what ``studentflow run`` computes);
(b) ``studentflow.backtest`` of the two latest years with ``--draws`` (default 100): panel
    ingest, two fits, three Monte Carlo runs (actual pools, forecast pools, the study's
    estimator), the oracle and the refit on the test year;

and the ratio (b) / (a). The issue's target: (b) under 60 s on the sample at 100 draws.

Usage: ``PYTHONPATH=. python scripts/bench_backtest.py [--draws N] [--data MANIFEST]``
"""

from __future__ import annotations

import argparse
import os
import time
import warnings


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    from studentflow.backtesting import backtest
    from studentflow.ingest import manifest_years
    from studentflow.paths import sample_manifest
    from studentflow.pipeline import run_pipeline

    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    data = args.data
    if data is None:  # the sample's multi-year manifest
        folder = sample_manifest().parent
        data = next((folder / n for n in ("manifest.toml", "manifest_years.toml")
                     if (folder / n).is_file() and len(manifest_years(folder / n)) > 1), folder / "manifest.toml")
    warnings.simplefilter("ignore")
    print(f"data {data}, {args.draws} draws, load average at start {os.getloadavg()[0]:.1f}")
    _, wa, ca = _timed(lambda: run_pipeline(data, draws=args.draws, write=False, progress=False))
    print(f"(a) baseline run_pipeline, latest year: wall {wa:6.1f} s  cpu {ca:6.1f} s")
    res, wb, cb = _timed(lambda: backtest(data, draws=args.draws, seed=0))
    print(f"(b) backtest {res.train} -> {res.test}:     wall {wb:6.1f} s  cpu {cb:6.1f} s  "
          f"(ratio to (a): wall {wb / wa:.2f}, cpu {cb / ca:.2f})")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
