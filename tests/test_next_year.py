"""Planning the next school year: forecast pools, drawn per Monte Carlo draw, outputs naming the year."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from studentflow.cli import main
from studentflow.next_year import plan_next_year
from studentflow.scenarios.spec import Scenario


@pytest.fixture(scope="module")
def fitted(small_region):
    from studentflow.ingest import load_bundle
    from studentflow.pairs import build_pairs
    from studentflow.pipeline import compute_distances, fit_models

    bundle = load_bundle(small_region / "manifest.toml")
    pairs = build_pairs(bundle, compute_distances(bundle))
    model = next(iter(fit_models(pairs).values()))
    return bundle, pairs, model


SCENARIOS = [Scenario("status quo", baseline=True, capacity="billed"), Scenario("fill", capacity="contracted")]


def _placed(result, name="fill"):
    return result.table.set_index("scenario").loc[name, ["placed_mean", "placed_lo", "placed_hi"]].to_numpy(float)


def test_pool_draws_equal_to_the_pools_change_nothing_and_halved_pools_place_fewer(fitted):
    from studentflow.scenarios.run import run_scenarios

    bundle, pairs, model = fitted
    plan = plan_next_year([bundle], model, pairs, draws=4, seed=0)
    base = run_scenarios(bundle, model, SCENARIOS, pairs=plan.pairs, draws=4, seed=2, calibrate=plan.calibration)
    pools = plan.pairs.groupby("origin_id")["origin_pool"].first()
    same = pd.DataFrame(np.tile(pools.to_numpy(float), (4, 1)), columns=pools.index)
    again = run_scenarios(bundle, model, SCENARIOS, pairs=plan.pairs, draws=4, seed=2, calibrate=plan.calibration,
                          pool_draws=same)
    pd.testing.assert_frame_equal(base.table, again.table)
    half = run_scenarios(bundle, model, SCENARIOS, pairs=plan.pairs, draws=4, seed=2, calibrate=plan.calibration,
                         pool_draws=same * 0.5)
    assert _placed(half)[0] < _placed(base)[0]


def test_the_plan_calibrates_on_the_latest_year_and_moves_the_pools(fitted):
    bundle, pairs, model = fitted
    plan = plan_next_year([bundle], model, pairs, draws=50, seed=0)
    # calibrated on the actual pools: the status quo gives back the observed placements
    assert plan.calibration.calibrated == pytest.approx(plan.calibration.observed, rel=1e-3)
    g6 = bundle.schools["enrol_g6"].reindex(plan.pairs["origin_id"]).fillna(0).to_numpy()
    moved = plan.pairs["origin_pool"].to_numpy()
    assert np.corrcoef(g6, moved)[0, 1] > 0.9  # next year's pools follow this year's Grade 6
    spread = plan.pool_draws.sum(axis=1)
    assert spread.std() > 0  # the pools' uncertainty reaches the draws
    assert abs(spread.mean() - plan.pairs.groupby("origin_id")["origin_pool"].first().sum()) < 4 * spread.std()


def _cli(*args):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_run_and_optimize_for_the_next_year_name_the_year(small_region, tmp_path):
    code, out, err = _cli("run", "--data", str(small_region), "--for-year", "next", "--draws", "3",
                          "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 0, err
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    year = record["forecast_school_year"]
    assert record["command_line"].endswith("--for-year next")  # the command line rebuilds the run
    assert year and f"forecast for school year {year}" in out
    table = pd.read_csv(tmp_path / "run" / "scenarios.csv")
    assert set(table["school_year"]) == {year}
    assert f"Forecast for school year {year}" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    code, out, err = _cli("optimize", "--data", str(small_region), "--budget", "2000000", "--for-year", "next",
                          "--draws", "2", "--out", str(tmp_path / "opt"))
    assert code == 0, err
    assert f"plan for school year {year}" in out
    assert set(pd.read_csv(tmp_path / "opt" / "plan.csv")["school_year"]) <= {year}
    assert year in (tmp_path / "opt" / "optimize.html").read_text(encoding="utf-8")
    record = json.loads((tmp_path / "opt" / "run.json").read_text())
    assert record["forecast_school_year"] == year and "--for-year next" in record["command_line"]


def test_optimize_plans_on_next_years_pools(fitted):
    """The README's by-hand plan: sf.optimize on the forecast pools, calibrated on the latest year."""
    import studentflow as sf

    bundle, pairs, model = fitted
    plan = plan_next_year([bundle], model, pairs, draws=2, seed=0)
    best = sf.optimize(bundle, model, budget=1_000_000, pairs=plan.pairs, calibrate=plan.calibration, draws=2,
                       pool_draws=plan.pool_draws)
    assert best.cost[0] <= 1_000_000 * 1.05 and best.relief[0] >= 0
    assert len(best.plan_table) > 0
    assert best.problem.pools.shape == (2, best.problem.shape[0])  # each draw with its own forecast pools
