"""The CLI on a multi-region synthetic area with the default formula: collinear region
dummies are dropped with a note (stderr, model.txt, report), and --formula errors are one line."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studentflow.cli import main

REPO = Path(__file__).resolve().parents[1]
#: Two island regions (no pair crosses their borders): their destination dummies equal
#: the origin ones.
REGIONS = ("NCR", "Region III", "Region IV-A", "MIMAROPA", "Region VIII")
ISLANDS = ("MIMAROPA", "Region VIII")


def _main(*args) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def multi_region(tmp_path_factory) -> Path:
    """About 600 institutions over five PSGC regions, two of them islands."""
    from studentflow.synth import make_region

    out = tmp_path_factory.mktemp("multi_region")
    make_region(seed=1, scale=0.2, out_dir=out, regions=REGIONS)
    return out / "manifest.toml"


def _dropped_notes(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if "note:" in line and "dropped term" in line]


@pytest.mark.slow
def test_run_and_optimize_name_the_dropped_region_terms(multi_region, tmp_path):
    out = tmp_path / "run"
    code, _, err = _main("run", "--data", str(multi_region), "--max-km", "15", "--draws", "5", "--out", str(out),
                         "--no-progress")
    assert code == 0, err
    notes = _dropped_notes(err)
    for island in ISLANDS:
        assert any(f"destination {island}" in n and f"collinear with origin {island}" in n for n in notes), notes
    model_txt = (out / "model.txt").read_text(encoding="utf-8")
    assert "Dropped terms" in model_txt
    assert all(f"destination {i}: collinear with origin {i}" in model_txt for i in ISLANDS)
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Terms dropped from the fit" in report
    assert all(f"destination {i}: collinear with origin {i}" in report for i in ISLANDS)

    code, stdout, err = _main("optimize", "--data", str(multi_region), "--max-km", "15", "--radius-km", "5",
                              "--budget", "2000000", "--draws", "2", "--out", str(tmp_path / "opt"))
    assert code == 0, err
    assert {n.split("note: ", 1)[1] for n in _dropped_notes(err)} == \
        {n.split("note: ", 1)[1] for n in notes}
    assert "studentflow optimize" in stdout and (tmp_path / "opt" / "plan.csv").is_file()


def test_unknown_formula_column_is_one_line_exit_2(tmp_path):
    bad = "esc_beneficiaries ~ np.log1p(distanse_km) + esc_rating"
    res = subprocess.run([sys.executable, "-m", "studentflow.cli", "run", "--out", str(tmp_path / "o"),
                          "--formula", bad], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    runs = [(res.returncode, res.stderr)]
    for command in (["optimize", "--budget", "1000", "--out", str(tmp_path / "o")], ["validate"]):
        code, _, err = _main(*command, "--formula", bad)
        runs.append((code, err))
    for code, err in runs:
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err
        assert "--formula" in lines[0] and "'np.log1p(distanse_km)'" in lines[0] and "'distanse_km'" in lines[0]
        assert "columns available:" in lines[0] and "distance_km" in lines[0]
    assert not (tmp_path / "o").exists()  # failed before any work


def test_data_options_are_shared_by_the_fitting_commands():
    for command in ("run", "optimize", "validate"):
        help_text = io.StringIO()
        with contextlib.redirect_stdout(help_text), pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = help_text.getvalue()
        for flag in ("--max-km", "--radius-km", "--formula", "--zeros"):
            assert flag in help_text, (command, flag)
    code, _, err = _main("optimize", "--budget", "1", "--max-km", "2", "--radius-km", "5")
    assert code == 2 and "--max-km: must be >= --radius-km" in err


@pytest.mark.slow
def test_readme_formula_command(multi_region, tmp_path):
    """The README's --formula example, on the multi-region area: one region term, so no
    term is dropped."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(studentflow run --data DIR[^`]*--formula[^`]*)```", readme)[1]
    argv = shlex.split(block.replace("\\\n", " "))[1:]
    argv = [str(multi_region) if a == "DIR" else "2" if prev == "--draws" else a
            for prev, a in zip([""] + argv, argv)]
    code, _, err = _main(*argv, "--out", str(tmp_path / "o"), "--no-progress")
    assert code == 0, err
    assert _dropped_notes(err) == []
    model_txt = (tmp_path / "o" / "model.txt").read_text(encoding="utf-8")
    assert "origin MIMAROPA" in model_txt and "destination" not in model_txt
