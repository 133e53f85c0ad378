"""End points of road edge geometries: WKT text read with pyarrow, or shapely geometries.

An edge list gives each edge a LINESTRING from node ``u`` (first point) to node ``v``
(last point); :func:`line_ends` returns those two points. Text of the plain form
``LINESTRING (x y, x y, ...)`` (what osmnx and :mod:`studentflow.synth` write) is split and
its numbers parsed by pyarrow, without building geometries: 0.06 s for the national
network's 128,000 edges against 0.19 s for ``shapely.from_wkt`` plus 0.19 s for
``shapely.get_point`` twice. Both parsers round each decimal to the nearest float64, so
the points are the same bits (checked on the national and sample networks in
``tests/test_dijkstra.py``); any other text (``LINESTRING Z``, no space after the
comma, a blank) goes through shapely, which also names what is wrong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.errors import DataError

__all__ = ["line_ends"]

_LINE = 1  # shapely.get_type_id of a LineString


def _where(k: int, first_line: int) -> str:
    return f"line {k + first_line}" if first_line else f"edge {k + 1}"


def _text_ends(values) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, end) of plain ``LINESTRING (x y, ...)`` text, or None if any value is not one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        a = pa.array(values)  # zero-copy for pandas' pyarrow strings
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)) or a.null_count or len(a) == 0:
        return None
    if not (pc.all(pc.starts_with(a, "LINESTRING (")).as_py() and pc.all(pc.ends_with(a, ")")).as_py()):
        return None
    pts = pc.split_pattern(pc.utf8_slice_codeunits(a, 12, -1), ", ")  # "x y" per point
    n_pts = pc.list_value_length(pts)
    xy = pc.split_pattern(pc.list_flatten(pts), " ")
    if not (pc.all(pc.greater_equal(n_pts, 2)).as_py() and pc.all(pc.equal(pc.list_value_length(xy), 2)).as_py()):
        return None  # GEOS rejects a one-point line; three numbers are a Z coordinate
    try:
        num = pc.cast(pc.list_flatten(xy), pa.float64()).to_numpy(zero_copy_only=False).reshape(-1, 2)
    except pa.ArrowInvalid:  # not a number: shapely says where
        return None
    last = np.cumsum(n_pts.to_numpy(zero_copy_only=False).astype(np.int64)) - 1
    first = np.r_[0, last[:-1] + 1]
    return num[first], num[last]


def line_ends(geometry, source: str, first_line: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """First and last point of each edge's LINESTRING, lon/lat degrees.

    Parameters
    ----------
    geometry : sequence of str or shapely geometries
        WKT text (a CSV column) or LineStrings in EPSG:4326.
    source : str
        Named in errors (the file).
    first_line : int
        Line of the first edge in the file (2 for a CSV with a header): errors name
        ``line k + first_line``; 0 names ``edge k + 1``.

    Returns
    -------
    (start, end) : numpy.ndarray, numpy.ndarray
        ``(n, 2)`` arrays of (lon, lat) in degrees.

    Raises
    ------
    DataError
        Text that is not WKT, a missing or empty geometry, or one that is not a LINESTRING.
    """
    import shapely

    geom = np.asarray(geometry, dtype=object)
    if len(geom) and isinstance(geom[0], str):
        ends = _text_ends(geometry)
        if ends is not None:
            return ends
        geom = np.where(pd.isna(geom), None, geom)  # a blank cell: "empty" below, naming its line
        try:
            geom = shapely.from_wkt(geom)
        except Exception as exc:  # shapely raises GEOSException
            raise DataError(f"{source}: column 'geometry' is not valid WKT ({exc})") from None
    missing = shapely.is_missing(geom)
    if missing.any():
        bad = int(np.flatnonzero(missing)[0])
        raise DataError(f"{source}: {_where(bad, first_line)}: column 'geometry' is empty")
    kind = shapely.get_type_id(geom)
    if (kind != _LINE).any():
        bad = int(np.flatnonzero(kind != _LINE)[0])
        raise DataError(f"{source}: {_where(bad, first_line)}: column 'geometry' must be a LINESTRING, "
                        f"got {geom[bad].geom_type}")
    xy, idx = shapely.get_coordinates(geom, return_index=True)
    count = np.bincount(idx, minlength=len(geom))
    if (count == 0).any():
        bad = int(np.flatnonzero(count == 0)[0])
        raise DataError(f"{source}: {_where(bad, first_line)}: column 'geometry' is empty")
    last = np.cumsum(count) - 1
    return xy[last - count + 1], xy[last]
