"""Bottom of :mod:`studentflow.geo`: great-circle distance and the origin-block loop.

Every distance method splits its origins into blocks and runs one block function per
block (:func:`_run_blocks`), in this process or as Dask tasks
(:mod:`studentflow.geo.blocks_dask`). The other geo modules import these helpers; this
module imports none of them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EARTH_RADIUS_KM", "haversine_km"]

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088
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


def _run_blocks(block, plan: dict, bounds, client=None) -> list:
    """``[block(plan, s, e) for s, e in bounds]``, in-process or as Dask tasks (same order).

    The one place a block loop runs: single-process here, or with a Dask ``client``
    through :func:`studentflow.geo.blocks_dask.run_blocks` (``plan`` sent to every worker once,
    each task carrying only its bounds). Dask is imported only when a client is given.
    """
    bounds = list(bounds)
    if client is None or not bounds:
        return [block(plan, s, e) for s, e in bounds]
    from studentflow.geo.blocks_dask import run_blocks  # Dask only when a client is given

    return run_blocks(client, block, plan, bounds)


def _bounds(n: int, bs: int) -> list[tuple[int, int]]:
    """Block bounds ``[(0, bs), (bs, 2 bs), ..., (.., n)]``."""
    return [(s, min(s + bs, n)) for s in range(0, n, bs)]
