"""Road-network distances for the synthetic truth, computed by :mod:`studentflow.geo.distances`.

The truth uses exactly the pipeline's definition (docs/contracts.md §2) by calling
:func:`studentflow.geo.distances.road_distances` on the network the region writes to roads.csv.gz,
in blocks of origins so that memory stays bounded at large scales.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import shapely

from studentflow.geo.distances import read_network, road_distances

#: Origin × destination cells per road_distances call (bounds the long table's size).
_CELLS_PER_BLOCK = 4_000_000


def _points(t: pd.DataFrame) -> pd.DataFrame:
    ids = pd.Index([str(k) for k in range(len(t))], name="school_id")
    geom = shapely.points(t["lon"].to_numpy(float), t["lat"].to_numpy(float))
    return pd.DataFrame({"geometry": geom}, index=ids)


def _blocks(edges, origins: pd.DataFrame, destinations: pd.DataFrame,
            max_km: float | None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    net = read_network(edges)
    dest = _points(destinations)
    step = max(1, _CELLS_PER_BLOCK // max(1, len(destinations)))
    for s in range(0, len(origins), step):
        long = road_distances(_points(origins.iloc[s : s + step]), dest, network=net, max_km=max_km)
        yield (long["origin_id"].to_numpy().astype(np.int64) + s,
               long["destination_id"].to_numpy().astype(np.int64),
               long["distance_km"].to_numpy(float))


def network_pairs(edges, origins: pd.DataFrame, destinations: pd.DataFrame,
                  *, max_km: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin/destination positions and road km of every pair within ``max_km``.

    Parameters
    ----------
    edges : pandas.DataFrame or studentflow.geo.RoadNetwork
        Edge list u, v, length_m (metres), geometry (WKT), as written to roads.csv.gz.
    origins, destinations : pandas.DataFrame
        One row per point with lon, lat (degrees).
    max_km : float
        Search limit, km.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        Row positions into ``origins``, into ``destinations``, and km; sorted by origin
        then destination.
    """
    parts = list(_blocks(edges, origins, destinations, max_km))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return tuple(np.concatenate(p) for p in zip(*parts))


def network_matrix(edges, origins: pd.DataFrame, destinations: pd.DataFrame) -> np.ndarray:
    """Dense float32 road **metres** from every origin point to every destination point.

    The index of ``origins``/``destinations`` may repeat a school id (a school with two
    coordinate rows gets one row per point). Unreachable pairs are ``inf``.
    """
    out = np.full((len(origins), len(destinations)), np.inf, dtype=np.float32)
    for i, j, km in _blocks(edges, origins, destinations, None):
        out[i, j] = (km * 1000.0).astype(np.float32)
    return out
