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
import os
import resource
import shutil
import subprocess
import sys
import time
import tomllib
import tracemalloc
from pathlib import Path

import pandas as pd

from studentflow.ingest import load_bundle


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _traced_peak(fn) -> float:
    """Peak of tracemalloc-tracked allocations (Python objects and numpy buffers), MiB.

    Arrow buffers are not tracked by tracemalloc; the process max RSS is printed too.
    """
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def _max_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def bench(label: str, manifest: Path, target_s: float, trace: bool = True) -> None:
    n, t_base = _timed(lambda: plain_read(manifest))
    rss_base = _max_rss()
    bundle, t_ing = _timed(lambda: load_bundle(manifest))
    rss_ing = _max_rss()
    print(f"[{label}] {manifest}")
    print(f"  raw rows (plain pandas read): {n:,}")
    print(f"  baseline pandas read: {t_base:7.2f} s   (process max RSS {rss_base:8.1f} MiB)")
    print(f"  load_bundle:          {t_ing:7.2f} s   (process max RSS {rss_ing:8.1f} MiB); "
          f"x{t_ing / t_base:.2f} the baseline time; target < {target_s:.0f} s: "
          f"{'OK' if t_ing < target_s else 'MISSED'}")
    if trace:
        m_base = _traced_peak(lambda: plain_read(manifest))
        m_ing = _traced_peak(lambda: load_bundle(manifest))
        print(f"  tracemalloc peak: baseline {m_base:8.1f} MiB, load_bundle {m_ing:8.1f} MiB "
              f"(x{m_ing / max(m_base, 1e-9):.2f})")
    print(f"  schools {len(bundle.schools):,}, flows {len(bundle.flows):,} pairs / "
          f"{int(bundle.flows['learners'].sum()):,} learners, ledger {len(bundle.ledger):,} rows")


def _stable_copy(src: Path, dst: Path, tries: int = 10) -> Path:
    """Copy a raw-data folder (so a concurrent regeneration cannot remove files mid-run);
    retried until every file the manifest names was copied. Returns the copy's manifest."""
    for _ in range(tries):
        shutil.rmtree(dst, ignore_errors=True)
        try:
            shutil.copytree(src, dst)
            doc = tomllib.loads((dst / "manifest.toml").read_text(encoding="utf-8"))
            if all((dst / s["path"]).exists() for s in doc["source"]):
                return dst / "manifest.toml"
        except (OSError, tomllib.TOMLDecodeError):
            pass
        time.sleep(3)
    raise SystemExit(f"could not take a complete copy of {src}")


def _generate(out: Path, seed: int, scale: float, mem_gb: float = 16.0) -> None:
    """make_region in a child process capped at ``mem_gb`` of address space (so a large
    scale fails with MemoryError instead of starving the machine). The road matrix is
    not written: ingestion only passes its path on."""
    code = ("import sys; from studentflow.synth import make_region; "
            f"make_region(seed={seed}, scale={scale}, out_dir=sys.argv[1], write_matrix=False)")

    def cap():
        lim = int(mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", code, str(out)], preexec_fn=cap, env=os.environ.copy())
    if done.returncode != 0 or not (out / "manifest.toml").exists():
        raise SystemExit(f"generating {out} failed (exit {done.returncode}); see the traceback above")
    print(f"generated {out} in {time.perf_counter() - t0:.1f} s (cached for later runs)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cache", type=Path, default=Path(".cache"))
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--no-trace", action="store_true", help="skip the (slower) tracemalloc pass")
    a = ap.parse_args(argv)
    sample = Path(__file__).resolve().parents[1] / "data" / "sample"
    bench("sample", _stable_copy(sample, a.cache / "sample"), 15.0, trace=not a.no_trace)
    if a.skip_large:
        return
    out = a.cache / f"region_seed{a.seed}_scale{a.scale:g}"
    if not (out / "manifest.toml").exists():
        _generate(out, a.seed, a.scale)
    bench(f"scale {a.scale:g}", out / "manifest.toml", 120.0, trace=not a.no_trace)


if __name__ == "__main__":
    main()
