"""studentflow explore without a browser: the levers are checked, an answer equals
``run_scenarios`` for the same scenario, seed and draws, and a saved scenario file runs
again with the same figures."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from studentflow.errors import DataError
from studentflow.explore import LeverError, levers_from_scenarios, parse_levers, scenario_toml, start_session
from studentflow.explore.levers import SLOTS_MAX, SUBSIDY_MAX, Levers, levers_scenario
from studentflow.scenarios import load_scenarios, run_scenarios
from studentflow.scenarios.levers import scenario_capacities

AMOUNTS = {"all": 9000.0, "NCR": 13000.0, "HUC": 11000.0, "other": 9000.0}
SLOTS = {"100001": (40, 50), "100002": (0, 10)}


@pytest.fixture(scope="module")
def session():
    return start_session(draws=5, seed=3)


def test_levers_in_range_pass_and_out_of_range_name_the_field():
    lv = parse_levers({"subsidy": {"NCR": "5,000", "all": "₱1000", "HUC": ""}, "slots": {"100001": "-40"},
                       "capacity": "billed"}, amounts=AMOUNTS, slots=SLOTS)
    assert lv.subsidy == {"NCR": 5000.0, "all": 1000.0} and lv.slots == {"100001": -40}
    cases = [({"subsidy": {"NCR": "abc"}}, "NCR schools: 'abc' is not a number"),
             ({"subsidy": {"NCR": "-13001"}}, "out of range"),
             ({"subsidy": {"other": str(SUBSIDY_MAX + 1)}}, "out of range"),
             ({"subsidy": {"all": "nan"}}, "not a finite number"),
             ({"slots": {"999999": "5"}}, "'999999' is not the ID of an ESC school"),
             ({"slots": {"100001": "2.5"}}, "not a whole number"),
             ({"slots": {"100001": "-41"}}, "has 40 billed slots"),
             ({"capacity": "everything"}, "capacity: 'everything' is not one of")]
    for raw, words in cases:
        with pytest.raises(LeverError, match=words.replace("(", r"\(")):
            parse_levers(raw, amounts=AMOUNTS, slots=SLOTS)
    # contracted capacity bounds a cut by the contracted slots
    assert parse_levers({"slots": {"100001": "-50"}, "capacity": "contracted"}, amounts=AMOUNTS,
                        slots=SLOTS).slots == {"100001": -50}


@settings(max_examples=60)
@given(all_=st.integers(-9000, 50_000), ncr=st.integers(-13000, 50_000),
       slots=st.dictionaries(st.sampled_from(["100001", "100002"]), st.integers(0, SLOTS_MAX), max_size=2),
       at=st.dictionaries(st.sampled_from(["100001", "100002"]), st.integers(-9000, 50_000), max_size=2),
       capacity=st.sampled_from(["billed", "contracted"]))
def test_scenario_file_round_trip(tmp_path_factory, all_, ncr, slots, at, capacity):
    lv = parse_levers({"subsidy": {"all": all_, "NCR": ncr}, "slots": slots, "subsidy_at": at, "capacity": capacity},
                      amounts=AMOUNTS, slots=SLOTS)
    path = tmp_path_factory.mktemp("toml") / "explored.toml"
    path.write_text(scenario_toml(lv), encoding="utf-8")
    scenarios = load_scenarios(path)
    assert scenarios[0].baseline and scenarios[0].capacity == "billed"
    assert scenarios[1] == levers_scenario(lv)
    assert levers_from_scenarios(scenarios) == lv


def test_add_slots_at_changes_only_those_schools():
    ids = np.array(["100001", "100002", "100003"])
    s = levers_scenario(Levers(slots={"100001": 5, "100003": -100}))
    caps = scenario_capacities(s, [50, 60, 70], [40, 50, 60], ids)
    assert caps.tolist() == [45, 50, 0]
    with pytest.raises(DataError, match="'100009' is not an ESC school"):
        scenario_capacities(levers_scenario(Levers(slots={"100009": 5})), [1], [1], ids[:1])


def test_unsupported_scenario_levers_are_named(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[scenario]]\nname = "t"\nsubsidy_targeted = {revenue_quantile = 0.25, amount = 5000}\n')
    with pytest.raises(LeverError, match="subsidy_targeted"):
        levers_from_scenarios(load_scenarios(path))


def test_answer_equals_run_scenarios(session):
    """The page's figures are run_scenarios' for the same scenario, seed and draws
    (the calibration computed once at start gives the same result as computing it anew)."""
    lv = session.levers({"subsidy": {"NCR": "5000"}, "slots": {session.schools.index[0]: "30"}})
    ans = session.answer(lv)
    ref = run_scenarios(session.bundle, session.model, [levers_scenario(lv).__class__(
        "status quo", baseline=True, capacity="billed"), levers_scenario(lv)], pairs=session.pairs,
        draws=5, seed=3, progress=False).table.set_index("scenario").loc["explored"]
    for key, fig in ans.figures.items():
        assert fig["value"] == pytest.approx(ref[f"{key}_mean"], rel=1e-9)
        assert fig["lo"] == pytest.approx(ref[f"{key}_lo"], rel=1e-9)
        assert fig["hi"] == pytest.approx(ref[f"{key}_hi"], rel=1e-9)
    assert ans.figures["placed"]["value"] > ans.figures["placed"]["status_quo"]  # +₱5K places more
    point = session.answer(lv, draws=0)
    assert point.figures["placed"]["lo"] is None and point.draws == 0
    assert list(point.public_jhs["relieved_vs_baseline_mean"]) == sorted(point.public_jhs["relieved_vs_baseline_mean"],
                                                                         reverse=True)
    assert "learners placed" in ans.summary()
