"""Check the calamine XLSX reader against the openpyxl path on every workbook the package meets.

    PYTHONPATH=. python scripts/check_xlsx_reader.py [--no-bundle]

Workbooks: every ``.xlsx`` in data/sample/ and under .cache/ (national and region caches),
a synthetic region written now by :func:`studentflow.synth.make_region`, the mini region
the ingest tests write (tests/test_ingest_mini.py::write_mini) and an edge-case workbook
(banners, numeric IDs, floats, booleans, dates, times, durations, blanks, short rows, a far
cell, several sheets). Every sheet of each is read by both
``studentflow.ingest.columns._xlsx_rows`` (calamine) and ``_xlsx_rows_openpyxl``.

Rows must be identical once trailing blank cells and trailing blank rows are dropped
(openpyxl pads rows to the sheet's declared dimension, calamine to the last used cell;
``find_header`` and ``_frame_from_rows`` skip blank cells and rows and read a missing
trailing cell as ''), with two documented exceptions that are counted and printed:

* ``number-text``: openpyxl's text is a float literal with an integral value
  ("14590.0", written so by studentflow.synth.io.write_xlsx) and calamine's is the
  integer ("14590"): calamine keeps only the float. Every parser of such cells
  (values.pesos, values.counts, values.school_ids, values.esc_ids) reads both alike.
* ``error``: an error cell ("#N/A", "#DIV/0!") that calamine gives as ''; both are
  missing to values.is_missing.

Last, the sample is loaded with ``load_bundle`` through each reader and every table
(schools, flows, areas, subsidy, ledger, sources) must be equal: the consumers do not
see the differences above. Exits non-zero on any other difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from studentflow.ingest import columns  # noqa: E402

_ERRORS = {"#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!", "#GETTING_DATA"}


def trim(rows: list[list[str]]) -> list[list[str]]:
    """Rows without trailing '' cells and without trailing blank rows."""
    out = []
    for r in rows:
        r = list(r)
        while r and r[-1] == "":
            r.pop()
        out.append(r)
    while out and not out[-1]:
        out.pop()
    return out


def classify(new: str, old: str) -> str | None:
    """'same', 'number-text', 'error' or None (a real difference) for one cell."""
    if new == old:
        return "same"
    if new == "" and old in _ERRORS:
        return "error"
    try:
        f = float(old)
    except ValueError:
        return None
    if f.is_integer() and not old.lstrip("-").isdigit() and new == str(int(f)):
        return "number-text"
    return None


def compare(new: list[list[str]], old: list[list[str]]) -> tuple[Counter, list[str]]:
    """Cell classes and the first few real differences between two trimmed row lists."""
    new, old = trim(new), trim(old)
    seen: Counter = Counter()
    bad: list[str] = []
    if len(new) != len(old):
        bad.append(f"row count {len(new)} vs {len(old)}")
    for i in range(max(len(new), len(old))):
        a = new[i] if i < len(new) else []
        b = old[i] if i < len(old) else []
        for j in range(max(len(a), len(b))):
            x = a[j] if j < len(a) else ""
            y = b[j] if j < len(b) else ""
            k = classify(x, y)
            if k is None:
                if len(bad) < 5:
                    bad.append(f"row {i + 1} col {j + 1}: calamine {x!r} vs openpyxl {y!r}")
                seen["DIFFERENT"] += 1
            else:
                seen[k] += 1
    return seen, bad


def edge_workbook(path: Path) -> None:
    """Every cell type the readers meet, over three sheets."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "DATA"
    ws.append(["SCHOOL LEVEL DATA ON ENROLLMENT"])
    ws.append([])
    ws.append(["School ID", "Name", "Lat", "Flag", "Big", "When", "Day", "Clock", "Span", "Neg"])
    ws.append([136512, "Ñino's \"school\"", 14.123456, True, 1.5e20, dt.datetime(2024, 6, 3, 8, 30, 15),
               dt.date(2024, 6, 3), dt.time(7, 45), dt.timedelta(hours=30), -3])
    ws.append([" 036512 ", None, 0.1, False, 2.5e-7, None, None, None, None, -0.5])
    ws.append([36512.0, "x", None, None, 7])
    ws.append(["only one"])
    ws["L9"] = "far cell"
    ws.merge_cells("A10:C10")
    ws["A10"] = "merged banner"
    for r in range(5, 8):
        ws.cell(row=r, column=6).number_format = "yyyy-mm-dd hh:mm:ss"
    ws2 = wb.create_sheet("Second")
    ws2["C4"] = "starts late"
    ws2["D5"] = 12345
    wb.create_sheet("Empty")
    wb.save(path)


