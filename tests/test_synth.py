"""Tests of studentflow.synth.make_region and the bundled sample (data/sample)."""

from __future__ import annotations

import functools
import gzip
import io
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studentflow.schema import ESC_RATING_RANK, FLOWS, REGION_PSGC, REGIONS, SCHOOLS, SUBSIDY_TIERS
from studentflow.synth import STUDY_ALPHA, STUDY_PARAMS, make_region
from studentflow.synth.geography import deped_municipality
from studentflow.synth.learners import region_slug

REPO = Path(__file__).resolve().parents[1]

#: Documented columns per source kind (SOURCES.md / docs/contracts.md §1).
KIND_COLUMNS = {
    "enrollment": ["Region", "Division", "Province", "Municipality", "BEIS School ID", "School Name", "Sector",
                   "Modified COC"] + [f"G{g} {s}" for g in range(1, 11) for s in ("Male", "Female")],
    "coordinates": ["School ID", "Latitude", "Longitude"],
    "seats": ["School ID", "Seats ES", "Seats JHS", "Seats SHS"],
    "private_seats": ["School ID", "Chairs ES", "Chairs JHS", "Chairs SHS"],
    "transitions": ["Region", "Division", "LRN", "BEIS School ID in Grade 7", "School Namein Grade 7",
                    "SY enrolled in Grade 6", "BEIS School ID in Grade 6", "School Name in Grade 6"],
    "esc_beneficiaries": ["deped id", "lrn", "school id", "school name", "grade", "billing statement number",
                          "esc_subsidy_amount"],
    "esc_slots": ["ESC School ID", "DepEd School ID", "School Name", "slots_total", "slots_billed"],
    "tuition": ["ESC School ID", "School Name", "G7 Tuition", "G8 Tuition", "G9 Tuition", "G10 Tuition",
                "Other Fees", "Misc Fees"],
    "esc_rating": ["ESC School ID", "Certification"],
    "lgu_income": ["Province", "LGU", "Total Revenues of the LGU (in Php)"],
    "subsidy_rates": ["Location tier", "Grade", "Amount"],
    "road_network": ["u", "v", "length_m", "geometry"],
    "school_id_crosswalk": ["school_id_2024", "BEIS School ID", "old_school_id", "School Name"],
}
QUIRK_TYPES = {
    "enrollment": {"title_rows", "region_variant", "id_float", "id_padded", "id_no_leading_zero", "duplicate_row"},
    "coordinates": {"blank", "zero", "outside_ph", "swapped", "two_rows"},
    "seats": {"missing_jhs_seats"},
    "private_seats": {"count_as_text"},
    "transitions": {"repeated_lrn", "invalid_id", "outside_area"},
    "esc_beneficiaries": {"several_billing_rows"},
    "esc_slots": {"several_esc_ids"},
    "tuition": {"peso_string", "blank_fee", "na_fee", "several_esc_ids"},
    "lgu_income": {"zero_revenue", "province_suffix", "upper", "santo", "drop_city_of"},
}


# ------------------------------------------------------------------ helpers
def _manifest(d: Path) -> list[dict]:
    """The latest school year's sources and the shared ones (a multi-year manifest has more)."""
    src = tomllib.loads((d / "manifest.toml").read_text(encoding="utf-8"))["source"]
    years = sorted({e["school_year"] for e in src if "school_year" in e})
    return [e for e in src if e.get("school_year", years[-1] if years else None) == (years[-1] if years else None)]


def _sheet(path: Path) -> list[list]:
    """All rows of the first sheet, physical row k at index k-1."""
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    wb.close()
    width = max(map(len, rows))
    return [r + [None] * (width - len(r)) for r in rows]  # trailing empty cells are not stored


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _truth(d: Path, name: str) -> pd.DataFrame:
    dt = {c: str for c in ("school_id", "origin_id", "destination_id", "psgc_code")}
    return pd.read_csv(d / "truth" / name, dtype=dt)


@pytest.fixture(scope="module")
def quirks(sample_dir) -> pd.DataFrame:
    return pd.read_csv(sample_dir / "truth" / "quirks.csv", dtype={"school_id": str, "row": int},
                       keep_default_na=False)


@pytest.fixture(scope="module")
def truth_schools(sample_dir) -> pd.DataFrame:
    return _truth(sample_dir, "schools.csv").set_index("school_id")


@pytest.fixture(scope="module")
def transitions(sample_dir, quirks) -> pd.DataFrame:
    """All transition rows with file and physical row, and whether a quirk was planted there."""
    parts = []
    for e in _manifest(sample_dir):
        if e["kind"] == "transitions":
            t = _csv(sample_dir / e["path"])
            t["file"], t["row"] = e["path"], np.arange(len(t)) + 2
            parts.append(t)
    t = pd.concat(parts, ignore_index=True)
    bad = quirks[quirks["kind"] == "transitions"].set_index(["file", "row"]).index
    t["quirk"] = pd.MultiIndex.from_frame(t[["file", "row"]]).isin(bad)
    return t


@pytest.fixture(scope="module")
def billing(sample_dir) -> pd.DataFrame:
    return pd.concat([_csv(sample_dir / e["path"]).assign(file=e["path"]) for e in _manifest(sample_dir)
                      if e["kind"] == "esc_beneficiaries"], ignore_index=True)


# ------------------------------------------------------------------ determinism / files
def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(small_region, tmp_path):
    info = make_region(seed=7, scale=0.25, out_dir=tmp_path)
    a, b = _files(small_region), _files(tmp_path)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert info.counts["institutions"] == pytest.approx(750, rel=0.05)
    assert "synthetic region" in info.summary()


def test_other_seed_differs(small_region, sample_dir):
    a = (small_region / "truth" / "flows.csv").read_bytes()
    assert a != (sample_dir / "truth" / "flows.csv").read_bytes()


def test_make_sample_reproduces_committed_sample(sample_dir, tmp_path):
    import subprocess
    import sys

    subprocess.run([sys.executable, str(REPO / "scripts" / "make_sample.py"), str(tmp_path)], check=True,
                   capture_output=True)
    committed = {k: v for k, v in _files(sample_dir).items() if k != "README.md"}
    made = _files(tmp_path)
    assert made.keys() == committed.keys()
    # three school years: the earlier years' raw files and truth, the crosswalk, the years' manifest
    years = {"school_id_mapping.csv", "truth/years.json"}
    for y in ("2021-2022", "2022-2023"):
        years |= {f"enrollment_sy{y}.xlsx", f"esc_slots_sy{y}.xlsx", f"gr7_enrollees_ncr_sy{y}.csv.gz",
                  f"truth/{y}/pairs.csv.gz", f"truth/{y}/flows.csv.gz", f"truth/{y}/params.json"}
    assert years <= committed.keys()
    # another CPU may round the last digit of a float differently: numbers within 1e-9
    assert [k for k in committed if not _same_content(k, made[k], committed[k])] == []
    assert sum(len(v) for v in committed.values()) < 25e6


