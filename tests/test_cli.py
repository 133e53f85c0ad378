"""The studentflow command: help, run on the sample, determinism, clean errors, make-sample."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from studentflow.cli import main
from studentflow.scenarios.spec import load_scenarios, study_scenarios

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = {"report.html", "scenarios.csv", "esc_schools.csv", "public_jhs.csv", "schools.gpkg", "ledger.csv",
           "sources.csv", "model.txt", "fig_coefficients.png", "fig_placed.png", "fig_utilisation.png",
           "fig_map.png", "run.json", "esc_origins.csv.gz", "jhs_destinations.csv.gz"}


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "studentflow.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sample_dir):
    """The sample run twice with the same seed and few draws: the built-in default
    scenarios, then the same scenarios from scenarios/study.toml."""
    out = {}
    for name, extra in (("a", []), ("b", ["--scenarios", str(REPO / "scenarios" / "study.toml")])):
        d = tmp_path_factory.mktemp(f"run_{name}")
        err, std = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            code = main(["run", "--out", str(d), "--draws", "3", "--seed", "3", "--no-progress", *extra])
        out[name] = (code, d, err.getvalue(), std.getvalue())
    return out


def test_help_lists_commands():
    res = _cli("--help")
    assert res.returncode == 0
    assert "run" in res.stdout and "make-sample" in res.stdout
    res = _cli("run", "--help")
    for flag in ("--data", "--scenarios", "--out", "--draws", "--seed", "--zeros"):
        assert flag in res.stdout


def test_run_on_sample_writes_every_output(runs):
    code, out, _, _ = runs["a"]
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert OUTPUTS <= names
    assert not [n for n in names if n.startswith(".")]
    table = pd.read_csv(out / "scenarios.csv")
    assert list(table["scenario"]) == [s.name for s in study_scenarios()]
    assert (table["placed_mean"] <= table["slots"]).all()
    ledger = pd.read_csv(out / "ledger.csv", dtype=str)
    assert len(ledger) and set(ledger.columns) >= {"source", "file", "row", "action", "reason"}
    assert "synthetic truth" in (out / "report.html").read_text(encoding="utf-8")  # sample has truth/
    model = (out / "model.txt").read_text()
    assert "zero-truncated" in model and "study" in model


def test_same_seed_identical_outputs(runs):
    a, b = runs["a"][1], runs["b"][1]
    for name in ("scenarios.csv", "esc_schools.csv", "public_jhs.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_cli_outputs_do_not_need_the_per_draw_arrays(runs, tmp_path):
    """`studentflow run` keeps no per-draw arrays (flat memory for long scenario files);
    the API run that keeps them writes the same tables."""
    from studentflow.pipeline import run_pipeline

    res = run_pipeline(None, out_dir=tmp_path, draws=3, seed=3, progress=False)
    assert res.result.origin_placed  # kept by default in the API
    for name in ("scenarios.csv", "esc_schools.csv", "public_jhs.csv"):
        assert (tmp_path / name).read_bytes() == (runs["a"][1] / name).read_bytes(), name


def test_progress_lines_and_timings(runs):
    _, _, err, std = runs["a"]
    for k, stage in enumerate(("ingest", "distances", "pairs", "fit", "scenarios", "report"), start=1):
        assert f"[{k}/6] {stage} done in" in err
    assert err.index("[1/6] ingest done") < err.index("[2/6] distances ...")
    assert "stage timings" in std and "total" in std and "net cost -20K" in std


def test_synthetic_truth_found_only_beside_a_manifest(sample_dir, tmp_path):
    from studentflow.pipeline import synthetic_truth

    truth = synthetic_truth(sample_dir / "manifest.toml")
    assert truth["log1p_distance_km"] == pytest.approx(-0.4496) and "alpha" in truth
    (tmp_path / "manifest.toml").write_text("")
    assert synthetic_truth(tmp_path / "manifest.toml") is None


def test_study_toml_matches_builtin_default():
    assert load_scenarios(REPO / "scenarios" / "study.toml") == study_scenarios()


def test_bad_input_one_line_exit_2(tmp_path):
    res = _cli("run", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "manifest not found" in res.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scenario]]\nname = "x"\nadd_slots = -3\n')
    res = _cli("run", "--scenarios", str(bad), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "bad.toml" in res.stderr and "'add_slots'" in res.stderr and "non-negative integer" in res.stderr
    assert not (tmp_path / "o" / "report.html").exists()


def test_make_sample_writes_a_loadable_region(tmp_path):
    from studentflow.ingest import load_bundle

    assert main(["make-sample", str(tmp_path / "r"), "--seed", "2", "--scale", "0.05"]) == 0
    bundle = load_bundle(tmp_path / "r" / "manifest.toml")
    assert len(bundle.schools) > 50 and bundle.flows["learners"].sum() > 0
    assert main(["make-sample", str(tmp_path / "r2"), "--scale", "-1"]) == 2


def test_failure_after_ingest_keeps_ledger_and_no_report(tmp_path, sample_dir, monkeypatch, capsys):
    import studentflow.pipeline as pipeline
    from studentflow.errors import DataError

    def broken_fit(*args, **kwargs):
        raise DataError("pairs: column 'distance_km' row 7 is not a number")

    monkeypatch.setattr(pipeline, "fit_models", broken_fit)
    (tmp_path / "report.html").write_text("<html>an older run</html>")
    (tmp_path / "run.json").write_text('{"tool": "studentflow", "status": "complete"}')  # made by studentflow
    code = main(["run", "--data", str(sample_dir / "manifest.toml"), "--out", str(tmp_path), "--draws", "1",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "studentflow: error: pairs: column 'distance_km' row 7" in err
    assert (tmp_path / "ledger.csv").exists() and (tmp_path / "sources.csv").exists()
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "scenarios.csv").exists()
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "failed" and "row 7 is not a number" in record["error"]


def test_study_estimator_reproduces_the_papers_shape(sample_dir):
    """Under the study's NB2 on positives, slots bind and +1K → +20K adds little (paper-facts.md)."""
    from studentflow.pipeline import run_pipeline

    res = run_pipeline(sample_dir / "manifest.toml", draws=0, zeros="drop", write=False, progress=False,
                       calibrate=False, fit_years="latest")  # the study's method as it was: one year, no calibration
    assert len(res.models) == 1 and not res.comparisons
    t = res.result.table.set_index("scenario")
    lo, hi = t.loc["net cost -1K", "placed_mean"], t.loc["net cost -20K", "placed_mean"]
    assert 0 <= (hi - lo) / lo < 0.05
    assert hi / t.loc["net cost -20K", "slots"] > 0.9
    assert t.loc["fill contracted slots", "placed_mean"] > t.loc["status quo", "placed_mean"]


def test_include_estimator_fits_on_the_within_radius_candidates(sample_dir):
    """zeros="include" must fit on an outcome-independent candidate set, not the study's."""
    import json

    from studentflow.pairs import build_pairs
    from studentflow.pipeline import run_pipeline

    res = run_pipeline(sample_dir / "manifest.toml", draws=0, zeros="include", write=False, progress=False,
                       fit_years="latest")  # the latest year's radius set (the pooled fit stacks every year's)
    model = next(iter(res.models.values()))
    radius = build_pairs(res.bundle, res.distances, candidates="radius")
    assert model.nobs == int(radius["within_radius"].sum()) != len(res.pairs)
    truth = json.loads((sample_dir / "truth" / "params.json").read_text())["params"]["log1p_distance_km"]
    est = model.params.filter(like="distance").iloc[0]
    se = model.bse.filter(like="distance").iloc[0]
    assert abs(est - truth) < 3 * se
