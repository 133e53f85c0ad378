"""Regenerate the bundled synthetic sample ``data/sample/`` (seed 0, scale 1.0, 3 school years).

Usage: ``python scripts/make_sample.py [OUT_DIR]`` (default: data/sample beside this
script's repository). The output is byte-reproducible; README.md is kept, every other file
is rewritten. The latest school year (2023-2024) is ``make_region(seed=0, scale=1.0)``'s
output; 2021-2022 and 2022-2023 come from ``make_years`` (see data/sample/README.md).
Prints the summary and the file sizes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from studentflow.synth import make_years  # noqa: E402

SEED = 0
SCALE = 1.0
YEARS = 3
#: The several-year manifest (``load_bundle`` reads its latest year, ``load_panel`` every year).
MANIFEST = "manifest.toml"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else REPO / "data" / "sample"
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():  # stale files from an older generator would linger otherwise
        if p.name == "README.md":
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    info = make_years(seed=SEED, scale=SCALE, out_dir=out, years=YEARS, manifest_name=MANIFEST)
    print(info.summary())
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            print(f"  {p.relative_to(out)}: {p.stat().st_size / 1e6:.2f} MB")
    print(f"  total: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
