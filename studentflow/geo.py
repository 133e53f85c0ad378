"""Coordinates and distances between schools: great-circle, road network, OSRM matrix.

Distance definitions (docs/contracts.md §2; :mod:`studentflow.synth` uses the same code
for its ground truth):

- **Great-circle**: haversine on a sphere of radius :data:`EARTH_RADIUS_KM`
  (6371.0088 km, the IUGG mean radius).
- **Network**: each school is snapped to its nearest network node (KD-tree in
  EPSG:32651, UTM 51N, which covers Luzon); ``distance_km = haversine(school, node)
  + shortest path(node, node') + haversine(node', school')``. Shortest paths come from
  :func:`scipy.sparse.csgraph.dijkstra` on the undirected graph, run from blocks of
  origin nodes at once with ``limit=max_km``. Each edge length is raised, where needed,
  to the haversine length between its end nodes, so a network distance is never shorter
  than the great-circle distance (triangle inequality). Pairs in different connected
  components are left out and counted.
- **Matrix**: a precomputed OSRM-style table (``.npy``, metres) with a JSON index
  ``{"units": "m", "rows": {"136512": [0], ...}, "cols": {...}}``; a school listed under
  several rows/columns (two coordinate rows) takes the minimum.
- **Great-circle × circuity** when neither is supplied. The default factor 1.3 is in the
  middle of published road circuity factors (≈1.2-1.4; Ballou, Rahardja & Sakai 2002,
  "Selected country circuity factors for road travel distance estimation",
  *Transportation Research Part A* 36(9), 843-848). Sensitivity: the gravity model uses
  ``ln(1 + d)``; for d well above 1 km a factor change from c to c' shifts ln(1+d) by
  about ln(c'/c) for every pair, which the intercept absorbs, so slopes barely move;
  only short pairs (d of a few km) change shape.
"""

from __future__ import annotations

import gzip
import json
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from studentflow.errors import DataError

log = logging.getLogger(__name__)

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088
#: Default road circuity factor (road km per great-circle km), see module docstring.
DEFAULT_CIRCUITY = 1.3
#: Projected CRS used for snapping (UTM zone 51N).
SNAP_CRS = "EPSG:32651"
_MIN_EDGE_KM = 1e-9  # csgraph would treat explicit zero weights as missing edges
_BLOCK_BYTES = 128 * 2**20  # memory budget of one dense dijkstra block


def haversine_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasts).

    Parameters
    ----------
    lon1, lat1, lon2, lat2 : array_like
        Longitudes and latitudes in degrees (EPSG:4326), any broadcastable shapes.

    Returns
    -------
    numpy.ndarray
        Distances in km on a sphere of radius :data:`EARTH_RADIUS_KM`.
    """
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(a, dtype=float)) for a in (lon1, lat1, lon2, lat2))
    return _haversine_rad(lon1, lat1, lon2, lat2, np.cos(lat1), np.cos(lat2))


def _haversine_rad(lon1, lat1, lon2, lat2, cos1, cos2) -> np.ndarray:
    """Haversine on radians with the cosines of the latitudes given (km)."""
    a = np.sin((lat2 - lat1) / 2) ** 2 + cos1 * cos2 * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


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


# ------------------------------------------------------------------ road network
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
    import shapely

    geom = edges["geometry"]
    if getattr(geom, "crs", None) is not None and not geom.crs.equals("EPSG:4326"):
        geom = geom.to_crs("EPSG:4326")
    geom = np.asarray(geom, dtype=object)
    if isinstance(geom[0], str):
        try:
            geom = shapely.from_wkt(geom)
        except Exception as exc:  # shapely raises GEOSException
            raise DataError(f"{source}: column 'geometry' is not valid WKT ({exc})") from None
    if shapely.is_missing(geom).any():
        bad = int(np.flatnonzero(shapely.is_missing(geom))[0])
        raise DataError(f"{source}: {f'line {bad + first_line}' if first_line else f'edge {bad + 1}'}: "
                        "column 'geometry' is empty")
    start = shapely.get_coordinates(shapely.get_point(geom, 0))
    end = shapely.get_coordinates(shapely.get_point(geom, -1))
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


def snap(net: RoadNetwork, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Nearest network node of each point (KD-tree in EPSG:32651).

    Returns ``(node_index, snap_km)``: positions into ``net.node_ids`` and the haversine
    distance in km from each point to its node.
    """
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", SNAP_CRS, always_xy=True)
    nx_, ny_ = tr.transform(net.lon, net.lat)
    px, py = tr.transform(np.asarray(lon, float), np.asarray(lat, float))
    _, idx = cKDTree(np.column_stack([nx_, ny_])).query(np.column_stack([px, py]))
    idx = np.asarray(idx, dtype=np.int64)
    return idx, haversine_km(lon, lat, net.lon[idx], net.lat[idx])


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

    def summary(self) -> str:
        """One paragraph in words."""
        lim = "no limit" if self.max_km is None else f"max {self.max_km:g} km"
        text = (f"{self.method} distances ({lim}): {self.pairs:,} pairs from {self.origins:,} origins "
                f"to {self.destinations:,} destinations; skipped {self.origins_skipped:,} origins and "
                f"{self.destinations_skipped:,} destinations without location; "
                f"{self.unreachable:,} pairs unreachable.")
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


