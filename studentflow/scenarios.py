"""Subsidy and slot scenarios with Monte Carlo over the gravity coefficients.

For each scenario and draw d = 1..D:

1. a coefficient vector β_d is drawn from the fitted model (``model.draw_params``);
2. expected flows μ_ij = exp(x_ij β_d) are computed on the scenario's pair table
   (the design matrix X is built once per scenario; each draw is one ``X @ β``);
3. the capacity-constrained allocator (:func:`studentflow.allocation.allocate`) scales
   μ to the origin pools and school slots, on a sparse origin × ESC-school matrix whose
   structure is built once per scenario (only its data vector changes per draw);
4. the allocation is rounded to whole learners (``Allocation.to_integer``) and the
   metrics of :data:`studentflow.scenario_result.DRAW_METRICS` are recorded.

Every scenario uses the same coefficient draws and the same rounding seeds (common
random numbers), so differences between scenarios are not blurred by sampling noise.

Learners relieved from public JHS: each origin's placements above its observed ESC
beneficiaries are taken out of its public-JHS destinations in proportion to its
observed flows (at most the learners it actually sent to public JHS).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from studentflow.errors import DataError
from studentflow.scenario_draws import DrawWork, draw_seed, simulate_draws
from studentflow.scenario_result import ScenarioResult, interval, summarise_draws
from studentflow.scenario_spec import Scenario, baseline_of, load_scenarios
from studentflow.scenario_levers import scenario_capacities, scenario_pairs
from studentflow.schema import require_columns

__all__ = [
    "Scenario", "ScenarioResult", "load_scenarios", "run_scenarios", "scenario_capacities",
    "scenario_pairs",
]

PAIR_COLUMNS = (
    "origin_id", "destination_id", "pair_type", "esc_beneficiaries", "distance_km",
    "tuition", "esc_amount", "net_cost_k", "origin_lgu_revenue", "origin_pool",
    "origin_esc_beneficiaries", "destination_slots", "destination_billed",
    "origin_feeds_congested",
)


# ---------------------------------------------------------------- prediction
def _design(model, pairs: pd.DataFrame):
    """(X, offset) with ``model.predict(pairs, params=b) == exp(X @ b + offset)``.

    Uses the fitted formula's design (``model.design_info``) when the model has one;
    otherwise recovers X from the model's own ``predict`` with unit coefficient vectors,
    so any log-linear model honouring the contract works. Checked against
    ``model.predict``; returns None (predict per draw) if the check fails.
    """
    names = model.params.index
    X = offset = None
    if getattr(model, "design_info", None) is not None:
        try:
            from studentflow.gravity_model import design_matrix

            X = design_matrix(model.design_info, pairs)[list(names)].to_numpy(dtype=float)
            offset = np.zeros(len(pairs))
        except (ImportError, KeyError, TypeError, ValueError):
            X = None
    if X is None:
        zero = pd.Series(0.0, index=names)
        with np.errstate(divide="ignore"):
            offset = np.log(np.asarray(model.predict(pairs, params=zero), dtype=float))
            cols = []
            for name in names:
                unit = zero.copy()
                unit[name] = 1.0
                cols.append(np.log(np.asarray(model.predict(pairs, params=unit), dtype=float)) - offset)
        X = np.column_stack(cols) if cols else np.zeros((len(pairs), 0))
    check = slice(0, min(len(pairs), 2000))
    ref = np.asarray(model.predict(pairs.iloc[check]), dtype=float)
    got = np.exp(X[check] @ model.params.to_numpy(dtype=float) + offset[check])
    if not (np.all(np.isfinite(X)) and np.allclose(got, ref, rtol=1e-6, atol=1e-12)):
        return None
    return X, offset


@dataclass(frozen=True)
class _Prepared:
    scenario: Scenario
    pairs: pd.DataFrame
    rows: np.ndarray  # global origin position of each local row
    cols: np.ndarray  # global school position of each local column
    pools: np.ndarray  # global, learners
    caps: np.ndarray  # global, slots
    work: DrawWork  # what each draw needs (local rows / columns)


def _prepare(s: Scenario, pairs, bundle, distances, model, origin_pos, school_pos, origins, schools):
    p = scenario_pairs(s, pairs, bundle, distances)
    if p.empty:
        raise DataError(f"scenario {s.name!r}: no origin→ESC pairs left (radius_km={s.radius_km})")
    o_glob = origin_pos.loc[p["origin_id"]].to_numpy()
    d_glob = school_pos.loc[p["destination_id"]].to_numpy()
    rows, r = np.unique(o_glob, return_inverse=True)
    cols, c = np.unique(d_glob, return_inverse=True)
    order = np.lexsort((c, r))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=rows.size))])
    shape = (rows.size, cols.size)
    is_new = (p["pair_type"].to_numpy() == "new").astype(float)[order]
    new_mask = sp.csr_matrix((is_new, c[order], indptr), shape=shape)
    pools = origins["origin_pool"].to_numpy(dtype=float)
    if s.pool == "non_beneficiaries":
        pools = pools - origins["origin_esc_beneficiaries"].to_numpy(dtype=float)
    pools = np.clip(pools, 0, None)
    caps = scenario_capacities(
        s, schools["destination_slots"], schools["destination_billed"], schools.index
    )
    design = _design(model, p)
    if design is not None:
        design = (np.asfortranarray(design[0], dtype=float), np.ascontiguousarray(design[1], dtype=float))
    work = DrawWork(
        name=s.name, method=s.method, design=design,
        predict=None if design is not None else (model, p, model.params.index),
        order=order, indices=c[order].astype(np.int32), indptr=indptr, shape=shape,
        pools=pools[rows], caps=caps[cols].astype(float), new_mask=new_mask,
    )
    return _Prepared(s, p, rows, cols, pools, caps, work)


def _relief_matrix(bundle, origin_ids):
    """(R, public_total, jhs) : origin share of flows to each public JHS, JHS table."""
    from studentflow.congestion import jhs_congestion

    jhs = jhs_congestion(bundle)
    jhs = jhs[jhs["jhs_seats"].astype(float) > 0]
    f = bundle.flows
    f = f[f["destination_id"].isin(jhs.index) & f["origin_id"].isin(origin_ids)]
    o_pos = pd.Index(origin_ids).get_indexer(f["origin_id"])
    j_pos = jhs.index.get_indexer(f["destination_id"])
    flows = sp.csr_matrix(
        (f["learners"].to_numpy(dtype=float), (o_pos, j_pos)), shape=(len(origin_ids), len(jhs))
    )
    total = np.asarray(flows.sum(axis=1)).ravel()
    share = sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)) @ flows
    return share.tocsr(), total, jhs


def _relief_metrics(name, o_out, obs_origin, relief):
    """Per-draw relief totals and the per-JHS table of one scenario.

    Each origin's whole-learner placements above its observed ESC beneficiaries (at most
    its learners in public JHS) are taken out of its public JHS in proportion to its
    observed flows.
    """
    share, public_total, jhs = relief
    extra = np.minimum(np.clip(o_out - obs_origin, 0, None), public_total)
    relieved = np.asarray(share.T @ extra.T).T  # draws × JHS, learners
    enrol = jhs["jhs_enrolment"].to_numpy(dtype=float)
    seats = jhs["jhs_seats"].to_numpy(dtype=float)
    after = enrol - relieved
    metrics = {
        "relieved": relieved.sum(axis=1),
        "aisle_after": np.clip(after - seats, 0, None).sum(axis=1),
        "congested_after": (after / seats > 1).sum(axis=1),
    }
    m, lo, hi = interval(relieved)
    table = pd.DataFrame({
        "scenario": name, "school_id": jhs.index.to_numpy(), "jhs_seats": seats,
        "enrolment_before": enrol, "utilisation_before": enrol / seats,
        "aisle_before": np.clip(enrol - seats, 0, None),
        "relieved_mean": m, "relieved_lo": lo, "relieved_hi": hi,
        "utilisation_after_mean": (enrol - m) / seats,
        "aisle_after_mean": np.clip(after - seats, 0, None).mean(axis=0),
        "congested_after_share": (after / seats > 1).mean(axis=0),
    })
    return metrics, table


def _esc_table(name, placed, caps, school_ids) -> pd.DataFrame:
    """Per ESC school: slots, placed (mean and 95 % interval), utilisation, share of draws full."""
    m, lo, hi = interval(placed)
    slots = caps.astype(float)
    return pd.DataFrame({
        "scenario": name, "school_id": school_ids.to_numpy(), "slots": caps,
        "placed_mean": m, "placed_lo": lo, "placed_hi": hi,
        "utilisation_mean": np.divide(m, slots, out=np.full_like(m, np.nan), where=slots > 0),
        "full_share": (placed >= caps).mean(axis=0),
    })


# ---------------------------------------------------------------- the run
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
) -> ScenarioResult:
    """Run policy scenarios with Monte Carlo over the gravity coefficients.

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
        Replacement for :func:`studentflow.allocation.allocate` (same signature and
        result contract), e.g. for experiments with other allocators. Must be picklable
        (a module-level function) when ``client`` is given.
    client : dask.distributed.Client or str, optional
        Run the (scenario, draw) allocations on this Dask cluster (a Client, or a
        scheduler address such as ``"tcp://10.0.0.5:8786"``); see
        :mod:`studentflow.distributed`. Results are identical to the single-process run
        with the same seed. None (default): run here; Dask is not imported.

    Returns
    -------
    ScenarioResult
    """
    from tqdm.auto import tqdm

    if isinstance(scenarios, (str, Path)):
        scenarios = load_scenarios(scenarios)
    elif isinstance(scenarios, Scenario):
        scenarios = [scenarios]
    scenarios = list(scenarios)
    if not scenarios:
        raise ValueError("run_scenarios: scenarios is empty")
    if len({s.name for s in scenarios}) != len(scenarios):
        raise ValueError("run_scenarios: scenario names must be unique")
    if not isinstance(draws, (int, np.integer)) or draws < 0:
        raise ValueError(f"run_scenarios: draws must be a non-negative integer, got {draws!r}")
    if pairs is None:
        if bundle is None or distances is None:
            raise ValueError("run_scenarios: give pairs=, or both bundle and distances= to build them")
        from studentflow.pairs import build_pairs

        pairs = build_pairs(bundle, distances)
    require_columns(pairs, PAIR_COLUMNS, name="run_scenarios(pairs=...)")
    if pairs.empty:
        raise DataError("run_scenarios(pairs=...): the pair table is empty")
    base = baseline_of(scenarios)

    # global origin / school index over every scenario's pair table
    tables = [scenario_pairs(s, pairs, bundle, distances) for s in scenarios if s.radius_km]
    allp = pd.concat([pairs, *tables], ignore_index=True) if tables else pairs
    origins = allp.groupby("origin_id", sort=True)[
        ["origin_pool", "origin_esc_beneficiaries", "origin_feeds_congested"]
    ].first()
    schools = allp.groupby("destination_id", sort=True)[["destination_slots", "destination_billed"]].first()
    origin_pos = pd.Series(np.arange(len(origins)), index=origins.index)
    school_pos = pd.Series(np.arange(len(schools)), index=schools.index)
    feeds = origins["origin_feeds_congested"].to_numpy(dtype=bool)
    obs_origin = origins["origin_esc_beneficiaries"].to_numpy(dtype=float)
    observed = int(pairs["esc_beneficiaries"].sum())

    if draws == 0:
        params = model.params.to_frame().T.reset_index(drop=True)
    else:
        params = model.draw_params(draws, seed)[list(model.params.index)].reset_index(drop=True)
    n_draws = len(params)
    seeds = [draw_seed(seed, d) for d in range(n_draws)]
    relief = _relief_matrix(bundle, origins.index) if bundle is not None else None

    preps = [_prepare(s, pairs, bundle, distances, model, origin_pos, school_pos, origins, schools)
             for s in scenarios]
    show = sys.stderr.isatty() if progress is None else bool(progress)
    betas = params.to_numpy(dtype=float)
    if client is not None:
        from studentflow.distributed import run_draws

        outcomes = run_draws(client, [p.work for p in preps], betas, seeds, allocator=allocator, progress=show)
    else:
        bar = tqdm(total=n_draws * len(preps), desc="scenario draws", unit="draw", disable=not show)
        outcomes = []
        for prep in preps:
            outs = []
            for d in range(n_draws):
                outs += simulate_draws(prep.work, betas[d], [d], [seeds[d]], allocator)
                bar.update(1)
            outcomes.append(outs)
        bar.close()
    origin_placed, school_placed, origin_expected, records, jhs_rows = {}, {}, {}, [], []
    for prep, outs in zip(preps, outcomes):
        s = prep.scenario
        o_out = np.zeros((n_draws, len(origins)), dtype=np.int64)
        o_exp = np.zeros((n_draws, len(origins)))
        s_out = np.zeros((n_draws, len(schools)), dtype=np.int64)
        o_out[:, prep.rows] = np.stack([o.origin_placed for o in outs])
        o_exp[:, prep.rows] = np.stack([o.origin_expected for o in outs])
        s_out[:, prep.cols] = np.stack([o.school_placed for o in outs])
        expected = np.array([o.expected for o in outs])
        new_placed = np.array([o.new_placed for o in outs])
        origin_placed[s.name], school_placed[s.name], origin_expected[s.name] = o_out, s_out, o_exp
        placed = o_out.sum(axis=1).astype(float)
        safe = np.where(placed > 0, placed, np.nan)
        rec = pd.DataFrame({
            "scenario": s.name, "draw": np.arange(n_draws), "placed": placed,
            "placed_expected": expected, "vs_observed": placed - observed,
            "vs_observed_pct": 100 * (placed - observed) / max(observed, 1),
            "share_congested": np.nan_to_num(o_out[:, feeds].sum(axis=1) / safe),
            "share_new_pairs": np.nan_to_num(new_placed / safe),
            "slot_utilisation": placed / max(prep.caps.sum(), 1),
        })
        if relief is not None:
            metrics, jhs_table = _relief_metrics(s.name, o_out, obs_origin, relief)
            rec = rec.assign(**metrics)
            jhs_rows.append(jhs_table)
        records.append(rec)

    per_draw = pd.concat(records, ignore_index=True)
    base_placed = per_draw.loc[per_draw["scenario"] == base.name, "placed"].to_numpy()
    per_draw["vs_baseline"] = per_draw["placed"] - np.tile(base_placed, len(preps))
    per_draw["vs_baseline_pct"] = 100 * per_draw["vs_baseline"] / np.tile(np.maximum(base_placed, 1), len(preps))
    if "relieved" in per_draw:  # paired by draw: the scenario's own effect, not draw noise
        base_relieved = per_draw.loc[per_draw["scenario"] == base.name, "relieved"].to_numpy()
        per_draw["relieved_vs_baseline"] = per_draw["relieved"] - np.tile(base_relieved, len(preps))
    displaced = []
    for s in scenarios:
        # on expected (unrounded) placements, so rounding noise is not counted as displacement
        ref = origin_expected[s.compare_to or base.name]
        displaced.append(np.clip(ref - origin_expected[s.name], 0, None).sum(axis=1))
    per_draw["displaced"] = np.concatenate(displaced).astype(float)

    table = summarise_draws(per_draw)
    table.insert(1, "description", [s.description for s in scenarios])
    table.insert(2, "levers", [s.summary().split(": ", 1)[1] for s in scenarios])
    table.insert(3, "slots", [int(p.caps.sum()) for p in preps])
    table.insert(4, "observed_esc", observed)
    if relief is not None:
        jhs = relief[2]
        table.insert(5, "aisle_before", float(np.clip(jhs["jhs_enrolment"] - jhs["jhs_seats"], 0, None).sum()))
        table.insert(6, "congested_before", int((jhs["jhs_enrolment"] / jhs["jhs_seats"] > 1).sum()))

    esc_rows = [_esc_table(p.scenario.name, school_placed[p.scenario.name], p.caps, schools.index)
                for p in preps]
    return ScenarioResult(
        scenarios=tuple(scenarios), baseline=base.name, draws=n_draws, seed=seed,
        observed_esc=observed, table=table, per_draw=per_draw,
        esc_schools=pd.concat(esc_rows, ignore_index=True),
        public_jhs=pd.concat(jhs_rows, ignore_index=True) if jhs_rows else pd.DataFrame(),
        origin_ids=origins.index.to_numpy(), school_ids=schools.index.to_numpy(),
        origin_placed=origin_placed, school_placed=school_placed, origin_expected=origin_expected,
        pools={p.scenario.name: p.pools for p in preps},
        capacities={p.scenario.name: p.caps for p in preps}, params=params,
    )
