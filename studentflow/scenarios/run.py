"""Subsidy and slot scenarios with Monte Carlo over the gravity coefficients.

For each scenario and draw d = 1..D:

1. a coefficient vector β_d is drawn from the fitted model (``model.draw_params``);
2. expected flows μ_ij = exp(x_ij β_d) are computed on the scenario's pair table
   (the design matrix X is built once per scenario; each draw is one ``X @ β``);
3. the capacity-constrained allocator (:func:`studentflow.allocation.solve.allocate`) scales
   μ to the origin pools and school slots, on a sparse origin × ESC-school matrix whose
   structure is built once per scenario (only its data vector changes per draw);
4. the allocation is rounded to whole learners (``Allocation.to_integer``) and the
   metrics of :data:`studentflow.scenarios.result.DRAW_METRICS` are recorded.

Every scenario uses the same coefficient draws and the same rounding seeds (common
random numbers), so differences between scenarios are not blurred by sampling noise.

Scenarios run one at a time (on Dask, at most ``in_flight`` at once): a scenario's work
unit is built when it runs and dropped after, and only its summaries (and the per-draw
arrays ``keep_draws`` asks for) are kept, so a sweep's memory does not grow with its
number of scenarios beyond those summaries.

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
from studentflow.scenarios.draws import DrawWork, draw_seed, simulate_draws
from studentflow.scenarios.drill import pair_positions, scenario_tables
from studentflow.scenarios.result import (
    ScenarioResult, esc_table, relief_matrix, relief_metrics, summarise_draws,
)
from studentflow.scenarios.spec import Scenario, baseline_of, load_scenarios
from studentflow.scenarios.levers import scenario_capacities, scenario_pairs
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
            from studentflow.gravity.model import design_matrix

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


def _prepare(s: Scenario, pairs, bundle, distances, model, origin_pos, school_pos, origins, schools,
             keep_pairs: bool = False):
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
        pools=pools[rows], caps=caps[cols].astype(float), new_mask=new_mask, keep_pairs=keep_pairs,
    )
    return _Prepared(s, p, rows, cols, pools, caps, work)


# ---------------------------------------------------------------- the run
@dataclass(frozen=True)
class _Kept:
    """What outlives a scenario's work unit: its constraints and local→global positions."""

    scenario: Scenario
    rows: np.ndarray
    cols: np.ndarray
    pools: np.ndarray
    caps: np.ndarray
    pair_positions: tuple | None = None  # (local rows, local cols, observed ESC) per data position


def _global_index(pairs, scenarios, bundle, distances):
    """(origins, schools): one row per origin / ESC school over every scenario's pairs,
    built one widened pair table at a time (first non-null value, in table order)."""
    o_cols = ["origin_pool", "origin_esc_beneficiaries", "origin_feeds_congested"]
    s_cols = ["destination_slots", "destination_billed"]
    o_parts = [pairs.groupby("origin_id", sort=False)[o_cols].first()]
    s_parts = [pairs.groupby("destination_id", sort=False)[s_cols].first()]
    for s in scenarios:
        if s.radius_km:
            p = scenario_pairs(s, pairs, bundle, distances)
            o_parts.append(p.groupby("origin_id", sort=False)[o_cols].first())
            s_parts.append(p.groupby("destination_id", sort=False)[s_cols].first())
            del p
    origins = pd.concat(o_parts).groupby(level=0, sort=True).first()
    schools = pd.concat(s_parts).groupby(level=0, sort=True).first()
    origins.index.name, schools.index.name = "origin_id", "destination_id"
    return origins, schools


def _local_sweep(make, order, betas, seeds, allocator, bar):
    """Yield ``(i, kept, outcomes)`` per scenario, building each work unit only when it runs."""
    for i in order:
        work, kept = make(i)
        outs = []
        for d in range(len(betas)):
            outs += simulate_draws(work, betas[d], [d], [seeds[d]], allocator)
            bar.update(1)
        del work
        yield i, kept, outs


