"""Dask backend of road distances: origin blocks on a 2-worker cluster equal the single-process table."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("dask.distributed")
pytest.importorskip("dask_geopandas")

from studentflow import geo  # noqa: E402
from studentflow.geo.network import project  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def network_edges(seed: int, n: int = 400, components: int = 1) -> pd.DataFrame:
    """Random geometric road graph near Manila (lengths = great-circle × 1.0-1.5)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    lon, lat = 121.0 + rng.random(n) * 0.3, 14.5 + rng.random(n) * 0.3
    if components == 2:  # half of the nodes 1° east: no edge joins the halves
        lon[n // 2:] += 1.0
    pairs = cKDTree(np.c_[lon, lat]).query_pairs(0.04, output_type="ndarray")
    u, v = pairs[:, 0], pairs[:, 1]
    length = 1000 * geo.haversine_km(lon[u], lat[u], lon[v], lat[v]) * rng.uniform(1.0, 1.5, len(u))
    return pd.DataFrame({"u": [f"n{k}" for k in u], "v": [f"n{k}" for k in v], "length_m": length,
                         "geometry": [f"LINESTRING ({lon[a]} {lat[a]}, {lon[b]} {lat[b]})" for a, b in pairs]})


def schools(seed: int, n: int, lon_span: float = 0.3) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed + 1000)
    lon, lat = 121.0 + rng.random(n) * lon_span, 14.5 + rng.random(n) * 0.3
    ids = pd.Index([f"{seed}{k:05d}" for k in range(n)], name="school_id")
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326", index=ids)


def blocks_run(client, fn):
    """Result of ``fn()`` and the names of the distance-block tasks that ran on the cluster."""
    from dask.distributed import get_task_stream

    with get_task_stream(client) as ts:
        out = fn()
    return out, [t["key"] for t in ts.data if "_block" in str(t["key"])]


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    sa, sb = a.attrs["summary"], b.attrs["summary"]
    assert dataclasses.replace(sa, max_snap_km=0.0) == dataclasses.replace(sb, max_snap_km=0.0)
    np.testing.assert_array_equal(sa.max_snap_km, sb.max_snap_km)  # nan == nan here


def test_dask_geopandas_projection_is_bit_identical_to_pyproj(client):
    from studentflow.geo.network import projector

    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(116.9, 126.6, 20_001), rng.uniform(4.6, 21.1, 20_001)  # the Philippines
    x0, y0 = project(lon, lat)
    x1, y1 = projector(client)(lon, lat)
    np.testing.assert_array_equal(x1, x0)
    np.testing.assert_array_equal(y1, y0)
    assert np.ptp(x0) > 5e5 and np.isfinite(y0).all()  # a real projection, not the identity


@pytest.mark.parametrize("max_km", [None, 6.0])
@pytest.mark.parametrize("source", ["network", "great_circle"])
def test_origin_blocks_on_the_cluster_equal_single_process(client, source, max_km):
    o, d = schools(1, 700), schools(2, 300)
    d = pd.concat([d, o.iloc[:40]])  # shared schools: within-school zeros on both paths
    kw = {"network": geo.read_network(network_edges(1))} if source == "network" else {"circuity": 1.27}
    bs = 37 if source == "network" else 53
    here = geo.road_distances(o, d, max_km=max_km, block_size=bs, **kw)
    there, tasks = blocks_run(client, lambda: geo.road_distances(o, d, max_km=max_km, block_size=bs,
                                                                client=client, **kw))
    assert_same(here, there)
    assert len(tasks) > 2  # the blocks did run as Dask tasks, several of them
    assert here.attrs["summary"].same_school == 40 and (here["distance_km"] > 0).sum() > 1000
    if max_km is not None:
        assert here["distance_km"].max() <= max_km
    # default block size too (one block per ≤128 MB / 4,096 origins)
    assert_same(geo.road_distances(o, d, max_km=max_km, **kw),
                geo.road_distances(o, d, max_km=max_km, client=client, **kw))


