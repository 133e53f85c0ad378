"""A synthetic road network over barangay centroids.

Nodes are barangay centroids; each node is joined to its k nearest neighbours and to the
edges of a Euclidean minimum spanning tree (so most of the area is connected); edges that
cross Manila Bay or Laguna de Bay (coarse polygons) or are longer than a threshold are
removed, which leaves a few islands. Edge length = haversine length × a seeded factor in
[1.05, 1.4] (never shorter than the straight line).

Distances on the network are computed by :func:`studentflow.geo.distances.road_distances`
(docs/contracts.md §2), see :mod:`studentflow.synth.distances`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
import shapely
from scipy.spatial import Delaunay, cKDTree
from shapely import LineString, Polygon, STRtree, intersection, length

from studentflow.geo.distances import haversine_km


#: Coarse water polygons (lon, lat): edges mostly over water are dropped.
WATER = {
    "Manila Bay": [
        (120.60, 14.76), (120.75, 14.79), (120.88, 14.73), (120.955, 14.63), (120.965, 14.53),
        (120.92, 14.48), (120.82, 14.46), (120.70, 14.43), (120.60, 14.40), (120.55, 14.45),
        (120.57, 14.62),
    ],
    "Laguna de Bay": [
        (121.08, 14.50), (121.15, 14.53), (121.22, 14.52), (121.26, 14.46), (121.32, 14.40),
        (121.40, 14.37), (121.45, 14.30), (121.43, 14.22), (121.36, 14.19), (121.30, 14.22),
        (121.22, 14.24), (121.15, 14.27), (121.10, 14.35), (121.06, 14.42),
    ],
}


def project(lon, lat) -> np.ndarray:
    """(n, 2) array of EPSG:32651 (UTM 51N) metres for lon/lat degrees."""
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    x, y = tr.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.column_stack([x, y])


def make_network(nodes: pd.DataFrame, seed: int, *, k: int = 5, max_edge_km: float = 12.0) -> pd.DataFrame:
    """Edge list of a synthetic drive network over ``nodes``.

    Parameters
    ----------
    nodes : pandas.DataFrame
        Columns node (id), lon, lat (degrees), e.g. barangay centroids.
    seed : int
        Seed of the circuity factors.
    k : int
        Nearest neighbours joined per node.
    max_edge_km : float
        Edges longer than this (straight line, km) are dropped.

    Returns
    -------
    pandas.DataFrame
        Columns u, v (node ids, u < v by position), length_m (metres, float),
        geometry (WKT ``LINESTRING (lon_u lat_u, lon_v lat_v)``); sorted by u, v.
    """
    rng = np.random.default_rng([seed, 101])
    lon = nodes["lon"].to_numpy(float)
    lat = nodes["lat"].to_numpy(float)
    xy = project(lon, lat)
    n = len(xy)
    # k nearest neighbours (distinct points only)
    tree = cKDTree(xy)
    _, nb = tree.query(xy, k=min(k + 1, n))
    a = np.repeat(np.arange(n), nb.shape[1] - 1)
    b = nb[:, 1:].ravel()
    # Euclidean MST over the Delaunay graph keeps the mainland in one piece
    tri = Delaunay(xy)
    s = tri.simplices
    ta = np.concatenate([s[:, 0], s[:, 1], s[:, 2]])
    tb = np.concatenate([s[:, 1], s[:, 2], s[:, 0]])
    w = np.hypot(*(xy[ta] - xy[tb]).T) + 1e-3
    mst = minimum_spanning_tree(coo_matrix((w, (ta, tb)), shape=(n, n)).tocsr()).tocoo()
    a = np.concatenate([a, mst.row])
    b = np.concatenate([b, mst.col])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    pairs = np.unique(np.column_stack([lo[keep], hi[keep]]), axis=0)
    u, v = pairs[:, 0], pairs[:, 1]
    straight = haversine_km(lon[u], lat[u], lon[v], lat[v])
    ok = straight <= max_edge_km
    # drop edges mostly over water
    lines = [LineString([(lon[i], lat[i]), (lon[j], lat[j])]) for i, j in zip(u, v)]
    lines_arr = np.array(lines, dtype=object)
    strtree = STRtree(lines_arr)
    for coords in WATER.values():
        poly = Polygon(coords)
        # the coarse outline overlaps coasts: land around every node stays land
        near = np.flatnonzero(shapely.contains_xy(poly.buffer(0.02), lon, lat))
        if len(near):
            land = shapely.union_all(shapely.buffer(shapely.points(lon[near], lat[near]), 0.012))
            poly = poly.difference(land)
        hit = strtree.query(poly)
        if len(hit):
            frac = length(intersection(lines_arr[hit], poly)) / np.maximum(length(lines_arr[hit]), 1e-12)
            ok[hit[frac > 0.3]] = False
    u, v, straight = u[ok], v[ok], straight[ok]
    factor = rng.uniform(1.05, 1.4, size=len(u))
    ids = nodes["node"].to_numpy()
    geometry = [
        f"LINESTRING ({lon[i]:.6f} {lat[i]:.6f}, {lon[j]:.6f} {lat[j]:.6f})" for i, j in zip(u, v)
    ]
    edges = pd.DataFrame(
        {"u": ids[u], "v": ids[v], "length_m": np.maximum(np.ceil(straight * factor * 10000.0) / 10.0, 1.0), "geometry": geometry}
    )
    return edges.sort_values(["u", "v"], ignore_index=True)
