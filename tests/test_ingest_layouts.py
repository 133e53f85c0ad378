"""Real layouts read as they are (fixtures written here, small and made up): the public wide
snake_case enrolment CSV, the ``id, school_name, longitude, latitude`` coordinate list, the
NSBI workbook (sheet DB, five title rows, ``LIS SCHOOL ID`` as numbers); manifest column
mapping and header_row; several coordinate sources by priority."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studentflow.errors import DataError
from studentflow.ingest import load_bundle
from studentflow.ingest.enrollment import grade_strand_sex, read_enrollment
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source
from studentflow.ingest.readers import read_coordinates
from test_ingest_mini import write_mini

WIDE = ["school_id", "school_name", "region", "province", "municipality", "barangay", "street_address",
        "legislative_district", "division", "school_district", "sector", "school_management", "annex_status",
        "offers_es", "offers_jhs", "offers_shs",
        *[f"g{g}_{s}" for g in range(1, 11) for s in ("male", "female")],
        "g11_stem_male", "g11_stem_female", "g12_tvl_female", "g11_sshs_acad_male"]


def _wide_row(sid, name, mun, sector, offers, counts, shs=(0, 0, 0, 0)):
    g = [counts.get(k, "") for k in range(1, 11) for _ in (0, 1)]
    return [sid, name, "Region IV-A", "CAVITE", mun, "Poblacion", "", "1st District", "Cavite", "D1", sector,
            "DepEd", "Mother school", *offers, *g, *shs]


def test_grade_strand_sex_split_from_both_ends():
    assert grade_strand_sex("g11_sshs_acad_male") == (11, "sshs_acad", "male")
    assert grade_strand_sex("G12_TVL_Female") == (12, "tvl", "female")
    assert grade_strand_sex("g7_male") == (7, "", "male")
    assert grade_strand_sex("offers_es") is None and grade_strand_sex("g11_stem") is None


def test_wide_snake_case_enrolment_csv(tmp_path):
    import csv

    p = tmp_path / "enrol_2023.csv"
    rows = [WIDE,
            _wide_row("136512", "A NHS", "DASMARINAS CITY", "Public", ("No", "Yes", "Yes"), {7: "1,204", 8: 900},
                      ("30", "31", "12", "5")),
            _wide_row("36513", "B ES", "DASMARINAS CITY", "Public", ("Yes", "No", "No"), {1: 40, 6: 38}),
            _wide_row("136514.0", "C Academy", "DASMARINAS CITY", "Private", ("TRUE", "TRUE", "FALSE"), {6: 5, 7: 9})]
    with open(p, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    led = Ledger()
    df = read_enrollment(Source("enrollment", p, p.name), led).set_index("school_id")
    assert list(df.index) == ["136512", "036513", "136514"]
    assert list(df["offering"]) == ["jhs_shs", "purely_es", "es_jhs"]
    # both sexes summed; "1,204" read; blanks are 0
    assert df.loc["136512", "enrol_g7"] == 2 * 1204 and df.loc["136512", "enrol_g1"] == 0
    assert df.loc["036513", "enrol_g6"] == 76 and df.loc["136512", "division"] == "Cavite"
    cols = led.detected[("enrollment", p.name)]["columns"]
    assert cols["school_id"].header == "school_id" and cols["g7_male"].header == "g7_male"
    assert "offering" not in cols and cols["offers_jhs"].header == "offers_jhs"


def test_offering_from_grades_when_the_file_has_none(tmp_path):
    import csv

    p = tmp_path / "enrol.csv"
    head = [h for h in WIDE if not h.startswith("offers_")]
    a = _wide_row("136512", "A NHS", "X", "Public", (), {7: 10}, ("3", "0", "0", "0"))
    b = _wide_row("136513", "B ES", "X", "Public", (), {2: 10})
    with open(p, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([head, a, b])
    led = Ledger()
    df = read_enrollment(Source("enrollment", p, p.name), led)
    assert list(df["offering"]) == ["jhs_shs", "purely_es"]
    f = led.frame()
    assert set(zip(f["row"], f["action"])) == {(2, "imputed"), (3, "imputed")}


def test_public_coordinate_list_longitude_first(tmp_path):
    p = tmp_path / "schools_geo.csv"
    p.write_text("id,school_name,longitude,latitude\n136512,A NHS,120.94,14.33\n36513,B ES,121.05,14.65\n",
                 encoding="utf-8")
    df = read_coordinates(Source("coordinates", p, p.name), Ledger())
    assert list(zip(df["school_id"], df["lon"], df["lat"])) == [("136512", 120.94, 14.33), ("036513", 121.05, 14.65)]


def _nsbi(path: Path, points) -> None:
    """NSBI-style workbook: sheet DB, five title rows, 13 columns, IDs as numbers."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "Summary"
    ws = wb.create_sheet("DB")
    for t in ["Republic of the Philippines", "Department of Education", "NATIONAL SCHOOL BUILDING INVENTORY",
              "School Year 2022-2023", ""]:
        ws.append([t])
    ws.append(["Region", "Division", "District", "LIS SCHOOL ID", "School Name", "Province", "Municipality",
               "Barangay", "Latitude", "Longitude", "Buildings", "Classrooms", "Remarks"])
    for sid, lat, lon in points:
        ws.append(["NCR", "QC", "D1", sid, "S", "NCR", "QC", "B", lat, lon, 2, 14, ""])
    wb.save(path)


