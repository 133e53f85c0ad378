"""Benchmark: the report's PNG figures drawn once (``png_bytes``) against ``savefig(bbox_inches="tight")``.

    python scripts/bench_report_figures.py [--data MANIFEST] [--draws 20] [--repeat 5]

Runs the pipeline once on the sample (or ``--data``) without writing, then renders the
report's figures (``report.figure_set.figure_set``) ``--repeat`` times with this branch's
``png_bytes`` and with the named baseline "savefig-tight" (each figure saved by
``savefig(..., bbox_inches="tight")``, which draws it twice: a layout pass, then the
pixels), alternating, in this process; prints CPU and wall seconds (best and median) and
the ratio, with the load average (others may share the cores). Then writes
``schools.gpkg`` the same way against the baseline "sqlite-journal" (GDAL's default
journal and synchronous writes). Figures of the issue 22 note: docs/scaling.md.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

from studentflow.pipeline import run_pipeline, synthetic_truth
from studentflow.report import figure_set as fs
from studentflow.report import write as report_write
from studentflow.report.maps import boundaries_of
from studentflow.report.names import school_labels, with_names

ROOT = Path(__file__).resolve().parents[1]


def savefig_tight(fig, dpi: int = 130, pad_inches: float = 0.1) -> bytes:
    """The baseline: ``savefig`` with the tight box (two draws)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=pad_inches)
    return buf.getvalue()


def timed(fn) -> tuple[float, float]:
    c, t = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - t


def report(name: str, runs: dict) -> None:
    base, ours = runs[name], runs["this branch"]
    for label, rows in runs.items():
        cpu, wall = [r[0] for r in rows], [r[1] for r in rows]
        print(f"  {label:<16} cpu best {min(cpu):6.3f} s median {statistics.median(cpu):6.3f} s   "
              f"wall best {min(wall):6.3f} s median {statistics.median(wall):6.3f} s")
    print(f"  ratio (this branch / {name}), median cpu {statistics.median(r[0] for r in ours) / statistics.median(r[0] for r in base):.2f}, "
          f"median wall {statistics.median(r[1] for r in ours) / statistics.median(r[1] for r in base):.2f}   "
          f"load {os.getloadavg()[0]:.1f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "sample" / "manifest.toml"))
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    run = run_pipeline(args.data, draws=args.draws, write=False, progress=False)
    outlines = boundaries_of(run.bundle)
    try:
        truth = synthetic_truth(Path(args.data))
    except Exception:  # noqa: BLE001 - real data: no synthetic truth
        truth = None

    def figures():
        return fs.figure_set(run.result, models=run.models, truth=truth, bundle=run.bundle, outlines=outlines,
                             pairs=run.pairs, comparisons=run.comparisons)

    figures()  # imports and font caches outside the timings
    print(f"figure_set on {args.data} ({len(run.bundle.schools):,} schools), {args.repeat} runs each, alternating")
    runs: dict[str, list] = {"savefig-tight": [], "this branch": []}
    ours = fs.png_bytes
    for _ in range(args.repeat):
        fs.png_bytes = savefig_tight
        try:
            runs["savefig-tight"].append(timed(figures))
        finally:
            fs.png_bytes = ours
        runs["this branch"].append(timed(figures))
    report("savefig-tight", runs)

    labels = school_labels(run.bundle)
    named = {"esc_schools": with_names(run.result.esc_schools, labels)}
    if not run.result.public_jhs.empty:
        named["public_jhs"] = with_names(run.result.public_jhs, labels)
    out = Path(tempfile.mkdtemp(prefix="bench-gpkg-"))
    print(f"schools.gpkg ({sum(len(t) for t in named.values()):,} rows), {args.repeat} writes each, alternating")
    runs = {"sqlite-journal": [], "this branch": []}
    fast = dict(report_write._GPKG_FAST)
    for k in range(args.repeat):
        report_write._GPKG_FAST = {key: None for key in fast}  # GDAL's defaults
        try:
            runs["sqlite-journal"].append(timed(lambda: report_write._schools_gpkg(out / f"a{k}.gpkg", run.bundle,
                                                                                   named)))
        finally:
            report_write._GPKG_FAST = fast
        runs["this branch"].append(timed(lambda: report_write._schools_gpkg(out / f"b{k}.gpkg", run.bundle, named)))
    report("sqlite-journal", runs)


if __name__ == "__main__":
    main()
