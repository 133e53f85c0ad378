"""Benchmark of studentflow.geo.road_distances: road network vs great-circle baseline.

Two cases, each timed against the pure great-circle method (haversine × circuity) run in
the same process on the same schools, which is the baseline of every ratio printed:

1. "sample": every school of the bundled sample on its road network, all × all, no
   distance limit (target < 10 s). Falls back to a synthetic network of the same size
   (~8,800 nodes, ~25,000 edges, 3,000 schools) when ``data/sample/`` is absent.
2. "scale 10": a region ten times larger, all × all with ``max_km=15`` (target < 2
   minutes). With ``--region DIR`` (a ``make_region(scale=10)`` folder) its 30,000
   schools on its road network (make_region keeps the ~8,800-node barangay network at
   every scale); otherwise 30,000 synthetic schools on a synthetic ~88,000-node network.

Figures seen on the shared 2-core machine (28 Nov 2026; wall s, CPU s in brackets):
sample 3,000 schools all × all: road 8.98 s [3.19] vs great-circle 3.98 s [1.31];
synthetic 88k-node network, 30,000 schools, 15 km: road 75.3 s [35.3] vs 22.5 s [7.5]
(32.2 M pairs); make_region(seed=1, scale=10), 15 km: road 92.9 s [32.8] vs 52.7 s
[21.3] (68.0 M pairs). After within-school pairs became 0 km (same machine, quieter):
sample road 2.64 s [2.46] vs great-circle 0.48 s [0.44]; synthetic 88k-node, 15 km:
road 37.3 s [36.9] vs 10.7 s [10.1] (32.2 M pairs, peak RSS 7.8 GB); the same-place
search + zeroing cost 0.7 % of the road time in both (30,000 pairs zeroed at scale 10).
Dask (28 Nov 2026, 2-worker local cluster on the same 2 vCPUs, shared with other jobs:
load average 3-6 during the runs; outputs identical every time; CPU of main process +
workers): national seed0-n59000-r5 (46,413 origins x 13,373 ESC, 42k-node network,
10.05 M pairs): single 8.05 s [8.10] peak RSS 1.40 GB; Dask 7.31 s (0.91x) [2.63 + 9.88]
first run, 13.63 s (1.69x) [2.33 + 10.64] second (same code: the load moved), peak RSS
1.97-2.46 GB, cluster start 0.75 s. Synthetic 30,000 schools, 88k nodes, 15 km (32.2 M
pairs): single 51.5 s [38.8] peak 2.59 GB; Dask 100.5 s (1.95x) [14.2 + 48.2] and 90.0 s
(1.75x), peak 4.6-5.4 GB. Single-process Dijkstra blocks are 7.0 of ~8 s national (the
part Dask spreads); the dask-geopandas projection adds ~1 s; moving 24 bytes per pair
back to the client and worker overhead add ~50 % CPU at 32 M pairs. On a 2-core machine
already busy, the cluster does not pay; it is for machines with idle cores or several hosts.

Compiled limited Dijkstra (issue 22, ``--kernel``): the national distance stage
(``compute_distances(bundle, max_km=15)`` on ``--national``, else the synthetic scale-10
region) with the numba kernel in two threads and in one, against scipy's dense blocks
(``network.COMPILED = False``, the baseline) in the same process, and ``read_network``
with WKT text parsed by pyarrow against shapely; wall, CPU, load and whether the tables
and networks are identical. Seen 6 Dec 2026 (2 cores, load ~1-2): see docs/scaling.md,
"Road distances, fifth pass".

Run: ``PYTHONPATH=. python scripts/bench_distances.py [--skip-large] [--region DIR]
[--dask [--dask-only] [--national MANIFEST]] [--kernel [--national MANIFEST]]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import Delaunay, cKDTree

from benchlib import PeakRSS
from studentflow import geo

REPO = Path(__file__).resolve().parents[1]
BOX = (120.3, 13.6, 121.9, 15.6)  # lon/lat box around Mega Manila


def clustered_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points denser in a few urban centres (Manila, Angeles, Calamba, ...), lon/lat."""
    centres = np.array([[121.00, 14.60], [120.59, 15.15], [121.16, 14.21], [120.98, 14.85],
                        [121.05, 14.35], [120.90, 15.45]])
    k = rng.integers(0, len(centres), n)
    urban = rng.random(n) < 0.7
    lon = np.where(urban, centres[k, 0] + rng.normal(0, 0.08, n), rng.uniform(BOX[0], BOX[2], n))
    lat = np.where(urban, centres[k, 1] + rng.normal(0, 0.08, n), rng.uniform(BOX[1], BOX[3], n))
    return np.clip(lon, BOX[0], BOX[2]), np.clip(lat, BOX[1], BOX[3])


