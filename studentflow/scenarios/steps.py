"""The steps of :func:`studentflow.scenarios.run.run_scenarios` before its sweep: check the
scenarios and options, pick the pair table, calibrate, index, draw the coefficients and
the per-draw pools and demands, and order the scenarios (plain functions, no state)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.scenarios.calibrate import calibrate_status_quo
from studentflow.scenarios.draws import draw_seed
from studentflow.scenarios.spec import Scenario, baseline_of, load_scenarios
from studentflow.schema import require_columns

__all__: list[str] = []

#: The pair-table columns a run reads (a PairTable has more).
PAIR_COLUMNS = (
    "origin_id", "destination_id", "pair_type", "esc_beneficiaries", "distance_km",
    "tuition", "esc_amount", "net_cost_k", "origin_lgu_revenue", "origin_pool",
    "origin_esc_beneficiaries", "destination_slots", "destination_billed",
    "origin_feeds_congested",
)


def _scenario_list(scenarios) -> list[Scenario]:
    """Scenarios as a non-empty list with unique names (a path is read as TOML)."""
    if isinstance(scenarios, (str, Path)):
        scenarios = load_scenarios(scenarios)
    elif isinstance(scenarios, Scenario):
        scenarios = [scenarios]
    scenarios = list(scenarios)
    if not scenarios:
        raise ValueError("run_scenarios: scenarios is empty")
    if len({s.name for s in scenarios}) != len(scenarios):
        raise ValueError("run_scenarios: scenario names must be unique")
    return scenarios


def _check_options(draws, in_flight, keep_draws):
    """Validate ``draws`` and ``in_flight``; ``keep_draws`` as a bool or a directory."""
    if not isinstance(draws, (int, np.integer)) or draws < 0:
        raise ValueError(f"run_scenarios: draws must be a non-negative integer, got {draws!r}")
    if not isinstance(in_flight, (int, np.integer)) or in_flight < 1:
        raise ValueError(f"run_scenarios: in_flight must be an integer >= 1, got {in_flight!r}")
    if keep_draws is None or isinstance(keep_draws, (bool, np.bool_)):
        return bool(keep_draws)
    if not Path(keep_draws).is_dir():
        raise ValueError(f"run_scenarios: keep_draws={str(keep_draws)!r} is not a directory")
    return keep_draws


def _threads(threads) -> int:
    """Draw threads of a local sweep: ``threads``, or the cores (at most 2) when None."""
    if threads is None:
        return max(1, min(2, os.cpu_count() or 1))
    if not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"run_scenarios: threads must be an integer >= 1, got {threads!r}")
    return int(threads)


def _pair_table(pairs, bundle, distances) -> pd.DataFrame:
    """The run's PairTable: the one given (checked), or built from bundle and distances."""
    if pairs is None:
        if bundle is None or distances is None:
            raise ValueError("run_scenarios: give pairs=, or both bundle and distances= to build them")
        from studentflow.pairs import build_pairs

        pairs = build_pairs(bundle, distances)
    require_columns(pairs, PAIR_COLUMNS, name="run_scenarios(pairs=...)")
    if pairs.empty:
        raise DataError("run_scenarios(pairs=...): the pair table is empty")
    return pairs


def _demand_draws(calibration, schools, n, seed, latent_demand=None):
    """Draws × global schools: multipliers of full schools' calibrated demand (else 1);
    None without latent demand (``latent_demand`` None: on for the "posterior" rule)."""
    if latent_demand is None:
        latent_demand = calibration is not None and calibration.capacity_rule == "posterior"
    if not latent_demand or calibration is None or "p_full" not in calibration.schools:
        return None
    from studentflow.scenarios.latent import demand_multipliers

    return demand_multipliers(calibration, schools.index, n, seed)


def _pool_draws(pool_draws, origins, n):
    """Pools per draw × global origin (learners), or None."""
    if pool_draws is None:
        return None
    frame = pd.DataFrame(pool_draws)
    if len(frame) < n:
        raise ValueError(f"run_scenarios: pool_draws has {len(frame)} rows for {n} draws")
    frame = frame.iloc[:n].set_axis(frame.columns.astype(str), axis=1).reindex(columns=origins.index.astype(str))
    base = origins["origin_pool"].to_numpy(dtype=float)
    return np.where(frame.isna().to_numpy(), base[None, :], frame.to_numpy(dtype=float))


def _comparisons(scenarios) -> tuple[Scenario, dict[str, str]]:
    """The baseline and, per scenario name, the name of the scenario it is compared with."""
    base = baseline_of(scenarios)
    names = {s.name for s in scenarios}
    ref_of = {s.name: s.compare_to or base.name for s in scenarios}
    for s in scenarios:
        if ref_of[s.name] not in names:
            raise ValueError(f"run_scenarios: scenario {s.name!r}: compare_to={s.compare_to!r} is not a scenario")
    return base, ref_of


def _calibration(calibrate, model, tables, base, bundle):
    """The calibrated status quo every scenario runs on (None: the model as fitted)."""
    if calibrate is True or isinstance(calibrate, str):
        return calibrate_status_quo(model, tables.for_scenario(base, bundle), dataclasses.replace(
            base, subsidy=0.0, subsidy_by_tier={}, subsidy_targeted=None, subsidy_at={}, radius_km=None),
            bundle=bundle, capacity_bound="auto" if calibrate is True else calibrate)
    if calibrate is False or calibrate is None:
        return None
    if not hasattr(calibrate, "factor_of"):
        raise ValueError(f"run_scenarios: calibrate must be True, False or a Calibration, got {calibrate!r}")
    return calibrate


def _coefficient_draws(model, draws: int, seed: int):
    """(params DataFrame, betas array, per-draw seeds); ``draws=0``: the point estimate once."""
    if draws == 0:
        params = model.params.to_frame().T.reset_index(drop=True)
    else:
        params = model.draw_params(draws, seed)[list(model.params.index)].reset_index(drop=True)
    return params, params.to_numpy(dtype=float), [draw_seed(seed, d) for d in range(len(params))]


def _run_order(scenarios, base, ref_of) -> list[int]:
    """Scenarios others compare with run first (the baseline first of all), so each other
    scenario's expected flows are summarised as soon as it finishes, never held for the
    whole sweep, and the baseline's per-draw relief pairs with every other scenario's."""
    refs = set(ref_of.values())
    rank = {s.name: (s.name != base.name, s.name not in refs) for s in scenarios}
    return sorted(range(len(scenarios)), key=lambda i: rank[scenarios[i].name])


@dataclasses.dataclass(frozen=True)
class _PointRun:
    """One other model's point estimate in a run (``run_scenarios(points=...)``)."""

    model: object
    calibration: object
    params: pd.DataFrame
    betas: np.ndarray
    seeds: list
    demand: np.ndarray | None  # draws × global schools, the latent demand multipliers


def _point_runs(points, tables, base, bundle, schools, seed) -> dict:
    """Label → :class:`_PointRun`: what ``run_scenarios(draws=0, calibrate=...)`` would set
    up for each ``(model, calibrate)`` of ``points`` before its sweep."""
    out = {}
    for label, spec in (points or {}).items():
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(f"run_scenarios: points[{label!r}] must be a (model, calibrate) pair, got {spec!r}")
        model, calibrate = spec
        calibration = _calibration(calibrate, model, tables, base, bundle)
        params, betas, seeds = _coefficient_draws(model, 0, seed)
        out[label] = _PointRun(model, calibration, params, betas, seeds, _demand_draws(calibration, schools, 1, seed))
    return out
