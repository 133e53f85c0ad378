"""End-to-end validation against the synthetic world's truth (scripts/validate_scenarios.py).

The sample's true scenario answers are simulated from truth/ (latent NB2 demand, capacity
rationing); the package predicts them from the raw files alone. The consistent estimator
must track the truth's scenario effects far better than the study's positive-only NB2.
"""

import importlib.util
import warnings
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "validate_scenarios.py"


@pytest.fixture(scope="module")
def validation(sample_dir):
    spec = importlib.util.spec_from_file_location("validate_scenarios", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with warnings.catch_warnings():  # the study's fit may hit alpha = 0 and say so
        warnings.simplefilter("ignore")
        table = mod.compare(sample_dir, draws=4, log=lambda *_: None)
    return mod, table


def test_truncated_model_tracks_true_scenario_effects(validation):
    mod, table = validation
    truth_change = table["truth vs status quo"].drop(index="status quo").abs().mean()
    assert mod.change_error(table, "truncate") < 0.35 * truth_change
    assert mod.change_error(table, "truncate") < 0.5 * mod.change_error(table, "drop")


def test_truth_is_monotone_in_subsidy(validation):
    _, table = validation
    subsidy = table.loc[[i for i in table.index if i.startswith("net cost")], "truth"]
    assert subsidy.is_monotonic_increasing
