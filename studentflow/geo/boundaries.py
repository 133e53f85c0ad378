"""Approximate city/municipality outlines generated from the offline ``psgc`` package.

The ``psgc`` package (a dependency) ships every barangay's centroid and land area but
no boundary polygons, and a run must not need the network. So the outlines drawn behind
the report's maps are **generated, not official**: the Voronoi cells of the barangay
centroids, each clipped to a disc around its centroid (radius twice that of a circle of
the barangay's area, between 0.4 and 6 km, so cells do not spill far into the sea), then
merged per city/municipality. Borders between municipalities are therefore straight-line
approximations and coastlines are scalloped; they help a reader find places, they are
not for measuring anything.

Outlines are kept on disk once built (:func:`cache_dir`, one GeoParquet file per set
of codes): the whole country's take about 5 s to build and 0.1 s to read back.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["municipal_boundaries", "BOUNDARY_NOTE"]

#: One sentence for captions and docs: what the outlines are.
BOUNDARY_NOTE = ("Municipal outlines are approximate: Voronoi cells of PSGC barangay centroids (from the "
                 "offline psgc package), clipped near each centroid and merged per city/municipality; "
                 "not official boundaries.")

_METRIC = "EPSG:32651"  # UTM 51N, metres (the Philippines' central zone)
_METHOD = "voronoi-disc-v1"  # change when _outlines draws differently: old cache files are ignored


def _barangays() -> list:
    try:
        import psgc
    except ImportError:  # pragma: no cover - psgc is a hard dependency
        return []
    path = Path(psgc.__file__).resolve().parent / "data" / "core" / "barangays.json"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@lru_cache(maxsize=4)
def _outlines(codes: tuple, simplify_m: float):
    import geopandas as gpd
    import shapely

    wanted = set(codes)
    lon, lat, owner, radius = [], [], [], []
    for b in _barangays():
        coord = b.get("coordinate") or {}
        city = str(b.get("city_code") or "")
        code = city if city in wanted else city[:5] + "00000"  # a district of Manila → the city
        if code not in wanted or coord.get("longitude") is None:
            continue
        lon.append(coord["longitude"])
        lat.append(coord["latitude"])
        owner.append(code)
        area = float(b.get("area_km2") or 1.0)
        radius.append(min(max(2000.0 * np.sqrt(area / np.pi), 400.0), 6000.0))
    if len(owner) < 3:
        return None
    pts = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs="EPSG:4326").to_crs(_METRIC)
    xy = shapely.get_coordinates(pts.to_numpy())
    xy = xy + np.random.default_rng(0).normal(scale=1e-3, size=xy.shape)  # duplicate centroids
    points = shapely.points(xy)
    x0, y0 = xy.min(axis=0) - 10_000
    x1, y1 = xy.max(axis=0) + 10_000
    cells = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=shapely.box(x0, y0, x1, y1))
    cells = np.asarray(shapely.get_parts(cells))
    # Voronoi cells come in no fixed order: match each cell to the point inside it
    tree = shapely.STRtree(cells)
    pi, ci = tree.query(points, predicate="intersects")
    cell_of = np.full(len(points), -1)
    cell_of[pi] = ci
    ok = cell_of >= 0
    clipped = shapely.intersection(cells[cell_of[ok]], shapely.buffer(points[ok], np.asarray(radius)[ok], quad_segs=12))
    frame = gpd.GeoDataFrame({"psgc_code": np.asarray(owner)[ok]}, geometry=clipped, crs=_METRIC)
    merged = frame.dissolve("psgc_code")
    merged["geometry"] = merged.geometry.simplify(simplify_m).buffer(0)
    return merged.to_crs("EPSG:4326")


def municipal_boundaries(psgc_codes, *, simplify_m: float = 80.0):
    """Approximate outlines of the given cities/municipalities (see the module text).

    Parameters
    ----------
    psgc_codes : iterable of str
        10-digit PSGC codes of cities/municipalities (e.g. a bundle's ``areas`` index).
    simplify_m : float
        Douglas-Peucker tolerance, metres (smaller files; 80 m by default).

    Returns
    -------
    geopandas.GeoDataFrame or None
        Index ``psgc_code``, polygon geometry in EPSG:4326; None when the psgc data hold
        fewer than three barangays of those codes.
    """
    codes = tuple(sorted({str(c) for c in psgc_codes}))
    if not codes:
        return None
    out = _cached(codes, float(simplify_m))
    return None if out is None else out.copy()


def cache_dir() -> Path | None:
    """Folder of the outlines cache: ``$STUDENTFLOW_CACHE``, else
    ``$XDG_CACHE_HOME/studentflow`` (``~/.cache/studentflow``); None when
    ``STUDENTFLOW_CACHE`` is empty (no disk cache)."""
    env = os.environ.get("STUDENTFLOW_CACHE")
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "studentflow"


def _key(codes: tuple, simplify_m: float) -> str:
    """Cache key: the codes, the tolerance, this module's method and the psgc data file."""
    try:
        import psgc

        data = Path(psgc.__file__).resolve().parent / "data" / "core" / "barangays.json"
        stamp = f"{getattr(psgc, '__version__', '')}:{data.stat().st_size}:{int(data.stat().st_mtime)}"
    except (ImportError, OSError):
        stamp = "none"
    text = json.dumps([_METHOD, stamp, simplify_m, list(codes)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _cached(codes: tuple, simplify_m: float):
    """:func:`_outlines` through an on-disk cache (GeoParquet, one file per key).

    A national run's outlines (1,600 municipalities from 42,000 barangay cells) take
    about 5 s to build and 0.1 s to read back; a missing, unreadable or unwritable cache
    only means they are built again."""
    folder = cache_dir()
    path = None if folder is None else folder / f"outlines-{_key(codes, simplify_m)}.parquet"
    if path is not None and path.is_file():
        try:
            import geopandas as gpd

            return gpd.read_parquet(path)
        except Exception:  # noqa: BLE001 - a broken cache file: rebuild it
            pass
    out = _outlines(codes, simplify_m)
    if out is not None and path is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            out.to_parquet(tmp)
            os.replace(tmp, path)
        except Exception:  # noqa: BLE001 - read-only home, no pyarrow: no cache
            pass
    return out
