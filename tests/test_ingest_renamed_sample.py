"""The headline property of issue 15: the sample, rewritten as an analyst meets real files
(every header renamed, title rows added, some school IDs replaced by old ones listed in a
DepEd-style "School ID Mapping" file), gives the sample's bundle with only manifest
options (``header_row``, ``[source.columns]``, a ``school_id_crosswalk`` source), and the
ledger lists each remap."""

from __future__ import annotations

import csv
import gzip
import io
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studentflow.ingest import load_bundle

#: canonical name → the sample's header, per kind (the columns the sample's files carry)
SAMPLE_HEADERS = {
    "enrollment": {"region": "Region", "division": "Division", "province": "Province", "municipality": "Municipality",
                   "school_id": "BEIS School ID", "school_name": "School Name", "sector": "Sector",
                   "offering": "Modified COC",
                   **{f"g{g}_{s.lower()}": f"G{g} {s}" for g in range(1, 11) for s in ("Male", "Female")}},
    "coordinates": {"school_id": "School ID", "latitude": "Latitude", "longitude": "Longitude"},
    "seats": {"school_id": "School ID", "seats_es": "Seats ES", "seats_jhs": "Seats JHS", "seats_shs": "Seats SHS"},
    "private_seats": {"school_id": "School ID", "chairs_es": "Chairs ES", "chairs_jhs": "Chairs JHS",
                      "chairs_shs": "Chairs SHS"},
    "transitions": {"lrn": "LRN", "grade7_school_id": "BEIS School ID in Grade 7",
                    "grade6_school_id": "BEIS School ID in Grade 6"},
    "esc_beneficiaries": {"deped_id": "deped id", "lrn": "lrn", "esc_id": "school id", "grade": "grade",
                          "amount": "esc_subsidy_amount"},
    "esc_slots": {"esc_id": "ESC School ID", "school_id": "DepEd School ID", "school_name": "School Name",
                  "slots_total": "slots_total", "slots_billed": "slots_billed"},
    "tuition": {"esc_id": "ESC School ID", "school_name": "School Name", "g7_tuition": "G7 Tuition",
                "other_fees": "Other Fees", "misc_fees": "Misc Fees"},
    "esc_rating": {"esc_id": "ESC School ID", "certification": "Certification"},
    "lgu_income": {"province": "Province", "lgu": "LGU", "revenue": "Total Revenues of the LGU (in Php)"},
    "subsidy_rates": {"tier": "Location tier", "grade": "Grade", "amount": "Amount"},
}
#: school-ID columns (sample headers) where old IDs are written, per kind
OLD_ID_COLUMNS = {"enrollment": "BEIS School ID", "coordinates": "School ID", "seats": "School ID",
                  "transitions": "BEIS School ID in Grade 6", "esc_beneficiaries": "deped id",
                  "esc_slots": "DepEd School ID"}
TITLES = ["Republic of the Philippines", "Exported from the regional office"]


def _renamed(h: str, j: int) -> str:
    return f"Feld {j + 1:02d} [{h[::-1].upper()}]"  # unrecognisable to aliases and fuzzy matching


