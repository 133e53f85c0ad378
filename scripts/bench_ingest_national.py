"""Benchmark: national ingest, single process (streamed learner files) vs a local Dask cluster.

Times ``load_bundle`` on the national synthetic manifest (18 transitions + 18 ESC billing
files, about 5.9 million learners) three ways, each in a fresh child process whose peak
RSS (the process plus all its children: the Dask scheduler-side client and the worker
processes) is sampled with psutil every 20 ms:

- ``before``: the code at ``--baseline-rev`` (default 09c1159, before streaming: learner
  files stacked as strings), extracted with ``git archive``; the named baseline;
- ``single``: this tree, ``load_bundle(manifest)``;
- ``dask``: this tree, ``load_bundle(manifest, client=c)`` on a
  ``LocalCluster(n_workers=W, threads_per_worker=1, processes=True)`` started before the
  clock (cluster start-up printed separately); the workers import studentflow inside the
  timed call;
- ``dask warm``: the same with workers that imported studentflow before the clock (a
  cluster the pipeline already used);
- with ``--fork-variants``: ``single`` twice more, with ``STUDENTFLOW_FORK=0`` (never fork
  the enrolment workbook) and ``STUDENTFLOW_FORK=1`` (always, even on a busy machine); the
  plain ``single`` forks when a core is free (:func:`studentflow.forked.wanted`).

``--no-dask`` skips the Dask variants. ``--repeat N`` runs the variants in turn N times
(before, single, ..., before, single, ...: load from other jobs falls on all alike) and
keeps each one's fastest run.

Prints wall seconds, CPU seconds of the process tree (user + system, all processes:
a figure less sensitive to other jobs on the machine), peak RSS (GB) and ratios, and
whether flows, ledger and sources are identical across the variants. Reference figure before streaming: 23.0 s, 3.06 GB.

Usage::

    PYTHONPATH=. python scripts/bench_ingest_national.py [--manifest M] [--workers 2] [--repeat 1] [--no-baseline]
        [--baseline-rev REV] [--no-dask] [--fork-variants]
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO / ".cache" / "national" / "seed0-n59000-r5" / "manifest.toml"

_CHILD = r"""
import pickle, sys, time
manifest, out, mode, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from studentflow.ingest import load_bundle
start = 0.0
client = None
if mode.startswith("dask"):
    from dask.distributed import Client
    from studentflow.dask_client import local_cluster
    t0 = time.perf_counter()
    cluster = local_cluster(workers, dashboard_address=":0")
    client = Client(cluster)
    if mode == "dask-warm":  # workers that already imported studentflow (a cluster in use)
        import importlib
        client.run(importlib.import_module, "studentflow.ingest.learners")
    start = time.perf_counter() - t0
print("READY", flush=True)
t0 = time.perf_counter()
b = load_bundle(manifest, client=client) if client is not None else load_bundle(manifest)
dt = time.perf_counter() - t0
print("DONE", flush=True)
with open(out, "wb") as fh:
    pickle.dump({"seconds": dt, "startup": start, "flows": b.flows, "ledger": b.ledger, "sources": b.sources}, fh)
if client is not None:
    client.close(); cluster.close()
"""


def _tree_cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of the process, its live children and its reaped ones
    (a forked child that read a workbook)."""
    try:
        t = proc.cpu_times()
        total = t.children_user + t.children_system
    except psutil.Error:
        total = 0.0
    try:
        kids = proc.children(recursive=True)
    except psutil.Error:
        kids = []
    for p in [proc, *kids]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        kids = proc.children(recursive=True)
    except psutil.Error:  # a process ended while the tree was walked
        kids = []
    for p in [proc, *kids]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(label: str, manifest: Path, mode: str, workers: int, pythonpath: Path, env_extra: dict | None = None) -> dict:
    """Run one variant in a child process; sample its tree's RSS between READY and DONE."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pkl"
        env = {**os.environ, "PYTHONPATH": str(pythonpath), **(env_extra or {})}
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(manifest), str(out), mode, str(workers)],
                                 cwd=str(pythonpath), env=env, stdout=subprocess.PIPE, text=True)
        proc = psutil.Process(child.pid)
        peak = {"before": 0, "during": 0}
        phase = ["before"]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                rss = _tree_rss(proc)
                peak[phase[0]] = max(peak[phase[0]], rss)
                time.sleep(0.02)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        cpu = {}
        for line in child.stdout:
            if line.startswith("READY"):
                cpu["start"] = _tree_cpu(proc)
                phase[0] = "during"
            elif line.startswith("DONE"):
                cpu["stop"] = _tree_cpu(proc)
                phase[0] = "after"
                peak["after"] = 0
        child.wait()
        stop.set()
        th.join()
        if child.returncode != 0:
            raise SystemExit(f"{label}: child failed (exit {child.returncode})")
        with open(out, "rb") as fh:
            res = pickle.load(fh)
    res["peak_gb"] = peak["during"] / 2**30
    res["ready_gb"] = peak["before"] / 2**30
    res["cpu_s"] = cpu["stop"] - cpu["start"]
    extra = f", cluster start {res['startup']:.1f} s not counted" if mode.startswith("dask") else ""
    print(f"  {label:<14} {res['seconds']:7.2f} s   CPU {res['cpu_s']:6.2f} s   peak RSS {res['peak_gb']:5.2f} GB "
          f"(tree at start {res['ready_gb']:.2f} GB{extra}; load avg {os.getloadavg()[0]:.1f})", flush=True)
    return res


def best(label: str, repeat: int, *args) -> dict:
    """Fastest of ``repeat`` runs (each printed); machine load from other jobs varies."""
    runs = [run(label, *args) for _ in range(max(1, repeat))]
    return min(runs, key=lambda r: r["seconds"])


def in_turn(variants: dict, repeat: int) -> dict:
    """Run the variants ({key: (label, args)}) in turn ``repeat`` times; each one's fastest run."""
    runs: dict = {k: [] for k in variants}
    for _ in range(max(1, repeat)):
        for k, (label, args) in variants.items():
            runs[k].append(run(label, *args))
    return {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}


