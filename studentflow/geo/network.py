"""Road networks: reading edge lists / GraphML, snapping schools, blocked Dijkstra.

The network distance of :func:`studentflow.geo.distances.road_distances` (docs/contracts.md §2):
each school is snapped to its nearest network node (KD-tree in EPSG:32651, UTM 51N,
which covers Luzon); ``distance_km = haversine(school, node) + shortest path(node, node')
+ haversine(node', school')``. Shortest paths come, with ``max_km``, from the compiled
limited Dijkstra of :mod:`studentflow.geo.dijkstra` (numba; blocks of origin nodes in
:data:`THREADS` threads), else from :func:`scipy.sparse.csgraph.dijkstra` on the
undirected graph, run from blocks of origin nodes at once with ``limit=max_km``: the same
pairs and km bit for bit. Each edge length is raised, where needed, to the
haversine length between its end nodes, so a network distance is never shorter than the
great-circle distance (triangle inequality). Pairs in different connected components are
left out and counted. Use :func:`studentflow.geo.distances.road_distances` rather than the private
helpers here: it also sets within-school pairs to 0 km.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from studentflow.dask_client import worker_count
from studentflow.errors import DataError
from studentflow.geo.blocks import _block_rows, _bounds, _cat, _run_blocks, haversine_km
from studentflow.geo.lines import line_ends

__all__ = ["RoadNetwork", "read_network", "project", "projector", "snap", "SNAP_CRS"]

#: Projected CRS used for snapping (UTM zone 51N).
SNAP_CRS = "EPSG:32651"
_MIN_EDGE_KM = 1e-9  # csgraph would treat explicit zero weights as missing edges
#: use the compiled Dijkstra (:mod:`studentflow.geo.dijkstra`) where numba is installed
#: (False: scipy's dense blocks everywhere; the table is identical either way)
COMPILED = True
#: threads of the compiled Dijkstra blocks in one process (they release the GIL)
THREADS = max(1, min(2, os.cpu_count() or 1))
_KERNEL: list = []


@dataclass(frozen=True, eq=False)
class RoadNetwork:
    """An undirected road graph: node coordinates and a symmetric CSR matrix of km."""

    node_ids: np.ndarray  # original node labels (str)
    lon: np.ndarray
    lat: np.ndarray
    graph: sparse.csr_matrix  # km, symmetric
    source: str = "<DataFrame>"
    n_components: int = field(default=1)

    def summary(self) -> str:
        """One line: nodes, edges, connected components, total length (km)."""
        return (f"RoadNetwork({self.source}): {len(self.node_ids):,} nodes, "
                f"{self.graph.nnz // 2:,} edges, {self.n_components} component(s), "
                f"{self.graph.sum() / 2:,.1f} km")


def _build_network(u, v, length_km, node_ids, lon, lat, source: str, first_line: int = 0) -> RoadNetwork:
    """Index nodes, raise edge lengths to the haversine floor, symmetrise (min per pair).

    Errors name the k-th edge (0-based) as ``edge k+1``, or as ``line k + first_line`` for
    files whose edge rows start at line ``first_line`` (a CSV with a header: 2).
    """
    def where(k: int) -> str:
        return f"line {k + first_line}" if first_line else f"edge {k + 1}"

    node_ids = np.asarray(node_ids).astype(str)
    if len(node_ids) == 0 or len(u) == 0:
        raise DataError(f"{source}: empty road network (no nodes or no edges)")
    pos = pd.Index(node_ids)
    if pos.has_duplicates:
        keep = ~pos.duplicated()
        node_ids, lon, lat = node_ids[keep], np.asarray(lon)[keep], np.asarray(lat)[keep]
        pos = pd.Index(node_ids)
    iu = pos.get_indexer(np.asarray(u).astype(str))
    iv = pos.get_indexer(np.asarray(v).astype(str))
    if (iu < 0).any() or (iv < 0).any():
        bad = int(np.flatnonzero((iu < 0) | (iv < 0))[0])
        raise DataError(f"{source}: {where(bad)} refers to a node without coordinates")
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise DataError(f"{source}: node coordinates must be finite (x/y or edge geometry)")
    w = np.asarray(length_km, dtype=float)
    if not np.isfinite(w).all() or (w < 0).any():
        bad = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
        raise DataError(f"{source}: {where(bad)}: length must be a finite, non-negative number")
    w = np.maximum(w, haversine_km(lon[iu], lat[iu], lon[iv], lat[iv]))
    keep = iu != iv  # self-loops never shorten a path
    iu, iv, w = iu[keep], iv[keep], np.maximum(w[keep], _MIN_EDGE_KM)
    a, b = np.minimum(iu, iv), np.maximum(iu, iv)
    order = np.lexsort((w, b, a))
    a, b, w = a[order], b[order], w[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    a, b, w = a[first], b[first], w[first]
    n = len(node_ids)
    g = sparse.csr_matrix((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    ncomp = sparse.csgraph.connected_components(g, directed=False)[0]
    return RoadNetwork(node_ids, lon, lat, g, source, int(ncomp))


def _read_graphml(fh, path: str) -> RoadNetwork:
    """GraphML as osmnx writes it: node data x (lon), y (lat); edge data length (m)."""
    try:
        root = ET.parse(fh).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DataError(f"{path}: not valid GraphML ({exc})") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    keys = {(k.get("for"), k.get("attr.name")): k.get("id") for k in root.iter(f"{ns}key")}
    kx, ky, kl = keys.get(("node", "x")), keys.get(("node", "y")), keys.get(("edge", "length"))
    if not (kx and ky and kl):
        raise DataError(f"{path}: GraphML needs node attributes x, y and edge attribute length")
    def data(el) -> dict:
        return {e.get("key"): e.text for e in el.findall(f"{ns}data")}

    nodes = [(n.get("id"), data(n)) for n in root.iter(f"{ns}node")]
    edges = [(e.get("source"), e.get("target"), data(e)) for e in root.iter(f"{ns}edge")]
    num = pd.to_numeric  # text → float; blanks and junk → NaN, rejected by _build_network
    xs = num(pd.Series([d.get(kx) for _, d in nodes], dtype=object), errors="coerce")
    ys = num(pd.Series([d.get(ky) for _, d in nodes], dtype=object), errors="coerce")
    ls = num(pd.Series([d.get(kl) for *_, d in edges], dtype=object), errors="coerce") / 1000.0
    return _build_network([e[0] for e in edges], [e[1] for e in edges], ls.to_numpy(float),
                          [n[0] for n in nodes], xs.to_numpy(float), ys.to_numpy(float), path)


def _network_from_edges(edges: pd.DataFrame, source: str, first_line: int = 0) -> RoadNetwork:
    """Edge list with u, v, length_m and a LINESTRING geometry (first point u, last v)."""
    missing = [c for c in ("u", "v", "length_m", "geometry") if c not in edges.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {list(edges.columns)}")
    if len(edges) == 0:
        raise DataError(f"{source}: empty road network (no edges)")
    geom = edges["geometry"]
    if getattr(geom, "crs", None) is not None and not geom.crs.equals("EPSG:4326"):
        geom = geom.to_crs("EPSG:4326")
    start, end = line_ends(geom, source, first_line)
    u = edges["u"].astype(str).to_numpy()
    v = edges["v"].astype(str).to_numpy()
    length = pd.to_numeric(edges["length_m"], errors="coerce").to_numpy(dtype=float) / 1000.0
    nodes = pd.DataFrame({"id": np.r_[u, v], "lon": np.r_[start[:, 0], end[:, 0]],
                          "lat": np.r_[start[:, 1], end[:, 1]]}).drop_duplicates("id")
    return _build_network(u, v, length, nodes["id"].to_numpy(), nodes["lon"].to_numpy(),
                          nodes["lat"].to_numpy(), source, first_line)


def read_network(network) -> RoadNetwork:
    """Read a road network from GraphML, CSV / CSV.gz / GeoPackage edges, or an edge DataFrame.

    Parameters
    ----------
    network : str, Path, pandas.DataFrame or RoadNetwork
        ``.graphml`` (osmnx layout: node x/y in degrees, edge ``length`` in metres) or an
        edge list with columns ``u``, ``v``, ``length_m`` (metres) and ``geometry``
        (LINESTRING in lon/lat, WKT text in CSV; first point = node u, last = node v).

    Returns
    -------
    RoadNetwork
        Undirected graph with edge weights in km.
    """
    if isinstance(network, RoadNetwork):
        return network
    if isinstance(network, pd.DataFrame):
        return _network_from_edges(network, "network DataFrame")
    path = Path(network)
    if not path.exists():
        raise DataError(f"{path}: road network file not found")
    name = path.name.lower()
    if name.endswith(".graphml") or name.endswith(".graphml.gz"):
        if name.endswith(".gz"):
            with gzip.open(path) as fh:
                return _read_graphml(fh, str(path))
        return _read_graphml(path, str(path))
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        try:
            edges = pd.read_csv(path, dtype={"u": str, "v": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read edge list ({exc})") from None
        return _network_from_edges(edges, str(path), first_line=2)
    if name.endswith(".gpkg"):
        import geopandas as gpd

        return _network_from_edges(gpd.read_file(path), str(path))
    raise DataError(f"{path}: unknown road network format (expected .graphml, .csv, .csv.gz, .gpkg)")


def projector(client, crs: str | None = None) -> Callable:
    """A ``project(lon, lat) -> (x, y)`` that runs dask-geopandas ``to_crs`` on ``client``.

    GeoPandas calls the same PROJ transformation (``always_xy``) as :func:`project`, so
    the coordinates, and hence the snapped nodes, are identical to the single-process
    ones (checked in tests/test_geo_dask.py).

    Parameters
    ----------
    client : dask.distributed.Client
        Where the partitions are projected (one partition per worker).
    crs : str, optional
        Target CRS; default :data:`studentflow.geo.network.SNAP_CRS` (EPSG:32651).

    Returns
    -------
    callable
        ``project(lon, lat)`` taking degrees (EPSG:4326) and returning two float arrays
        in the units of ``crs`` (metres for UTM).
    """
    if crs is None:
        crs = SNAP_CRS

    def project(lon, lat) -> tuple[np.ndarray, np.ndarray]:
        import dask_geopandas
        import geopandas as gpd

        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        if len(lon) == 0:
            return np.empty(0), np.empty(0)
        gdf = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
        parts = max(1, min(worker_count(client), len(gdf)))
        ddf = dask_geopandas.from_geopandas(gdf, npartitions=parts).to_crs(crs)
        out = client.compute(ddf).result()
        return out.geometry.x.to_numpy(dtype=float), out.geometry.y.to_numpy(dtype=float)

    return project


def project(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat degrees → (x, y) metres in :data:`SNAP_CRS` (pyproj, ``always_xy``)."""
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", SNAP_CRS, always_xy=True)
    return tr.transform(np.asarray(lon, float), np.asarray(lat, float))


