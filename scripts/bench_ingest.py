"""Benchmark: ingest time and peak memory, on the bundled sample and a scale-10 region.

Baseline (same process, same files): a plain pandas read of every raw file
(``pandas.read_csv`` / ``pandas.read_excel``, all columns, default options), i.e. the
cost of just opening the data without harmonisation. Targets: sample < 15 s,
scale 10 < 2 minutes.

Usage::

    PYTHONPATH=. python scripts/bench_ingest.py [--scale 10] [--seed 11] [--cache .cache]
"""

from __future__ import annotations

import argparse
import time
import tomllib
import tracemalloc
from pathlib import Path

import pandas as pd

from studentflow.ingest import load_bundle
from studentflow.paths import sample_manifest


def _measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, peak / 2**20


def plain_read(manifest: Path) -> int:
    """Baseline: read every tabular raw file with pandas defaults; return total rows."""
    doc = tomllib.loads(manifest.read_text(encoding="utf-8"))
    rows = 0
    for s in doc["source"]:
        p = manifest.parent / s["path"]
        if s["kind"] in ("road_network", "road_distances"):
            continue
        if p.name.endswith((".xlsx", ".xlsm")):
            rows += len(pd.read_excel(p, sheet_name=s.get("sheet", 0), header=None))
        else:
            rows += len(pd.read_csv(p, header=None, on_bad_lines="skip", dtype=str))
    return rows


def bench(label: str, manifest: Path, target_s: float) -> None:
    n, t_base, m_base = _measure(lambda: plain_read(manifest))
    bundle, t_ing, m_ing = _measure(lambda: load_bundle(manifest))
    print(f"[{label}] {manifest}")
    print(f"  raw rows (plain pandas read): {n:,}")
    print(f"  baseline pandas read: {t_base:7.2f} s, peak {m_base:8.1f} MiB")
    print(f"  load_bundle:          {t_ing:7.2f} s, peak {m_ing:8.1f} MiB "
          f"(x{t_ing / t_base:.2f} time, x{m_ing / max(m_base, 1e-9):.2f} memory vs baseline; "
          f"target < {target_s:.0f} s: {'OK' if t_ing < target_s else 'MISSED'})")
    print(f"  schools {len(bundle.schools):,}, flows {len(bundle.flows):,} pairs / "
          f"{int(bundle.flows['learners'].sum()):,} learners, ledger {len(bundle.ledger):,} rows")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cache", type=Path, default=Path(".cache"))
    ap.add_argument("--skip-large", action="store_true")
    a = ap.parse_args(argv)
    bench("sample", sample_manifest(), 15.0)
    if a.skip_large:
        return
    out = a.cache / f"region_seed{a.seed}_scale{a.scale:g}"
    if not (out / "manifest.toml").exists():
        from studentflow.synth import make_region

        t0 = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        make_region(seed=a.seed, scale=a.scale, out_dir=out)
        print(f"generated {out} in {time.perf_counter() - t0:.1f} s (cached for later runs)")
    bench(f"scale {a.scale:g}", out / "manifest.toml", 120.0)


if __name__ == "__main__":
    main()
