"""Fidelity of the pooled multi-year fit in synthetic worlds no test tunes to (issue 21).

For each world, the study's scenarios are run as ``studentflow run`` runs them (calibrated
status quo, coefficient draws) twice: with the model fitted on the latest school year alone
(``--fit-years latest``) and with the pooled NB2 with year effects over every year
(``--fit-years all``). Each scenario's change vs the status quo is compared with the
synthetic world's own answer (:func:`studentflow.synth.oracle.oracle_placements` on the
latest year's ``truth/``): is the truth inside the 95 % interval, how far is the mean, how
wide is the interval. The table is printed per world × scenario, then the summary:
coverage, mean absolute error and mean half-width under each fit, and the narrowing.

Worlds
------
- ``--worlds DIR ...``: multi-year synthetic manifests (``studentflow make-sample OUT
  --years 3 --seed S``); the pooled fit reads every year through ``load_panel``, the truth
  is ``truth/`` beside the manifest (or the latest year's truth folder).
- ``--one-year DIR ...``: one-year worlds (``studentflow make-sample OUT --seed S``), given
  two earlier years here, in memory (:func:`earlier_years`): the same schools and
  candidate pairs, latent NB2 demand redrawn from the world's true model under each
  earlier year's levers (tuition 5 % lower per year back, the "other" tier's subsidy
  3,000 pesos lower before the latest year, cohort year effects +0.10 and +0.05), slots
  re-contracted every year from that year's expected demand as the generator sets them
  (each school keeps its slot factor and billing utilisation; a fifth of the schools held
  25 % fewer slots before the latest year), rationed by billable capacity. The latest year is the world as written, so its truth is the oracle's.

Fits: ``latest`` (the latest year alone, as ``--fit-years latest``), ``pooled`` (the default
pooled fit: full ESC schools' counts censored, :mod:`studentflow.gravity.censored`) and,
with ``--uncensored``, the pooled fit that takes every count for demand (``censored=False``).
Calibration: a multi-year world's latest-year pair table carries the earlier years' billing
(``destination_billed_share_before``), so the censored fit runs on the "posterior"
calibration with latent demand draws (:mod:`studentflow.scenarios.latent`) and the others on
"unconstrain", the schools below capacity matched (:mod:`studentflow.scenarios.calibrate`);
the in-memory panels of ``--one-year`` carry no slot history and run on the floor rule.
Standard errors are clustered by origin and ESC school (:mod:`studentflow.gravity.panel`).
``--true-coefficients`` runs the default engine with the truth's coefficients.

``--decompose`` also runs each fit with its coefficient covariance set to zero: what is
left of the interval is the Monte Carlo part (rounding of expected flows to learners,
the same draws otherwise), the rest is coefficient uncertainty.

Usage::

    python scripts/validate_years.py --one-year /tmp/w31 /tmp/w47 /tmp/w59 --draws 100
    python scripts/validate_years.py --worlds /tmp/y31 /tmp/y47 /tmp/y59 --draws 100 --decompose
    python scripts/validate_years.py --worlds data/sample /tmp/y101 --draws 100 --uncensored --true-coefficients
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from studentflow.gravity.panel import fit_years_panel, pooled_fit
from studentflow.ingest import load_bundle
from studentflow.pairs import build_pairs
from studentflow.pipeline import compute_distances, fit_models
from studentflow.scenarios.run import run_scenarios
from studentflow.scenarios.spec import study_scenarios
from studentflow.synth.oracle import oracle_placements
from studentflow.synth.pairs import linear_predictor
from studentflow.synth.rationing import MIN_SLOTS, admit

EARLIER = {"2022-2023": dict(back=2, effect=0.10), "2023-2024": dict(back=1, effect=0.05)}
LATEST = "2024-2025"
SUBSIDY_RISE = 3_000.0  # pesos, tier "other", from the latest year on
SLOT_RISE_SHARE, SLOT_RISE = 0.2, 0.25  # a fifth of ESC schools got 25 % of their slots in the latest year
INFLATION = 0.05


class _Panel(SimpleNamespace):
    """In-memory stand-in of :class:`studentflow.schema.Panel` (years, bundles, latest)."""

    def __getitem__(self, year):
        return self.bundles[year]


def _year_bundle(bundle, truth: pd.DataFrame, cap: pd.DataFrame, params: dict, alpha: float, back: int,
                 effect: float, rng: np.random.Generator):
    """The world ``back`` years earlier: levers of that year, ESC flows redrawn from the truth."""
    p = truth.copy()
    p["tuition"] = np.round(p["tuition"] / (1.0 + INFLATION) ** back, -1)
    p["esc_amount"] = p["esc_amount"] - np.where(p["esc_amount"] == 9000.0, SUBSIDY_RISE, 0.0)
    p["net_cost_k"] = np.maximum(0.0, p["tuition"] - p["esc_amount"]) / 1000.0
    mu = np.exp(linear_predictor(p, params) + effect)
    demand = rng.poisson(rng.gamma(1.0 / alpha, alpha * mu))
    # slots re-contracted from the year's expected demand, each school keeping its slot factor
    # and billing utilisation; a fifth of the schools held 25 % fewer before the latest year
    expected = pd.Series(mu, index=p["destination_id"]).groupby(level=0).sum().reindex(cap.index, fill_value=0.0)
    factor = cap["slots"] / np.maximum(cap["expected_demand"], 1e-9)
    rise = cap.index.isin(cap.sample(frac=SLOT_RISE_SHARE, random_state=7).index)  # same schools every year
    slots = np.maximum(MIN_SLOTS, np.ceil(expected * factor * np.where(rise, 1 - SLOT_RISE, 1.0)))
    capacity = np.round(slots * cap["capacity"] / cap["slots"]).astype(np.int64)
    admitted = admit(p["destination_id"].to_numpy(), demand, pd.Series(capacity, index=cap.index), rng)
    new = pd.DataFrame({"origin_id": p["origin_id"], "destination_id": p["destination_id"], "new": admitted})
    f = bundle.flows.merge(new, on=["origin_id", "destination_id"], how="outer")
    f["learners"] = f["learners"].fillna(0) - f["esc_beneficiaries"].fillna(0)  # fee-paying learners stay
    f["esc_beneficiaries"] = f["new"].fillna(f["esc_beneficiaries"]).fillna(0)
    f["learners"] = f["learners"] + f["esc_beneficiaries"]
    f = f.loc[f["learners"] > 0, ["origin_id", "destination_id", "learners", "esc_beneficiaries"]]
    f = f.astype({"learners": np.int64, "esc_beneficiaries": np.int64}).reset_index(drop=True)
    schools = bundle.schools.copy()
    esc = schools["esc"].fillna(False).astype(bool)
    schools.loc[esc, "tuition"] = np.round(schools.loc[esc, "tuition"] / (1.0 + INFLATION) ** back, -1)
    schools.loc[slots.index.intersection(schools.index), "esc_slots"] = slots
    subsidy = bundle.subsidy.copy()
    subsidy.loc[subsidy["tier"] == "other", "amount"] -= SUBSIDY_RISE
    return dataclasses.replace(bundle, flows=f, schools=schools, subsidy=subsidy)


def earlier_years(folder: Path, bundle, seed: int) -> _Panel:
    """A three-year panel: two earlier years drawn in memory, then ``bundle`` (the world as written)."""
    truth = pd.read_csv(folder / "truth" / "pairs.csv", dtype={"origin_id": str, "destination_id": str})
    cap = pd.read_csv(folder / "truth" / "esc_capacity.csv", dtype={"school_id": str}).set_index("school_id")
    meta = json.loads((folder / "truth" / "params.json").read_text())
    rng = np.random.default_rng([seed, 2021])
    bundles = {y: _year_bundle(bundle, truth, cap, meta["params"], float(meta["alpha"]), rng=rng, **kw)
               for y, kw in EARLIER.items()}
    bundles[LATEST] = bundle
    ledger = pd.concat([b.ledger.assign(school_year=y) for y, b in bundles.items()], ignore_index=True)
    return _Panel(years=tuple(bundles), bundles=bundles, latest=bundle, ledger=ledger)


def _truth_dir(folder: Path) -> Path:
    if (folder / "truth" / "pairs.csv").is_file():
        return folder / "truth"
    years = sorted(p for p in (folder / "truth").iterdir() if (p / "pairs.csv").is_file())
    return years[-1]


def _changes(bundle, model, pairs, distances, scenarios, draws, seed) -> pd.DataFrame:
    res = run_scenarios(bundle, model, scenarios, pairs=pairs, distances=distances, draws=draws, seed=seed,
                        progress=False, keep_draws=False, calibrate=True)
    t = res.table.set_index("scenario")
    return t[["vs_baseline_mean", "vs_baseline_lo", "vs_baseline_hi"]].set_axis(["mean", "lo", "hi"], axis=1)


def _no_cov(model):
    return dataclasses.replace(model, cov_params=model.cov_params * 0.0)


def _true_model(model, truth_dir: Path):
    """``model`` with the world's true coefficients and no coefficient uncertainty."""
    from studentflow.gravity.metrics import term_key

    meta = json.loads((truth_dir / "params.json").read_text())
    params = model.params.copy()
    for name in params.index:
        params[name] = float(meta["params"].get(term_key(name), 0.0))
    return dataclasses.replace(model, params=params, alpha=float(meta["alpha"]), cov_params=model.cov_params * 0.0)


