"""Ingestion on a tiny hand-made region written to tmp_path (known answers by hand).

Each planted quirk has a known outcome; the tests check the canonical tables against the
hand-computed answers and the ledger against the planted rows.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studentflow.errors import DataError
from studentflow.ingest import load_bundle

G = [f"G{g} {s}" for g in range(1, 11) for s in ("Male", "Female")]


def _enrol_row(region, prov, mun, sid, name, sector, coc, grades):
    wide = []
    for g in range(1, 11):
        n = grades.get(g, 0)
        wide += [n // 2, n - n // 2]
    return [region, "Division X", prov, mun, sid, name, sector, coc, *wide]


def write_mini(folder: Path, *, extra_manifest: str = "") -> Path:
    """Write a tiny region; return its manifest path."""
    import openpyxl

    folder.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "DATA"
    ws.append(["SCHOOL LEVEL DATA ON ENROLLMENT"])           # row 1
    ws.append(["SY 2023-2024"])                              # row 2
    ws.append([])                                            # row 3
    ws.append(["Region", "Division", "Province", "Municipality", "BEIS School ID", "School Name",
               "Sector", "Modified COC", *G])               # row 4 (header)
    rows = [
        _enrol_row("NCR", "NCR", "QUEZON CITY", 100001, "A ES", "Public", "Purely ES", {6: 40}),       # 5
        _enrol_row("National Capital Region", "NCR", "Quezon City", "100002", "B HS", "Public",
                   "Purely JHS", {7: 90, 8: 80, 9: 70, 10: 60}),                                          # 6
        _enrol_row("Region IV-A", "Cavite", "DASMARINAS CITY", 100003.0, "C Academy", "Private",
                   "ES and JHS", {6: 10, 7: 20, 8: 20}),                                                  # 7
        _enrol_row("CALABARZON", "Cavite", "City of Dasmariñas", "100004", "D HS", "Public", "Purely JHS",
                   {7: 100, 8: 100}),                                                                     # 8
        _enrol_row("Region III", "PAMPANGA", "SAN FERNANDO CITY", "50005", "E ES", "Public", "Purely ES",
                   {6: 30}),                                                                              # 9
        _enrol_row("NCR", "NCR", "QUEZON CITY", 100001, "A ES", "Public", "Purely ES", {6: 40}),       # 10 dup
        _enrol_row("NCR", "NCR", "QUEZON CITY", "ABC", "bad", "Public", "Purely ES", {6: 1}),          # 11 invalid
        _enrol_row("NCR", "NCR", "NOWHERESVILLE", "100006", "F ES", "Public", "Purely ES", {6: 5}),    # 12
    ]
    for r in rows:
        ws.append(r)
    wb.save(folder / "enrollment.xlsx")

    (folder / "coords.csv").write_text(
        "School ID,Latitude,Longitude\n"       # 1
        "100001,14.65,121.05\n"                # 2
        "100002,121.04,14.66\n"                # 3 swapped
        "100003,14.33,120.94\n"                # 4
        "100003,14.90,121.60\n"                # 5 second row, farther from Dasmarinas
        "100004,0,0\n"                         # 6 zero
        "050005,15.031234,120.691234\n"        # 7
        "100004,35.0,139.0\n"                  # 8 outside
        "999999,14.5,121.0\n"                  # 9 unknown school
        "050005,15.0312,120.6912\n"            # 10 same point, fewer decimals
        "100006,14.6500,121.0400\n",           # 11 inside Quezon City
        encoding="utf-8")
    (folder / "seats.csv").write_text(
        "Seat-Learner Ratio 2023\n"            # 1 title
        "School ID,Seats ES,Seats JHS,Seats SHS\n"   # 2
        "100001,50,,\n"                        # 3
        "100002,250,200,\n"                    # 4
        "100004,,,\n", encoding="utf-8")       # 5 missing JHS seats -> imputed
    (folder / "private.csv").write_text(
        "School_ID,Chairs ES,Chairs JHS,Chairs SHS\n100003,\"1,250\",\"1,000\",0\n", encoding="utf-8")
    lrn = [f"{100001:06d}{i:06d}" for i in range(1, 9)]
    trans = ["Region,Division,LRN,BEIS School ID in Grade 7,School Namein Grade 7,SY enrolled in Grade 6,"
             "BEIS School ID in Grade 6,School Name in Grade 6"]
    recs = [(lrn[0], "100002", "100001"), (lrn[1], "100002", "100001"), (lrn[2], "100003", "100001"),
            (lrn[3], "100003", "050005"), (lrn[4], "100004", "50005"),
            (lrn[0], "100003", "100001"),       # line 7: repeated LRN
            (lrn[5], "100002", "12345678"),     # line 8: invalid Grade 6 ID
            (lrn[6], "100002", "888888")]       # line 9: Grade 6 outside the study area
    for a, d, o in recs:
        trans.append(f"NCR,X,{a},{d},x,2022-2023,{o},y")
    with gzip.open(folder / "gr7_ncr.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(trans) + "\n")
    (folder / "billing.csv").write_text(
        "deped id,lrn,school id,school name,grade,billing statement number,esc_subsidy_amount\n"
        f"100003,{lrn[2]},7000001,C,7,1,\"₱9,000.00\"\n"
        f"100003,{lrn[2]},7000001,C,7,2,\"₱9,000.00\"\n"
        f"100003,{lrn[7]},7000001,C,7,3,\"₱9,000.00\"\n", encoding="utf-8")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["ESC Slots"])
    ws.append(["ESC School ID", "DepEd School ID", "School Name", "slots_total", "slots_billed"])
    ws.append([7000001, 100003, "C", 10, 5])
    ws.append([7000002, "100003", "C annex", "5", "2"])
    wb.save(folder / "slots.xlsx")
    (folder / "tuition.csv").write_text(
        "ESC School ID,School Name,G7 Tuition,G8 Tuition,Other Fees,Misc Fees\n"
        "7000001,C,\"₱25,000.00\",x,N/A,\"₱3,000.00\"\n", encoding="utf-8")
    (folder / "rating.csv").write_text("ESC School ID,Certification\n7000002,Certified\n", encoding="utf-8")
    (folder / "lgu.csv").write_text(
        "Province,LGU,Total Revenues of the LGU (in Php)\n"
        "Metro Manila,Quezon City,\"40,000,000,000\"\n"
        "Cavite,City of Dasmariñas,0\n", encoding="utf-8")
    (folder / "rates.csv").write_text(
        "Location tier,Grade,Amount\nNCR,7,\"₱13,000\"\nHighly Urbanized City,7,\"₱11,000\"\n"
        "Other,7,\"₱9,000\"\n", encoding="utf-8")
    m = folder / "manifest.toml"
    entries = [("enrollment", "enrollment.xlsx"), ("coordinates", "coords.csv"), ("seats", "seats.csv"),
               ("private_seats", "private.csv"), ("transitions", "gr7_ncr.csv.gz"),
               ("esc_beneficiaries", "billing.csv"), ("esc_slots", "slots.xlsx"), ("tuition", "tuition.csv"),
               ("esc_rating", "rating.csv"), ("lgu_income", "lgu.csv"), ("subsidy_rates", "rates.csv")]
    m.write_text("".join(f'[[source]]\nkind = "{k}"\npath = "{p}"\n\n' for k, p in entries) + extra_manifest,
                 encoding="utf-8")
    return m


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return load_bundle(write_mini(tmp_path_factory.mktemp("mini")))


def _events(bundle, file):
    led = bundle.ledger
    led = led[led["file"] == file]
    return {(int(r), a) for r, a in zip(led["row"], led["action"])}


def test_mini_schools(mini):
    s = mini.schools
    assert sorted(s.index) == ["050005", "100001", "100002", "100003", "100004", "100006"]
    assert s.loc["100006", "psgc_code"] == "1381300000"       # unknown name: nearest centroid
    assert s.loc["100002", "region"] == "NCR" and s.loc["100004", "region"] == "Region IV-A"
    assert s.loc["100002", "jhs_enrolment"] == 300 and s.loc["100001", "enrol_g6"] == 40
    assert s.loc["100003", "offering"] == "es_jhs" and s.loc["100003", "sector"] == "private"
    assert s.loc["050005", "psgc_code"] == "0305416000"      # City of San Fernando, Pampanga
    assert s.loc["100003", "psgc_code"] == s.loc["100004", "psgc_code"] == "0402106000"
    # swapped coordinates repaired; the second point of 100003 (farther away) merged
    assert (s.loc["100002"].geometry.x, s.loc["100002"].geometry.y) == (121.04, 14.66)
    assert (s.loc["100003"].geometry.x, s.loc["100003"].geometry.y) == (120.94, 14.33)
    assert s.loc["100004"].geometry is None
    assert (s.loc["050005"].geometry.x, s.loc["050005"].geometry.y) == (120.691234, 15.031234)
    assert s.crs.to_epsg() == 4326


def test_mini_seats_and_esc(mini):
    s = mini.schools
    assert s.loc["100002", "jhs_seats"] == 200 and not s.loc["100002", "jhs_seats_imputed"]
    assert np.isnan(s.loc["100001", "jhs_seats"])                 # no JHS offered
    assert s.loc["100003", "jhs_seats"] == 1000                   # "1,000" parsed
    assert s.loc["100004", "jhs_seats_imputed"] and s.loc["100004", "jhs_seats"] > 0
    assert s.loc["100003", "esc"] and s.loc["100003", "esc_slots"] == 15
    assert s.loc["100003", "esc_slots_billed"] == 7
    assert s.loc["100003", "tuition"] == 28_000.0                 # 25,000 + 3,000 + N/A
    assert s.loc["100003", "esc_rating"] == 6.0                   # via the second ESC ID
    assert mini.subsidy.loc["100003", "tier"] == "other"
    assert mini.subsidy.loc["100003", "amount"] == 9_000.0


def test_mini_flows(mini):
    f = mini.flows.set_index(["origin_id", "destination_id"])
    expect = {("100001", "100002"): (2, 0), ("100001", "100003"): (1, 1),
              ("050005", "100003"): (1, 0), ("050005", "100004"): (1, 0)}
    assert {k: tuple(v) for k, v in f[["learners", "esc_beneficiaries"]].iterrows()} == expect


def test_mini_ledger(mini):
    # header under 3 title rows, region variants (6, 8), ID without its leading zero (9),
    # exact duplicate (10), invalid ID (11); 100004 (8) has no valid point: incomplete
    assert _events(mini, "enrollment.xlsx") == {(4, "corrected"), (6, "corrected"), (8, "corrected"),
                                                (9, "corrected"), (10, "dropped"), (11, "dropped"),
                                                (12, "imputed"), (8, "incomplete")}
    assert _events(mini, "coords.csv") == {(3, "corrected"), (5, "merged"), (6, "dropped"),
                                           (8, "dropped"), (9, "dropped"), (10, "merged")}
    assert _events(mini, "gr7_ncr.csv.gz") == {(7, "dropped"), (8, "dropped"), (9, "dropped")}
    assert _events(mini, "billing.csv") == {(3, "merged"), (4, "dropped")}
    assert _events(mini, "slots.xlsx") == {(2, "corrected"), (4, "merged")}
    assert _events(mini, "private.csv") == {(2, "corrected")}
    assert (5, "imputed") in _events(mini, "seats.csv")
    assert (3, "imputed") in _events(mini, "lgu.csv")
    areas = mini.areas
    assert areas.loc["0402106000", "lgu_revenue_imputed"] and areas.loc["0402106000", "lgu_revenue"] > 0
    assert areas.loc["1381300000", "lgu_revenue"] == 40e9


def test_mini_accounting(mini):
    src = mini.sources.set_index("file")
    assert (src["rows_read"] == src["kept"] + src["merged"] + src["dropped"]).all()
    assert src.loc["enrollment.xlsx", "rows_read"] == 8
    assert src.loc["gr7_ncr.csv.gz", "rows_read"] == 8 and src.loc["gr7_ncr.csv.gz", "kept"] == 5
    assert mini.flows["learners"].sum() == src.loc["gr7_ncr.csv.gz", "kept"]
    text = mini.summary()
    assert "gr7_ncr.csv.gz" in text and "rows_read" in text


def test_validation_rejects_broken_tables(mini):
    from studentflow.ingest.validate import validate_tables

    tables = {"schools": mini.schools, "flows": mini.flows, "areas": mini.areas,
              "subsidy": mini.subsidy, "ledger": mini.ledger}
    validate_tables(tables)  # the real tables pass
    bad_flows = mini.flows.assign(esc_beneficiaries=mini.flows["learners"] + 1)
    with pytest.raises(DataError, match="'flows' failed validation"):
        validate_tables({**tables, "flows": bad_flows})
    bad_schools = mini.schools.copy()
    bad_schools.loc["100003", "esc_rating"] = 9.0
    with pytest.raises(DataError, match="'schools' failed validation"):
        validate_tables({**tables, "schools": bad_schools})


def test_ledger_refuses_lrn_like_reasons():
    from studentflow.ingest.ledger import Ledger

    with pytest.raises(ValueError, match="12-digit"):
        Ledger().add("transitions", "t.csv", 2, "", "dropped", "learner 100001000001 repeated")
    with pytest.raises(ValueError, match="action"):
        Ledger().add("transitions", "t.csv", 2, "", "deleted", "why")


def test_same_input_same_bundle(mini, tmp_path):
    again = load_bundle(write_mini(tmp_path / "again"))
    pd.testing.assert_frame_equal(again.ledger, mini.ledger)
    pd.testing.assert_frame_equal(again.flows, mini.flows)
    assert again.schools.drop(columns="geometry").equals(mini.schools.drop(columns="geometry"))


def test_default_manifest_is_the_bundled_sample(tmp_path, monkeypatch):
    import studentflow.paths

    m = write_mini(tmp_path / "default")
    monkeypatch.setattr(studentflow.paths, "sample_manifest", lambda: m)
    assert load_bundle().sources["file"].tolist() == load_bundle(m).sources["file"].tolist()


def test_road_inputs_passed_on_unparsed(tmp_path):
    folder = tmp_path / "roads"
    extra = ('[[source]]\nkind = "road_network"\npath = "roads.csv.gz"\n\n'
             '[[source]]\nkind = "road_distances"\npath = "m.npy"\n\n')
    m = write_mini(folder, extra_manifest=extra)
    (folder / "roads.csv.gz").write_bytes(b"not parsed by ingest")
    (folder / "m.npy").write_bytes(b"not parsed either")
    (folder / "m_index.json").write_text("{}")
    b = load_bundle(m)
    assert b.extras == {"road_network": folder.resolve() / "roads.csv.gz",
                        "road_distances": (folder.resolve() / "m.npy", folder.resolve() / "m_index.json")}
    assert "roads.csv.gz" not in set(b.sources["file"])
