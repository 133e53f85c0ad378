"""Several school years at ingest (issue 21): a manifest with years gives one bundle per
year and a panel linking them; the same school under two IDs is one school; 7-digit old
IDs named by the crosswalk are remapped, not dropped; every row of every year is accounted for."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.cli import main
from studentflow.errors import DataError
from studentflow.ingest import CheckReport, check_manifest, load_bundle, load_panel, manifest_years
from studentflow.ingest.learners import read_source
from studentflow.ingest.manifest import Source
from studentflow.ingest.years import source_years, year_sources
from test_ingest_sample import _raw_rows

OLD, NEW = "2022-2023", "2023-2024"
YEARLY_IN_SAMPLE = ("enrollment", "transitions", "esc_beneficiaries")
#: school-ID columns of the sample's files (header text), per kind
ID_COLUMNS = {"enrollment": ("BEIS School ID",), "coordinates": ("School ID",),
              "transitions": ("BEIS School ID in Grade 6", "BEIS School ID in Grade 7"),
              "esc_beneficiaries": ("deped id",), "esc_slots": ("DepEd School ID",)}


# ------------------------------------------------------------------ fixture writers
def _swap(cell, old_of: dict):
    """``cell`` with the school ID it holds replaced by its old ID, keeping how it is written
    (" 404547 ", "415053.0", "36512" stay padded, floats, zero-less); None if not listed."""
    text = str(cell)
    core = re.sub(r"\.0*$", "", text.strip())
    sid = core.zfill(6) if re.fullmatch(r"\d{5,6}", core) else None
    return text.replace(core, old_of[sid], 1) if sid in old_of else None


def _sub_csv(src: Path, dst: Path, columns, old_of: dict) -> int:
    """Copy a (gzipped) CSV replacing IDs of ``old_of`` in ``columns``; the cells replaced."""
    opener = gzip.open if src.name.endswith(".gz") else open
    with opener(src, "rt", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    idx = [rows[0].index(c) for c in columns if c in rows[0]]
    n = 0
    for r in rows[1:]:
        for j in idx:
            if j < len(r) and (new := _swap(r[j], old_of)) is not None:
                r[j], n = new, n + 1
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    with opener(dst, "wt", encoding="utf-8", newline="") as fh:
        fh.write(out.getvalue())
    return n


def _sub_xlsx(src: Path, dst: Path, sheet, column: str, old_of: dict) -> int:
    wb = openpyxl.load_workbook(src)
    ws = wb[sheet] if sheet else wb.worksheets[0]
    h = next(i for i, r in enumerate(ws.iter_rows(values_only=True), start=1) if column in {str(v) for v in r})
    col = [str(c.value) for c in ws[h]].index(column) + 1
    n = 0
    for i in range(h + 1, ws.max_row + 1):
        cell = ws.cell(row=i, column=col)
        if cell.value is not None and (new := _swap(cell.value, old_of)) is not None:
            cell.value, n = new, n + 1
    wb.save(dst)
    return n


def _toml(entries) -> str:
    return "\n".join("[[source]]\n" + "".join(f'{k} = "{v}"\n' for k, v in e.items()) for e in entries)


def _copy_sample(sample_dir: Path, out: Path) -> list[dict]:
    for p in sample_dir.iterdir():
        if p.is_file() and p.name != "manifest.toml":
            shutil.copy(p, out / p.name)
    src = tomllib.loads((sample_dir / "manifest.toml").read_text())["source"]
    # the sample's latest year and shared sources (without its own crosswalk of earlier years' IDs)
    latest = max((e["school_year"] for e in src if "school_year" in e), default=None)
    keep = [e for e in src if e.get("school_year", latest) == latest and e["kind"] != "school_id_crosswalk"]
    # as the one-year sample wrote them: only enrolment and the learner files carry the year
    return [{k: v for k, v in e.items() if k != "school_year" or e["kind"] in YEARLY_IN_SAMPLE} for e in keep]


def _old_ids(sample_dir: Path, bundle, seed: int) -> dict:
    """40 schools (20 of them ESC) → an old ID: 7-digit ``1XXXXXX`` twins for half, free
    6-digit IDs (named in no file) for the other half."""
    taken = set()
    for p in sample_dir.glob("*.csv*"):
        text = gzip.open(p, "rt").read() if p.name.endswith(".gz") else p.read_text(encoding="utf-8")
        taken |= set(re.findall(r"(?<!\d)\d{6,7}(?!\d)", text))
    rng = np.random.default_rng(seed)
    s = bundle.schools[bundle.schools.geometry.notna()]  # each has a coordinates row
    chosen = list(rng.choice(sorted(s.index[s["esc"]]), 20, replace=False)) + list(
        rng.choice(sorted(s.index[~s["esc"]]), 20, replace=False))
    free = iter(f"{n:06d}" for n in rng.permutation(np.arange(900_000, 1_000_000)) if f"{n:06d}" not in taken)
    return {sid: ("1" + sid if k % 2 == 0 else next(free)) for k, sid in enumerate(chosen)}


# ------------------------------------------------------------------ 7-digit old IDs (the fix)
@pytest.fixture(scope="module")
def seven(sample_dir, sample_bundle, tmp_path_factory):
    """The sample with 40 schools under 7-digit old IDs in the coordinates, the ESC slots'
    DepEd ID column, the NCR transitions and billing, and the road matrix index."""
    out = tmp_path_factory.mktemp("seven")
    entries = _copy_sample(sample_dir, out)
    old_of = {sid: "1" + sid for sid in _old_ids(sample_dir, sample_bundle, 21)}
    hits = {"coordinates": _sub_csv(sample_dir / "school_coordinates.csv", out / "school_coordinates.csv",
                                    ID_COLUMNS["coordinates"], old_of),
            "esc_slots": _sub_xlsx(sample_dir / "esc_slots.xlsx", out / "esc_slots.xlsx", "ESC Slots",
                                   "DepEd School ID", old_of)}
    for name, kind in (("gr7_enrollees_ncr.csv.gz", "transitions"), ("esc_billing_ncr.csv", "esc_beneficiaries")):
        hits[kind] = _sub_csv(sample_dir / name, out / name, ID_COLUMNS[kind], old_of)
    index = json.loads((sample_dir / "road_matrix_index.json").read_text())
    for key in ("rows", "cols"):
        index[key] = {old_of.get(k, k): v for k, v in index[key].items()}
    (out / "road_matrix_index.json").write_text(json.dumps(index))
    # DepEd's mapping as Excel leaves it: some IDs as floats
    (out / "map.csv").write_text("old_school_id,school_id_2024\n" + "".join(
        f"{o}{'.0' if k % 3 == 0 else ''},{n}\n" for k, (n, o) in enumerate(old_of.items())))
    entries.append({"kind": "school_id_crosswalk", "path": "map.csv"})
    (out / "manifest.toml").write_text(_toml(entries).replace('path = "map.csv"\n', 'path = "map.csv"\n'
                                       '[source.columns]\nold_id = "old_school_id"\nnew_id = "school_id_2024"\n'))
    return out / "manifest.toml", old_of, hits


def test_seven_digit_old_ids_are_remapped_not_dropped(seven, sample_bundle):
    manifest, old_of, hits = seven
    assert hits["coordinates"] >= 40 and min(hits.values()) > 0  # a school may have two coordinate rows
    b = load_bundle(manifest)
    a = sample_bundle
    pd.testing.assert_frame_equal(b.schools.drop(columns="geometry"), a.schools.drop(columns="geometry"))
    assert b.schools.geometry.equals(a.schools.geometry)
    for t in ("flows", "areas", "subsidy"):
        pd.testing.assert_frame_equal(getattr(b, t), getattr(a, t))
    # the ledger is the sample's plus one remapped row per ID replaced (none dropped as invalid)
    rem = b.ledger["action"] == "remapped"
    pd.testing.assert_frame_equal(b.ledger[~rem & (b.ledger["file"] != "map.csv")].reset_index(drop=True),
                                  a.ledger)
    named = b.ledger.loc[rem, "reason"].str.extract(r"school ID (\d+) replaced by (\d{6})")
    assert set(zip(named[1], named[0])) == set(old_of.items())
    assert (named[1] == b.ledger.loc[rem, "school_id"]).all()
    src = b.sources.set_index("file")
    coords = b.ledger[rem & (b.ledger["file"] == "school_coordinates.csv")]
    assert set(coords["school_id"]) == set(old_of) and src.loc["school_coordinates.csv", "remapped"] == len(coords)
    assert src.loc["esc_slots.xlsx", "remapped"] == hits["esc_slots"]
    # the road matrix index names each school by its current ID again, same positions
    _, index = b.extras["road_distances"]
    want = json.loads(Path(a.extras["road_distances"][1]).read_text())
    assert isinstance(index, dict) and index["rows"] == want["rows"] and index["cols"] == want["cols"]


def test_seven_digit_ids_not_in_the_crosswalk_stay_invalid(seven, sample_dir):
    """Only the IDs the crosswalk names are kept: without them, the reader drops them."""
    manifest, old_of, hits = seven
    def invalid(folder, old_ids=frozenset()):
        src = Source("coordinates", folder / "school_coordinates.csv", "school_coordinates.csv", old_ids=old_ids)
        df, led = read_source(src)
        t = led.frame()
        return set(df["school_id"]), set(t.loc[t["reason"].str.contains("invalid school ID"), "row"])
    kept, bad = invalid(manifest.parent)
    _, bad_sample = invalid(sample_dir)
    assert len(bad - bad_sample) == hits["coordinates"] and not kept & set(old_of.values())
    kept, bad = invalid(manifest.parent, frozenset(old_of.values()))
    assert bad == bad_sample and set(old_of.values()) <= kept


# ------------------------------------------------------------------ two identical years
@pytest.fixture(scope="module")
def two_years(sample_dir, sample_bundle, tmp_path_factory):
    """The sample as year 2023-2024 and again as 2022-2023, whose yearly files (enrolment,
    transitions, billing, its own ESC slots) name 40 schools by old IDs; one crosswalk."""
    out = tmp_path_factory.mktemp("two_years")
    entries = _copy_sample(sample_dir, out)
    old_of = _old_ids(sample_dir, sample_bundle, 7)
    earlier = []
    for e in entries:
        if e["kind"] in ("enrollment", "transitions", "esc_beneficiaries", "esc_slots"):
            src, name = sample_dir / e["path"], "sy2022_" + e["path"]
            if name.endswith(".xlsx"):
                _sub_xlsx(src, out / name, e.get("sheet"), ID_COLUMNS[e["kind"]][0], old_of)
            else:
                _sub_csv(src, out / name, ID_COLUMNS[e["kind"]], old_of)
            earlier.append({**e, "path": name, "school_year": OLD})
    (out / "map.csv").write_text("old_id,new_id\n" + "".join(f"{o},{n}\n" for n, o in old_of.items()))
    entries = earlier + entries + [{"kind": "school_id_crosswalk", "path": "map.csv"}]
    (out / "manifest.toml").write_text(_toml(entries))
    return out / "manifest.toml", old_of


@pytest.fixture(scope="module")
def panel(two_years):
    return load_panel(two_years[0])


def _same_bundle(b, a) -> None:
    pd.testing.assert_frame_equal(b.schools.drop(columns="geometry"), a.schools.drop(columns="geometry"))
    assert b.schools.geometry.equals(a.schools.geometry)
    for t in ("flows", "areas", "subsidy"):
        pd.testing.assert_frame_equal(getattr(b, t), getattr(a, t))


def test_two_identical_years_make_one_panel(two_years, panel, sample_bundle):
    manifest, old_of = two_years
    assert manifest_years(manifest) == (OLD, NEW) and panel.years == (OLD, NEW)
    assert panel.latest is panel[NEW] and panel[OLD].school_year == OLD and panel[NEW].school_year == NEW
    for y in panel:  # same schools, flows and slots in both years once remapped
        _same_bundle(panel[y], sample_bundle)
    # the latest year is the default of load_bundle, and a year can be asked for
    latest = load_bundle(manifest)
    _same_bundle(latest, sample_bundle)
    assert latest.school_year == NEW
    # every school matched across the years; the earlier year used the old IDs
    idt = panel.identity
    assert (idt.groupby("school_id")["school_year"].agg(tuple) == (OLD, NEW)).all()
    assert set(idt["school_id"]) == set(sample_bundle.schools.index)
    moved = panel.remapped()
    assert (moved["school_year"] == OLD).all() and dict(zip(moved["school_id"], moved["year_id"])) == old_of
    assert "40 under an older ID" in panel.summary() and "schools in every year: 3,000" in panel.summary()


def test_earlier_years_loaded_in_a_forked_child_are_the_same_panel(panel, two_years, monkeypatch):
    monkeypatch.setenv("STUDENTFLOW_FORK", "1")  # forked whatever the machine's load (studentflow.forked)
    forked = load_panel(two_years[0], fork=True)
    assert forked.years == panel.years
    for y in panel:
        _same_bundle(forked[y], panel[y])
        for t in ("ledger", "sources", "slot_history"):
            pd.testing.assert_frame_equal(getattr(forked[y], t), getattr(panel[y], t))
        assert forked[y].extras == panel[y].extras
    pd.testing.assert_frame_equal(forked.identity, panel.identity)
    pd.testing.assert_frame_equal(forked.ledger, panel.ledger)


def test_two_year_ledger_says_which_id_each_year_used(panel, two_years):
    _, old_of = two_years
    led = panel.ledger
    assert list(led.columns[:2]) == ["school_year", "source"]
    rem = led[led["action"] == "remapped"]
    assert (rem["school_year"] == OLD).all() and rem["file"].str.startswith("sy2022_").all()
    enrol = rem[rem["source"] == "enrollment"]  # one row per old ID in the year's school list
    old = enrol["reason"].str.extract(r"school ID (\d+) replaced by (\d{6})")
    assert len(enrol) == 40 and dict(zip(old[1], old[0])) == old_of
    # apart from the remaps, the earlier year's events are the later year's, file for file
    def events(y):
        t = led[(led["school_year"] == y) & (led["action"] != "remapped") & (led["file"] != "map.csv")]
        return sorted(zip(t["file"].str.removeprefix("sy2022_"), t["row"], t["action"], t["school_id"], t["reason"]))
    assert events(OLD) == events(NEW)


def test_every_row_of_every_year_is_in_a_table_or_the_ledger(panel, two_years):
    folder = two_years[0].parent
    data_rows = {}  # raw data rows per file, counted once (shared files serve both years)
    for y in panel:
        b = panel[y]
        files = set(b.sources["file"])
        earlier = {f for f in files if f.startswith("sy2022_")}
        assert len(earlier) == (8 if y == OLD else 0)  # enrolment, 3 transitions, 3 billing, slots
        assert {f.removeprefix("sy2022_") for f in earlier}.isdisjoint(files)  # each replaced its shared twin
        for s in b.sources.itertuples(index=False):
            mine = b.ledger[(b.ledger["file"] == s.file) & (b.ledger["row"] > 0)]
            gone = mine[mine["action"].isin(["dropped", "merged"])]
            assert not gone["row"].duplicated().any(), (y, s.file)
            assert s.rows_read == s.kept + s.merged + s.dropped, (y, s.file)
            if s.file not in data_rows:
                data_rows[s.file] = _data_rows(folder / s.file)
            assert s.rows_read == data_rows[s.file], (y, s.file)
        tr = b.sources[b.sources["kind"] == "transitions"]
        assert b.flows["learners"].sum() == tr["kept"].sum()
        assert len(b.schools) == b.sources.loc[b.sources["kind"] == "enrollment", "kept"].sum()


def _data_rows(path: Path) -> int:
    """Non-blank rows below the header, counted from the raw file (not by the readers)."""
    sheet = {"enrollment": "DATA", "esc_slots": "ESC Slots", "tuition": "Tuition"}
    rows = _raw_rows(path, next((v for k, v in sheet.items() if k in path.name), None))
    nonblank = [i for i, r in enumerate(rows, start=1) if any(str(v).strip() for v in r)]
    header = min(r for r in nonblank if len([v for v in rows[r - 1] if str(v).strip()]) >= 2)
    return len([r for r in nonblank if r > header])


def test_unknown_year_and_a_year_without_enrolment_are_named(two_years, tmp_path):
    manifest, _ = two_years
    with pytest.raises(DataError, match=r"no school year '2021-2022'.*2022-2023, 2023-2024"):
        load_bundle(manifest, year="2021-2022")
    text = manifest.read_text().replace(f'path = "sy2022_enrollment_sy2023-2024.xlsx"\nsheet = "DATA"\n'
                                        f'school_year = "{OLD}"', 'path = "sy2022_enrollment_sy2023-2024.xlsx"\n'
                                        'sheet = "DATA"\nschool_year = "2021-2022"')
    bad = manifest.parent / "gap.toml"
    bad.write_text(text)
    with pytest.raises(DataError, match=r"gap\.toml: school year 2022-2023 has no enrollment source of its own"):
        load_bundle(bad, year=OLD)
    report = check_manifest(bad)
    assert not report.ok
    assert any(p.startswith("error: gap.toml: school year 2022-2023 has no enrollment") for p in report.problems)


def test_check_lists_the_years_and_their_sources(two_years, capsys):
    assert main(["check", str(two_years[0]), "--json"]) == 0  # the command docs/sources.md shows
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"], doc["problems"]
    years = doc["years"]
    assert list(years) == [OLD, NEW]
    assert "sy2022_esc_slots.xlsx" in years[OLD] and "esc_slots.xlsx" not in years[OLD]
    assert "esc_slots.xlsx" in years[NEW] and not any(f.startswith("sy2022_") for f in years[NEW])
    assert "map.csv" in years[OLD] and "map.csv" in years[NEW]
    by = {s["file"]: s for s in doc["sources"]}
    assert by["sy2022_enrollment_sy2023-2024.xlsx"]["remapped"] == 40
    assert by["enrollment_sy2023-2024.xlsx"]["remapped"] == 0
    text = CheckReport("m.toml", years=tuple((y, tuple(f)) for y, f in years.items())).summary()
    assert f"school years: 2\n  {OLD}: sy2022_enrollment_sy2023-2024.xlsx, " in text


# ------------------------------------------------------------------ which source serves which year
_KINDS = ("enrollment", "transitions", "coordinates", "esc_slots", "tuition", "school_id_crosswalk")


@settings(max_examples=60)
@given(st.lists(st.tuples(st.sampled_from(_KINDS), st.sampled_from([None, 2019, 2021, 2020, 2023])),
                min_size=1, max_size=14))
def test_a_year_reads_its_own_sources_and_the_shared_ones(entries):
    sources = [Source(k, Path(f"f{i}.csv"), f"f{i}.csv", school_year=None if y is None else f"{y}-{y + 1}")
               for i, (k, y) in enumerate(entries)]
    years = source_years(sources)
    assert list(years) == sorted(years, key=lambda y: int(y[:4])) and len(set(years)) == len(years)
    assert set(years) == {s.school_year for s in sources if s.school_year and s.kind != "school_id_crosswalk"}
    for y in years:
        try:
            got = year_sources(sources, y, "m.toml")
        except DataError as exc:
            assert len(years) > 1 and y in str(exc) and "m.toml" in str(exc)
            continue
        if len(years) == 1:
            assert got == sources
            continue
        own = {s.kind for s in sources if s.school_year == y}
        assert "enrollment" in own
        for s in sources:
            serves = (s.kind == "school_id_crosswalk" or s.school_year == y
                      or (s.school_year is None and s.kind not in own))
            assert (s in got) == serves
        assert got == [s for s in sources if s in got]  # manifest order


@given(st.lists(st.integers(10_000, 1_999_999), min_size=1, max_size=30), st.data())
def test_only_the_long_ids_a_crosswalk_names_are_kept(numbers, data):
    from studentflow.ingest import values as V

    raw = pd.Series([f"{n}{data.draw(st.sampled_from(['', '.0', ' ']))}" for n in numbers], dtype="str")
    longs = sorted({str(n) for n in numbers if n >= 1_000_000})
    named = frozenset(data.draw(st.lists(st.sampled_from(longs), unique=True)) if longs else [])
    plain, _ = V.school_ids(raw)
    got, _ = V.school_ids(raw, named)
    for n, a, b in zip(numbers, plain, got):
        if n < 1_000_000:  # 5 or 6 digits: as before, whatever the crosswalk names
            assert a == b == f"{n:06d}"
        else:
            assert a == "" and b == (str(n) if str(n) in named else "")


def test_manifest_school_year_is_checked(tmp_path):
    from studentflow.ingest.manifest import school_year

    assert school_year("SY 2023–2024", "x") == "2023-2024" and school_year(None, "x") is None
    with pytest.raises(DataError, match="two consecutive years"):
        school_year("2023-2025", "x")