def world_table(path: Path, *, one_year: bool, draws: int, seed: int, decompose: bool, true_coef: bool = False,
                uncensored: bool = False, log=print) -> pd.DataFrame:
    """Per scenario (not the status quo): the truth's change and each fit's mean, interval, hit.

    ``path``: a world's folder (its ``manifest.toml``) or a manifest file in it."""
    t0 = time.perf_counter()
    folder, manifest = (path, path / "manifest.toml") if path.is_dir() else (path.parent, path)
    if one_year:
        bundle = load_bundle(manifest)
        panel = earlier_years(folder, bundle, seed)
    else:
        panel, bundle = fit_years_panel(manifest, "all")
        if panel is None:
            raise SystemExit(f"{folder}: one school year only; use --one-year")
    distances = compute_distances(panel)
    pairs = build_pairs(bundle, distances)
    fits = {"latest": next(iter(fit_models(pairs).values())), "pooled": pooled_fit(panel, distances)}
    if uncensored:  # the pooled fit that takes every count for demand (the default before issue 21's third pass)
        fits["uncensored"] = pooled_fit(panel, distances, censored=False)
    scenarios = study_scenarios()
    oracle = oracle_placements(_truth_dir(folder), scenarios, draws=max(draws, 20), seed=seed)
    rows = pd.DataFrame({"truth": oracle - oracle["status quo"]})
    for label, model in fits.items():
        ch = _changes(bundle, model, pairs, distances, scenarios, draws, seed)
        rows[f"{label} mean"], rows[f"{label} lo"], rows[f"{label} hi"] = ch["mean"], ch["lo"], ch["hi"]
        if decompose:
            mc = _changes(bundle, _no_cov(model), pairs, distances, scenarios, draws, seed)
            rows[f"{label} mc half"] = (mc["hi"] - mc["lo"]) / 2
    if true_coef:  # the package's own structure (candidate pairs, allocation, calibration) with the truth's β
        ch = _changes(bundle, _true_model(fits["pooled"], _truth_dir(folder)), pairs, distances, scenarios, draws, seed)
        rows["true-beta mean"] = ch["mean"]
    cost = "np.log1p(net_cost_k)"
    dist = "np.log1p(distance_km)"
    log(f"{folder.name}: " + "; ".join(f"{k} cost {m.params[cost]:+.3f} ({m.bse[cost]:.3f}), distance "
                                      f"{m.params[dist]:+.3f} ({m.bse[dist]:.3f})" for k, m in fits.items())
        + f"; {time.perf_counter() - t0:.0f} s")
    rows = rows.drop(index="status quo")
    rows.insert(0, "world", folder.name)
    return rows