def _same_content(name: str, a: bytes, b: bytes, rtol: float = 1e-9) -> bool:
    """Same file, with floats compared to ``rtol`` (CSV cells, JSON numbers, .npy arrays)."""
    if a == b:
        return True
    if name.endswith((".csv", ".csv.gz")):
        read = functools.partial(pd.read_csv, dtype=str, keep_default_na=False,
                                 compression="gzip" if name.endswith(".gz") else None)
        x, y = read(io.BytesIO(a)), read(io.BytesIO(b))
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            return False
        for col in x.columns:
            if (x[col] == y[col]).all():
                continue
            differ = x[col] != y[col]
            floaty = x[col][differ].str.contains(r"[.eE]") & y[col][differ].str.contains(r"[.eE]")
            if not floaty.all():
                return False  # text, ids or whole numbers differ
            fx, fy = pd.to_numeric(x[col], errors="coerce"), pd.to_numeric(y[col], errors="coerce")
            if fx[differ].isna().any() or fy[differ].isna().any():
                return False
            if not np.allclose(fx[differ], fy[differ], rtol=rtol, atol=0.0):
                return False
        return True
    if name.endswith(".json"):
        return _close_json(json.loads(a), json.loads(b), rtol)
    if name.endswith(".npy"):
        x, y = np.load(io.BytesIO(a)), np.load(io.BytesIO(b))
        return x.shape == y.shape and x.dtype == y.dtype and np.allclose(x, y, rtol=rtol, atol=0.0)
    return False


def _close_json(x, y, rtol: float) -> bool:
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_close_json(x[k], y[k], rtol) for k in x)
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(_close_json(u, v, rtol) for u, v in zip(x, y))
    if isinstance(x, float) or isinstance(y, float):
        return isinstance(y, (int, float)) and x == pytest.approx(y, rel=rtol, abs=0.0)
    return x == y


def test_content_comparison_tolerates_last_digit_but_not_more():
    """The committed-sample check above must fail on a real change, not only on a digit."""
    a = b"id,mu,name\n011647,0.9439919825082618,A\n"
    assert _same_content("t.csv", a, b"id,mu,name\n011647,0.9439919825082613,A\n")
    assert not _same_content("t.csv", a, b"id,mu,name\n011647,0.9439919825,A\n".replace(b"0.9439919825", b"0.9440919825"))
    assert not _same_content("t.csv", a, b"id,mu,name\n11647,0.9439919825082618,A\n")  # leading zero lost
    assert not _same_content("t.csv", a, b"id,mu,name\n011647,0.9439919825082618,B\n")
    assert _same_content("p.json", b'{"a": [1, 0.30000000000000004]}', b'{"a": [1, 0.3]}')
    assert not _same_content("p.json", b'{"a": [1, 0.3]}', b'{"a": [2, 0.3]}')
    assert not _same_content("x.xlsx", b"1", b"2")


def test_manifest_lists_every_kind_with_documented_columns(sample_dir, quirks):
    entries = _manifest(sample_dir)
    kinds = {e["kind"] for e in entries}
    assert kinds | {"school_id_crosswalk"} == set(KIND_COLUMNS) | {"road_distances"}  # crosswalk: several years
    assert {e["path"] for e in entries if e["kind"] == "transitions"} == {
        f"gr7_enrollees_{region_slug(r)}.csv.gz" for r in REGIONS}
    title = int(quirks.loc[quirks["quirk"] == "title_rows", "row"].iloc[0]) - 1
    for e in entries:
        path = sample_dir / e["path"]
        assert path.exists(), e
        if e["kind"] == "road_distances":
            index = json.loads((sample_dir / e["index"]).read_text())
            m = np.load(path)
            assert index["units"] == "m" and m.dtype == np.float32
            assert m.shape == (sum(map(len, index["rows"].values())), sum(map(len, index["cols"].values())))
            continue
        if path.suffix == ".xlsx":
            rows = _sheet(path)
            header = rows[title if e["kind"] == "enrollment" else 0]
        elif path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                header = fh.readline().rstrip("\n").split(",")
        else:
            header = list(_csv(path).columns)
        assert list(header) == KIND_COLUMNS[e["kind"]], e["path"]


# ------------------------------------------------------------------ quirks
def test_every_quirk_type_is_planted(quirks):
    for kind, types in QUIRK_TYPES.items():
        assert types <= set(quirks.loc[quirks["kind"] == kind, "quirk"]), kind
    assert set(quirks["outcome"]) <= {"repaired", "dropped", "merged", "imputed"}
    assert not quirks.duplicated(["file", "row", "quirk"]).any()


def test_quirks_visible_at_stated_rows(sample_dir, quirks, truth_schools):
    ids = set(truth_schools.index)
    areas = set(_truth(sample_dir, "areas.csv")["municipality"])
    cache: dict[str, object] = {}

    def rows_of(file):
        if file not in cache:
            p = sample_dir / file
            if p.suffix == ".xlsx":
                cache[file] = _sheet(p)
            else:
                t = _csv(p)
                cache[file] = [list(t.columns)] + t.to_numpy().tolist()
        return cache[file]

    checks = {
        ("enrollment", "title_rows"): lambda r, p, s: r[0] == "Region" and p is not None and len(p) >= 1,
        ("enrollment", "region_variant"): lambda r, p, s: r[0] not in REGIONS,
        ("enrollment", "id_float"): lambda r, p, s: r[4] == f"{int(s)}.0",
        ("enrollment", "id_padded"): lambda r, p, s: r[4] != s and r[4].strip() == s,
        ("enrollment", "id_no_leading_zero"): lambda r, p, s: "0" + str(r[4]) == s,
        ("enrollment", "duplicate_row"): lambda r, p, s: r == p,
        ("coordinates", "blank"): lambda r, p, s: r[1] == "" and r[2] == "",
        ("coordinates", "zero"): lambda r, p, s: float(r[1]) == 0 and float(r[2]) == 0,
        ("coordinates", "outside_ph"): lambda r, p, s: not (4 < float(r[1]) < 22 and 116 < float(r[2]) < 127),
        ("coordinates", "swapped"): lambda r, p, s: float(r[1]) > 100 and float(r[2]) < 25,
        ("coordinates", "two_rows"): lambda r, p, s: r[0] == p[0] == s,
        ("seats", "missing_jhs_seats"): lambda r, p, s: r[0] == s and r[2] is None,
        ("private_seats", "count_as_text"): lambda r, p, s: any("," in c for c in r[1:]),
        ("esc_slots", "several_esc_ids"): lambda r, p, s: r[1] == p[1] == s,
        ("tuition", "peso_string"): lambda r, p, s: str(r[2]).startswith("₱"),
        ("tuition", "blank_fee"): lambda r, p, s: r[6] is None,
        ("tuition", "na_fee"): lambda r, p, s: r[6] == "N/A",
        ("tuition", "several_esc_ids"): lambda r, p, s: sum(x[1] == r[1] for x in rows_of("esc_tuition_peac.xlsx")) > 1,
        ("lgu_income", "zero_revenue"): lambda r, p, s: float(r[2]) == 0,
        ("lgu_income", "province_suffix"): lambda r, p, s: r[1].endswith(")") and r[1] not in areas,
        ("lgu_income", "upper"): lambda r, p, s: r[1] == r[1].upper() and r[1] not in areas,
        ("lgu_income", "santo"): lambda r, p, s: re.search(r"Sto\.|Santo|Sta\.|Santa", r[1]) and r[1] not in areas,
        ("lgu_income", "drop_city_of"): lambda r, p, s: not r[1].startswith("City of") and f"City of {r[1]}" in areas,
        ("transitions", "repeated_lrn"): lambda r, p, s: r[2] == p[2] and r == p,
        ("transitions", "invalid_id"): lambda r, p, s: not re.fullmatch(r"\d{6}", r[6]),
        ("transitions", "outside_area"): lambda r, p, s: re.fullmatch(r"\d{6}", r[6]) and r[6] not in ids,
        ("esc_beneficiaries", "several_billing_rows"): lambda r, p, s: r[1] == p[1] and r[0] == s,
    }
    for (kind, quirk), group in quirks.groupby(["kind", "quirk"]):
        check = checks[(kind, quirk)]
        for q in group.head(40).itertuples():
            rows = rows_of(q.file)
            row, prev = rows[q.row - 1], rows[q.row - 2] if q.row >= 2 else None
            assert check(row, prev, q.school_id), (kind, quirk, q.file, q.row)


