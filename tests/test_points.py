"""Other estimators' point estimates on a run's own work units (``run_scenarios(points=...)``):
each is the result of its own ``draws=0`` run, field for field."""

from __future__ import annotations

import warnings

import pytest

from studentflow.gravity import NESTED_FORMULAS, fit_gravity
from studentflow.gravity.direct import same_plan
from studentflow.pairs import build_pairs
from studentflow.pipeline import compute_distances, fit_models
from studentflow.scenarios import run_scenarios
from studentflow.scenarios.spec import Scenario, study_scenarios

from test_scenarios import _assert_same


@pytest.fixture(scope="module")
def fitted(sample_bundle):
    pairs = build_pairs(sample_bundle, compute_distances(sample_bundle))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = list(fit_models(pairs).items())
        other = fit_gravity(pairs, NESTED_FORMULAS["+ rating"])  # fewer terms: a design of its own
    return pairs, models, other


@pytest.mark.parametrize("threads", [1, 2])
def test_point_estimates_on_shared_work_units_equal_their_own_runs(sample_bundle, fitted, threads, monkeypatch):
    import studentflow.scenarios.run as sc

    pairs, models, other = fitted
    (main_label, main), (study_label, study) = models
    assert same_plan(main.design_info, study.design_info)  # their design is shared
    assert not same_plan(main.design_info, other.design_info)  # this one's is built anew
    monkeypatch.setattr(sc, "THREAD_MIN_PAIRS", 0)  # the pipelined sweep on threads, however small
    scenarios = [*study_scenarios()[:3], Scenario("near", radius_km=3.0)]
    points = {study_label: (study, True), "used, as fitted": (main, False), "fewer terms": (other, True),
              "posterior": (study, "posterior")}
    kw = dict(pairs=pairs, seed=7, progress=False)
    res = run_scenarios(sample_bundle, main, scenarios, draws=3, threads=threads, points=points, **kw)
    alone = run_scenarios(sample_bundle, main, scenarios, draws=3, threads=threads, **kw)
    _assert_same(res, alone)  # the main run is untouched
    assert alone.points == {} and list(res.points) == list(points)
    for label, (model, calibrate) in points.items():
        own = run_scenarios(sample_bundle, model, scenarios, draws=0, calibrate=calibrate, keep_draws=False, **kw)
        _assert_same(res.points[label], own)
        a, b = res.points[label].calibration, own.calibration
        assert (a is None) == (b is None)
        if a is not None:
            assert a.capacity_rule == b.capacity_rule and a.schools.equals(b.schools)


def test_point_specs_must_be_model_and_calibrate_pairs(sample_bundle, fitted):
    pairs, models, _ = fitted
    with pytest.raises(ValueError, match="points"):
        run_scenarios(sample_bundle, models[0][1], study_scenarios()[:1], pairs=pairs, draws=0, progress=False,
                      points={"x": models[1][1]})
