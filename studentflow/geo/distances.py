"""Coordinates and distances between schools: great-circle, road network, OSRM matrix.

Distance definitions (docs/contracts.md §2; :mod:`studentflow.synth` uses the same code
for its ground truth). :func:`road_distances` dispatches to one of:

- **Matrix**: a precomputed OSRM-style table (``.npy``, metres) with a JSON index
  ``{"units": "m", "rows": {"136512": [0], ...}, "cols": {...}}``; a school listed under
  several rows/columns (two coordinate rows) takes the minimum
  (:mod:`studentflow.geo.matrix`).
- **Network**: each school is snapped to its nearest network node (KD-tree in
  EPSG:32651, UTM 51N, which covers Luzon); ``distance_km = haversine(school, node)
  + shortest path(node, node') + haversine(node', school')``, shortest paths by a
  compiled Dijkstra that stops at ``max_km`` (:mod:`studentflow.geo.dijkstra`), or by
  blocked :func:`scipy.sparse.csgraph.dijkstra` (no ``max_km``, or no numba; the same
  table bit for bit). Edge lengths are raised
  to the haversine length of their end nodes, so a network distance is never shorter
  than the great-circle distance; pairs in different connected components are left out
  and counted (:mod:`studentflow.geo.network`).
- **Great-circle × circuity** when neither is supplied: haversine on a sphere of
  radius :data:`EARTH_RADIUS_KM` (6371.0088 km, the IUGG mean radius) times a circuity
  factor. The default 1.3 is in the middle of published road circuity factors
  (≈1.2-1.4; Ballou, Rahardja & Sakai 2002, "Selected country circuity factors for road
  travel distance estimation", *Transportation Research Part A* 36(9), 843-848).
  Sensitivity: the gravity model uses ``ln(1 + d)``; for d well above 1 km a factor
  change from c to c' shifts ln(1+d) by about ln(c'/c) for every pair, which the
  intercept absorbs, so slopes barely move; only short pairs (d of a few km) change shape.

**Within-school pairs are 0 km, for every method.** A school offering both Grade 6 and
an ESC junior high (a within-school transition, ``origin_id == destination_id``) is at
distance 0 from itself, not twice its access leg to the road network (what the network
formula gives) nor whatever a matrix holds on its diagonal. The matrix method knows
schools only by id, so it sets every pair with the same id to 0 km (adding the pair if
the matrix had no value). The network and great-circle methods know schools by their
points, so they set to 0 km every pair of points at the same place (within
:data:`SAME_PLACE_KM`, 1 m): the same school in both tables, and also two distinct
schools that share a point (great-circle gives them ~0 km anyway). An id shared by two
*different* points is not zeroed: callers that number points by position in each table
(as :mod:`studentflow.synth` does) keep true distances. The count is
``attrs["summary"].same_school``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from studentflow.errors import DataError
from studentflow.geo.blocks import (
    EARTH_RADIUS_KM, _block_rows, _bounds, _cat, _haversine_rad, _run_blocks, haversine_km,
)
from studentflow.geo.matrix import _matrix
from studentflow.geo.network import _network, read_network

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_CIRCUITY", "SAME_PLACE_KM", "DistanceSummary", "road_distances", "school_points"]

#: Default road circuity factor (road km per great-circle km), see module docstring.
DEFAULT_CIRCUITY = 1.3
#: Points closer than this (km, great-circle) are the same place: their distance is 0 km.
SAME_PLACE_KM = 1e-3
_SPARSE_BLOCK = 4096  # origins per great-circle block with max_km (a KD-tree search each)

def school_points(schools: pd.DataFrame, *, name: str = "schools") -> tuple[pd.Index, np.ndarray, np.ndarray, int]:
    """School ids with valid point geometry and their lon/lat in degrees.

    Returns ``(ids, lon, lat, n_skipped)``; rows with no or empty geometry are skipped
    and counted. A GeoDataFrame in another CRS is converted to EPSG:4326 first.
    """
    if not isinstance(schools, pd.DataFrame):
        raise ValueError(f"{name}: expected a (Geo)DataFrame indexed by school_id, got {type(schools).__name__}")
    if schools.index.has_duplicates:
        dup = schools.index[schools.index.duplicated()][:5].tolist()
        raise DataError(f"{name}: duplicated school_id in the index, e.g. {dup}")
    if "geometry" not in schools.columns:
        raise DataError(f"{name}: missing column 'geometry' (Point, EPSG:4326); found {list(schools.columns)}")
    geom = schools["geometry"]
    crs = getattr(geom, "crs", None)
    if crs is not None and not crs.equals("EPSG:4326"):
        geom = geom.to_crs("EPSG:4326")
    import shapely

    arr = np.asarray(geom, dtype=object)
    arr = np.where(pd.isna(arr), None, arr)  # NaN / NA placeholders count as missing
    ok = ~shapely.is_missing(arr) & ~shapely.is_empty(arr)
    if (shapely.get_type_id(arr[ok]) != 0).any():
        raise DataError(f"{name}: geometry must be Point (lon, lat)")
    coords = np.full((len(arr), 2), np.nan)
    coords[ok] = shapely.get_coordinates(arr[ok]).reshape(-1, 2)
    ok &= np.isfinite(coords).all(axis=1)
    ids = pd.Index(schools.index[ok].astype(str), name="school_id")
    return ids, coords[ok, 0], coords[ok, 1], int((~ok).sum())


# ------------------------------------------------------------------ distance tables
@dataclass(frozen=True)
class DistanceSummary:
    """Counts behind one :func:`road_distances` call (also in ``result.attrs["summary"]``)."""

    method: str
    origins: int
    destinations: int
    origins_skipped: int  # no geometry (or, for a matrix, not in its index)
    destinations_skipped: int
    pairs: int  # rows returned
    unreachable: int  # pairs with no path (other component / no matrix value)
    max_km: float | None
    max_snap_km: float = float("nan")  # network only: farthest school from its node
    same_school: int = 0  # within-school (same-place / same-id) pairs set to 0 km

    def summary(self) -> str:
        """One paragraph in words."""
        lim = "no limit" if self.max_km is None else f"max {self.max_km:g} km"
        text = (f"{self.method} distances ({lim}): {self.pairs:,} pairs from {self.origins:,} origins "
                f"to {self.destinations:,} destinations; skipped {self.origins_skipped:,} origins and "
                f"{self.destinations_skipped:,} destinations without location; "
                f"{self.unreachable:,} pairs unreachable; {self.same_school:,} within-school pairs "
                "set to 0 km.")
        if np.isfinite(self.max_snap_km):
            text += f" Farthest school from the network: {self.max_snap_km:.2f} km."
        return text


def _table(o_ids, d_ids, i, j, dist, method: str) -> pd.DataFrame:
    """Long table from positions; ``take`` on a string array avoids 10⁷ Python strings."""
    return pd.DataFrame({
        "origin_id": pd.array(np.asarray(o_ids, dtype=object), dtype="str").take(np.asarray(i, np.int64)),
        "destination_id": pd.array(np.asarray(d_ids, dtype=object), dtype="str").take(np.asarray(j, np.int64)),
        "distance_km": np.asarray(dist, dtype=float),
        "method": pd.array([method], dtype="str").take(np.zeros(len(i), np.int64)),
    })


def _xyz(lon, lat) -> np.ndarray:
    """Earth-centred Cartesian coordinates (km) of lon/lat degrees on the sphere."""
    lo, la = np.radians(lon), np.radians(lat)
    return EARTH_RADIUS_KM * np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _chord(gc_km: float) -> float:
    """Chord length (km) of a great-circle distance, padded so that ``<=`` is kept."""
    return 2 * EARTH_RADIUS_KM * np.sin(min(gc_km / (2 * EARTH_RADIUS_KM), np.pi / 2)) * (1 + 1e-9) + 1e-9


def _gc_block(plan: dict, s: int, e: int):
    """Great-circle × circuity pairs of origins ``s:e``: (i, j, km), sorted by i then j."""
    c, max_km = plan["circuity"], plan["max_km"]
    if max_km is None:
        d = haversine_km(plan["olon"][s:e, None], plan["olat"][s:e, None], plan["dlon"][None, :], plan["dlat"][None, :])
        i, j = np.nonzero(np.isfinite(d))
        return i + s, j, c * d[i, j]
    n_d = len(plan["dlon"])
    rec = cKDTree(_xyz(plan["olon"][s:e], plan["olat"][s:e])).sparse_distance_matrix(
        plan["dtree"], _chord(max_km / c), output_type="ndarray")
    key = rec["i"].astype(np.int64) * n_d + rec["j"]
    del rec
    key.sort()  # in-place sort of one int64 key: ~40x faster than lexsort at 10⁷ pairs
    i, j = np.divmod(key, n_d)
    del key
    i += s
    (olo, ola, cos_o), (dlo, dla, cos_d) = plan["orad"], plan["drad"]
    d = c * _haversine_rad(olo[i], ola[i], dlo[j], dla[j], cos_o[i], cos_d[j])
    keep = d <= max_km
    return i[keep], j[keep], d[keep]


def _great_circle(olon, olat, dlon, dlat, circuity, max_km, block_size, client=None):
    plan = {"olon": olon, "olat": olat, "dlon": dlon, "dlat": dlat, "circuity": circuity, "max_km": max_km}
    if max_km is None:
        bs = _block_rows(len(dlon), block_size)
    else:  # sparse: a block is a KD-tree search of its origins against all destinations
        bs = _block_rows(0, block_size) if block_size is not None else _SPARSE_BLOCK
        (olo, ola), (dlo, dla) = np.radians([olon, olat]), np.radians([dlon, dlat])
        plan |= {"dtree": cKDTree(_xyz(dlon, dlat)), "orad": (olo, ola, np.cos(ola)), "drad": (dlo, dla, np.cos(dla))}
    return _cat(_run_blocks(_gc_block, plan, _bounds(len(olon), bs), client))


def _same_place(olon, olat, dlon, dlat) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i, j) of origin/destination points within :data:`SAME_PLACE_KM`."""
    if len(olon) == 0 or len(dlon) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rec = cKDTree(_xyz(olon, olat)).sparse_distance_matrix(cKDTree(_xyz(dlon, dlat)), _chord(SAME_PLACE_KM),
                                                           output_type="ndarray")
    return rec["i"].astype(np.int64), rec["j"].astype(np.int64)


