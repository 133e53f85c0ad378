"""Validate scenario answers against the synthetic world's own truth.

The bundled sample is synthetic, so the true answer to every study scenario is known:
latent demand is NB2 with the parameters in ``truth/params.json`` on every candidate pair
(``truth/pairs.csv``), and each ESC school admits min(demand, capacity). This script
simulates that world under each scenario (the oracle) and compares it with what the
package predicts from the raw files alone, under each estimator:

- ``drop``: NB2 on positive pairs only (the study's method),
- ``truncate``: zero-truncated NB2 on positive pairs (the package's default),
- ``include``: NB2 on every pair within the radius, zeros included.

Usage: ``python scripts/validate_scenarios.py [--draws 20] [--sample DIR]``.
It prints learners placed per scenario (truth vs each estimator) and the error in %.
Capacity in the oracle: status quo = today's billable capacity C_j (truth/esc_capacity.csv);
every other study scenario = contracted slots K_j, as in the study.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.gravity import STUDY_FORMULA, fit_gravity
from studentflow.ingest import load_bundle
from studentflow.pairs import build_pairs
from studentflow.paths import sample_dir
from studentflow.pipeline import compute_distances
from studentflow.scenarios.spec import study_scenarios
from studentflow.scenarios import run_scenarios
from studentflow.synth.flows import design


def oracle(truth_dir: Path, scenarios, *, draws: int, seed: int) -> pd.Series:
    """Mean learners admitted per scenario in the synthetic world (simulated truth).

    Parameters
    ----------
    truth_dir : Path
        A synthetic region's ``truth/`` folder.
    scenarios : list of Scenario
        Only ``subsidy`` (pesos, uniform) and ``capacity`` ("billed" = today's billable
        capacity, else contracted slots) are used: the study's scenarios.
    draws : int
        Simulated years of NB2 demand per scenario.
    seed : int
        Seed of the demand draws.
    """
    params = json.loads((truth_dir / "params.json").read_text())
    beta, alpha = params["params"], float(params["alpha"])
    pairs = pd.read_csv(truth_dir / "pairs.csv", dtype={"origin_id": str, "destination_id": str})
    cap = pd.read_csv(truth_dir / "esc_capacity.csv", dtype={"school_id": str}).set_index("school_id")
    dest = pd.Index(cap.index).get_indexer(pairs["destination_id"])
    rng = np.random.default_rng(seed)
    out = {}
    for s in scenarios:
        p = pairs.copy()
        p["net_cost_k"] = np.maximum(0.0, p["tuition"] - (p["esc_amount"] + s.subsidy)) / 1000.0
        x = design(p)
        mu = np.exp(beta["intercept"] + sum(x[k].to_numpy() * beta[k] for k in x.columns))
        capacity = (cap["capacity"] if s.capacity == "billed" else cap["slots"]).to_numpy(float)
        totals = []
        for _ in range(draws):
            lam = rng.gamma(1.0 / alpha, alpha * mu)  # NB2 = Poisson-gamma mixture
            demand = np.bincount(dest, weights=rng.poisson(lam), minlength=len(cap))
            totals.append(np.minimum(demand, capacity).sum())
        out[s.name] = float(np.mean(totals))
    return pd.Series(out, name="truth")


def compare(folder: Path, *, draws: int, seed: int = 0, log=print) -> pd.DataFrame:
    """Learners placed per study scenario: the synthetic truth and each estimator.

    Returns a table indexed by scenario with columns ``truth``, ``drop``, ``truncate``,
    ``include`` (learners), ``<estimator> err %`` and ``<column> vs status quo``.
    """
    scenarios = study_scenarios()
    table = oracle(folder / "truth", scenarios, draws=draws, seed=seed).to_frame()
    bundle = load_bundle(folder / "manifest.toml")
    distances = compute_distances(bundle)
    pairs = build_pairs(bundle, distances)
    radius = build_pairs(bundle, distances, candidates="radius")
    within = radius.loc[radius["within_radius"]]  # outcome-independent zeros for "include"
    for zeros in ("drop", "truncate", "include"):
        t0 = time.perf_counter()
        model = fit_gravity(within if zeros == "include" else pairs, STUDY_FORMULA, zeros=zeros,
                            method="fast")
        res = run_scenarios(bundle, model, scenarios, pairs=pairs, distances=distances,
                            draws=draws, seed=seed, progress=False)
        placed = res.table.set_index("scenario")["placed_mean"]
        table[zeros] = placed
        table[f"{zeros} err %"] = 100.0 * (placed / table["truth"] - 1.0)
        log(f"{zeros}: fit + {draws} draws in {time.perf_counter() - t0:.1f} s; "
            f"distance {model.params.filter(like='distance').iloc[0]:+.3f}")
    base = table.loc["status quo"]
    for col in ("truth", "drop", "truncate", "include"):
        table[f"{col} vs status quo"] = table[col] - base[col]
    return table


def change_error(table: pd.DataFrame, estimator: str) -> float:
    """Mean absolute error (learners) of an estimator's change vs status quo, non-baseline rows."""
    diff = table[f"{estimator} vs status quo"] - table["truth vs status quo"]
    return float(diff.drop(index="status quo").abs().mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--sample", type=Path, default=None)
    args = ap.parse_args(argv)
    folder = args.sample or sample_dir()
    table = compare(folder, draws=args.draws)
    pd.set_option("display.width", 200)
    print("\nlearners placed (mean over draws); error vs the synthetic world's truth")
    print(table.round(1).to_string())
    print("\nmean absolute error of the change vs status quo (learners):")
    for col in ("drop", "truncate", "include"):
        print(f"  {col:<9} {change_error(table, col):,.0f}")


if __name__ == "__main__":
    main()
