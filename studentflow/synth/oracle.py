"""The synthetic world's own answer to a scenario (the oracle of validation).

A synthetic region's ``truth/`` folder holds the true NB2 parameters (``params.json``),
every candidate pair with its covariates (``pairs.csv``) and each ESC school's
contracted slots and billable capacity (``esc_capacity.csv``). :func:`oracle_placements`
simulates that world under a scenario: fresh NB2 demand on every candidate pair, and
each ESC school admits ``min(demand, capacity)``, as the generator did
(:mod:`studentflow.synth.rationing`). What the package predicts from the raw files alone
is compared with it by :mod:`studentflow.validate` and ``scripts/validate_scenarios.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.synth.flows import design

__all__ = ["oracle_placements"]


def oracle_placements(truth_dir, scenarios, *, draws: int, seed: int) -> pd.Series:
    """Mean learners admitted per scenario in the synthetic world (simulated truth).

    Parameters
    ----------
    truth_dir : str or Path
        A synthetic region's ``truth/`` folder.
    scenarios : list of Scenario
        Only ``subsidy`` (pesos, uniform) and ``capacity`` ("billed" = today's billable
        capacity C_j, else contracted slots K_j) are used: the study's scenarios.
    draws : int
        Simulated years of NB2 demand per scenario.
    seed : int
        Seed of the demand draws.

    Returns
    -------
    pandas.Series
        Learners admitted (mean over draws), indexed by scenario name, named "truth".
    """
    truth_dir = Path(truth_dir)
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
