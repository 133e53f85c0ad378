"""Tests of studentflow.synth.make_years: several school years of one evolving world."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studentflow.synth.flows import design
from studentflow.synth.region import STAY_RATE

SEED, SCALE = 7, 0.25  # the latest year must equal conftest's small_region (same seed and scale)
IDS = {c: str for c in ("school_id", "origin_id", "destination_id", "psgc_code")}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from studentflow.synth import make_years

    out = tmp_path_factory.mktemp("years_s7")
    info = make_years(seed=SEED, scale=SCALE, out_dir=out, years=3)
    assert info.years == ("2021-2022", "2022-2023", "2023-2024")
    assert "policy 2022-2023 -> 2023-2024" in info.summary()
    return out


@pytest.fixture(scope="module")
def meta(world) -> dict:
    return json.loads((world / "truth" / "years.json").read_text(encoding="utf-8"))


def _truth(d: Path, meta: dict, year: str, name: str) -> pd.DataFrame:
    path = d / meta["truth"][year] / meta["truth_files"][year].format(name=name)
    return pd.read_csv(path, dtype=IDS)


def _norm(ids: pd.Series) -> pd.Series:
    """DepEd IDs as the files write them → digits ('136512.0', ' 136512 ', '36512' → 6+ digits)."""
    s = ids.astype(str).str.strip().str.replace(r"\.0$", "", regex=True)
    return s.where(s.str.len() >= 6, s.str.zfill(6))


def _enrolment_ids(d: Path, year: str) -> set:
    from openpyxl import load_workbook

    wb = load_workbook(d / f"enrollment_sy{year}.xlsx", read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    wb.close()
    head = next(k for k, r in enumerate(rows) if r and "BEIS School ID" in r)
    col = rows[head].index("BEIS School ID")
    return set(_norm(pd.Series([r[col] for r in rows[head + 1:]])))


def _manifest(d: Path) -> list[dict]:
    return tomllib.loads((d / "manifest.toml").read_text(encoding="utf-8"))["source"]


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_latest_year_is_the_single_year_output(world, small_region):
    one, many = _files(small_region), _files(world)
    shared_extended = {"manifest.toml", "road_matrix.npy", "road_matrix_index.json", "school_coordinates.csv"}
    assert [k for k in one if k not in shared_extended and one[k] != many.get(k)] == []
    a, b = np.load(small_region / "road_matrix.npy"), np.load(world / "road_matrix.npy")
    assert b.shape[0] == a.shape[0] and b.shape[1] > a.shape[1]  # columns for ESC schools of earlier years
    assert np.array_equal(b[:, : a.shape[1]], a)
    coords = (world / "school_coordinates.csv").read_bytes()  # closed schools' points appended
    assert coords.startswith(one["school_coordinates.csv"]) and len(coords) > len(one["school_coordinates.csv"])
    ia = json.loads((small_region / "road_matrix_index.json").read_text())
    ib = json.loads((world / "road_matrix_index.json").read_text())
    assert ib["rows"] == ia["rows"] and all(ib["cols"][k] == v for k, v in ia["cols"].items())


def test_manifest_years_and_shared_sources(world):
    src = _manifest(world)
    years = {e.get("school_year") for e in src}
    assert years == {None, "2021-2022", "2022-2023", "2023-2024"}
    for y in ("2021-2022", "2022-2023", "2023-2024"):
        kinds = {e["kind"] for e in src if e.get("school_year") == y}
        assert kinds == {"enrollment", "transitions", "esc_beneficiaries", "esc_slots", "tuition", "subsidy_rates"}
    shared = {e["kind"] for e in src if "school_year" not in e}
    assert {"coordinates", "seats", "road_network", "road_distances", "school_id_crosswalk", "lgu_income",
            "esc_rating"} <= shared
    for e in src:
        assert (world / e["path"]).is_file()


def test_cohort_moves_on(world, meta):
    for y, nxt in (("2021-2022", "2022-2023"), ("2022-2023", "2023-2024")):
        s = _truth(world, meta, y, "schools").set_index("school_id")
        pool = _truth(world, meta, nxt, "flows").groupby("origin_id")["learners"].sum()
        g6 = s["enrol_g6"].reindex(pool.index)
        assert g6.notna().all()  # every origin of year t+1's transitions is a school in year t
        assert (g6 >= pool).all()  # Grade 6 = the learners who stay in the data + leavers
        assert g6.sum() * STAY_RATE == pytest.approx(pool.sum(), rel=0.01)
        after = _truth(world, meta, nxt, "schools").set_index("school_id")
        jhs = s.index[(s["enrol_g8"] > 0)].intersection(after.index)
        assert np.corrcoef(s.loc[jhs, "enrol_g8"], after.loc[jhs, "enrol_g9"])[0, 1] > 0.95


def test_crosswalk_covers_exactly_the_old_ids_used(world, meta):
    xw = pd.read_csv(world / "school_id_mapping.csv", dtype=str)
    assert list(xw.columns[:3]) == ["school_id_2024", "BEIS School ID", "old_school_id"]
    assert xw["old_school_id"].str.endswith(".0").any() or xw["school_id_2024"].str.endswith(".0").any()
    old = set(_norm(xw["old_school_id"]))
    assert any(len(x) == 7 and x.startswith("1") for x in old)  # DepEd's 7-digit twins
    current = set(_truth(world, meta, "2023-2024", "schools")["school_id"])
    assert set(_norm(xw["school_id_2024"])) <= current
    known = current | {c["school_id"] for c in meta["closed"]}
    used = set()
    for y in ("2021-2022", "2022-2023"):
        used |= _enrolment_ids(world, y) - known
    assert used == old
    assert _enrolment_ids(world, "2023-2024") <= current


def test_policy_change_in_the_raw_files(world, meta):
    p = meta["policy"]
    rates = {y: pd.read_csv(world / f, dtype=str) for y, f in
             (("2022-2023", "esc_subsidy_rates_sy2022-2023.csv"), ("2023-2024", "esc_subsidy_rates.csv"))}
    g7 = {y: r[r["Grade"] == "7"].set_index("Location tier")["Amount"].astype(float) for y, r in rates.items()}
    diff = g7["2023-2024"] - g7["2022-2023"]
    assert diff["NCR"] == p["amount_after"] - p["amount_before"] > 0
    assert (diff.drop("NCR") == 0).all()
    xw = pd.read_csv(world / "school_id_mapping.csv", dtype=str)
    back = dict(zip(_norm(xw["old_school_id"]), _norm(xw["school_id_2024"])))

    def slots(name):
        t = pd.read_excel(world / name, dtype=str, engine="openpyxl")
        sid = _norm(t["DepEd School ID"]).map(lambda x: back.get(x, x))
        return t["slots_total"].astype(int).groupby(sid.to_numpy()).sum()

    before, after = slots("esc_slots_sy2022-2023.xlsx"), slots("esc_slots.xlsx")
    added = pd.Series(p["slots_added"])
    assert len(added) >= 2 and (added > 0).all()
    assert ((after[added.index] - before[added.index]) == added).all()
    # the change in ESC placements is visible: more admitted learners at the schools given slots
    cap = {y: _truth(world, meta, y, "esc_capacity").set_index("school_id") for y in ("2022-2023", "2023-2024")}
    gain = cap["2023-2024"].loc[added.index, "admitted"].sum() - cap["2022-2023"].loc[added.index, "admitted"].sum()
    assert gain > 0.3 * added.sum()


def test_one_truth_dgp_across_years(world, meta):
    params = None
    for y in meta["years"]:
        d = world / meta["truth"][y]
        p = json.loads((d / "params.json").read_text())
        params = params or p["params"]
        assert p["params"] == params and p["alpha"] == pytest.approx(0.3948)
        pairs = _truth(world, meta, y, "pairs")
        X = design(pairs, [c for c in params if c != "intercept"])
        mu = np.exp(params["intercept"] + X.to_numpy() @ np.array([params[c] for c in X.columns]))
        assert np.allclose(pairs["mu"], mu, rtol=1e-9)
        cap = _truth(world, meta, y, "esc_capacity").set_index("school_id")
        assert (cap["admitted"] <= cap["capacity"]).all()
        assert (cap["admitted"] == np.minimum(cap["demand"], cap["capacity"])).all()
        assert pairs["net_cost_k"].to_numpy() == pytest.approx(
            np.maximum(0, pairs["tuition"] - pairs["esc_amount"]).to_numpy() / 1000)
    # each school keeps its administrative utilisation across years
    u = [_truth(world, meta, y, "esc_capacity").set_index("school_id")["utilisation"] for y in meta["years"]]
    common = u[0].index.intersection(u[-1].index)
    assert len(common) > 50 and np.allclose(u[0][common], u[-1][common])


def test_opened_and_closed_schools(world, meta, small_region):
    years = meta["years"]
    enrol = {y: _enrolment_ids(world, y) for y in years}
    assert meta["closed"] and meta["opened"]
    for c in meta["closed"]:
        k = years.index(c["last_year"])
        assert all(c["school_id"] in enrol[y] for y in years[: k + 1])
        assert all(c["school_id"] not in enrol[y] for y in years[k + 1:])
    for o in meta["opened"]:
        k = years.index(o["first_year"])
        assert all(o["school_id"] not in enrol[y] for y in years[:k])
        assert all(o["school_id"] in enrol[y] for y in years[k:])
    pts = pd.read_csv(world / "school_coordinates.csv", dtype=str)
    n = len(pd.read_csv(small_region / "school_coordinates.csv", dtype=str))
    assert set(pts["School ID"].iloc[n:]) == {c["school_id"] for c in meta["closed"]}  # appended rows


def test_earlier_year_loads_with_one_year_manifest(world, meta, tmp_path):
    """Until the multi-year loader: one year's sources + the shared ones give that year's bundle."""
    from studentflow.ingest import load_bundle
    from studentflow.synth.years_write import manifest_text

    y = "2022-2023"
    one = [e for e in _manifest(world) if e.get("school_year", y) == y]
    path = world / "manifest_one_year_test.toml"
    path.write_text(manifest_text(one), encoding="utf-8")
    try:
        b = load_bundle(path)
    finally:
        path.unlink()
    s = _truth(world, meta, y, "schools").set_index("school_id")
    twins = {r["school_id"] for r in meta["renamed"] if len(r["old_id"]) == 7 and r["first_year_current_id"] > y}
    keep = s.index.difference(list(twins))
    assert set(b.schools.index) >= set(keep)
    got = b.schools.loc[keep]
    assert (got["esc_slots"] == s.loc[keep, "esc_slots"]).all()
    assert np.allclose(got["tuition"].fillna(-1), s.loc[keep, "tuition"].fillna(-1))
    sub = _truth(world, meta, y, "subsidy").set_index("school_id")
    assert (b.subsidy["amount"].reindex(sub.index.intersection(keep)) == sub["amount"].reindex(
        sub.index.intersection(keep))).all()


def test_make_sample_cli_years(tmp_path):
    from studentflow.cli import main

    out = tmp_path / "w"
    assert main(["make-sample", str(out), "--years", "2", "--seed", "3", "--scale", "0.08"]) == 0
    meta = json.loads((out / "truth" / "years.json").read_text())
    assert meta["years"] == ["2022-2023", "2023-2024"]
    assert {e.get("school_year") for e in _manifest(out)} == {None, "2022-2023", "2023-2024"}
    assert (out / "truth" / "2022-2023" / "pairs.csv.gz").is_file()
    assert main(["make-sample", str(tmp_path / "x"), "--years", "0"]) == 2


def test_panel_gives_every_years_truth(world, meta):
    """load_panel on the written world: every year's schools, flows and subsidy are that year's truth."""
    from studentflow.ingest import load_panel

    panel = load_panel(world / "manifest.toml")
    assert panel.years == tuple(meta["years"])
    for y in panel.years:
        b = panel[y]
        s = _truth(world, meta, y, "schools").set_index("school_id")
        assert set(b.schools.index) == set(s.index)
        got = b.schools.loc[s.index]
        assert (got["esc_slots"] == s["esc_slots"]).all() and (got["enrol_g6"] == s["enrol_g6"]).all()
        assert np.allclose(got["tuition"].fillna(-1), s["tuition"].fillna(-1))
        key = ["origin_id", "destination_id"]
        f = _truth(world, meta, y, "flows").sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(b.flows.sort_values(key, ignore_index=True)[f.columns], f, check_dtype=False)
        sub = _truth(world, meta, y, "subsidy").set_index("school_id")
        assert (b.subsidy.loc[sub.index, "amount"] == sub["amount"]).all()
    renamed = {r["school_id"] for r in meta["renamed"]}
    moved = panel.identity[panel.identity["school_id"] != panel.identity["year_id"]]
    assert set(moved["school_id"]) == renamed