def same(a: dict, b: dict) -> bool:
    for k in ("flows", "ledger", "sources"):
        try:
            pd.testing.assert_frame_equal(a[k], b[k], check_exact=True)
        except AssertionError as exc:
            print(f"    {k} differ: {str(exc).splitlines()[0]}")
            return False
    return True


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline-rev", default="09c1159")
    ap.add_argument("--no-baseline", action="store_true", help="skip the pre-streaming run")
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant; the fastest is kept")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask variants")
    ap.add_argument("--fork-variants", action="store_true",
                    help="also run single with STUDENTFLOW_FORK=0 and =1 (the workbook never / always forked)")
    a = ap.parse_args(argv)
    if not a.manifest.exists():
        raise SystemExit(f"{a.manifest} not found: generate it with scripts/bench_national.py first")
    print(f"national ingest: {a.manifest}  (machine: {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GB; load avg {os.getloadavg()[0]:.1f})")
    res = {}
    with tempfile.TemporaryDirectory() as old:
        variants = {}
        if not a.no_baseline:
            arch = subprocess.run(["git", "-C", str(REPO), "archive", a.baseline_rev], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", old], input=arch.stdout, check=True)
            variants["before"] = (f"before ({a.baseline_rev})", (a.manifest, "single", a.workers, Path(old)))
        variants["single"] = ("single", (a.manifest, "single", a.workers, REPO))
        if a.fork_variants:
            variants["nofork"] = ("single, no fork", (a.manifest, "single", a.workers, REPO, {"STUDENTFLOW_FORK": "0"}))
            variants["fork"] = ("single, fork", (a.manifest, "single", a.workers, REPO, {"STUDENTFLOW_FORK": "1"}))
        res = in_turn(variants, a.repeat)
    if a.no_dask:
        s = res["single"]
        if a.repeat > 1:
            print(f"  fastest of {a.repeat} runs each:")
            for k, r in res.items():
                print(f"  {k:<8} {r['seconds']:7.2f} s   CPU {r['cpu_s']:6.2f} s   peak RSS {r['peak_gb']:5.2f} GB")
        for k, r in res.items():
            if k != "before" and "before" in res:
                b = res["before"]
                print(f"  {k} / before: time x{r['seconds'] / b['seconds']:.2f}, CPU x{r['cpu_s'] / b['cpu_s']:.2f}, "
                      f"peak RSS x{r['peak_gb'] / b['peak_gb']:.2f}; identical flows, ledger, sources: {same(r, b)}")
        print(f"  ({len(s['flows']):,} flows, {int(s['flows']['learners'].sum()):,} learners, "
              f"{len(s['ledger']):,} ledger rows)")
        return
    res["dask"] = best(f"dask x{a.workers}", a.repeat, a.manifest, "dask", a.workers, REPO)
    res["warm"] = best(f"dask x{a.workers} warm", a.repeat, a.manifest, "dask-warm", a.workers, REPO)
    s, d, w = res["single"], res["dask"], res["warm"]
    if a.repeat > 1:
        print(f"  fastest of {a.repeat} runs each:")
        for k, r in res.items():
            print(f"  {k:<8} {r['seconds']:7.2f} s   CPU {r['cpu_s']:6.1f} s   peak RSS {r['peak_gb']:5.2f} GB")
    print(f"  dask / single: time x{d['seconds'] / s['seconds']:.2f}, CPU x{d['cpu_s'] / s['cpu_s']:.2f}, "
          f"peak RSS x{d['peak_gb'] / s['peak_gb']:.2f}; warm workers: time x{w['seconds'] / s['seconds']:.2f}, "
          f"CPU x{w['cpu_s'] / s['cpu_s']:.2f}")
    if "before" in res:
        b = res["before"]
        print(f"  single / before: time x{s['seconds'] / b['seconds']:.2f}, CPU x{s['cpu_s'] / b['cpu_s']:.2f}, "
              f"peak RSS x{s['peak_gb'] / b['peak_gb']:.2f}; dask / before: time x{d['seconds'] / b['seconds']:.2f}")
        print(f"  identical flows, ledger, sources: single = before {same(s, b)}")
    print(f"  identical flows, ledger, sources: dask = single {same(d, s)}, warm dask = single {same(w, s)}")
    print(f"  ({len(s['flows']):,} flows, {int(s['flows']['learners'].sum()):,} learners, "
          f"{len(s['ledger']):,} ledger rows)")
    print("  reference before streaming (issue 8): 23.0 s, 3.06 GB")


if __name__ == "__main__":
    main()