def snap(net: RoadNetwork, lon, lat, *, project=project) -> tuple[np.ndarray, np.ndarray]:
    """Nearest network node of each point (KD-tree in EPSG:32651).

    ``project`` maps (lon, lat) degrees to (x, y) in :data:`SNAP_CRS`; the default is
    :func:`project` (pyproj), :func:`studentflow.geo.blocks_dask.projector` gives the
    dask-geopandas one (same PROJ, same bits). Returns ``(node_index, snap_km)``:
    positions into ``net.node_ids`` and the haversine distance in km from each point to
    its node.
    """
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    x, y = project(np.r_[net.lon, lon], np.r_[net.lat, lat])  # nodes and points in one pass
    n = len(net.lon)
    _, idx = cKDTree(np.column_stack([x[:n], y[:n]])).query(np.column_stack([x[n:], y[n:]]))
    idx = np.asarray(idx, dtype=np.int64)
    return idx, haversine_km(lon, lat, net.lon[idx], net.lat[idx])


def kernel():
    """:mod:`studentflow.geo.dijkstra`, or None when numba is missing or :data:`COMPILED` is False."""
    if not COMPILED:
        return None
    if not _KERNEL:
        try:
            from studentflow.geo import dijkstra as compiled
        except ImportError:  # numba missing: scipy's blocks give the same table
            compiled = None
        _KERNEL.append(compiled)
    return _KERNEL[0]