def test_disconnected_network_counts_the_same_unreachable_pairs(client):
    net = geo.read_network(network_edges(3, components=2))
    assert net.n_components >= 2
    o, d = schools(3, 300, lon_span=1.3), schools(4, 200, lon_span=1.3)
    here = geo.road_distances(o, d, network=net, block_size=20)
    there = geo.road_distances(o, d, network=net, block_size=20, client=client)
    assert_same(here, there)
    assert here.attrs["summary"].unreachable > 0 and len(here) < len(o) * len(d)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), block_size=st.integers(1, 120), max_km=st.sampled_from([None, 3.0, 9.0]))
def test_block_size_and_seed_do_not_break_equality(client, seed, block_size, max_km):
    net = geo.read_network(network_edges(seed, n=150))
    o, d = schools(seed, 90), schools(seed + 1, 60)
    assert_same(geo.road_distances(o, d, network=net, max_km=max_km, block_size=block_size),
                geo.road_distances(o, d, network=net, max_km=max_km, block_size=block_size, client=client))


@pytest.mark.parametrize("max_km", [None, 5.0])
def test_matrix_source_with_a_client_equals_single_process(client, tmp_path, max_km):
    rng = np.random.default_rng(7)
    ids = [f"{k:06d}" for k in range(80)]
    values = rng.uniform(100, 9000, (85, 80))
    values[rng.random(values.shape) < 0.05] = np.nan
    rows = {sid: [k] for k, sid in enumerate(ids)} | {ids[3]: [3, 80], ids[9]: [9, 81]}
    np.save(tmp_path / "m.npy", values)
    (tmp_path / "m_index.json").write_text(json.dumps({"units": "m", "rows": rows,
                                                       "cols": {sid: [k] for k, sid in enumerate(ids)}}))
    o, d = ids[:60] + ["nope"], ids[20:]
    here = geo.road_distances(o, d, matrix=tmp_path / "m.npy", max_km=max_km, block_size=7)
    there = geo.road_distances(o, d, matrix=tmp_path / "m.npy", max_km=max_km, block_size=7, client=client)
    assert_same(here, there)
    assert len(here) > 100 and here.attrs["summary"].unreachable > 0


@pytest.fixture(scope="module")
def sample():
    from studentflow.ingest import load_bundle

    b = load_bundle()
    flows = b.flows
    origins = pd.Index(flows["origin_id"].astype(str).unique())
    esc = b.schools.index[b.schools["esc"].fillna(False).astype(bool)]
    return b, origins, esc


@pytest.mark.parametrize("source", ["road_distances", "road_network", "great_circle"])
def test_bundle_distances_with_a_client_equal_single_process(client, sample, source):
    from studentflow.pairs import bundle_distances

    b, origins, esc = sample
    extras = {k: v for k, v in b.extras.items() if k == source}
    assert source == "great_circle" or extras  # the sample bundle offers this source
    bundle = dataclasses.replace(b, extras=extras)
    max_km = None if source == "road_distances" else 12.0
    here = bundle_distances(bundle, origins, esc, max_km=max_km)
    there = bundle_distances(bundle, origins, esc, max_km=max_km, client=client)
    assert_same(here, there)
    assert here["method"].iloc[0] == {"road_distances": "matrix", "road_network": "network"}.get(source, source)
    assert len(here) > 1000


def test_an_address_string_is_connected_and_closed(client):
    o, d = schools(8, 200), schools(9, 150)
    addr = client.scheduler.address
    assert_same(geo.road_distances(o, d, max_km=8.0, block_size=30),
                geo.road_distances(o, d, max_km=8.0, block_size=30, client=addr))
    assert len(client.scheduler_info()["workers"]) == 2  # the shared cluster is still up


def test_single_process_distances_do_not_import_dask():
    code = ("import sys; from studentflow import geo; from studentflow.ingest import load_bundle; "
            "from studentflow.pairs import bundle_distances; b = load_bundle(); "
            "o = b.schools.index[:300]; bundle_distances(b, o, b.schools.index, max_km=10.0); "
            "import dataclasses; bundle_distances(dataclasses.replace(b, extras={'road_network': "
            "b.extras['road_network']}), o, b.schools.index, max_km=5.0); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'dask_geopandas')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().splitlines()[-1] == "[]"