def test_no_lrn_outside_learner_files(sample_dir, transitions, billing):
    lrns = set(transitions["LRN"]) | set(billing["lrn"])
    assert len(lrns) > 100_000
    for p in (sample_dir / "truth").rglob("*"):  # earlier school years' truth in subfolders, gzip-compressed
        if p.is_file():
            text = gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text(encoding="utf-8")
            assert not set(re.split(r"[,\n\"]", text)) & lrns, p.name


# ------------------------------------------------------------------ truth vs raw
def test_truth_tables_have_contract_columns(sample_dir):
    s = _truth(sample_dir, "schools.csv")
    assert list(s.columns) == ["school_id"] + [c for c in SCHOOLS if c != "geometry"] + ["lon", "lat"]
    assert s["school_id"].str.fullmatch(r"\d{6}").all() and s["school_id"].is_unique
    assert list(_truth(sample_dir, "flows.csv").columns) == list(FLOWS)
    assert list(_truth(sample_dir, "subsidy.csv").columns) == ["school_id", "tier", "amount"]
    pairs = _truth(sample_dir, "pairs.csv")
    assert list(pairs.columns) == ["origin_id", "destination_id", "distance_km", "tuition", "esc_amount",
                                   "net_cost_k", "esc_rating", "origin_lgu_revenue", "origin_region",
                                   "destination_region", "mu", "demand", "esc_beneficiaries"]
    params = json.loads((sample_dir / "truth" / "params.json").read_text())
    assert set(params["params"]) == set(STUDY_PARAMS) and params["alpha"] == STUDY_ALPHA
    assert params["radius_km"] == 5.0  # the study's radius for new pairs (pairs.build_pairs default)
    cap = _truth(sample_dir, "esc_capacity.csv")
    assert list(cap.columns) == ["school_id", "expected_demand", "slots", "utilisation", "capacity", "demand",
                                 "admitted", "full", "billed"]


def test_enrollment_and_coordinates_match_truth_on_clean_rows(sample_dir, quirks, truth_schools):
    title = int(quirks.loc[quirks["quirk"] == "title_rows", "row"].iloc[0])
    rows = _sheet(sample_dir / "enrollment_sy2023-2024.xlsx")
    bad = set(quirks.loc[quirks["kind"] == "enrollment", "row"])
    seen = 0
    for k, r in enumerate(rows[title:], start=title + 1):
        if k in bad:
            continue
        t = truth_schools.loc[r[4]]
        assert r[0] == t["region"] and r[3] == t["municipality"] and r[5] == t["name"]
        assert [r[8 + 2 * (g - 1)] + r[9 + 2 * (g - 1)] for g in range(1, 11)] == [
            t[f"enrol_g{g}"] for g in range(1, 11)]
        seen += 1
    assert seen > 0.85 * len(truth_schools)
    c = _csv(sample_dir / "school_coordinates.csv")
    c["row"] = np.arange(len(c)) + 2
    c = c[~c["row"].isin(quirks.loc[quirks["kind"] == "coordinates", "row"])]
    years = sample_dir / "truth" / "years.json"  # schools closed before the latest year: points appended
    if years.exists():
        c = c[~c["School ID"].isin([s["school_id"] for s in json.loads(years.read_text())["closed"]])]
    t = truth_schools.loc[c["School ID"]]
    assert np.allclose(c["Latitude"].astype(float), t["lat"]) and np.allclose(c["Longitude"].astype(float), t["lon"])


def test_seat_files_match_truth(sample_dir, quirks, truth_schools):
    rows = _sheet(sample_dir / "seat_learner_ratio.xlsx")
    missing = set(quirks.loc[quirks["kind"] == "seats", "row"])
    public = truth_schools[truth_schools["sector"] == "public"]
    assert [r[0] for r in rows[1:]] == sorted(public.index)
    for k, r in enumerate(rows[1:], start=2):
        want = public.at[r[0], "jhs_seats"]
        if k in missing:
            assert r[2] is None and np.isfinite(want)
        else:
            assert (r[2] is None and np.isnan(want)) or r[2] == want
    chairs = _csv(sample_dir / "private_school_furniture.csv").set_index("School ID")
    private = truth_schools[truth_schools["sector"] == "private"]
    jhs = pd.to_numeric(chairs["Chairs JHS"].str.replace(",", ""), errors="coerce")
    assert np.array_equal(jhs.loc[private.index].to_numpy(float), private["jhs_seats"].to_numpy(float), equal_nan=True)


def test_esc_files_match_truth(sample_dir, quirks, truth_schools):
    slots = pd.DataFrame(_sheet(sample_dir / "esc_slots.xlsx")[1:],
                         columns=KIND_COLUMNS["esc_slots"]).astype({"DepEd School ID": str})
    per = slots.groupby("DepEd School ID")[["slots_total", "slots_billed"]].sum()
    esc = truth_schools[truth_schools["esc"]]
    assert set(per.index) == set(esc.index)
    assert (per.loc[esc.index, "slots_total"].to_numpy() == esc["esc_slots"].to_numpy()).all()
    assert (per.loc[esc.index, "slots_billed"].to_numpy() == esc["esc_slots_billed"].to_numpy()).all()
    tu = pd.DataFrame(_sheet(sample_dir / "esc_tuition_peac.xlsx")[1:], columns=KIND_COLUMNS["tuition"])
    school_of = dict(zip(slots["ESC School ID"].astype(str), slots["DepEd School ID"]))

    def num(x):
        return 0.0 if x in (None, "", "N/A") else float(str(x).replace("₱", "").replace(",", ""))

    for r in tu.itertuples(index=False):
        total = num(r[2]) + num(r[6]) + num(r[7])
        assert total == pytest.approx(truth_schools.at[school_of[str(r[0])], "tuition"])
    cert = _csv(sample_dir / "esc_certification.csv")
    rank = cert["Certification"].map(ESC_RATING_RANK)
    truth_rank = truth_schools.loc[cert["ESC School ID"].map(school_of), "esc_rating"].to_numpy()
    assert np.array_equal(rank.to_numpy(float), truth_rank, equal_nan=True)
    assert 0.03 < np.isnan(truth_rank).mean() < 0.3  # some unrated


