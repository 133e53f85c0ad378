"""The policy-report notebook runs top to bottom on the sample (with this interpreter)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "policy_report.ipynb"


def test_committed_notebook_has_no_outputs_and_matches_builder():
    sys.path.insert(0, str(REPO / "notebooks"))
    try:
        from build_policy_report import build
    finally:
        sys.path.pop(0)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")
    assert [c.source for c in nb.cells] == [c.source for c in build().cells]


@pytest.mark.slow
def test_notebook_executes(tmp_path, monkeypatch, sample_dir):
    # a kernelspec named python3 that runs *this* interpreter, found first on JUPYTER_PATH
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "studentflow test kernel", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('KERNEL', sys.executable)"))
    client = NotebookClient(nb, kernel_name="python3", timeout=180,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # coefficients, placed vs subsidy, map
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Raising the subsidy from +1K to +20K" in text
    assert (tmp_path / "policy_report_output" / "report.html").exists()
    assert len(images) >= 6  # ... the cost-effectiveness and budget frontier figures, the backtest
    assert "studentflow optimize: budget" in text  # the budget plan's summary
    assert (tmp_path / "policy_report_output" / "plan.csv").exists()
    assert "Backtest: fitted on" in text and "change in ESC placements observed" in text  # the backtest
    assert (tmp_path / "policy_report_output" / "backtest.csv").exists()
    assert f"KERNEL {sys.executable}" in text  # the kernel ran this interpreter
