"""Optimize: where a budget of pesos relieves most learners from congested public JHS.

Sits above :mod:`studentflow.scenarios` (it uses the scenarios' levers and design to
build its problem) and below the report and the CLI.

- :func:`optimize` (:mod:`.budget`) → :class:`OptimizeResult` (``plan.csv``,
  ``frontier.csv``); also callable as ``studentflow.optimize(...)``.
- :class:`Problem`, :class:`State`, :func:`evaluate` (:mod:`.problem`): the status quo as
  arrays and the exact re-solve of a change to it; :func:`build_problem`
  (:mod:`.build`) makes one from a bundle and a model.
- :class:`Action`, :func:`make_actions` (:mod:`.actions`): slots, subsidies (uniform,
  tier, catchment), public seats; the dual estimates that rank them.
- :func:`search` (:mod:`.search`): the greedy path in batches (:mod:`.walk`) and the
  plans it saw (:mod:`.plans`: :class:`Plan`, :func:`best_within`, the budget rule
  :func:`fits`); exact re-solves of small changes (:mod:`.delta`), on a Dask cluster
  where full (:mod:`.context`).
- :class:`Levers`, :func:`load_levers` (:mod:`.levers`): the levers TOML.
"""

import sys
import types

from studentflow.optimize.actions import Action, make_actions
from studentflow.optimize.budget import OptimizeResult, frontier_table, optimize, plan_table
from studentflow.optimize.build import build_problem
from studentflow.optimize.levers import Levers, load_levers
from studentflow.optimize.problem import Evaluation, Problem, State, evaluate
from studentflow.optimize.plans import fits
from studentflow.optimize.search import Plan, best_within, search

__all__ = [
    "Action", "Evaluation", "Levers", "OptimizeResult", "Plan", "Problem", "State", "best_within",
    "build_problem", "evaluate", "fits", "frontier_table", "load_levers", "make_actions", "optimize",
    "plan_table", "search",
]


class _CallableModule(types.ModuleType):
    """``studentflow.optimize`` is this package once imported (Python binds a submodule
    to its parent's attribute); calling it calls :func:`optimize`."""

    def __call__(self, *args, **kwargs):
        return optimize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