def test_areas_and_subsidy_match_truth(sample_dir, quirks, truth_schools):
    areas = _truth(sample_dir, "areas.csv").set_index("psgc_code")
    assert len(areas) == 289 and set(areas["region"]) == set(REGIONS)
    lgu = _csv(sample_dir / "cmci_lgu_revenue.csv")
    lgu["row"] = np.arange(len(lgu)) + 2
    clean = lgu[~lgu["row"].isin(quirks.loc[quirks["kind"] == "lgu_income", "row"])]
    rev = dict(zip(areas["municipality"] + "|" + areas["province"], areas["lgu_revenue"]))
    by_name = areas.groupby("municipality")["lgu_revenue"].apply(set)
    for r in clean.itertuples():
        assert float(r[3]) in by_name[r[2]]
    assert len(rev) == len(areas)
    rates = _csv(sample_dir / "esc_subsidy_rates.csv")
    amount = dict(zip(rates["Location tier"], rates["Amount"].astype(float)))
    assert amount == {"NCR": 13000.0, "Highly Urbanized City": 11000.0, "Other": 9000.0}
    sub = _truth(sample_dir, "subsidy.csv").set_index("school_id")
    area = areas.loc[truth_schools.loc[sub.index, "psgc_code"]]
    tier = np.where(area["region"] == "NCR", "NCR", np.where(area["city_class"] == "HUC", "HUC", "other"))
    assert (sub["tier"].to_numpy() == tier).all()
    assert (sub["amount"].to_numpy() == sub["tier"].map(SUBSIDY_TIERS).to_numpy()).all()


def test_truth_flows_are_the_clean_transitions(sample_dir, transitions, billing):
    flows = _truth(sample_dir, "flows.csv")
    clean = transitions[~transitions["quirk"]]
    assert clean["LRN"].is_unique and clean["LRN"].str.fullmatch(r"\d{12}").all()
    billed = set(zip(billing["deped id"], billing["lrn"]))
    clean = clean.assign(esc=[(d, lrn) in billed for d, lrn in zip(clean["BEIS School ID in Grade 7"], clean["LRN"])])
    agg = clean.groupby(["BEIS School ID in Grade 6", "BEIS School ID in Grade 7"]).agg(
        learners=("LRN", "size"), esc_beneficiaries=("esc", "sum")).reset_index()
    agg.columns = list(FLOWS)
    m = flows.merge(agg, on=["origin_id", "destination_id"], how="outer", suffixes=("", "_raw"))
    assert (m["learners"] == m["learners_raw"]).all()
    assert (m["esc_beneficiaries"] == m["esc_beneficiaries_raw"]).all()


# ------------------------------------------------------------------ consistency and proportions
def test_consistency(sample_dir, truth_schools, billing):
    flows = _truth(sample_dir, "flows.csv")
    out = flows.groupby("origin_id")["learners"].sum()
    assert (out <= truth_schools.loc[out.index, "enrol_g6"]).all()
    inflow = flows.groupby("destination_id")["learners"].sum()
    assert (inflow <= truth_schools.loc[inflow.index, "enrol_g7"]).all()
    ben = flows.groupby("destination_id")["esc_beneficiaries"].sum()
    ben = ben[ben > 0]
    distinct = billing.drop_duplicates(["deped id", "lrn"]).groupby("deped id").size()
    assert (ben <= distinct.reindex(ben.index, fill_value=0)).all()
    esc = truth_schools[truth_schools["esc"]]
    assert (distinct.reindex(esc.index, fill_value=0) == esc["esc_slots_billed"]).all()
    assert set(ben.index) <= set(esc.index)
    pairs = _truth(sample_dir, "pairs.csv")
    pos = pairs[pairs["esc_beneficiaries"] > 0].set_index(["origin_id", "destination_id"])["esc_beneficiaries"]
    fl = flows[flows["esc_beneficiaries"] > 0].set_index(["origin_id", "destination_id"])["esc_beneficiaries"]
    assert pos.sort_index().equals(fl.sort_index())


def test_pair_covariates_and_mu_follow_truth(sample_dir, truth_schools):
    pairs = _truth(sample_dir, "pairs.csv")
    params = json.loads((sample_dir / "truth" / "params.json").read_text())
    areas = _truth(sample_dir, "areas.csv").set_index("psgc_code")
    sub = _truth(sample_dir, "subsidy.csv").set_index("school_id")
    d = truth_schools.loc[pairs["destination_id"]]
    o = truth_schools.loc[pairs["origin_id"]]
    assert np.allclose(pairs["tuition"], d["tuition"])
    assert np.allclose(pairs["esc_amount"], sub.loc[pairs["destination_id"], "amount"])
    assert np.allclose(pairs["net_cost_k"], np.maximum(0, d["tuition"].to_numpy() - pairs["esc_amount"]) / 1000)
    assert np.allclose(pairs["origin_lgu_revenue"], areas.loc[o["psgc_code"], "lgu_revenue"])
    fill = params["esc_rating_unrated_fill"]
    assert fill == np.median(truth_schools.loc[truth_schools["esc"], "esc_rating"].dropna())
    assert np.allclose(pairs["esc_rating"], d["esc_rating"].fillna(fill))
    assert (pairs["origin_region"].to_numpy() == o["region"].to_numpy()).all()
    assert (pairs["distance_km"] <= params["radius_km"]).all()
    p = params["params"]
    eta = (p["intercept"] + p["log1p_distance_km"] * np.log1p(pairs["distance_km"])
           + p["log1p_net_cost_k"] * np.log1p(pairs["net_cost_k"]) + p["esc_rating"] * pairs["esc_rating"]
           + p["log1p_origin_lgu_revenue"] * np.log1p(pairs["origin_lgu_revenue"]))
    for side in ("origin", "destination"):
        for r in ("Region III", "Region IV-A"):
            eta += p[f"{side}_region[{r}]"] * (pairs[f"{side}_region"] == r)
    assert np.allclose(pairs["mu"], np.exp(eta), rtol=1e-8)


