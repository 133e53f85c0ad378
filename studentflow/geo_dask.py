"""Dask backend of :func:`studentflow.geo.road_distances`: origin blocks as tasks.

Used only when ``road_distances(..., client=...)`` (or
:func:`studentflow.pairs.bundle_distances`) receives a Dask client; importing
:mod:`studentflow.geo` never imports this module or Dask. Two pieces:

- :func:`run_blocks` runs the block function that the single-process loop also runs
  (:func:`studentflow.geo._gc_block`, :func:`studentflow.geo_network._network_block`):
  the plan (graph, destination arrays, snap distances) is scattered to every worker once
  (``broadcast=True``), each task carries only its block bounds ``(s, e)``, and the
  results, collected as blocks finish (each then freed on its worker), are put back in
  block order, so concatenating them gives the single-process arrays bit for bit.
- :func:`projector` projects lon/lat to the snapping CRS (EPSG:32651) with
  dask-geopandas (``from_geopandas(...).to_crs(...)``) on the workers. GeoPandas calls the
  same PROJ transformation (``always_xy``) as :func:`studentflow.geo_network.project`, so
  the coordinates, and hence the snapped nodes, are identical (checked in
  tests/test_geo_dask.py).

Matrix distances stay in the calling process: the memory-mapped file need not be
visible to the workers, and reading it is I/O, not computation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from studentflow.dask_client import worker_count

__all__ = ["run_blocks", "projector"]


def run_blocks(client, block: Callable, plan: dict, bounds: list[tuple[int, int]]) -> list:
    """``[block(plan, s, e) for s, e in bounds]`` as Dask tasks, results in block order.

    Parameters
    ----------
    client : dask.distributed.Client
        Where the tasks run.
    block : callable
        Importable module-level function ``block(plan, s, e)`` (pickled by reference).
    plan : dict
        Read-only inputs of every block (arrays, sparse graph, KD-tree); sent to each
        worker once.
    bounds : list of (int, int)
        Origin block bounds; a task carries only its pair.

    Returns
    -------
    list
        One result per block, in the order of ``bounds``.
    """
    from dask.distributed import as_completed

    [plan_f] = client.scatter([plan], broadcast=True, hash=False)
    futures = [client.submit(block, plan_f, int(s), int(e), pure=False) for s, e in bounds]
    position = {f.key: k for k, f in enumerate(futures)}
    parts: list = [None] * len(futures)
    try:  # collect as blocks finish and free each on its worker: not every block held at once
        for fut, result in as_completed(futures, with_results=True):
            parts[position[fut.key]] = result
            fut.release()
    finally:
        for f in futures:
            f.release()
        plan_f.release()
    return parts


def projector(client, crs: str | None = None) -> Callable:
    """A ``project(lon, lat) -> (x, y)`` that runs dask-geopandas ``to_crs`` on ``client``.

    Parameters
    ----------
    client : dask.distributed.Client
        Where the partitions are projected (one partition per worker).
    crs : str, optional
        Target CRS; default :data:`studentflow.geo_network.SNAP_CRS` (EPSG:32651).

    Returns
    -------
    callable
        ``project(lon, lat)`` taking degrees (EPSG:4326) and returning two float arrays
        in the units of ``crs`` (metres for UTM).
    """
    if crs is None:
        from studentflow.geo_network import SNAP_CRS

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