def synthetic_network(n_nodes: int, seed: int, k: int = 5) -> pd.DataFrame:
    """Edge list (u, v, length_m, geometry WKT): k-nearest-neighbour graph + a spanning tree
    of the Delaunay triangulation (so the network is connected); ~2.9 edges per node."""
    rng = np.random.default_rng(seed)
    lon, lat = clustered_points(n_nodes, rng)
    xy = np.column_stack([lon * np.cos(np.radians(14.6)), lat])
    _, nb = cKDTree(xy).query(xy, k=k + 1)
    a, b = np.repeat(np.arange(n_nodes), k), nb[:, 1:].ravel()
    tri = Delaunay(xy).simplices
    ta, tb = tri.ravel(), tri[:, [1, 2, 0]].ravel()
    w = np.hypot(*(xy[ta] - xy[tb]).T) + 1e-9
    mst = minimum_spanning_tree(coo_matrix((w, (ta, tb)), shape=(n_nodes, n_nodes))).tocoo()
    pairs = np.unique(np.sort(np.column_stack([np.r_[a, mst.row], np.r_[b, mst.col]]), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    u, v = pairs[:, 0], pairs[:, 1]
    length = 1000 * geo.haversine_km(lon[u], lat[u], lon[v], lat[v]) * rng.uniform(1.05, 1.4, len(u))
    wkt = [f"LINESTRING ({lon[i]:.6f} {lat[i]:.6f}, {lon[j]:.6f} {lat[j]:.6f})" for i, j in zip(u, v)]
    return pd.DataFrame({"u": u.astype(str), "v": v.astype(str), "length_m": np.ceil(length), "geometry": wkt})


def synthetic_schools(n: int, seed: int) -> gpd.GeoDataFrame:
    lon, lat = clustered_points(n, np.random.default_rng(seed + 1))
    ids = pd.Index([f"{k:06d}" for k in range(n)], name="school_id")
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326", index=ids)


def sample_inputs():
    """Schools (true locations) and road network path of data/sample, or None."""
    truth = REPO / "data" / "sample" / "truth" / "schools.csv"
    roads = REPO / "data" / "sample" / "roads.csv.gz"
    if not (truth.exists() and roads.exists()):
        return None
    t = pd.read_csv(truth, dtype={"school_id": str}).set_index("school_id")
    schools = gpd.GeoDataFrame(geometry=gpd.points_from_xy(t["lon"], t["lat"]), crs="EPSG:4326", index=t.index)
    return schools, roads


CPU: dict[str, float] = {}


def timed(fn, label: str = ""):
    """Wall-clock seconds and result; CPU seconds (this process) kept in ``CPU[label]``."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    CPU[label] = time.process_time() - c0
    return time.perf_counter() - t0, out


def case(label: str, schools, network, max_km, target_s: float) -> None:
    t_read, net = timed(lambda: geo.read_network(network), "read")
    t_gc, gc = timed(lambda: geo.road_distances(schools, schools, max_km=max_km), "gc")
    t_net, rd = timed(lambda: geo.road_distances(schools, schools, network=net, max_km=max_km), "net")
    s = rd.attrs["summary"]
    print(f"\n== {label}: {len(schools):,} schools; {net.summary()}")
    print("  (wall-clock s; CPU s of this process in brackets: the machine may be shared)")
    print(f"  read network:            {t_read:8.2f} s [{CPU['read']:6.2f}]")
    print(f"  great-circle (baseline): {t_gc:8.2f} s [{CPU['gc']:6.2f}]  {len(gc):>12,} pairs")
    print(f"  road network:            {t_net:8.2f} s [{CPU['net']:6.2f}]  {len(rd):>12,} pairs  "
          f"ratio to baseline {t_net / t_gc:5.1f}x wall, {CPU['net'] / CPU['gc']:5.1f}x CPU  "
          f"(read + road {t_read + t_net:.2f} s; target < {target_s:g} s)")
    o = schools.geometry.reindex(rd["origin_id"])
    d = schools.geometry.reindex(rd["destination_id"])
    gc_km = geo.haversine_km(o.x.to_numpy(), o.y.to_numpy(), d.x.to_numpy(), d.y.to_numpy())
    ratio = rd["distance_km"].to_numpy()[gc_km > 0.1] / gc_km[gc_km > 0.1]
    print(f"  unreachable pairs {s.unreachable:,}; farthest snap {s.max_snap_km:.2f} km; "
          f"median road / great-circle km (pairs > 0.1 km apart) {np.median(ratio):.2f}")
    # the within-school step on its own (already inside both timings above)
    ids = pd.Index(schools.index.astype(str))
    i, j = ids.get_indexer(rd["origin_id"]), ids.get_indexer(rd["destination_id"])
    lon, lat = schools.geometry.x.to_numpy(), schools.geometry.y.to_numpy()
    t_same, (zi, zj) = timed(lambda: geo._same_place(lon, lat, lon, lat), "same")
    t_zero, _ = timed(lambda: geo._zero_within(i, j, rd["distance_km"].to_numpy(), zi, zj, len(ids)), "zero")
    print(f"  within-school pairs set to 0 km: {s.same_school:,}; same-place search {t_same:.3f} s + "
          f"zeroing {t_zero:.3f} s = {100 * (t_same + t_zero) / t_net:.1f} % of the road time")


def dask_case(national: Path | None, workers: int = 2) -> None:
    """Single process (baseline) vs a local Dask cluster on the same inputs; same table?"""
    from dask.distributed import Client

    from studentflow.dask_client import local_cluster

    if national is not None:
        from studentflow.ingest import load_bundle
        from studentflow.pairs import bundle_distances

        t_load, b = timed(lambda: load_bundle(national), "load")
        t_read, net = timed(lambda: geo.read_network(b.extras["road_network"]), "read")
        b = dataclasses.replace(b, extras={**b.extras, "road_network": net})
        f = b.flows
        origins = pd.Index(f["origin_id"].astype(str).unique())
        benef = f.loc[pd.to_numeric(f["esc_beneficiaries"]) > 0, "destination_id"].astype(str).unique()
        esc = b.schools.index[b.schools["esc"].fillna(False).astype(bool) | b.schools.index.isin(benef)]
        label = (f"national bundle {national.parent.name}: {len(origins):,} origins x {len(esc):,} ESC schools, "
                 f"bundle_distances max_km=15 (load {t_load:.1f} s, read network {t_read:.1f} s)")

        def run(client=None):
            return bundle_distances(b, origins, esc, max_km=15.0, client=client)
    else:
        schools = synthetic_schools(30_000, 10)
        t_read, net = timed(lambda: geo.read_network(synthetic_network(88_000, 10)), "read")
        label = f"synthetic 30,000 schools x 30,000, max_km=15 (build + read network {t_read:.1f} s)"

        def run(client=None):
            return geo.road_distances(schools, schools, network=net, max_km=15.0, client=client)

    print(f"\n== dask: {label}; {net.summary()}")
    with PeakRSS(children=True, every=0.1) as m1:
        t1, here = timed(run, "single")
    here_pairs = len(here)
    del here  # one table in memory at a time, so the peaks compare; re-run below for the check
    with PeakRSS(children=True, every=0.1) as m0:
        t_up, (cluster, client) = timed(lambda: (lambda c: (c, Client(c)))(
            local_cluster(workers)), "up")
    try:
        with PeakRSS(children=True, every=0.1) as m2:
            w0 = m2.children_cpu()
            t2, there = timed(lambda: run(client), "dask")
            w2 = m2.children_cpu() - w0
        with PeakRSS(children=True, every=0.1) as m3:
            w0 = m3.children_cpu()
            t3, _ = timed(lambda: run(client), "dask2")
            w3 = m3.children_cpu() - w0
    finally:
        client.close()
        cluster.close()
    here = run()
    try:
        pd.testing.assert_frame_equal(here, there, check_exact=True)
        same = "identical (assert_frame_equal, exact)"
    except AssertionError as exc:
        same = f"DIFFERENT: {str(exc).splitlines()[0]}"
    gb = 2.0**30
    print("  (wall-clock s; CPU s of this process [+ of the workers] in brackets; peak RSS = this process "
          "+ children)")
    print(f"  single process (baseline): {t1:8.2f} s [{CPU['single']:6.2f}]  {here_pairs:>12,} pairs  "
          f"peak RSS {m1.peak / gb:5.2f} GB")
    print(f"  start {workers}-worker cluster:    {t_up:8.2f} s            peak RSS {m0.peak / gb:5.2f} GB")
    print(f"  dask, first run:           {t2:8.2f} s [{CPU['dask']:6.2f} + {w2:6.2f}]  {len(there):>12,} pairs  "
          f"peak RSS {m2.peak / gb:5.2f} GB  ratio to baseline {t2 / t1:5.2f}x wall")
    print(f"  dask, second run:          {t3:8.2f} s [{CPU['dask2']:6.2f} + {w3:6.2f}]  "
          f"{'':>12}        peak RSS {m3.peak / gb:5.2f} GB  ratio to baseline {t3 / t1:5.2f}x wall")
    print(f"  outputs: {same}")


def kernel_case(national: Path | None) -> None:
    """Compiled limited Dijkstra vs scipy's dense blocks (baseline), same inputs, same process."""
    import os

    from studentflow.geo import lines, network

    if national is not None:
        from studentflow.ingest import load_bundle
        from studentflow.pipeline import compute_distances

        t_load, bundle = timed(lambda: load_bundle(national), "load")
        roads = bundle.extras["road_network"]
        label = f"national distance stage, {national.parent.name} (load {t_load:.1f} s), max_km=15"

        def stage():
            return compute_distances(bundle, max_km=15.0)
    else:
        schools, roads = synthetic_schools(30_000, 10), synthetic_network(88_000, 10)
        label = "synthetic 30,000 schools x 30,000 on an 88k-node network, max_km=15"

        def stage():
            return geo.road_distances(schools, schools, network=roads, max_km=15.0)

    print(f"\n== kernel: {label}")
    print("  (wall-clock s; CPU s of this process in brackets; 1-minute load average after each run)")
    t_k, _ = timed(network.kernel, "kernel")
    print(f"  import numba + load the compiled kernel: {t_k:.2f} s [{CPU['kernel']:.2f}] (once per process)")
    text_ends, saved = lines._text_ends, (network.COMPILED, network.THREADS)
    configs = {"read_network, shapely (baseline)": lambda: setattr(lines, "_text_ends", lambda v: None),
               "read_network, WKT text by pyarrow": lambda: setattr(lines, "_text_ends", text_ends),
               "scipy dense blocks (baseline)": lambda: setattr(network, "COMPILED", False),
               f"compiled, {saved[1]} thread(s)": lambda: setattr(network, "COMPILED", True),
               "compiled, 1 thread": lambda: (setattr(network, "COMPILED", True), setattr(network, "THREADS", 1))}
    runs: dict[str, list] = {name: [] for name in configs}
    try:
        for _ in range(2):  # interleaved, twice: the load moves while we measure; the best of two is shown
            for name, setup in configs.items():
                setup()
                fn = (lambda: geo.read_network(roads)) if name.startswith("read") else stage
                t, out = timed(fn, name)
                runs[name].append((t, CPU[name], os.getloadavg()[0], out))
                network.THREADS, lines._text_ends = saved[1], text_ends
    finally:
        (network.COMPILED, network.THREADS), lines._text_ends = saved, text_ends
    best = {name: min(r, key=lambda x: x[0]) for name, r in runs.items()}
    for name, (t, cpu, ld, out) in best.items():
        base = best["read_network, shapely (baseline)" if name.startswith("read") else "scipy dense blocks (baseline)"]
        extra = f"{len(out):>10,} pairs" if isinstance(out, pd.DataFrame) else f"{'':>16}"
        both = " / ".join(f"{x[0]:.2f}" for x in runs[name])
        print(f"  {name:<36} {t:6.2f} s [{cpu:5.2f}] {extra}  ratio to baseline {t / base[0]:5.2f}x wall, "
              f"{cpu / base[1]:5.2f}x CPU  (runs {both} s; load {ld:.1f})")
    a, b = best["read_network, shapely (baseline)"][3], best["read_network, WKT text by pyarrow"][3]
    same_net = (a.lon.tobytes() == b.lon.tobytes() and a.lat.tobytes() == b.lat.tobytes()
                and (a.graph != b.graph).nnz == 0 and a.graph.nnz == b.graph.nnz)
    ref, same = best["scipy dense blocks (baseline)"][3], []
    for name, r in runs.items():
        for *_, out in r:
            if isinstance(out, pd.DataFrame) and out is not ref:
                try:
                    pd.testing.assert_frame_equal(out, ref, check_exact=True)
                    same.append(True)
                except AssertionError as exc:
                    same.append(False)
                    print(f"  {name}: DIFFERENT ({str(exc).splitlines()[0]})")
    print(f"  networks: {'identical' if same_net else 'DIFFERENT'} (node coordinates and edge km, bit for bit)")
    print(f"  tables: {sum(same)} of {len(same)} runs identical to the baseline's (assert_frame_equal, exact)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-large", action="store_true", help="only the sample-size case")
    ap.add_argument("--region", type=Path, help="a make_region(scale=10) output folder")
    ap.add_argument("--dask", action="store_true", help="also compare a 2-worker Dask cluster with one process")
    ap.add_argument("--dask-only", action="store_true", help="only the Dask comparison")
    ap.add_argument("--national", type=Path, help="manifest.toml of a national bundle (Dask and kernel cases)")
    ap.add_argument("--kernel", action="store_true",
                    help="only the compiled Dijkstra vs scipy's blocks (on --national if given)")
    args = ap.parse_args()
    if args.kernel:
        kernel_case(args.national)
        return
    if args.dask_only:
        dask_case(args.national)
        return

    sample = sample_inputs()
    if sample is not None:
        case("bundled sample, all x all, no limit", *sample, None, 10)
    else:
        print("data/sample not found: synthetic network of the sample's size")
        case("synthetic sample-size region, all x all, no limit", synthetic_schools(3_000, 1),
             synthetic_network(8_800, 1), None, 10)
    if args.skip_large:
        return
    if args.region is not None:
        t = pd.read_csv(args.region / "truth" / "schools.csv", dtype={"school_id": str}).set_index("school_id")
        schools = gpd.GeoDataFrame(geometry=gpd.points_from_xy(t["lon"], t["lat"]), crs="EPSG:4326", index=t.index)
        case("region scale 10, all x all, max_km=15", schools, args.region / "roads.csv.gz", 15.0, 120)
    else:
        case("synthetic scale-10 region, all x all, max_km=15", synthetic_schools(30_000, 10),
             synthetic_network(88_000, 10), 15.0, 120)
    if args.dask:
        dask_case(args.national)


if __name__ == "__main__":
    main()
