"""Scenarios: subsidy and slot levers simulated with Monte Carlo draws.

- :class:`Scenario`, :func:`load_scenarios`, :func:`study_scenarios` (:mod:`.spec`):
  scenarios as data (TOML).
- :func:`run_scenarios` (:mod:`.run`) → :class:`ScenarioResult` (:mod:`.result`).
- :func:`scenario_pairs`, :func:`scenario_capacities` (:mod:`.levers`): a scenario as a
  change to the pair table and to the slots.

Internals: :mod:`.draws` (one block of draws), :mod:`.sweep_dask` (draw blocks as Dask
tasks, imported only with a client).
"""

from studentflow.scenarios.spec import Scenario, load_scenarios, study_scenarios
from studentflow.scenarios.levers import scenario_capacities, scenario_pairs
from studentflow.scenarios.result import ScenarioResult
from studentflow.scenarios.run import run_scenarios

__all__ = [
    "Scenario", "ScenarioResult", "load_scenarios", "run_scenarios", "scenario_capacities",
    "scenario_pairs", "study_scenarios",
]