def _same_id(o_ids, d_ids, o_ok, d_ok) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i, j) with ``o_ids[i] == d_ids[j]``, both usable (first j of a repeated id)."""
    d = pd.Series(np.arange(len(d_ids)), index=pd.Index(d_ids, dtype=object))
    d = d[~d.index.duplicated()]
    j = d.reindex(pd.Index(o_ids, dtype=object)).to_numpy(dtype=float)
    i = np.flatnonzero(~np.isnan(j))
    j = j[i].astype(np.int64)
    keep = o_ok[i] & d_ok[j]
    return i[keep], j[keep]


def _zero_within(i, j, d, zi, zj, n_d: int):
    """Set pairs (zi, zj) to 0 km, inserting absent ones; returns (i, j, d, n_added).

    ``(i, j)`` must be sorted by origin, then destination (every method returns them so);
    the order is kept. Only the few zeroed pairs are searched: no key array over all pairs.
    """
    if len(zi) == 0:
        return i, j, d, 0
    order = np.lexsort((zj, zi))
    zi, zj = zi[order].astype(np.int64), zj[order].astype(np.int64)
    lo, hi = np.searchsorted(i, zi, "left"), np.searchsorted(i, zi, "right")
    pos = np.array([a + np.searchsorted(j[a:b], c) for a, b, c in zip(lo, hi, zj)], dtype=np.int64)
    found = pos < hi
    found[found] = j[pos[found]] == zj[found]
    d = np.array(d, dtype=float, copy=True)
    d[pos[found]] = 0.0
    miss = ~found
    if miss.any():
        i, j = np.insert(i, pos[miss], zi[miss]), np.insert(j, pos[miss], zj[miss])
        d = np.insert(d, pos[miss], 0.0)
    return i, j, d, int(miss.sum())


def road_distances(origins, destinations, *, network=None, matrix=None, circuity: float = DEFAULT_CIRCUITY,
                   max_km: float | None = None, block_size: int | None = None, client=None) -> pd.DataFrame:
    """Distances in km from every origin to every destination school, long format.

    The source is chosen by what is supplied: a precomputed ``matrix``, else a road
    ``network``, else great-circle × ``circuity`` (see the module docstring). Within-school
    pairs are 0 km with every source (module docstring: same id for a matrix, same place
    for network and great-circle).

    Parameters
    ----------
    origins, destinations : (Geo)DataFrame
        Indexed by school_id, with Point ``geometry`` in EPSG:4326 (rows without geometry
        are skipped and counted). With ``matrix`` only the index is used (a list of ids
        also works).
    network : str, Path, DataFrame or RoadNetwork, optional
        GraphML, CSV / CSV.gz / GPKG edge list (``u, v, length_m, geometry``), see
        :func:`studentflow.geo.network.read_network`.
    matrix : str, Path or (npy, json) tuple, optional
        OSRM-style matrix in metres plus index JSON, see
        :func:`studentflow.geo.matrix.read_matrix`.
    circuity : float
        Road km per great-circle km when neither source is given (default 1.3).
    max_km : float, optional
        Keep only pairs with distance ≤ ``max_km`` km; the table is then sparse by
        construction (network: Dijkstra stops at ``max_km``).
    block_size : int, optional
        Origins (network: distinct origin nodes) per block; default keeps one dense
        block ≤ 128 MB; great-circle with ``max_km``: 4,096 origins.
    client : dask.distributed.Client or str, optional
        Run the origin blocks (network Dijkstra, great-circle) as Dask tasks on this
        client or scheduler address (:func:`studentflow.dask_client.resolve`; an address
        is connected and closed here). The graph / destination arrays go to each worker
        once; the table is identical to the single-process one. Matrix distances are
        read in this process (the file need not exist on workers). None: no Dask import.

    Returns
    -------
    pandas.DataFrame
        ``origin_id, destination_id, distance_km, method`` (method "matrix", "network"
        or "great_circle"), sorted by origin then destination as given; unreachable pairs
        are absent. ``attrs["summary"]`` holds a :class:`DistanceSummary` with the counts.
    """
    if network is not None and matrix is not None:
        raise ValueError("road_distances: give either network= or matrix=, not both")
    if max_km is not None and not (np.isfinite(max_km) and max_km >= 0):
        raise ValueError(f"road_distances: max_km must be a non-negative number, got {max_km}")
    if not (np.isfinite(circuity) and circuity >= 1.0):
        raise ValueError(f"road_distances: circuity must be >= 1 (road km per great-circle km), got {circuity}")
    if client is None:
        return _road_distances(origins, destinations, network, matrix, circuity, max_km, block_size, None)
    from studentflow.dask_client import close, resolve

    client, owned = resolve(client)
    try:
        return _road_distances(origins, destinations, network, matrix, circuity, max_km, block_size, client)
    finally:
        if owned:
            close(client)


def _road_distances(origins, destinations, network, matrix, circuity, max_km, block_size, client) -> pd.DataFrame:
    """:func:`road_distances` once the client is resolved."""
    snap_max = float("nan")
    if matrix is not None:
        o_ids = (origins.index if isinstance(origins, pd.DataFrame) else pd.Index(origins)).astype(str)
        d_ids = (destinations.index if isinstance(destinations, pd.DataFrame) else pd.Index(destinations)).astype(str)
        i, j, d, unreachable, o_found, d_found = _matrix(matrix, o_ids, d_ids, max_km, block_size)
        method, o_skip, d_skip = "matrix", int((~o_found).sum()), int((~d_found).sum())
        n_o, n_d = len(o_ids) - o_skip, len(d_ids) - d_skip
        zi, zj = _same_id(o_ids, d_ids, o_found, d_found)
    else:
        o_ids, olon, olat, o_skip = school_points(origins, name="origins")
        d_ids, dlon, dlat, d_skip = school_points(destinations, name="destinations")
        n_o, n_d = len(o_ids), len(d_ids)
        unreachable = 0
        if network is not None:
            net = read_network(network)
            method = "network"
            if len(o_ids) and len(d_ids):
                i, j, d, unreachable, snap_max = _network(net, olon, olat, dlon, dlat, max_km, block_size, client)
            else:
                i, j, d = _cat([])
        else:
            method = "great_circle"
            i, j, d = _great_circle(olon, olat, dlon, dlat, float(circuity), max_km, block_size, client)
        zi, zj = _same_place(olon, olat, dlon, dlat)
    i, j, d, added = _zero_within(i, j, d, zi, zj, len(d_ids))
    out = _table(o_ids, d_ids, i, j, d, method)
    out.attrs["summary"] = DistanceSummary(method, n_o, n_d, o_skip, d_skip, len(out),
                                           max(0, unreachable - added), max_km, snap_max, len(zi))
    log.info(out.attrs["summary"].summary())
    return out