def _rewrite_csv(path: Path, kind: str, old_of: dict, hits: list) -> tuple[int, dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    col = header.index(OLD_ID_COLUMNS[kind]) if kind in OLD_ID_COLUMNS else None
    if col is not None:
        for i, r in enumerate(rows[1:], start=2):
            if col < len(r) and r[col] in old_of:
                hits.append((path.name, i + len(TITLES), old_of[r[col]][0], r[col]))
                r[col] = old_of[r[col]][1]
    new = [_renamed(h, j) for j, h in enumerate(header)]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerows([[t] for t in TITLES] + [new] + rows[1:])
    with opener(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write(out.getvalue())
    return len(TITLES) + 1, dict(zip(header, new))


def _rewrite_xlsx(path: Path, sheet, kind: str, old_of: dict, hits: list) -> tuple[int, dict]:
    import openpyxl

    wb = openpyxl.load_workbook(path)
    ws = wb[sheet] if sheet else wb.worksheets[0]
    known = set(SAMPLE_HEADERS[kind].values())
    h = next(i for i, r in enumerate(ws.iter_rows(values_only=True), start=1) if known & {str(v) for v in r})
    header = [c.value for c in ws[h]]
    col = header.index(OLD_ID_COLUMNS[kind]) + 1 if kind in OLD_ID_COLUMNS else None
    if col is not None:
        for i in range(h + 1, ws.max_row + 1):
            cell = ws.cell(row=i, column=col)
            if isinstance(cell.value, str) and cell.value in old_of:
                hits.append((path.name, i + len(TITLES), old_of[cell.value][0], cell.value))
                cell.value = old_of[cell.value][1]
    mapping = {}
    for j, v in enumerate(header):
        if v is not None:
            mapping[str(v)] = ws.cell(row=h, column=j + 1).value = _renamed(str(v), j)
    ws.insert_rows(1, len(TITLES))
    for i, t in enumerate(TITLES, start=1):
        ws.cell(row=i, column=1, value=t)
    wb.save(path)
    return h + len(TITLES), mapping


@pytest.fixture(scope="module")
def renamed(sample_dir, tmp_path_factory):
    """The rewritten copy: (manifest, the (file, row, old, new) of every old ID written, the old → new map)."""
    out = tmp_path_factory.mktemp("renamed")
    for p in sample_dir.iterdir():
        if p.is_file():
            shutil.copy(p, out / p.name)
    sources = tomllib.loads((sample_dir / "manifest.toml").read_text())["source"]
    # the latest school year and the shared sources; the sample's own crosswalk maps earlier years only
    latest = max((s["school_year"] for s in sources if "school_year" in s), default=None)
    sources = [s for s in sources if s.get("school_year", latest) == latest and s["kind"] != "school_id_crosswalk"]
    enrol = pd.read_excel(out / "enrollment_sy2023-2024.xlsx", sheet_name="DATA", header=5, dtype=str, engine="openpyxl")
    ids = sorted(i for i in set(enrol["BEIS School ID"]) if re.fullmatch(r"\d{6}", i))
    taken = set(re.findall(r"(?<!\d)\d{6}(?!\d)", "".join(
        gzip.open(out / s["path"], "rt").read() if s["path"].endswith(".gz") else
        (out / s["path"]).read_text(encoding="utf-8") for s in sources if s["path"].endswith((".csv", ".csv.gz")))))
    rng = np.random.default_rng(15)
    zero = [i for i in ids if i.startswith("0")]  # new IDs that lose their leading zero in the mapping file
    chosen = list(rng.choice(zero, 10, replace=False)) + list(rng.choice(sorted(set(ids) - set(zero)), 30, replace=False))
    free = iter(f"{n:06d}" for n in rng.permutation(np.arange(900_000, 1_000_000)) if f"{n:06d}" not in taken)
    old_of, remaps = {}, []
    for k, sid in enumerate(chosen):
        old = next(free)
        old_of[sid] = (sid, old)
        if k % 5 == 0:  # a chain: the files carry `older`, the mapping has older → old → current
            older = next(free)
            remaps.append((older, old))
            old_of[sid] = (sid, older)
        remaps.append((old, sid))
    hits: list = []
    entries = []
    for s in sources:
        kind, p = s["kind"], out / s["path"]
        e = dict(s)
        if kind in SAMPLE_HEADERS:
            if p.name.endswith(".xlsx"):
                h, names = _rewrite_xlsx(p, s.get("sheet"), kind, old_of, hits)
            else:
                h, names = _rewrite_csv(p, kind, old_of, hits)
            e["header_row"] = h
            e["columns"] = {c: names[raw] for c, raw in SAMPLE_HEADERS[kind].items()}
        entries.append(e)
    # DepEd's wide "School ID Mapping" layout; IDs as Excel leaves them (numbers, lost zeros)
    rows = [{"school_id_2024": (f"{int(new)}.0" if j % 3 == 0 else str(int(new)) if j % 3 == 1 else new),
             "BEIS School ID": new, "old_school_id": old, **{f"sy_{y}": "" for y in range(2005, 2025)}}
            for j, (old, new) in enumerate(remaps)]
    pd.DataFrame(rows).to_csv(out / "school_id_mapping.csv", index=False)
    entries.insert(0, {"kind": "school_id_crosswalk", "path": "school_id_mapping.csv",
                       "columns": {"old_id": "old_school_id", "new_id": "school_id_2024"}})
    (out / "manifest.toml").write_text(_toml(entries), encoding="utf-8")
    return out / "manifest.toml", hits, {old: new for new, (_, old) in old_of.items()}


def _toml(entries) -> str:
    text = []
    for e in entries:
        text.append("[[source]]")
        text += [f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in e.items() if k != "columns"]
        if "columns" in e:
            text.append("[source.columns]")
            text += [f'{k} = "{v}"' for k, v in e["columns"].items()]
        text.append("")
    return "\n".join(text)


@pytest.fixture(scope="module")
def renamed_bundle(renamed):
    return load_bundle(renamed[0])


def test_renamed_sample_gives_the_sample_bundle(renamed_bundle, sample_bundle):
    a, b = renamed_bundle, sample_bundle
    assert a.schools.index.equals(b.schools.index)
    sa, sb = a.schools.drop(columns="geometry"), b.schools.drop(columns="geometry")
    pd.testing.assert_frame_equal(sa, sb, check_exact=False, rtol=1e-9)
    ga, gb = a.schools.geometry, b.schools.geometry
    assert (ga.isna() == gb.isna()).all()
    np.testing.assert_allclose(ga[ga.notna()].x, gb[gb.notna()].x, atol=1e-9)
    np.testing.assert_allclose(ga[ga.notna()].y, gb[gb.notna()].y, atol=1e-9)
    pd.testing.assert_frame_equal(a.flows, b.flows)
    pd.testing.assert_frame_equal(a.areas, b.areas, check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(a.subsidy, b.subsidy, check_exact=False, rtol=1e-9)
    cols = ["rows_read", "kept", "merged", "dropped", "imputed"]
    sources = a.sources[a.sources["kind"] != "school_id_crosswalk"].reset_index(drop=True)
    sample = b.sources[b.sources["kind"] != "school_id_crosswalk"].reset_index(drop=True)  # its years' crosswalk
    pd.testing.assert_frame_equal(sources[["kind", "file", *cols]], sample[["kind", "file", *cols]])


def test_renamed_sample_ledger_lists_each_remap(renamed, renamed_bundle, sample_bundle):
    _, hits, new_of = renamed
    led = renamed_bundle.ledger
    rem = led[led["action"] == "remapped"]
    got = {(f, int(r), s) for f, r, s in zip(rem["file"], rem["row"], rem["school_id"])}
    want = {(f, r, new) for f, r, new, _ in hits}
    assert len(hits) > 100 and len(rem) == len(got)
    # every old ID written is remapped, except on rows the reader drops first
    dropped = set(zip(led.loc[led["action"] == "dropped", "file"], led.loc[led["action"] == "dropped", "row"]))
    assert got <= want and {(f, r) for f, r, _ in want - got} <= dropped, sorted(want - got)[:5]
    chained = 0
    for reason, sid in zip(rem["reason"], rem["school_id"]):
        m = re.search(r"school ID (\d{6}) replaced by (\d{6})", reason)
        assert m and m.group(2) == sid and new_of[m.group(1)] == sid
        chained += "more remap" in reason
    assert chained > 0
    # the rest of the ledger is the sample's, two title rows down (header corrections aside)
    def events(t, shift):
        t = t[(t["action"] != "remapped") & ~t["reason"].str.startswith("header found")]
        return sorted(zip(t["file"], t["row"] - np.where(t["row"] > 0, shift, 0), t["action"], t["school_id"]))
    cw = renamed_bundle.ledger["source"] == "school_id_crosswalk"
    assert events(led[~cw & led["file"].ne("school_id_mapping.csv")], len(TITLES)) == events(sample_bundle.ledger, 0)


def test_renamed_sample_check_reports_manifest_matches(renamed):
    from studentflow.ingest import check_manifest

    report = check_manifest(renamed[0])
    assert report.ok, report.problems
    by_file = {s.file: s for s in report.sources}
    enrol = by_file["enrollment_sy2023-2024.xlsx"]
    assert enrol.header_row == 6 + len(TITLES) and enrol.sheet == "DATA"
    assert {v["how"] for v in enrol.columns.values()} == {"manifest"}
    assert enrol.columns["school_id"]["header"] == _renamed("BEIS School ID", 4)
    assert by_file["school_id_mapping.csv"].columns["new_id"] == {"header": "school_id_2024", "how": "manifest",
                                                                  "score": 100.0}
    assert sum(s.remapped for s in report.sources) > 0
