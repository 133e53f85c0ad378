"""Validate scenario answers against the synthetic world's own truth, as fitted and calibrated.

The bundled sample is synthetic, so the true answer to every study scenario is known:
latent demand is NB2 with the parameters in ``truth/params.json`` on every candidate pair
(``truth/pairs.csv``), and each ESC school admits min(demand, capacity)
(:func:`studentflow.synth.oracle.oracle_placements`). This script compares it with what
the package predicts from the raw files alone, under each estimator:

- ``drop``: NB2 on positive pairs only (the study's method),
- ``truncate``: zero-truncated NB2 on positive pairs (the package's default),
- ``include``: NB2 on every pair within the radius, zeros included,

each run as fitted (before calibration) and on the calibrated status quo (the default
since issue 18; :mod:`studentflow.scenarios.calibrate`). With ``--holdout`` it also
prints the out-of-sample check (one origin region held out at a time).

Usage: ``python scripts/validate_scenarios.py [--draws 20] [--seed 0] [--sample DIR] [--holdout]``.
Capacity in the oracle: status quo = today's billable capacity C_j (truth/esc_capacity.csv);
every other study scenario = contracted slots K_j, as in the study.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from studentflow.ingest import load_bundle
from studentflow.pairs import build_pairs
from studentflow.paths import sample_dir
from studentflow.pipeline import compute_distances
from studentflow.validate import change_errors, compare_with_truth


def compare(folder: Path, *, draws: int, seed: int = 0, log=print) -> pd.DataFrame:
    """Learners placed per study scenario: the truth and each estimator, as fitted and calibrated
    (:func:`studentflow.validate.compare_with_truth`)."""
    bundle = load_bundle(folder / "manifest.toml")
    distances = compute_distances(bundle)
    pairs = build_pairs(bundle, distances)
    return compare_with_truth(bundle, distances, pairs, folder / "truth", draws=draws, seed=seed, log=log)


def change_error(table: pd.DataFrame, estimator: str) -> float:
    """Mean absolute error (learners) of an estimator's change vs status quo, non-baseline rows."""
    return float(change_errors(table)[estimator])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=Path, default=None)
    ap.add_argument("--holdout", action="store_true", help="also hold out each origin region in turn")
    args = ap.parse_args(argv)
    folder = args.sample or sample_dir()
    t0 = time.perf_counter()
    table = compare(folder, draws=args.draws, seed=args.seed)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 50)
    placed = [c for c in table.columns if not c.endswith(("err %", "vs status quo"))]
    print(f"\nlearners placed (mean over {args.draws} draws, seed {args.seed}); truth = the synthetic world")
    print(table[placed].round(1).to_string())
    print("\nchange vs status quo (learners)")
    print(table[[c for c in table.columns if c.endswith("vs status quo")]].round(1).to_string())
    print("\nmean absolute error of the change vs status quo (learners): before (as fitted) -> after (calibrated)")
    errors = change_errors(table)
    for est in ("drop", "truncate", "include"):
        print(f"  {est:<9} {errors[est]:7,.0f} -> {errors[est + ' calibrated']:7,.0f}")
    if args.holdout:
        from studentflow.scenarios.holdout import holdout_validation

        bundle = load_bundle(folder / "manifest.toml")
        pairs = build_pairs(bundle, compute_distances(bundle))
        print()
        print(holdout_validation(pairs, draws=args.draws, seed=args.seed).summary())
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