def test_pair_distances_are_road_network_distances(sample_dir, truth_schools):
    """Independent recomputation: geo on roads.csv.gz from the truth coordinates, and the matrix."""
    import shapely

    from studentflow.geo import road_distances

    pairs = _truth(sample_dir, "pairs.csv")
    some = pairs["origin_id"].drop_duplicates().iloc[::40]
    sub = pairs[pairs["origin_id"].isin(some)]
    pts = truth_schools.assign(geometry=shapely.points(truth_schools["lon"], truth_schools["lat"]))
    esc = pts[pts["esc"]]
    radius = json.loads((sample_dir / "truth" / "params.json").read_text())["radius_km"]
    got = road_distances(pts.loc[some], esc, network=sample_dir / "roads.csv.gz", max_km=radius)
    m = sub.merge(got, on=["origin_id", "destination_id"], how="outer")
    assert np.allclose(m["distance_km_x"], m["distance_km_y"])
    index = json.loads((sample_dir / "road_matrix_index.json").read_text())
    mat = np.load(sample_dir / "road_matrix.npy")
    one = {k: v[0] for k, v in index["rows"].items() if len(v) == 1}
    onec = {k: v[0] for k, v in index["cols"].items() if len(v) == 1}
    s = pairs[pairs["origin_id"].isin(one) & pairs["destination_id"].isin(onec)]
    mm = mat[s["origin_id"].map(one).to_numpy(), s["destination_id"].map(onec).to_numpy()]
    assert np.allclose(mm / 1000.0, s["distance_km"], rtol=1e-6, atol=1e-6)


def test_road_network_shape(sample_dir):
    import shapely
    from scipy.sparse.csgraph import connected_components

    from studentflow.geo import haversine_km, read_network

    edges = pd.read_csv(sample_dir / "roads.csv.gz", dtype={"u": str, "v": str})
    xy = shapely.get_coordinates(shapely.from_wkt(edges["geometry"].to_numpy()))
    straight = haversine_km(xy[0::2, 0], xy[0::2, 1], xy[1::2, 0], xy[1::2, 1]) * 1000.0
    ratio = edges["length_m"] / np.maximum(straight, 1e-9)
    ok = straight > 1.0
    assert (ratio[ok] >= 1.05 - 1e-3).all() and (ratio[ok] <= 1.4 + 1e-3).all()
    assert straight.max() <= 12_000.0
    net = read_network(sample_dir / "roads.csv.gz")
    labels = connected_components(net.graph, directed=False)[1]
    sizes = np.sort(np.bincount(labels))[::-1]
    assert 1 < len(sizes) < 30 and sizes[0] > 0.95 * len(labels)  # a mainland and a few islands
    water = [shapely.box(121.13, 14.33, 121.17, 14.42), shapely.box(120.65, 14.45, 120.78, 14.55)]  # open water
    lines = shapely.from_wkt(edges["geometry"].to_numpy())
    assert not any(shapely.intersects(lines, w).any() for w in water)


def test_counts_and_proportions(sample_dir, truth_schools):
    s = truth_schools
    n = len(s)
    assert 2700 <= n <= 3300
    origin = s["offering"].isin(["purely_es", "es_jhs", "all_offering"])
    assert 0.42 < ((s["sector"] == "public") & (s["offering"] == "purely_es")).mean() < 0.58
    private = s["sector"] == "private"
    assert 0.28 < private.mean() < 0.4
    assert 0.55 < s.loc[private, "esc"].mean() < 0.75
    pub_jhs = s[(s["sector"] == "public") & s["jhs_seats"].notna()]
    assert 0.5 < (pub_jhs["jhs_enrolment"] > pub_jhs["jhs_seats"]).mean() < 0.95
    assert (pub_jhs["jhs_seats"] % 1 == 0).all()
    flows = _truth(sample_dir, "flows.csv")
    learners = flows["learners"].sum()
    assert 110 < learners / origin.sum() < 165
    to_private = flows.loc[flows["destination_id"].isin(s.index[private]), "learners"].sum()
    assert 0.15 < to_private / learners < 0.25
    assert 0.03 < flows["esc_beneficiaries"].sum() / learners < 0.05
    esc = s[s["esc"]]
    ratio = esc["esc_slots_billed"].sum() / esc["esc_slots"].sum()
    assert 0.65 < ratio < 0.8
    assert (esc["esc_slots_billed"] > esc["esc_slots"]).mean() > 0.03  # some billed beyond contract
    assert (esc["esc_slots_billed"] < esc["esc_slots"]).mean() > 0.5  # many with unused slots
    med = s[private & s["tuition"].notna()].groupby(s["region"])["tuition"].median()
    assert med["NCR"] > med["Region III"] and med["NCR"] > med["Region IV-A"]
    tu = s.loc[s["esc"], "tuition"]
    assert tu.mean() > tu.median()  # right-skewed
    areas = _truth(sample_dir, "areas.csv")
    pc = areas["lgu_revenue"] / areas["population"]
    assert pc[areas["city_class"].isin(["HUC"])].median() > pc[areas["city_class"] == "Mun"].median()
    assert s.index.str.startswith("0").mean() > 0.01  # some DepEd ids with a leading zero


def test_nb2_on_latent_demand_over_all_candidate_pairs_recovers_study_slopes(sample_dir):
    """The gravity model's count is the latent demand (before rationing by slots)."""
    from statsmodels.discrete.discrete_model import NegativeBinomial

    pairs = _truth(sample_dir, "pairs.csv")
    X = pd.DataFrame({
        "const": 1.0,
        "log1p_distance_km": np.log1p(pairs["distance_km"]),
        "log1p_net_cost_k": np.log1p(pairs["net_cost_k"]),
        "esc_rating": pairs["esc_rating"],
        "log1p_origin_lgu_revenue": np.log1p(pairs["origin_lgu_revenue"]),
        **{f"{side}_region[{r}]": (pairs[f"{side}_region"] == r).astype(float)
           for side in ("origin", "destination") for r in ("Region III", "Region IV-A")},
    })
    fit = NegativeBinomial(pairs["demand"], X, loglike_method="nb2").fit(disp=0, maxiter=200)
    assert fit.mle_retvals["converged"]
    for term in ("log1p_distance_km", "log1p_net_cost_k"):
        assert abs(fit.params[term] - STUDY_PARAMS[term]) < 3 * fit.bse[term], term
    assert abs(fit.params["alpha"] - STUDY_ALPHA) < 3 * fit.bse["alpha"]
    truth = json.loads((sample_dir / "truth" / "params.json").read_text())["params"]["intercept"]
    assert abs(fit.params["const"] - truth) < 3 * fit.bse["const"]


# ------------------------------------------------------------------ capacity rationing
@pytest.fixture(scope="module")
def capacity(sample_dir) -> pd.DataFrame:
    return _truth(sample_dir, "esc_capacity.csv").set_index("school_id")


