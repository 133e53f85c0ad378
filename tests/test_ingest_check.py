"""`studentflow check`: the dry run on the sample (exit 0, JSON form), on broken and partial
manifests (exit 1 with the problem named), and what it says about each source."""

from __future__ import annotations

import json
import re

import pytest

from studentflow.cli import main
from studentflow.ingest import check_manifest
from test_ingest_mini import write_mini

SOURCE_KEYS = {"kind", "file", "sheet", "header_row", "columns", "rows_read", "kept", "corrected", "merged",
               "remapped", "dropped"}


@pytest.fixture(scope="module")
def sample_json(sample_dir):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", str(sample_dir), "--json"])
    return code, json.loads(out.getvalue())


def test_check_sample_exits_0_with_documented_json(sample_json, sample_bundle):
    code, doc = sample_json
    assert code == 0 and doc["ok"] is True and doc["problems"] == []
    assert set(doc) >= {"sources", "problems"}
    for s in doc["sources"]:
        assert SOURCE_KEYS <= set(s)
        for v in s["columns"].values():
            assert set(v) == {"header", "how", "score"} and v["how"] in ("manifest", "alias", "fuzzy")
    by = {s["file"]: s for s in doc["sources"]}
    enrol = by["enrollment_sy2023-2024.xlsx"]
    assert enrol["sheet"] == "DATA" and enrol["header_row"] == 6
    assert enrol["columns"]["school_id"] == {"header": "BEIS School ID", "how": "alias", "score": 100.0}
    # the same counts as the bundle a full run builds
    for r in sample_bundle.sources.itertuples(index=False):
        got = by[r.file]
        assert (got["rows_read"], got["kept"], got["merged"], got["dropped"]) == (r.rows_read, r.kept, r.merged,
                                                                                  r.dropped)
    assert by["road_matrix.npy"]["kind"] == "road_distances"
    # no learner data in what check prints
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", json.dumps(doc))


def test_check_broken_manifest_exits_1_naming_the_problem(tmp_path, capsys):
    m = write_mini(tmp_path / "r")
    blocks = m.read_text().split("[[source]]")
    m.write_text("[[source]]".join(b for b in blocks if 'kind = "transitions"' not in b))
    (m.parent / "seats.csv").write_text("")
    assert main(["check", str(m)]) == 1
    out = capsys.readouterr().out
    assert "error: manifest.toml: no source of kind ['transitions']" in out
    assert "error: seats.csv: the file is empty" in out
    assert "coordinates: coords.csv (header row 1)" in out and "a full run would stop (exit 1)" in out
    assert main(["check", str(tmp_path / "nowhere")]) == 1


def test_check_partial_manifest_one_coordinates_source(tmp_path):
    m = write_mini(tmp_path / "r")
    m.write_text('[[source]]\nkind = "coordinates"\npath = "coords.csv"\n')
    r = check_manifest(m)
    assert not r.ok
    assert any("no source of kind ['enrollment', 'transitions']" in p for p in r.problems)
    (s,) = r.sources
    assert (s.kind, s.file, s.header_row, s.rows_read) == ("coordinates", "coords.csv", 1, 10)
    assert s.columns["latitude"] == {"header": "Latitude", "how": "alias", "score": 100.0}
    # read-level counts: blank/zero and outside points dropped, the swap corrected
    assert (s.dropped, s.corrected) == (2, 1)
    assert "coords.csv" in r.summary() and json.loads(r.to_json())["sources"][0]["rows_read"] == 10


def test_check_partial_manifest_source_joining_nothing(tmp_path):
    m = write_mini(tmp_path / "r")
    m.write_text('[[source]]\nkind = "enrollment"\npath = "enrollment.xlsx"\n\n'
                 '[[source]]\nkind = "seats"\npath = "seats.csv"\n\n'
                 '[[source]]\nkind = "coordinates"\npath = "coords.csv"\n')
    (m.parent / "seats.csv").write_text("School ID,Seats JHS\n777777,10\n777778,20\n")
    r = check_manifest(m)
    assert any(p.startswith("warning: seats.csv (seats): none of its 2 rows names a school") for p in r.problems)
    assert not any("coords.csv (coordinates): none" in p for p in r.problems)


def test_check_fuzzy_match_reported_with_score(tmp_path):
    m = write_mini(tmp_path / "r")
    p = m.parent / "coords.csv"
    p.write_text(p.read_text().replace("Latitude", "Latitudee", 1))
    r = check_manifest(m)
    assert r.ok, r.problems
    col = next(s for s in r.sources if s.file == "coords.csv").columns["latitude"]
    assert col["header"] == "Latitudee" and col["how"] == "fuzzy" and 88 <= col["score"] < 100
    assert "latitude <- 'Latitudee' (fuzzy 9" in r.summary()