def test_nsbi_workbook_with_mapping_and_header_row(tmp_path):
    m = write_mini(tmp_path / "r")
    _nsbi(m.parent / "nsbi.xlsx", [(100001, 14.65, 121.05), (100002, 14.66, 121.04), (100004, 14.40, 120.95)])
    text = m.read_text().replace('path = "coords.csv"\n', 'path = "nsbi.xlsx"\nsheet = "DB"\nheader_row = 6\n'
                                 '[source.columns]\nschool_id = "LIS SCHOOL ID"\nlatitude = "Latitude"\n'
                                 'longitude = "Longitude"\n')
    m.write_text(text)
    b = load_bundle(m)
    s = b.schools
    assert (s.loc["100004"].geometry.x, s.loc["100004"].geometry.y) == (120.95, 14.40)
    assert s.loc["100003"].geometry is None  # not in the workbook
    led = b.ledger[b.ledger["file"] == "nsbi.xlsx"]
    assert (6, "corrected") in set(zip(led["row"], led["action"]))  # the five title rows skipped
    # without header_row and mapping the header is still found (aliases), IDs as numbers read
    m.write_text(text.replace("header_row = 6\n", ""))
    assert load_bundle(m).schools.loc["100004"].geometry.y == 14.40


def test_mapped_header_absent_names_file_column_and_closest(tmp_path):
    m = write_mini(tmp_path / "r")
    m.write_text(m.read_text().replace('path = "coords.csv"\n', 'path = "coords.csv"\n[source.columns]\n'
                                       'school_id = "LIS SCHOOL ID"\n'))
    with pytest.raises(DataError, match=r"coords\.csv: \[source\.columns\] school_id = 'LIS SCHOOL ID': no such "
                                        r"header \(header row 1\); closest: 'School ID'"):
        load_bundle(m)
    m.write_text(m.read_text().replace('school_id = "LIS SCHOOL ID"', 'schoolid = "School ID"'))
    with pytest.raises(DataError, match=r"coords\.csv: \[source\.columns\] names \['schoolid'\].*canonical names: "
                                        r"\['latitude', 'longitude', 'school_id'\]"):
        load_bundle(m)


def test_mapping_wins_over_alias(tmp_path):
    m = write_mini(tmp_path / "r")
    # two ID columns: the alias would take "School ID"; the manifest says the other one
    p = m.parent / "coords.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(["School ID,Latitude,Longitude,True ID"] +
                           [f"999999,{ln.split(',', 1)[1]},{ln.split(',')[0]}" for ln in lines[1:]]) + "\n")
    m.write_text(m.read_text().replace('path = "coords.csv"\n', 'path = "coords.csv"\n[source.columns]\n'
                                       'school_id = "True ID"\n'))
    b = load_bundle(m)
    clean = load_bundle(write_mini(tmp_path / "clean"))
    assert b.schools.geometry.equals(clean.schools.geometry) and b.schools.geometry.notna().sum() == 5
    assert b.ledger[b.ledger["file"] == "coords.csv"]["row"].tolist() == \
        clean.ledger[clean.ledger["file"] == "coords.csv"]["row"].tolist()


def test_header_row_on_a_learner_row_leaks_no_lrn(tmp_path):
    m = write_mini(tmp_path / "r")
    m.write_text(m.read_text().replace('path = "gr7_ncr.csv.gz"\n', 'path = "gr7_ncr.csv.gz"\nheader_row = 3\n'
                                       '[source.columns]\nlrn = "LRN"\n'))
    with pytest.raises(DataError) as err:
        load_bundle(m)
    assert "gr7_ncr.csv.gz" in str(err.value) and not re.search(r"\d{12}", str(err.value))


def test_several_coordinate_sources_first_wins_and_conflicts_recorded(tmp_path):
    m = write_mini(tmp_path / "r", extra_manifest='[[source]]\nkind = "coordinates"\npath = "geo.xlsx"\n'
                                                 'sheet = "DB"\n')
    # second source: 100001 ~5 km from the first source's point (conflict), 100002 50 m away
    # (no conflict), 100004 has no valid point in the first source: the second places it
    _nsbi(m.parent / "geo.xlsx", [(100001, 14.695, 121.05), (100002, 14.6604, 121.04), (100004, 14.40, 120.95)])
    b = load_bundle(m)
    s = b.schools
    assert (s.loc["100001"].geometry.x, s.loc["100001"].geometry.y) == (121.05, 14.65)   # first source
    assert (s.loc["100004"].geometry.x, s.loc["100004"].geometry.y) == (120.95, 14.40)   # only the second
    led = b.ledger[b.ledger["file"] == "geo.xlsx"]
    conflict = led[led["action"] == "conflict"]
    assert list(conflict["school_id"]) == ["100001"] and list(conflict["row"]) == [7]
    assert re.search(r"disagree by 5\.0 km: geo\.xlsx row 7 vs coords\.csv row 2", conflict["reason"].iloc[0])
    assert set(led.loc[led["action"] == "merged", "row"]) == {7, 8}
    src = b.sources.set_index("file").loc["geo.xlsx"]
    assert src["rows_read"] == 3 and src["kept"] == 1 and src["merged"] == 2
    # 100004 was 'incomplete' before; now it has a point
    assert not ((b.ledger["action"] == "incomplete") & (b.ledger["school_id"] == "100004")).any()
