"""Benchmark: reading XLSX sheets as text with python-calamine vs the old hand-written reader.

Candidate: ``studentflow.ingest.columns._xlsx_rows`` (python-calamine, cells to text).
Named baseline, run in the same process on the same files: ``xlsx_expat``, the zip + expat
streaming reader that was ``studentflow/ingest/xlsx.py`` until commit 55d1a49, loaded from
git (``git show 55d1a49:studentflow/ingest/xlsx.py``). openpyxl (read-only, values) is
timed too for reference on the small files (``--openpyxl`` for all).

Files: the sample's workbooks (data/sample/*.xlsx) and the national enrolment workbook
(.cache/national/seed0-n59000-r5-national-v2/enrollment_sy2023-2024.xlsx, 59,857 rows)
when it is there. Each reader's time is the best of ``--repeat`` runs, seconds.

Usage::

    PYTHONPATH=. python scripts/bench_xlsx.py [--repeat 3] [--openpyxl]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from studentflow.ingest.columns import _xlsx_rows, _xlsx_rows_openpyxl  # noqa: E402

BASELINE_COMMIT = "55d1a49a9cc3e9b6d72ca5249ce5bc8349259562"
NATIONAL = REPO / ".cache" / "national" / "seed0-n59000-r5-national-v2" / "enrollment_sy2023-2024.xlsx"


def load_baseline() -> types.ModuleType:
    """The old zip + expat reader as a module, from git."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{BASELINE_COMMIT}:studentflow/ingest/xlsx.py"],
                         check=True, capture_output=True, text=True).stdout
    mod = types.ModuleType("xlsx_expat")
    exec(compile(src, "xlsx_expat(55d1a49)", "exec"), mod.__dict__)
    return mod


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _trim(rows):
    out = [list(r) for r in rows]
    for r in out:
        while r and r[-1] == "":
            r.pop()
    while out and not out[-1]:
        out.pop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--openpyxl", action="store_true", help="time openpyxl on the national workbook too")
    args = ap.parse_args()
    old = load_baseline()
    files = sorted((REPO / "data" / "sample").glob("*.xlsx"))
    if NATIONAL.exists():
        files.append(NATIONAL)
    else:
        print(f"(national workbook not found: {NATIONAL.relative_to(REPO)}; run scripts/bench_ingest_national.py)")
    print(f"{'file':<72}{'rows':>7}{'calamine s':>12}{'xlsx_expat s':>14}{'ratio':>7}{'openpyxl s':>12}")
    tot_new = tot_old = 0.0
    for p in files:
        t_new, rows_new = best(lambda: _xlsx_rows(p, None, p.name), args.repeat)
        t_old, rows_old = best(lambda: old.read_rows(p, None), args.repeat)
        tot_new += t_new
        tot_old += t_old
        n_new, n_old = len(_trim(rows_new)), len(_trim(rows_old))
        if n_new != n_old:
            print(f"  row counts differ: calamine {n_new}, xlsx_expat {n_old}")
        t_opx = ""
        if args.openpyxl or p != NATIONAL:
            t_opx = f"{best(lambda: _xlsx_rows_openpyxl(p, None, p.name), 1)[0]:12.3f}"
        print(f"{str(p.relative_to(REPO)):<72}{n_new:>7}{t_new:12.3f}{t_old:14.3f}{t_old / t_new:7.2f}{t_opx}")
    print(f"{'total':<72}{'':>7}{tot_new:12.3f}{tot_old:14.3f}{tot_old / tot_new:7.2f}")
    print("ratio = xlsx_expat time / calamine time (> 1: calamine faster); best of", args.repeat)


if __name__ == "__main__":
    main()