def test_no_school_admits_more_than_its_capacity(sample_dir, capacity, truth_schools):
    pairs = _truth(sample_dir, "pairs.csv")
    assert (pairs["esc_beneficiaries"] <= pairs["demand"]).all() and (pairs["esc_beneficiaries"] >= 0).all()
    by = pairs.groupby("destination_id")[["demand", "esc_beneficiaries"]].sum()
    by = by.reindex(capacity.index, fill_value=0)
    assert (by["demand"] == capacity["demand"]).all()
    assert (by["esc_beneficiaries"] == capacity["admitted"]).all()
    assert (capacity["admitted"] <= capacity["capacity"]).all()
    # admitted = min(demand, C_j) per school
    assert (capacity["admitted"] == np.minimum(capacity["demand"], capacity["capacity"])).all()
    assert (capacity["full"] == (capacity["demand"] > capacity["capacity"])).all()
    # C_j = round(K_j u_j); K_j the contracted slots of esc_slots.xlsx / truth
    assert (capacity["capacity"] == np.round(capacity["slots"] * capacity["utilisation"])).all()
    esc = truth_schools[truth_schools["esc"]]
    assert (capacity.loc[esc.index, "slots"] == esc["esc_slots"]).all()
    assert (capacity.loc[esc.index, "billed"] == esc["esc_slots_billed"]).all()
    # billing follows the admitted: never below them, never above the billable capacity
    assert (capacity["billed"] >= capacity["admitted"]).all() and (capacity["billed"] <= capacity["capacity"]).all()
    assert (capacity.loc[capacity["full"], "billed"] == capacity.loc[capacity["full"], "capacity"]).all()
    flows = _truth(sample_dir, "flows.csv")
    ben = flows.groupby("destination_id")["esc_beneficiaries"].sum().reindex(capacity.index, fill_value=0)
    assert (ben == capacity["admitted"]).all()


def test_full_schools_admit_at_random_among_applicants(sample_dir, capacity):
    """At a full school every applicant has the same chance C_j / D_j, whatever the pair:
    the admitted on near and far pairs match that expectation (an independent split)."""
    pairs = _truth(sample_dir, "pairs.csv")
    full = capacity.index[capacity["full"]]
    f = pairs[pairs["destination_id"].isin(full) & (pairs["demand"] > 0)]
    rate = (capacity["capacity"] / capacity["demand"]).reindex(f["destination_id"]).to_numpy()
    expected = f["demand"].to_numpy() * rate
    near = (f["distance_km"] <= f["distance_km"].median()).to_numpy()
    for part in (near, ~near):
        got, want = f.loc[part, "esc_beneficiaries"].sum(), expected[part].sum()
        assert abs(got - want) < 4 * np.sqrt(want), (got, want)


def test_rationed_out_learners_enter_grade7_elsewhere(sample_dir, truth_schools):
    pairs = _truth(sample_dir, "pairs.csv")
    flows = _truth(sample_dir, "flows.csv")
    o = pairs.groupby("origin_id")[["demand", "esc_beneficiaries"]].sum()
    f = flows.groupby("origin_id")[["learners", "esc_beneficiaries"]].sum().reindex(o.index, fill_value=0)
    assert (f["esc_beneficiaries"] == o["esc_beneficiaries"]).all()
    # every applicant is in the origin's cohort; the rationed out are among its non-ESC learners
    assert (f["learners"] >= o["demand"]).all()
    assert (f["learners"] - f["esc_beneficiaries"] >= o["demand"] - o["esc_beneficiaries"]).all()
    assert (o["demand"] > o["esc_beneficiaries"]).sum() > 100  # rationing happened at many origins


def test_rationing_shares_in_stated_ranges(sample_dir, capacity, truth_schools):
    params = json.loads((sample_dir / "truth" / "params.json").read_text())
    shares, rationing = params["shares"], params["rationing"]
    pairs = _truth(sample_dir, "pairs.csv")
    flows = _truth(sample_dir, "flows.csv")
    esc = truth_schools[truth_schools["esc"]]
    full = (capacity["demand"] > capacity["capacity"]).mean()
    billed_ratio = esc["esc_slots_billed"].sum() / esc["esc_slots"].sum()
    out = int((pairs["demand"] - pairs["esc_beneficiaries"]).sum())
    assert shares["full_schools"] == pytest.approx(full) and 0.3 <= full <= 0.5
    assert shares["billed_over_contracted"] == pytest.approx(billed_ratio) and 0.65 < billed_ratio < 0.8
    assert shares["rationed_out_learners"] == out and 0.05 < out / pairs["demand"].sum() < 0.35
    esc_share = flows["esc_beneficiaries"].sum() / flows["learners"].sum()
    assert shares["esc_share_of_grade7"] == pytest.approx(esc_share) and 0.03 < esc_share < 0.05
    positive = pairs.loc[pairs["esc_beneficiaries"] > 0, "esc_beneficiaries"]
    assert shares["mean_per_positive_pair"] == pytest.approx(positive.mean()) and 1.3 < positive.mean() < 2.6
    over = capacity["utilisation"] > 1
    assert 0.05 < over.mean() < 0.2 and over.mean() == pytest.approx(rationing["overbilled_share"], abs=0.05)
    assert capacity.loc[~over, "utilisation"].mean() == pytest.approx(rationing["utilisation_mean"], abs=0.05)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(1, 60))
def test_admit_is_min_of_demand_and_capacity(seed, n_schools, n_pairs):
    from studentflow.synth.rationing import admit

    rng = np.random.default_rng(seed)
    ids = pd.Index([f"{100000 + k}" for k in range(n_schools)])
    dest = rng.choice(ids.to_numpy(), n_pairs)
    demand = rng.negative_binomial(1.5, 0.4, n_pairs)
    cap = pd.Series(rng.integers(0, 30, n_schools), index=ids)
    got = admit(dest, demand, cap, np.random.default_rng(seed))
    assert (got >= 0).all() and (got <= demand).all()
    total = pd.Series(demand).groupby(dest).sum().reindex(ids, fill_value=0)
    adm = pd.Series(got).groupby(dest).sum().reindex(ids, fill_value=0)
    assert (adm == np.minimum(total, cap)).all()
    fits = cap.reindex(dest).to_numpy() >= total.reindex(dest).to_numpy()
    assert (got[fits] == demand[fits]).all()  # nobody turned away where all fit
    assert np.array_equal(got, admit(dest, demand, cap, np.random.default_rng(seed)))  # same seed, same draw


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_learner_flows_conserve_cohorts_with_rationed_out(seed):
    from studentflow.synth.flows import learner_flows

    rng = np.random.default_rng(seed)
    n_o, n_pub, n_esc = 12, 5, 4
    ids = [f"{200000 + k}" for k in range(n_o + n_pub + n_esc)]
    kind = ["es"] * n_o + ["pub"] * n_pub + ["esc"] * n_esc
    schools = pd.DataFrame({
        "sector": ["public" if k != "esc" else "private" for k in kind],
        "offering": ["purely_es" if k == "es" else "jhs_shs" for k in kind],
        "tier": rng.choice(["NCR", "HUC", "other"], len(ids)),
        "lon": 121.0 + rng.uniform(0, 0.1, len(ids)), "lat": 14.5 + rng.uniform(0, 0.1, len(ids)),
    }, index=pd.Index(ids, name="school_id"))
    o_ids, e_ids = ids[:n_o], ids[-n_esc:]
    pairs = pd.DataFrame([(o, e) for o in o_ids for e in e_ids], columns=["origin_id", "destination_id"])
    pairs["demand"] = rng.poisson(2.0, len(pairs))
    pairs["esc_beneficiaries"] = rng.binomial(pairs["demand"], rng.uniform(0, 1))
    applied = pairs.groupby("origin_id")["demand"].sum().reindex(o_ids)
    cohort = pd.Series(applied.to_numpy() + rng.integers(0, 80, n_o), index=pd.Index(o_ids))
    flows = learner_flows(schools, cohort, pairs, rng)
    assert (flows.groupby("origin_id")["learners"].sum().reindex(o_ids, fill_value=0) == cohort).all()
    e = flows[flows["esc_beneficiaries"] > 0].set_index(["origin_id", "destination_id"])["esc_beneficiaries"]
    want = pairs[pairs["esc_beneficiaries"] > 0].set_index(["origin_id", "destination_id"])["esc_beneficiaries"]
    assert e.sort_index().equals(want.sort_index())
    with pytest.raises(ValueError, match="cohort"):
        learner_flows(schools, pd.Series(applied.to_numpy(), index=cohort.index), pairs.assign(demand=pairs["demand"] + 1),
                      rng)


