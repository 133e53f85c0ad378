"""Old flat module paths (``studentflow.gravity_fast`` …), kept for one release.

Until 0.2 the modules of the flat layout still import: each old name is an alias of the
module that replaced it (the same module object, private names included), and importing
it raises a :class:`DeprecationWarning` that names the new path. Nothing in the package
imports an old path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module → the module that replaced it
MOVED = {
    "studentflow.allocation_balance": "studentflow.allocation.balance",
    "studentflow.allocation_integer": "studentflow.allocation.integer",
    "studentflow.allocation_kernels": "studentflow.allocation.kernels",
    "studentflow.allocation_plan": "studentflow.allocation.plan",
    "studentflow.geo_network": "studentflow.geo.network",
    "studentflow.geo_matrix": "studentflow.geo.matrix",
    "studentflow.geo_dask": "studentflow.geo.blocks_dask",
    "studentflow.gravity_design": "studentflow.gravity.design",
    "studentflow.gravity_fast": "studentflow.gravity.newton",
    "studentflow.gravity_metrics": "studentflow.gravity.metrics",
    "studentflow.gravity_model": "studentflow.gravity.model",
    "studentflow.scenario_spec": "studentflow.scenarios.spec",
    "studentflow.scenario_levers": "studentflow.scenarios.levers",
    "studentflow.scenario_draws": "studentflow.scenarios.draws",
    "studentflow.scenario_result": "studentflow.scenarios.result",
    "studentflow.distributed": "studentflow.scenarios.sweep_dask",
    "studentflow.report_figures": "studentflow.report.figures",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names; loading one puts the new module in its place in sys.modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None  # a throw-away module; exec_module replaces it

    def exec_module(self, module) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}; the old path goes in studentflow 0.2",
                      DeprecationWarning, stacklevel=2)
        # importlib takes whatever sys.modules holds after exec_module: the real module
        sys.modules[module.__name__] = importlib.import_module(new)


def install() -> None:
    """Register the finder once (called by ``studentflow/__init__.py``)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