def _network_block(plan: dict, s: int, e: int):
    """Pairs (i, j, km) of the origins snapped to source nodes ``s:e`` (one Dijkstra block).

    Compiled (:func:`studentflow.geo.dijkstra.near_pairs`) where numba is installed and
    ``max_km`` is set, else scipy's dense block: the same entries in the same order, bit
    for bit.
    """
    k = kernel() if plan["compiled"] else None
    if k is not None:
        g = plan["graph"]
        i, j, km = k.near_pairs(g.indptr, g.indices, g.data, plan["src"], s, e, plan["o_ptr"], plan["order"],
                                plan["o_snap"], plan["t_ptr"], plan["t_idx"], plan["d_snap"], plan["limit"],
                                np.inf if plan["max_km"] is None else float(plan["max_km"]))
        return i.view(np.int64), j.view(np.int64), km
    paths = dijkstra(plan["graph"], directed=True, indices=plan["src"][s:e], limit=plan["limit"])[:, plan["d_unique"]]
    lo, hi = np.searchsorted(plan["sorted_rows"], [s, e])
    sel = plan["order"][lo:hi]
    tot = paths[plan["o_row"][sel] - s][:, plan["d_col"]] + plan["o_snap"][sel, None] + plan["d_snap"][None, :]
    mask = np.isfinite(tot) if plan["max_km"] is None else tot <= plan["max_km"]
    i, j = np.nonzero(mask)
    return sel[i], j, tot[i, j]