# ------------------------------------------------------------------ arguments and helpers
def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="scale"):
        make_region(scale=0)
    with pytest.raises(ValueError, match="regions"):
        make_region(regions=("Atlantis",))


def test_regions_parameter_and_temporary_output():
    import shutil

    info = make_region(seed=1, scale=0.1, regions=("NCR",))
    try:
        assert info.out_dir.exists() and info.manifest.exists()
        s = _truth(info.out_dir, "schools.csv")
        assert set(s["region"]) == {"NCR"} and len(s) == pytest.approx(300, rel=0.05)
        assert {f for f in info.files if f.startswith("gr7_")} == {"gr7_enrollees_ncr.csv.gz"}
        assert set(_truth(info.out_dir, "subsidy.csv")["tier"]) == {"NCR"}
        areas = _truth(info.out_dir, "areas.csv")
        assert len(areas) == 17  # 16 cities + Pateros; Manila's districts are not LGUs
    finally:
        shutil.rmtree(info.out_dir)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400), st.floats(0.001, 0.3))
def test_pick_plants_exact_counts_on_eligible_rows(seed, n, p):
    from studentflow.synth.raw import _pick

    rng = np.random.default_rng(seed)
    eligible = rng.random(n) < 0.5
    q = _pick(rng, n, {"a": p, "b": p}, {"a": eligible})
    assert (q[q == "a"] == "a").all() and eligible[q == "a"].all()
    assert (q == "a").sum() == min(eligible.sum(), max(2, round(p * n)))
    assert (q == "b").sum() == min(n - (q == "a").sum(), max(2, round(p * n)))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(50.0, 5000.0))
def test_nb2_draw_is_calibrated_to_the_target_total(seed, target):
    from studentflow.synth.flows import draw_esc

    rng = np.random.default_rng(seed)
    n = 500
    pairs = pd.DataFrame({
        "distance_km": rng.uniform(0, 10, n), "net_cost_k": rng.uniform(0, 40, n),
        "esc_rating": rng.integers(1, 9, n).astype(float), "origin_lgu_revenue": rng.uniform(1e7, 1e10, n),
        "origin_region": rng.choice(list(REGIONS), n), "destination_region": rng.choice(list(REGIONS), n),
    })
    out, intercept = draw_esc(pairs, STUDY_PARAMS, STUDY_ALPHA, target, rng)
    assert out["mu"].sum() == pytest.approx(target, rel=1e-9)
    b = STUDY_PARAMS
    eta = (b["log1p_distance_km"] * np.log1p(pairs["distance_km"]) + b["log1p_net_cost_k"] * np.log1p(pairs["net_cost_k"])
           + b["esc_rating"] * pairs["esc_rating"] + b["log1p_origin_lgu_revenue"] * np.log1p(pairs["origin_lgu_revenue"])
           + sum(b[f"{side}_region[{r}]"] * (pairs[f"{side}_region"] == r)
                 for side in ("origin", "destination") for r in ("Region III", "Region IV-A")))
    assert np.allclose(out["mu"], np.exp(intercept + eta), rtol=1e-10)
    assert (out["esc_beneficiaries"] >= 0).all() and out["esc_beneficiaries"].dtype.kind == "i"


@given(st.sampled_from(sorted(REGION_PSGC)))
def test_region_slug_is_a_distinct_filename(region):
    slug = region_slug(region)
    assert re.fullmatch(r"[a-z0-9]+", slug)
    others = {region_slug(r) for r in REGION_PSGC if r != region}
    assert slug not in others


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz ñ.", min_size=1, max_size=20).map(str.strip).filter(bool))
def test_deped_municipality_upper_and_city_suffix(name):
    assert deped_municipality(name) == name.upper()
    assert deped_municipality(f"City of {name}") == f"{name} CITY".upper()


# ------------------------------------------------------------------ mix, regions="all" and region dummies
def test_resolve_regions_all_in_psgc_order_and_bad_names():
    from studentflow.schema import ALL_REGIONS
    from studentflow.synth.region import resolve_regions

    every = resolve_regions("all")
    assert every == ALL_REGIONS and set(every) == set(REGION_PSGC)
    codes = [REGION_PSGC[r] for r in every]
    assert codes == sorted(codes)
    assert resolve_regions("CAR") == ("CAR",)
    assert resolve_regions(["CAR", "NCR", "CAR"]) == ("CAR", "NCR")
    for bad, shown in ((("NCR", "Atlantis"), "Atlantis"), ("al", "'al'"), ((), "no region"), (5, "5")):
        with pytest.raises(ValueError, match="regions") as e:
            resolve_regions(bad)
        assert shown in str(e.value)
    with pytest.raises(ValueError, match="regions.*Narnia"):
        make_region(regions="Narnia")


def test_mix_rejects_bad_values():
    from studentflow.synth.mix import STUDY_MIX, Mix

    g6 = STUDY_MIX.grade6_median
    with pytest.raises(ValueError, match="counts"):
        Mix("x", {("public", "purely_es"): 10}, 0.5, g6)
    with pytest.raises(ValueError, match="counts"):
        Mix("x", {("public", "purely_es"): -1, ("private", "es_jhs"): 5}, 0.5, g6)
    with pytest.raises(ValueError, match="esc_share_of_private"):
        Mix("x", STUDY_MIX.counts, 0.0, g6)
    with pytest.raises(ValueError, match="grade6_median"):
        Mix("x", STUDY_MIX.counts, 0.5, {"public_es": 10.0})
    with pytest.raises(ValueError, match="mix"):
        make_region(mix={"name": "study"})
    assert "public" in STUDY_MIX.summary() and STUDY_MIX.total() == 3000


