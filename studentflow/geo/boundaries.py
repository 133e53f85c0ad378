"""Approximate city/municipality outlines generated from the offline ``psgc`` package.

The ``psgc`` package (a dependency) ships every barangay's centroid and land area but
no boundary polygons, and a run must not need the network. So the outlines drawn behind
the report's maps are **generated, not official**: the Voronoi cells of the barangay
centroids, each clipped to a disc around its centroid (radius twice that of a circle of
the barangay's area, between 0.4 and 6 km, so cells do not spill far into the sea), then
merged per city/municipality. Borders between municipalities are therefore straight-line
approximations and coastlines are scalloped; they help a reader find places, they are
not for measuring anything.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["municipal_boundaries", "BOUNDARY_NOTE"]

#: One sentence for captions and docs: what the outlines are.
BOUNDARY_NOTE = ("Municipal outlines are approximate: Voronoi cells of PSGC barangay centroids (from the "
                 "offline psgc package), clipped near each centroid and merged per city/municipality; "
                 "not official boundaries.")

_METRIC = "EPSG:32651"  # UTM 51N, metres (the Philippines' central zone)


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
    out = _outlines(codes, float(simplify_m))
    return None if out is None else out.copy()