FITS = ("latest", "pooled", "uncensored")


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Coverage, mean absolute error and mean half-width (learners) per fit."""
    out = {}
    for label in [x for x in FITS if f"{x} mean" in table]:
        inside = (table[f"{label} lo"] <= table["truth"]) & (table["truth"] <= table[f"{label} hi"])
        half = (table[f"{label} hi"] - table[f"{label} lo"]) / 2
        out[label] = {"cases": len(table), "inside": int(inside.sum()), "coverage %": 100 * inside.mean(),
                      "mean abs error": (table[f"{label} mean"] - table["truth"]).abs().mean(),
                      "mean half-width": half.mean()}
        if f"{label} mc half" in table:
            out[label]["MC half-width"] = table[f"{label} mc half"].mean()
    if "true-beta mean" in table:
        out["true beta"] = {"cases": len(table), "mean abs error": (table["true-beta mean"] - table["truth"]).abs().mean()}
    return pd.DataFrame(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=Path, nargs="*", default=[], help="multi-year synthetic manifests' folders")
    ap.add_argument("--one-year", type=Path, nargs="*", default=[], help="one-year worlds: earlier years in memory")
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--decompose", action="store_true", help="also the Monte Carlo part of each interval")
    ap.add_argument("--uncensored", action="store_true",
                    help="also the pooled fit that takes every count for demand (censored=False)")
    ap.add_argument("--true-coefficients", action="store_true",
                    help="also run the package with the world's true coefficients (its structural error)")
    args = ap.parse_args(argv)
    t0, c0 = time.perf_counter(), time.process_time()
    kw = dict(draws=args.draws, seed=args.seed, decompose=args.decompose, true_coef=args.true_coefficients,
              uncensored=args.uncensored)
    parts = [world_table(f, one_year=False, **kw) for f in args.worlds]
    parts += [world_table(f, one_year=True, **kw) for f in args.one_year]
    table = pd.concat(parts)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    print(f"\nchange vs status quo, learners ({args.draws} draws, seed {args.seed}): truth, then each fit's "
          "mean [95 % interval]")
    show = table[["world", "truth"]].copy()
    for label in [x for x in FITS if f"{x} mean" in table]:
        show[label] = [f"{m:7,.0f} [{lo:7,.0f}, {hi:7,.0f}] {'in ' if lo <= t <= hi else 'OUT'}"
                       for m, lo, hi, t in zip(table[f"{label} mean"], table[f"{label} lo"], table[f"{label} hi"],
                                               table["truth"])]
    if "true-beta mean" in table:
        show["true beta"] = table["true-beta mean"].map("{:7,.0f}".format)
    print(show.round(0).to_string())
    summary = summarise(table)
    print("\n" + summary.round(1).to_string())
    narrow = 1 - summary.loc["mean half-width", "pooled"] / summary.loc["mean half-width", "latest"]
    print(f"\npooled vs latest-year intervals: {100 * narrow:.1f} % narrower on average "
          f"(wall {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s)")


if __name__ == "__main__":
    main()
