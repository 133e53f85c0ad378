"""The package tree reads as the pipeline: imports only go down, no circles, small modules."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "studentflow"

#: Floors from the top; a unit may import its own floor's support units or any lower
#: floor, never a higher one (the pipeline: ingest → pairs → gravity → allocation →
#: scenarios → report; cli and pipeline on top).
FLOORS = [
    {"cli"},
    {"explore"},
    {"pipeline", "optimize", "validate", "optimize_run", "backtesting", "next_year"},
    {"report"},
    {"scenarios"},
    {"allocation"},
    {"gravity"},
    {"pairs"},
    {"ingest", "synth", "congestion"},
    {"geo", "schema", "paths"},
    {"dask_client"},
    {"errors", "_compat", "malloc", "forked"},
]
FLOOR = {unit: k for k, units in enumerate(FLOORS) for unit in units}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["studentflow", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(modules: dict[str, Path]) -> nx.DiGraph:
    """Module → module edges of every import, function-level (lazy) ones included."""
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("studentflow"):
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets = subs or [node.module]  # "from studentflow import geo" imports geo, not the root
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("studentflow")]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_circles_between_modules():
    graph = _imports(_modules())
    # a package's __init__ importing its own modules is how it names its API: not a circle
    graph.remove_edges_from([(a, b) for a, b in graph.edges if b.startswith(a + ".")])
    assert list(nx.simple_cycles(graph)) == []


def test_every_import_goes_down_the_pipeline():
    modules = _modules()
    units = {_unit(m) for m in modules} - {""}
    assert units <= set(FLOOR), f"place these in FLOORS: {sorted(units - set(FLOOR))}"
    up = [(a, b) for a, b in _imports(modules).edges
          if _unit(a) and _unit(b) and FLOOR[_unit(b)] < FLOOR[_unit(a)]]
    assert up == []


def test_the_floors_check_catches_an_upward_import():
    graph = nx.DiGraph([("studentflow.gravity.fit", "studentflow.scenarios.run")])
    assert [(a, b) for a, b in graph.edges if FLOOR[_unit(b)] < FLOOR[_unit(a)]]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_each_stage_package_names_its_public_api():
    for stage in ("ingest", "geo", "gravity", "allocation", "scenarios", "report", "synth"):
        mod = importlib.import_module(f"studentflow.{stage}")
        assert mod.__doc__ and getattr(mod, "__all__", None), stage
        assert all(getattr(mod, name, None) is not None for name in mod.__all__), stage


@pytest.mark.parametrize("old, new", [
    ("studentflow.gravity_fast", "studentflow.gravity.newton"),
    ("studentflow.allocation_integer", "studentflow.allocation.integer"),
    ("studentflow.scenario_spec", "studentflow.scenarios.spec"),
    ("studentflow.geo_network", "studentflow.geo.network"),
    ("studentflow.distributed", "studentflow.scenarios.sweep_dask"),
    ("studentflow.report_figures", "studentflow.report.figures"),
])
def test_old_flat_paths_still_import_with_a_deprecation_warning(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(new)  # the same module: private names and patches too


def test_old_names_of_stage_modules_keep_their_functions():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from studentflow.geo import road_distances  # noqa: F401 - was the flat geo.py
        from studentflow.gravity import STUDY_FORMULA, fit_gravity  # noqa: F401
        from studentflow.scenario_draws import draw_seed
        from studentflow.scenarios import Scenario, run_scenarios  # noqa: F401
    assert draw_seed(0, 1) == importlib.import_module("studentflow.scenarios.draws").draw_seed(0, 1)


def test_package_imports_without_any_old_path():
    code = ("import warnings, sys; warnings.simplefilter('error', DeprecationWarning); "
            "import studentflow.pipeline, studentflow.cli, studentflow.scenarios, studentflow.report.figures; "
            "from studentflow import _compat; "
            "assert not set(_compat.MOVED) & set(sys.modules), set(_compat.MOVED) & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_subpackage_is_listed_for_installation():
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(["studentflow", *p.parent.relative_to(PACKAGE).parts]) for p in PACKAGE.rglob("__init__.py")}
    assert found - listed == set()