def _cat(parts):
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return tuple(np.concatenate(p) for p in zip(*parts))


def _block_rows(n_cols: int, block_size: int | None) -> int:
    if block_size is not None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        return int(block_size)
    return int(max(16, min(1024, _BLOCK_BYTES // (8 * max(n_cols, 1)))))


def _great_circle(olon, olat, dlon, dlat, circuity, max_km, block_size):
    if max_km is None:
        parts, bs = [], _block_rows(len(dlon), block_size)
        for s in range(0, len(olon), bs):
            d = haversine_km(olon[s:s + bs, None], olat[s:s + bs, None], dlon[None, :], dlat[None, :])
            i, j = np.nonzero(np.isfinite(d))
            parts.append((i + s, j, circuity * d[i, j]))
        return _cat(parts)

    def xyz(lon, lat):
        lo, la = np.radians(lon), np.radians(lat)
        return EARTH_RADIUS_KM * np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])

    gc_max = max_km / circuity
    chord = 2 * EARTH_RADIUS_KM * np.sin(min(gc_max / (2 * EARTH_RADIUS_KM), np.pi / 2)) * (1 + 1e-9) + 1e-9
    rec = cKDTree(xyz(olon, olat)).sparse_distance_matrix(cKDTree(xyz(dlon, dlat)), chord, output_type="ndarray")
    key = rec["i"].astype(np.int64) * len(dlon) + rec["j"]
    del rec
    key.sort()  # in-place sort of one int64 key: ~40x faster than lexsort at 10⁷ pairs
    i, j = np.divmod(key, len(dlon))
    del key
    (olo, ola), (dlo, dla) = np.radians([olon, olat]), np.radians([dlon, dlat])
    d = circuity * _haversine_rad(olo[i], ola[i], dlo[j], dla[j], np.cos(ola)[i], np.cos(dla)[j])
    keep = d <= max_km
    return i[keep], j[keep], d[keep]


def _network(net: RoadNetwork, olon, olat, dlon, dlat, max_km, block_size):
    """Network distances; returns (i, j, km, unreachable pairs, max snap km)."""
    o_node, o_snap = snap(net, olon, olat)
    d_node, d_snap = snap(net, dlon, dlat)
    labels = sparse.csgraph.connected_components(net.graph, directed=False)[1]
    oc = np.bincount(labels[o_node], minlength=net.n_components)
    dc = np.bincount(labels[d_node], minlength=net.n_components)
    unreachable = int(len(o_node) * len(d_node) - (oc * dc).sum())
    d_unique, d_col = np.unique(d_node, return_inverse=True)
    src, o_row = np.unique(o_node, return_inverse=True)
    order = np.argsort(o_row, kind="stable")
    sorted_rows = o_row[order]
    limit = np.inf if max_km is None else float(max_km)
    bs = _block_rows(net.graph.shape[0], block_size)
    parts = []
    for s in range(0, len(src), bs):
        paths = dijkstra(net.graph, directed=True, indices=src[s:s + bs], limit=limit)[:, d_unique]
        lo, hi = np.searchsorted(sorted_rows, [s, s + bs])
        sel = order[lo:hi]
        tot = paths[o_row[sel] - s][:, d_col] + o_snap[sel, None] + d_snap[None, :]
        mask = np.isfinite(tot) if max_km is None else tot <= max_km
        i, j = np.nonzero(mask)
        parts.append((sel[i], j, tot[i, j]))
    i, j, d = _cat(parts)
    order = np.argsort(i, kind="stable")  # within an origin, j is already ascending
    snap_max = float(max(o_snap.max(initial=0.0), d_snap.max(initial=0.0)))
    return i[order], j[order], d[order], unreachable, snap_max


def read_matrix(matrix) -> tuple[np.ndarray, dict, dict, float]:
    """Open an OSRM-style distance matrix and its JSON index.

    Parameters
    ----------
    matrix : str, Path or (npy, json) tuple
        ``X.npy`` (index beside it as ``X_index.json``) or an explicit pair of paths.

    Returns
    -------
    (values, rows, cols, to_km)
        The memory-mapped matrix, ``{school_id: [row, ...]}``, ``{school_id: [col, ...]}``
        (same as rows for a square matrix without ``"cols"``) and the factor to km.
    """
    if isinstance(matrix, (tuple, list)):
        npy, idx = (Path(p) for p in matrix)
    else:
        npy = Path(matrix)
        idx = npy.with_name(npy.stem + "_index.json")
    for p in (npy, idx):
        if not p.exists():
            raise DataError(f"{p}: distance matrix file not found")
    try:
        values = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{npy}: not a readable .npy matrix ({exc})") from None
    if values.ndim != 2:
        raise DataError(f"{npy}: expected a 2-D matrix, got shape {values.shape}")
    try:
        index = json.loads(idx.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{idx}: invalid JSON ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("rows"), dict):
        raise DataError(f'{idx}: expected an object with "rows" {{school_id: [row, ...]}}')
    units = index.get("units", "m")
    to_km = {"m": 1e-3, "km": 1.0}.get(units)
    if to_km is None:
        raise DataError(f'{idx}: "units" must be "m" or "km", got {units!r}')
    if "cols" not in index and values.shape[0] != values.shape[1]:
        raise DataError(f'{idx}: no "cols" given but matrix {npy.name} is not square {values.shape}')

    def clean(key: str, n: int) -> dict:
        out = {}
        for sid, pos in index.get(key, index["rows"]).items():
            pos = [pos] if isinstance(pos, int) else pos
            if (not isinstance(pos, list) or not pos
                    or not all(isinstance(p, int) and 0 <= p < n for p in pos)):
                raise DataError(f"{idx}: {key}[{sid!r}] must be a non-empty list of integers in [0, {n})")
            out[str(sid)] = pos
        return out

    return values, clean("rows", values.shape[0]), clean("cols", values.shape[1]), to_km


def _grouped(ids, mapping):
    """Positions of ``ids`` found in ``mapping``: (found mask, flat positions, group starts)."""
    found = np.array([i in mapping for i in ids], dtype=bool)
    lists = [mapping[i] for i in np.asarray(ids, dtype=object)[found]]
    flat = np.array([p for lst in lists for p in lst], dtype=np.int64)
    starts = np.cumsum([0] + [len(lst) for lst in lists[:-1]]).astype(np.int64) if lists else np.empty(0, np.int64)
    return found, flat, starts


def _matrix(matrix, o_ids, d_ids, max_km, block_size):
    values, rows, cols, to_km = read_matrix(matrix)
    name = matrix[0] if isinstance(matrix, (tuple, list)) else matrix
    o_found, o_flat, o_starts = _grouped(o_ids, rows)
    d_found, d_flat, d_starts = _grouped(d_ids, cols)
    o_pos, d_pos = np.flatnonzero(o_found), np.flatnonzero(d_found)
    parts, unreachable = [], 0
    if len(o_pos) and len(d_pos):
        bs = _block_rows(len(d_flat), block_size)
        bounds = np.r_[o_starts, len(o_flat)]
        for s in range(0, len(o_pos), bs):
            r0, r1 = bounds[s], bounds[min(s + bs, len(o_pos))]
            sub = np.asarray(values[o_flat[r0:r1]][:, d_flat], dtype=float)
            if (sub < 0).any():
                raise DataError(f"{name}: negative distance in the matrix")
            sub = np.fmin.reduceat(sub, o_starts[s:s + bs] - r0, axis=0)
            sub = np.fmin.reduceat(sub, d_starts, axis=1) * to_km
            ok = np.isfinite(sub)
            unreachable += int((~ok).sum())
            if max_km is not None:
                ok &= sub <= max_km
            i, j = np.nonzero(ok)
            parts.append((o_pos[i + s], d_pos[j], sub[i, j]))
    i, j, d = _cat(parts)
    return i, j, d, unreachable, int((~o_found).sum()), int((~d_found).sum())


def road_distances(origins, destinations, *, network=None, matrix=None, circuity: float = DEFAULT_CIRCUITY,
                   max_km: float | None = None, block_size: int | None = None) -> pd.DataFrame:
    """Distances in km from every origin to every destination school, long format.

    The source is chosen by what is supplied: a precomputed ``matrix``, else a road
    ``network``, else great-circle × ``circuity`` (see the module docstring).

    Parameters
    ----------
    origins, destinations : (Geo)DataFrame
        Indexed by school_id, with Point ``geometry`` in EPSG:4326 (rows without geometry
        are skipped and counted). With ``matrix`` only the index is used.
    network : str, Path, DataFrame or RoadNetwork, optional
        GraphML, CSV / CSV.gz / GPKG edge list (``u, v, length_m, geometry``), see
        :func:`read_network`.
    matrix : str, Path or (npy, json) tuple, optional
        OSRM-style matrix in metres plus index JSON, see :func:`read_matrix`.
    circuity : float
        Road km per great-circle km when neither source is given (default 1.3).
    max_km : float, optional
        Keep only pairs with distance ≤ ``max_km`` km; the table is then sparse by
        construction (network: Dijkstra stops at ``max_km``).
    block_size : int, optional
        Origins (network: distinct origin nodes) per block; default keeps one dense
        block ≤ 128 MB.

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
    if matrix is not None:
        o_ids = (origins.index if isinstance(origins, pd.DataFrame) else pd.Index(origins)).astype(str)
        d_ids = (destinations.index if isinstance(destinations, pd.DataFrame) else pd.Index(destinations)).astype(str)
        i, j, d, unreachable, o_skip, d_skip = _matrix(matrix, o_ids, d_ids, max_km, block_size)
        method, snap_max = "matrix", float("nan")
        n_o, n_d = len(o_ids) - o_skip, len(d_ids) - d_skip
    else:
        o_ids, olon, olat, o_skip = school_points(origins, name="origins")
        d_ids, dlon, dlat, d_skip = school_points(destinations, name="destinations")
        n_o, n_d = len(o_ids), len(d_ids)
        if network is not None:
            net = read_network(network)
            method = "network"
            if len(o_ids) and len(d_ids):
                i, j, d, unreachable, snap_max = _network(net, olon, olat, dlon, dlat, max_km, block_size)
            else:
                (i, j, d), unreachable, snap_max = _cat([]), 0, float("nan")
        else:
            method, unreachable, snap_max = "great_circle", 0, float("nan")
            i, j, d = _great_circle(olon, olat, dlon, dlat, float(circuity), max_km, block_size)
    out = _table(o_ids, d_ids, i, j, d, method)
    out.attrs["summary"] = DistanceSummary(method, n_o, n_d, o_skip, d_skip, len(out),
                                           unreachable, max_km, snap_max)
    log.info(out.attrs["summary"].summary())
    return out
