"""Check: ``load_bundle`` gives the same bundle as a baseline checkout (every table, the ledger).

Runs ``load_bundle`` on each manifest in this tree and in ``--base`` (a checkout of the
code before a change, in a child process), and compares every table with
``pandas.testing.assert_frame_equal`` (exact), plus ``extras`` and ``school_year``.

Usage::

    PYTHONPATH=. python scripts/check_ingest_same.py --base /work/wt-base [MANIFEST ...]
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
_CHILD = ("import pickle, sys; from studentflow.ingest import load_bundle; b = load_bundle(sys.argv[1]); "
          "pickle.dump({k: getattr(b, k) for k in ('schools', 'flows', 'areas', 'subsidy', 'ledger', 'sources', "
          "'extras', 'school_year', 'slot_history')}, open(sys.argv[2], 'wb'))")


def bundle(manifest: str, tree: Path) -> dict:
    """The bundle's tables loaded by the code in ``tree`` (a child process)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "b.pkl"
        subprocess.run([sys.executable, "-c", _CHILD, manifest, str(out)], check=True,
                       env={**os.environ, "PYTHONPATH": str(tree)}, cwd=str(tree))
        with open(out, "rb") as fh:
            return pickle.load(fh)


def compare(a: dict, b: dict) -> list[str]:
    """Names of the tables that differ (each compared exactly)."""
    bad = []
    for k in a:
        try:
            if isinstance(a[k], pd.DataFrame):
                pd.testing.assert_frame_equal(a[k], b[k], check_exact=True)
            elif a[k] != b[k]:
                raise AssertionError(f"{a[k]!r} != {b[k]!r}")
        except AssertionError as exc:
            bad.append(f"{k}: {str(exc).splitlines()[0:3]}")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="baseline checkout (its PYTHONPATH)")
    ap.add_argument("manifests", nargs="*", default=[str(REPO / "data" / "sample" / "manifest.toml")])
    a = ap.parse_args(argv)
    failed = 0
    for m in (str(Path(x).resolve()) for x in a.manifests):
        bad = compare(bundle(m, a.base), bundle(m, REPO))
        print(f"{m}: {'identical (every table, the ledger)' if not bad else 'DIFFERENT'}")
        for line in bad:
            print(f"  {line}")
        failed += bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
