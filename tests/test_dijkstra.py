"""The compiled limited Dijkstra (studentflow.geo.dijkstra) against scipy, bit for bit.

:func:`studentflow.geo.dijkstra.near_pairs` must give exactly the pairs, order and float64
sums of scipy's dense blocks (``scipy.sparse.csgraph.dijkstra`` with ``limit``), on graphs
with ties, zero-weight and duplicate edges, unreachable nodes, several origins on one node
and destinations on the source node; and ``road_distances`` must give the same table with
the compiled blocks (in threads) as with scipy's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from studentflow import geo
from studentflow.geo import network

dij = pytest.importorskip("studentflow.geo.dijkstra")  # numba installed (a dependency)

# weights with many ties (small integers and halves, so sums are exact and paths tie),
# zero-weight edges, and arbitrary floats (sums that round)
WEIGHT = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 3.0]),
                   st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False))
SNAP = st.one_of(st.just(0.0), st.sampled_from([0.25, 1.0]), st.floats(0.0, 3.0))


@st.composite
def problems(draw):
    """A directed graph as raw CSR (duplicates kept, explicit zeros), origins and
    destinations on its nodes with access legs, a limit and the block bounds."""
    n = draw(st.integers(1, 30))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), WEIGHT), max_size=3 * n))
    u = np.array([e[0] for e in edges], np.int64)
    v = np.array([e[1] for e in edges], np.int32)
    w = np.array([e[2] for e in edges], float)
    order = np.argsort(u, kind="stable")  # CSR by hand: scipy's tocsr would sum duplicates
    indptr = np.searchsorted(u[order], np.arange(n + 1)).astype(np.int32)
    graph = sparse.csr_matrix((w[order], v[order], indptr), shape=(n, n))
    o_node = np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10)))
    d_node = np.array(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10)))
    o_snap = np.array(draw(st.lists(SNAP, min_size=len(o_node), max_size=len(o_node))))
    d_snap = np.array(draw(st.lists(SNAP, min_size=len(d_node), max_size=len(d_node))))
    limit = draw(st.one_of(st.just(np.inf), st.sampled_from([0.0, 1.0, 2.5, 4.0]), st.floats(0.0, 12.0)))
    cut = draw(st.integers(0, len(np.unique(o_node))))
    return graph, o_node, o_snap, d_node, d_snap, float(limit), cut


def scipy_pairs(graph, o_node, o_snap, d_node, d_snap, limit):
    """The reference: scipy's dense Dijkstra from every source node, then each origin
    (ascending, grouped by source) with each destination (ascending) within ``limit``."""
    src, o_row = np.unique(o_node, return_inverse=True)
    paths = dijkstra(graph, directed=True, indices=src, limit=limit)
    out = []
    for k in range(len(src)):
        for o in np.flatnonzero(o_row == k):
            tot = paths[k, d_node] + o_snap[o] + d_snap
            j = np.flatnonzero(np.isfinite(tot) & (tot <= limit))  # inf: every reachable pair
            out.append((np.full(len(j), o), j, tot[j]))
    return tuple(np.concatenate(p) for p in zip(*out))


def grouped(graph, o_node, d_node):
    """Source nodes, origins by source (o_ptr, o_idx), destinations by node (t_ptr, t_idx)."""
    src, o_row = np.unique(o_node, return_inverse=True)
    order = np.argsort(o_row, kind="stable")
    o_ptr = np.searchsorted(o_row[order], np.arange(len(src) + 1))
    t_idx = np.argsort(d_node, kind="stable")
    t_ptr = np.searchsorted(d_node[t_idx], np.arange(graph.shape[0] + 1))
    return src, o_ptr, order, t_ptr, t_idx


def compiled_pairs(graph, o_node, o_snap, d_node, d_snap, limit, bounds):
    """near_pairs over the blocks ``bounds`` of source nodes, concatenated."""
    src, o_ptr, order, t_ptr, t_idx = grouped(graph, o_node, d_node)
    parts = [dij.near_pairs(graph.indptr, graph.indices, graph.data, src, s, e, o_ptr, order, o_snap,
                            t_ptr, t_idx, d_snap, limit, limit) for s, e in bounds]
    return tuple(np.concatenate(p) for p in zip(*parts))


def larger_graph(seed):
    rng = np.random.default_rng(seed)
    n, m = 400, 1600
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    w = np.where(rng.random(m) < 0.5, rng.integers(0, 4, m) / 2, rng.exponential(1.0, m))
    graph = sparse.csr_matrix((np.r_[w, w], (np.r_[u, v], np.r_[v, u])), shape=(n, n))
    o_node, d_node = rng.integers(0, n, 300), rng.integers(0, n, 200)
    return graph, o_node, rng.exponential(0.2, 300), d_node, rng.exponential(0.2, 200)


@settings(max_examples=300, deadline=None)
@given(problems())
def test_near_pairs_equal_scipy_dijkstra_bit_for_bit(problem):
    graph, o_node, o_snap, d_node, d_snap, limit, cut = problem
    want = scipy_pairs(graph, o_node, o_snap, d_node, d_snap, limit)
    n_src = len(np.unique(o_node))
    got = compiled_pairs(graph, o_node, o_snap, d_node, d_snap, limit, [(0, cut), (cut, n_src)])
    assert len(got[0]) == len(want[0])
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[2].tobytes() == want[2].tobytes()  # the same float64 bits, not just close
    assert (got[2] <= limit).all()


@pytest.mark.parametrize("seed", range(4))
def test_near_pairs_equal_scipy_on_larger_graphs(seed):
    """Deep heaps (a few hundred nodes from every source): what tiny graphs do not reach."""
    graph, o_node, o_snap, d_node, d_snap = larger_graph(seed)
    limit = [np.inf, 3.0, 1.5, 6.0][seed]
    want = scipy_pairs(graph, o_node, o_snap, d_node, d_snap, limit)
    n_src = len(np.unique(o_node))
    got = compiled_pairs(graph, o_node, o_snap, d_node, d_snap, limit, [(0, n_src // 3), (n_src // 3, n_src)])
    assert len(want[0]) > 1000
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[2].tobytes() == want[2].tobytes()


@pytest.mark.parametrize("cap", [1, 50, 1 << 18])
def test_threaded_blocks_on_small_buffers_equal_scipy(cap):
    """Two threads on buffers of the main thread; full buffers resume mid-block, a source
    larger than its buffer gets a larger one."""
    graph, o_node, o_snap, d_node, d_snap = larger_graph(7)
    src, o_ptr, order, t_ptr, t_idx = grouped(graph, o_node, d_node)
    bounds = [(s, min(s + 40, len(src))) for s in range(0, len(src), 40)]
    parts = dij.near_pairs_threaded(graph, src, o_ptr, order, o_snap, t_ptr, t_idx, d_snap, 3.0, 3.0, bounds,
                                    threads=2, cap=cap)
    got = tuple(np.concatenate(p) for p in zip(*parts))
    want = scipy_pairs(graph, o_node, o_snap, d_node, d_snap, 3.0)
    assert len(want[0]) > 1000
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[2].tobytes() == want[2].tobytes()


def test_near_pairs_stops_at_the_limit_and_skips_unreachable_nodes():
    # 0 -1-> 1 -1-> 2 -1-> 3, and node 4 unreachable; destinations on every node
    graph = sparse.csr_matrix((np.ones(3), ([0, 1, 2], [1, 2, 3])), shape=(5, 5))
    d_node = np.arange(5)
    i, j, km = compiled_pairs(graph, np.array([0, 0]), np.array([0.0, 0.5]), d_node, np.zeros(5), 2.0, [(0, 1)])
    assert list(zip(i, j, km)) == [(0, 0, 0.0), (0, 1, 1.0), (0, 2, 2.0), (1, 0, 0.5), (1, 1, 1.5)]


def random_network(seed, n=70):
    """Edge list of a random geometric graph near Manila with two components."""
    rng = np.random.default_rng(seed)
    lon, lat = 121.0 + rng.random(n) * 0.12, 14.5 + rng.random(n) * 0.12
    lon[n - 8:] += 0.5  # a far island: unreachable pairs
    from scipy.spatial import cKDTree

    pairs = cKDTree(np.c_[lon, lat]).query_pairs(0.03, output_type="ndarray")
    hav = geo.haversine_km(lon[pairs[:, 0]], lat[pairs[:, 0]], lon[pairs[:, 1]], lat[pairs[:, 1]])
    ids = np.array([f"n{k}" for k in range(n)])
    return pd.DataFrame({"u": ids[pairs[:, 0]], "v": ids[pairs[:, 1]],
                         "length_m": np.round(1000 * hav * rng.uniform(1.0, 1.5, len(pairs)), -1),
                         "geometry": [f"LINESTRING ({lon[a]} {lat[a]}, {lon[b]} {lat[b]})" for a, b in pairs]})


def points(seed, n):
    import geopandas as gpd

    rng = np.random.default_rng(seed)
    ids = pd.Index([f"{seed}{k:04d}" for k in range(n)], name="school_id")
    lon, lat = 121.0 + rng.random(n) * 0.12, 14.5 + rng.random(n) * 0.12
    lon[: n // 4] = np.round(lon[: n // 4], 2)  # several schools on one point and one node
    lat[: n // 4] = np.round(lat[: n // 4], 2)
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326", index=ids)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([2.0, 5.0, 9.0]), st.sampled_from([None, 1, 3]))
def test_road_distances_compiled_equal_scipy_blocks(seed, max_km, block_size):
    net = geo.read_network(random_network(seed))
    o, d = points(seed + 1, 30), points(seed + 2, 12)
    d = pd.concat([d, o.iloc[:3]])  # within-school pairs too
    tables, saved = {}, (network.COMPILED, network.THREADS)
    try:
        for compiled, threads in ((False, 1), (True, 1), (True, 2)):
            network.COMPILED, network.THREADS = compiled, threads
            tables[compiled, threads] = geo.road_distances(o, d, network=net, max_km=max_km, block_size=block_size)
    finally:
        network.COMPILED, network.THREADS = saved
    base = tables[False, 1]
    assert len(base) > 0
    for key, got in tables.items():
        pd.testing.assert_frame_equal(got, base, check_exact=True)
        assert got.attrs["summary"] == base.attrs["summary"]
