"""Bad input gives a DataError naming the file (and row/column where it applies)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studentflow.errors import DataError
from studentflow.ingest import load_bundle
from test_ingest_mini import write_mini


@pytest.fixture
def region(tmp_path) -> Path:
    return write_mini(tmp_path / "r")


def _without(manifest: Path, kind: str) -> None:
    blocks = manifest.read_text().split("[[source]]")
    manifest.write_text("[[source]]".join(b for b in blocks if f'kind = "{kind}"' not in b))


def test_unknown_kind(tmp_path):
    m = write_mini(tmp_path / "r", extra_manifest='[[source]]\nkind = "weather"\npath = "coords.csv"\n')
    with pytest.raises(DataError, match=r"manifest.toml.*unknown kind 'weather'"):
        load_bundle(m)


def test_path_outside_manifest_folder(tmp_path):
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    m = write_mini(tmp_path / "r", extra_manifest='[[source]]\nkind = "esc_rating"\npath = "../secret.csv"\n')
    with pytest.raises(DataError, match=r"manifest.toml.*'\.\./secret\.csv' leads outside"):
        load_bundle(m)


def test_missing_file(tmp_path):
    m = write_mini(tmp_path / "r", extra_manifest='[[source]]\nkind = "esc_rating"\npath = "nope.csv"\n')
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_bundle(m)


@pytest.mark.parametrize("kind", ["enrollment", "coordinates", "transitions"])
def test_required_source_missing(region, kind):
    _without(region, kind)
    with pytest.raises(DataError, match=rf"manifest.toml: no source of kind \['{kind}'\]"):
        load_bundle(region)


def test_empty_file(region):
    (region.parent / "coords.csv").write_text("")
    with pytest.raises(DataError, match=r"coords\.csv: the file is empty"):
        load_bundle(region)


def test_header_only_banners(region):
    (region.parent / "seats.csv").write_text("Seat-Learner Ratio\nnothing here\n")
    with pytest.raises(DataError, match=r"seats\.csv: no header row found"):
        load_bundle(region)


def test_unreadable_xlsx(region):
    (region.parent / "slots.xlsx").write_bytes(b"this is not a zip archive at all")
    with pytest.raises(DataError, match=r"slots\.xlsx: cannot read as an XLSX workbook"):
        load_bundle(region)


def test_unreadable_gzip(region):
    (region.parent / "gr7_ncr.csv.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=r"gr7_ncr\.csv\.gz: cannot read"):
        load_bundle(region)


def test_missing_column_names_close_match(region):
    import openpyxl

    p = region.parent / "enrollment.xlsx"
    wb = openpyxl.load_workbook(p)
    wb["DATA"].cell(row=4, column=5).value = "School ID No."
    wb.save(p)
    with pytest.raises(DataError, match=re.escape(
            "enrollment.xlsx: no column for 'BEIS School ID'; found 'School ID No.'")):
        load_bundle(region)


def test_bad_toml(tmp_path):
    m = tmp_path / "manifest.toml"
    m.write_text("[[source]\nkind=")
    with pytest.raises(DataError, match=r"manifest.toml: not valid TOML"):
        load_bundle(m)


def test_no_valid_school_rows(region):
    import openpyxl

    p = region.parent / "enrollment.xlsx"
    wb = openpyxl.load_workbook(p)
    for r in range(5, 13):
        wb["DATA"].cell(row=r, column=5).value = "x"
    wb.save(p)
    with pytest.raises(DataError, match=r"enrollment\.xlsx: no valid school rows"):
        load_bundle(region)


def test_missing_sheet(region):
    text = region.read_text().replace('path = "enrollment.xlsx"\n', 'path = "enrollment.xlsx"\nsheet = "Nope"\n')
    region.write_text(text)
    with pytest.raises(DataError, match=r"enrollment\.xlsx: no sheet 'Nope'; found \['DATA'\]"):
        load_bundle(region)


def test_road_matrix_without_index(tmp_path):
    m = write_mini(tmp_path / "r", extra_manifest='[[source]]\nkind = "road_distances"\npath = "m.npy"\n')
    (m.parent / "m.npy").write_bytes(b"x")
    with pytest.raises(DataError, match=r"m_index\.json: road-distance index file not found"):
        load_bundle(m)