def _keep_array(keep, arr, i, kind):
    """The per-draw array as the result keeps it: in memory, as a read-only memmap of an
    ``.npy`` file in the directory ``keep``, or not at all (``keep`` False)."""
    if keep is True:
        return arr
    if keep is False:
        return None
    path = Path(keep) / f"scenario{i:05d}_{kind}.npy"
    np.save(path, arr)
    return np.load(path, mmap_mode="r")


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
    keep_draws=True,
    in_flight: int = 2,
    school_flows: bool = False,
) -> ScenarioResult:
    """Run policy scenarios with Monte Carlo over the gravity coefficients.

    Scenarios run one after another: each scenario's work unit (design matrix, sparse
    structure) is built when it runs and dropped after, and only its summaries (and the
    per-draw arrays ``keep_draws`` asks for) are kept, so a sweep of hundreds of
    scenarios needs the memory of one (plus its summaries).

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
        Replacement for :func:`studentflow.allocation.solve.allocate` (same signature and
        result contract), e.g. for experiments with other allocators. Must be picklable
        (a module-level function) when ``client`` is given.
    client : dask.distributed.Client or str, optional
        Run the (scenario, draw) allocations on this Dask cluster (a Client, or a
        scheduler address such as ``"tcp://10.0.0.5:8786"``); see
        :mod:`studentflow.scenarios.sweep_dask`. Results are identical to the single-process run
        with the same seed. None (default): run here; Dask is not imported.
    keep_draws : bool or path
        Per-draw arrays of the result (``origin_placed``, ``school_placed``,
        ``origin_expected``; about 80 MB per scenario × 100 draws at national size):
        True keeps them in memory, a directory path writes them there as ``.npy`` files
        and keeps read-only memory maps, False keeps none (those dicts are empty; every
        table is the same). Use False or a directory for sweeps of many scenarios.
    in_flight : int
        With ``client``: at most this many scenarios' work units on the cluster at once
        (each is sent to every worker), >= 1.
    school_flows : bool
        Also summarise per-school drill-down tables (``result.esc_origins``: where each ESC
        school's learners come from; ``result.jhs_destinations``: where each public JHS's
        Grade 7 learners go), see :mod:`studentflow.scenarios.drill`. Holds one scenario's
        draws × pairs whole placements (int32) while it is summarised.

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
    if not isinstance(in_flight, (int, np.integer)) or in_flight < 1:
        raise ValueError(f"run_scenarios: in_flight must be an integer >= 1, got {in_flight!r}")
    if keep_draws is None or isinstance(keep_draws, (bool, np.bool_)):
        keep_draws = bool(keep_draws)
    elif not Path(keep_draws).is_dir():
        raise ValueError(f"run_scenarios: keep_draws={str(keep_draws)!r} is not a directory")
    if pairs is None:
        if bundle is None or distances is None:
            raise ValueError("run_scenarios: give pairs=, or both bundle and distances= to build them")
        from studentflow.pairs import build_pairs

        pairs = build_pairs(bundle, distances)
    require_columns(pairs, PAIR_COLUMNS, name="run_scenarios(pairs=...)")
    if pairs.empty:
        raise DataError("run_scenarios(pairs=...): the pair table is empty")
    base = baseline_of(scenarios)
    names = {s.name for s in scenarios}
    ref_of = {s.name: s.compare_to or base.name for s in scenarios}
    for s in scenarios:
        if ref_of[s.name] not in names:
            raise ValueError(f"run_scenarios: scenario {s.name!r}: compare_to={s.compare_to!r} is not a scenario")

    origins, schools = _global_index(pairs, scenarios, bundle, distances)
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
    relief = relief_matrix(bundle, origins.index) if bundle is not None else None
    show = sys.stderr.isatty() if progress is None else bool(progress)
    betas = params.to_numpy(dtype=float)

    def make(i):
        prep = _prepare(scenarios[i], pairs, bundle, distances, model, origin_pos, school_pos, origins, schools,
                        keep_pairs=school_flows)
        positions = pair_positions(prep.work, prep.pairs) if school_flows else None
        return prep.work, _Kept(prep.scenario, prep.rows, prep.cols, prep.pools, prep.caps, positions)

    # scenarios others compare with run first, so each other scenario's expected flows
    # are summarised as soon as it finishes and never held for the whole sweep
    # (the baseline first of all: its per-draw relief pairs with every other scenario's)
    refs = set(ref_of.values())
    rank = {s.name: (s.name != base.name, s.name not in refs) for s in scenarios}
    order = sorted(range(len(scenarios)), key=lambda i: rank[scenarios[i].name])
    if client is not None:
        from studentflow.scenarios.sweep_dask import run_sweep

        stream = run_sweep(client, make, order, betas, seeds, allocator=allocator, progress=show,
                           in_flight=int(in_flight))
        bar = None
    else:
        bar = tqdm(total=n_draws * len(scenarios), desc="scenario draws", unit="draw", disable=not show)
        stream = _local_sweep(make, order, betas, seeds, allocator, bar)

    kept, records, jhs_rows, esc_rows, arrays, drill = {}, {}, {}, {}, {}, {}
    base_by_jhs = None  # the baseline's relief, draws × public JHS (learners)
    ref_expected, waiting, displaced = {}, {}, {}
    for i, k, outs in stream:
        s = k.scenario
        o_out = np.zeros((n_draws, len(origins)), dtype=np.int32)
        o_exp = np.zeros((n_draws, len(origins)))
        s_out = np.zeros((n_draws, len(schools)), dtype=np.int32)
        o_out[:, k.rows] = np.stack([o.origin_placed for o in outs])
        o_exp[:, k.rows] = np.stack([o.origin_expected for o in outs])
        s_out[:, k.cols] = np.stack([o.school_placed for o in outs])
        expected = np.array([o.expected for o in outs])
        new_placed = np.array([o.new_placed for o in outs])
        if school_flows:
            drill[i] = scenario_tables(s.name, k.rows, k.cols, k.pair_positions,
                                       np.stack([o.pair_placed for o in outs]), o_out, obs_origin, relief,
                                       origins.index, schools.index)
        del outs
        placed = o_out.sum(axis=1).astype(float)
        safe = np.where(placed > 0, placed, np.nan)
        rec = pd.DataFrame({
            "scenario": s.name, "draw": np.arange(n_draws), "placed": placed,
            "placed_expected": expected, "vs_observed": placed - observed,
            "vs_observed_pct": 100 * (placed - observed) / max(observed, 1),
            "share_congested": np.nan_to_num(o_out[:, feeds].sum(axis=1) / safe),
            "share_new_pairs": np.nan_to_num(new_placed / safe),
            "slot_utilisation": placed / max(k.caps.sum(), 1),
        })
        if relief is not None:
            metrics, jhs_rows[i], by_jhs = relief_metrics(s.name, o_out, obs_origin, relief, base_by_jhs,
                                                          is_baseline=s.name == base.name)
            base_by_jhs = by_jhs if s.name == base.name else base_by_jhs
            rec = rec.assign(**metrics)
        records[i], kept[i] = rec, k
        esc_rows[i] = esc_table(s.name, s_out, k.caps, schools.index)
        # displaced: on expected (unrounded) placements, so rounding noise is not counted
        if s.name in refs:
            ref_expected[s.name] = o_exp
        waiting[s.name] = o_exp
        for name in [n for n in waiting if ref_of[n] in ref_expected]:
            displaced[name] = np.clip(ref_expected[ref_of[name]] - waiting.pop(name), 0, None).sum(axis=1)
        arrays[i] = (_keep_array(keep_draws, o_out, i, "origin_placed"),
                     _keep_array(keep_draws, s_out, i, "school_placed"),
                     _keep_array(keep_draws, o_exp, i, "origin_expected"))
        del o_out, o_exp, s_out
    if bar is not None:
        bar.close()

    idx = range(len(scenarios))
    per_draw = pd.concat([records[i] for i in idx], ignore_index=True)
    base_placed = per_draw.loc[per_draw["scenario"] == base.name, "placed"].to_numpy()
    per_draw["vs_baseline"] = per_draw["placed"] - np.tile(base_placed, len(scenarios))
    per_draw["vs_baseline_pct"] = 100 * per_draw["vs_baseline"] / np.tile(np.maximum(base_placed, 1), len(scenarios))
    if "relieved" in per_draw:  # paired by draw: the scenario's own effect, not draw noise
        base_relieved = per_draw.loc[per_draw["scenario"] == base.name, "relieved"].to_numpy()
        per_draw["relieved_vs_baseline"] = per_draw["relieved"] - np.tile(base_relieved, len(scenarios))
    per_draw["displaced"] = np.concatenate([displaced[s.name] for s in scenarios]).astype(float)

    table = summarise_draws(per_draw)
    table.insert(1, "description", [s.description for s in scenarios])
    table.insert(2, "levers", [s.summary().split(": ", 1)[1] for s in scenarios])
    table.insert(3, "slots", [int(kept[i].caps.sum()) for i in idx])
    table.insert(4, "observed_esc", observed)
    if relief is not None:
        jhs = relief[2]
        table.insert(5, "aisle_before", float(np.clip(jhs["jhs_enrolment"] - jhs["jhs_seats"], 0, None).sum()))
        table.insert(6, "congested_before", int((jhs["jhs_enrolment"] / jhs["jhs_seats"] > 1).sum()))

    def draw_dict(j):
        return {} if keep_draws is False else {s.name: arrays[i][j] for i, s in enumerate(scenarios)}

    return ScenarioResult(
        scenarios=tuple(scenarios), baseline=base.name, draws=n_draws, seed=seed,
        observed_esc=observed, table=table, per_draw=per_draw,
        esc_schools=pd.concat([esc_rows[i] for i in idx], ignore_index=True),
        public_jhs=pd.concat([jhs_rows[i] for i in idx], ignore_index=True) if jhs_rows else pd.DataFrame(),
        origin_ids=origins.index.to_numpy(), school_ids=schools.index.to_numpy(),
        origin_placed=draw_dict(0), school_placed=draw_dict(1), origin_expected=draw_dict(2),
        pools={s.name: kept[i].pools for i, s in enumerate(scenarios)},
        capacities={s.name: kept[i].caps for i, s in enumerate(scenarios)}, params=params,
        esc_origins=pd.concat([drill[i][0] for i in idx], ignore_index=True) if drill else pd.DataFrame(),
        jhs_destinations=(pd.concat([drill[i][1] for i in idx], ignore_index=True)
                          if drill and relief is not None else pd.DataFrame()),
    )

