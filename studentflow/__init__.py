"""studentflow: learner-flow modelling for school decongestion.

Pipeline (one way): ingest -> pairs -> gravity -> allocation -> scenarios -> report.
Public names are imported lazily so that ``studentflow.allocation`` stays importable
with numpy/scipy alone.
"""

from __future__ import annotations

from importlib import import_module

from studentflow import _compat
from studentflow.errors import DataError

_compat.install()  # old flat module paths keep importing, with a DeprecationWarning

__version__ = "0.1.0"

_PUBLIC = {
    "load_bundle": "studentflow.ingest",
    "load_panel": "studentflow.ingest",
    "manifest_years": "studentflow.ingest",
    "Bundle": "studentflow.schema",
    "Panel": "studentflow.schema",
    "road_distances": "studentflow.geo",
    "build_pairs": "studentflow.pairs",
    "with_subsidy": "studentflow.pairs",
    "fit_gravity": "studentflow.gravity",
    "compare_models": "studentflow.gravity",
    "fit_panel_gravity": "studentflow.gravity",
    "build_panel_pairs": "studentflow.gravity",
    "pooled_fit": "studentflow.gravity",
    "capacity_bound_years": "studentflow.gravity",
    "allocate": "studentflow.allocation",
    "Allocation": "studentflow.allocation",
    "GravityModel": "studentflow.gravity",
    "Scenario": "studentflow.scenarios",
    "ScenarioResult": "studentflow.scenarios",
    "load_scenarios": "studentflow.scenarios",
    "run_scenarios": "studentflow.scenarios",
    "optimize": "studentflow.optimize",
    "write_report": "studentflow.report",
    "make_region": "studentflow.synth",
    "run_pipeline": "studentflow.pipeline",
    "backtest": "studentflow.backtesting",
    "BacktestResult": "studentflow.backtesting",
}

__all__ = ["DataError", "__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'studentflow' has no attribute {name!r}")
