"""Regenerate the bundled synthetic sample ``data/sample/`` (seed 0, scale 1.0).

Usage: ``python scripts/make_sample.py [OUT_DIR]`` (default: data/sample beside this
script's repository). The output is byte-reproducible; README.md is kept, every other file
is rewritten. Prints the region summary and the file sizes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from studentflow.synth import make_region  # noqa: E402

SEED = 0
SCALE = 1.0


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else REPO / "data" / "sample"
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():  # stale files from an older generator would linger otherwise
        if p.name == "README.md":
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    info = make_region(seed=SEED, scale=SCALE, out_dir=out)
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