def workbooks(tmp: Path) -> list[Path]:
    """Every workbook to check (written ones under ``tmp``)."""
    from test_ingest_mini import write_mini

    from studentflow.synth import make_region
    from studentflow.synth.io import write_xlsx

    found = sorted((REPO / "data" / "sample").glob("*.xlsx")) + sorted((REPO / ".cache").rglob("*.xlsx"))
    make_region(seed=7, scale=0.25, out_dir=tmp / "region_s7")
    found += sorted((tmp / "region_s7").glob("*.xlsx"))
    write_mini(tmp / "mini")
    found += sorted((tmp / "mini").glob("*.xlsx"))
    edge_workbook(tmp / "edge.xlsx")
    write_xlsx(tmp / "synth_edge.xlsx", ["ID", "Fee", "Blank"], [[100003.0, 14590.0, None], ["x", 0.5, ""], []],
               title=["Banner"], sheet="Fees")
    return found + [tmp / "edge.xlsx", tmp / "synth_edge.xlsx"]


def check_bundle(manifest: Path) -> list[str]:
    """Differences between the sample loaded through calamine and through openpyxl."""
    import pandas as pd

    from studentflow.ingest import load_bundle

    new = load_bundle(manifest)
    saved = columns._xlsx_rows
    columns._xlsx_rows = columns._xlsx_rows_openpyxl
    try:
        old = load_bundle(manifest)
    finally:
        columns._xlsx_rows = saved
    bad = []
    for field in ("schools", "flows", "areas", "subsidy", "ledger", "sources"):
        a, b = getattr(new, field, None), getattr(old, field, None)
        if a is None and b is None:
            continue
        try:
            pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
        except AssertionError as exc:
            bad.append(f"bundle.{field}: {str(exc)[:300]}")
    return bad


def main() -> int:
    import openpyxl

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-bundle", action="store_true", help="skip the load_bundle comparison")
    args = ap.parse_args()
    failures = 0
    total: Counter = Counter()
    with tempfile.TemporaryDirectory() as t:
        for p in workbooks(Path(t)):
            wb = openpyxl.load_workbook(p, read_only=True)
            names = wb.sheetnames
            wb.close()
            label = p.relative_to(REPO) if p.is_relative_to(REPO) else p.relative_to(t)
            for sheet in names:
                new = columns._xlsx_rows(p, sheet, p.name)
                old = columns._xlsx_rows_openpyxl(p, sheet, p.name)
                seen, bad = compare(new, old)
                total.update(seen)
                status = "OK " if not bad else "BAD"
                failures += bool(bad)
                extra = {k: v for k, v in seen.items() if k != "same"}
                print(f"{status} {label} [{sheet}]: {len(trim(new))} rows, {seen['same']} cells identical"
                      + (f", {extra}" if extra else ""))
                for b in bad:
                    print("     ", b)
            if columns._xlsx_rows(p, None, p.name) != columns._xlsx_rows(p, names[0], p.name):
                print(f"BAD {label}: sheet=None is not the first sheet")
                failures += 1
    print(f"cells: {dict(total)}")
    if not args.no_bundle:
        bad = check_bundle(REPO / "data" / "sample" / "manifest.toml")
        print("load_bundle(data/sample) through calamine and openpyxl: " + ("identical" if not bad else "DIFFERENT"))
        for b in bad:
            print("     ", b)
        failures += len(bad)
    print("PASS" if not failures else f"FAIL ({failures})")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