def _network(net: RoadNetwork, olon, olat, dlon, dlat, max_km, block_size, client=None):
    """Network distances; returns (i, j, km, unreachable pairs, max snap km).

    With a Dask ``client`` the points are projected with dask-geopandas and the Dijkstra
    blocks run as tasks (:func:`studentflow.geo.distances._run_blocks`); same result bit for bit.
    With ``max_km`` (and numba) each block runs the compiled limited Dijkstra
    (:mod:`studentflow.geo.dijkstra`), in :data:`THREADS` threads in one process;
    without a limit every source reaches every node and scipy's dense blocks are faster
    (sample, all x all: 5.0 s against 6.2 s).
    """
    proj = project
    if client is not None:
        proj = projector(client)
    node, snap_km = snap(net, np.r_[olon, dlon], np.r_[olat, dlat], project=proj)
    o_node, o_snap, d_node, d_snap = node[:len(olon)], snap_km[:len(olon)], node[len(olon):], snap_km[len(olon):]
    labels = sparse.csgraph.connected_components(net.graph, directed=False)[1]
    oc = np.bincount(labels[o_node], minlength=net.n_components)
    dc = np.bincount(labels[d_node], minlength=net.n_components)
    unreachable = int(len(o_node) * len(d_node) - (oc * dc).sum())
    d_unique, d_col = np.unique(d_node, return_inverse=True)
    src, o_row = np.unique(o_node, return_inverse=True)
    order = np.argsort(o_row, kind="stable")
    sorted_rows = o_row[order]
    n_nodes = net.graph.shape[0]
    t_idx = np.argsort(d_node, kind="stable")  # destinations by node, ascending within a node
    compiled = max_km is not None and kernel() is not None  # without a limit scipy's blocks are faster
    plan = {"graph": net.graph, "src": src, "d_unique": d_unique, "d_col": d_col, "o_row": o_row,
            "order": order, "sorted_rows": sorted_rows, "o_snap": o_snap, "d_snap": d_snap,
            "limit": np.inf if max_km is None else float(max_km), "max_km": max_km, "compiled": compiled,
            "o_ptr": np.searchsorted(sorted_rows, np.arange(len(src) + 1)),
            "t_ptr": np.searchsorted(d_node[t_idx], np.arange(n_nodes + 1)), "t_idx": t_idx}
    if compiled and block_size is None and client is None:  # no dense block: a few blocks per thread
        rows = max(64, -(-len(src) // (16 * THREADS)))
    else:
        rows = _block_rows(n_nodes, block_size)
    bounds = _bounds(len(src), rows)
    if compiled and client is None and THREADS > 1 and len(bounds) > 1:
        g = net.graph
        parts = kernel().near_pairs_threaded(g, src, plan["o_ptr"], order, o_snap, plan["t_ptr"], t_idx, d_snap,
                                             float(max_km), float(max_km), bounds, THREADS)
    else:
        parts = _run_blocks(_network_block, plan, bounds, client)
    i, j, d = _cat(parts)
    order = np.argsort(i, kind="stable")  # within an origin, j is already ascending
    snap_max = float(max(o_snap.max(initial=0.0), d_snap.max(initial=0.0)))
    return i[order], j[order], d[order], unreachable, snap_max