def test_default_is_the_study_mix(sample_dir, truth_schools):
    """The sample (made with the defaults) has exactly the study mix's counts and study-only truth."""
    from studentflow.synth.mix import STUDY_MIX

    got = truth_schools.groupby(["sector", "offering"]).size().to_dict()
    assert got == {k: max(1, round(v)) for k, v in STUDY_MIX.counts.items()}
    private = truth_schools["sector"] == "private"
    assert truth_schools["esc"].sum() == round(STUDY_MIX.esc_share_of_private * private.sum())
    params = json.loads((sample_dir / "truth" / "params.json").read_text())
    assert set(params["params"]) == set(STUDY_PARAMS) and "mix" not in params


def test_design_covers_any_region_dummy():
    from studentflow.synth.flows import REGION_EFFECTS, design, region_params

    rng = np.random.default_rng(3)
    regions = sorted(REGION_PSGC)
    pairs = pd.DataFrame({"distance_km": rng.uniform(0, 5, 50), "net_cost_k": rng.uniform(0, 30, 50),
                          "esc_rating": rng.integers(1, 9, 50).astype(float),
                          "origin_lgu_revenue": rng.uniform(1e7, 1e9, 50),
                          "origin_region": rng.choice(regions, 50), "destination_region": rng.choice(regions, 50)})
    assert list(design(pairs).columns) == [k for k in STUDY_PARAMS if k != "intercept"]
    extra = region_params(regions)
    assert region_params(REGIONS) == {}  # the study area gets no new dummies
    assert set(extra) == {f"{s}_region[{r}]" for s in ("origin", "destination") for r in REGION_EFFECTS}
    assert set(REGION_EFFECTS) | {"NCR", "Region III", "Region IV-A"} == set(REGION_PSGC)
    X = design(pairs, list(extra))
    for name in extra:
        side, r = name.split("_region[")
        assert (X[name] == (pairs[f"{side}_region"] == r[:-1]).astype(float)).all()
    with pytest.raises(ValueError, match="names"):
        design(pairs, ["log1p_distance_km", "tuition"])


@pytest.fixture(scope="module")
def national_small(tmp_path_factory):
    """A small national-mix region over every region (scale 0.4, about 1,200 institutions)."""
    from studentflow.synth.mix import NATIONAL_MIX

    out = tmp_path_factory.mktemp("national_small")
    info = make_region(seed=11, scale=0.4, out_dir=out, regions="all", mix=NATIONAL_MIX, write_matrix=False)
    return info


def test_national_mix_counts_follow_the_mix(national_small):
    from studentflow.schema import ALL_REGIONS, OFFERS_JHS
    from studentflow.synth.mix import NATIONAL_MIX
    from studentflow.synth.region import G6_SIGMA, STAY_RATE

    d = national_small.out_dir
    s = _truth(d, "schools.csv").set_index("school_id")
    got = s.groupby(["sector", "offering"]).size().to_dict()
    assert got == {k: max(1, round(v * 0.4)) for k, v in NATIONAL_MIX.counts.items()}
    private = s["sector"] == "private"
    assert s["esc"].sum() == min((private & s["offering"].isin(OFFERS_JHS)).sum(),
                                 round(NATIONAL_MIX.esc_share_of_private * private.sum()))
    public = s[~private]
    assert public["offering"].isin(["purely_es", "es_jhs"]).sum() > 3 * public["offering"].isin(OFFERS_JHS).sum()
    assert set(s["region"]) == set(ALL_REGIONS)
    assert set(_truth(d, "areas.csv")["region"]) == set(ALL_REGIONS)
    # Grade 7 learners: each origin's lognormal Grade 6 mean times the stay rate, within sampling error
    origin = s["offering"].isin(["purely_es", "es_jhs", "all_offering"])
    o = s[origin]
    kind = np.where(o["sector"] == "private", "private",
                    np.where(o["offering"] == "es_jhs", "public_es_jhs", "public_es"))
    med = pd.Series(kind).map(NATIONAL_MIX.grade6_median).to_numpy()
    med = np.where((o["region"].to_numpy() == "NCR") & (kind != "private"), med * NATIONAL_MIX.ncr_factor, med)
    expected = (med * np.exp(G6_SIGMA**2 / 2)).sum() * STAY_RATE
    learners = _truth(d, "flows.csv")["learners"].sum()
    assert learners == national_small.counts["learners"]
    assert learners == pytest.approx(expected, rel=0.05)
    assert learners / origin.sum() < 80  # far smaller cohorts than the study area's ~137


def test_national_mix_truth_has_every_region_dummy(national_small):
    from studentflow.schema import ALL_REGIONS
    from studentflow.synth.flows import REGION_EFFECTS

    d = national_small.out_dir
    params = json.loads((d / "truth" / "params.json").read_text())
    assert params["regions"] == list(ALL_REGIONS) and params["mix"] == "national"
    p = params["params"]
    for r in ALL_REGIONS:
        if r in REGION_EFFECTS:
            assert (p[f"origin_region[{r}]"], p[f"destination_region[{r}]"]) == REGION_EFFECTS[r]
    assert set(p) == set(STUDY_PARAMS) | {f"{s}_region[{r}]" for s in ("origin", "destination")
                                          for r in ALL_REGIONS if r != "NCR" and f"{s}_region[{r}]" not in STUDY_PARAMS}
    pairs = _truth(d, "pairs.csv")
    assert pairs["origin_region"].nunique() > 3
    eta = (p["intercept"] + p["log1p_distance_km"] * np.log1p(pairs["distance_km"])
           + p["log1p_net_cost_k"] * np.log1p(pairs["net_cost_k"]) + p["esc_rating"] * pairs["esc_rating"]
           + p["log1p_origin_lgu_revenue"] * np.log1p(pairs["origin_lgu_revenue"]))
    for side in ("origin", "destination"):
        for r in ALL_REGIONS:
            if r != "NCR":
                eta += p[f"{side}_region[{r}]"] * (pairs[f"{side}_region"] == r)
    assert np.allclose(pairs["mu"], np.exp(eta), rtol=1e-8)
    # rationing is kept: admitted never above demand, nor a school's admitted above its capacity
    assert (pairs["esc_beneficiaries"] <= pairs["demand"]).all()
    cap = _truth(d, "esc_capacity.csv").set_index("school_id")
    admitted = pairs.groupby("destination_id")["esc_beneficiaries"].sum()
    assert (admitted.to_numpy() <= cap.loc[admitted.index, "capacity"].to_numpy()).all()
    assert (cap["full"] == (cap["demand"] > cap["capacity"])).all()
