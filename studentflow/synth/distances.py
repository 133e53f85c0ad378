"""Road-network distances for the synthetic truth, computed by :mod:`studentflow.geo`.

The truth uses exactly the pipeline's definition (docs/contracts.md §2) by calling
:func:`studentflow.geo.road_distances` on the network the region writes to roads.csv.gz.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from studentflow.geo import read_network, road_distances


def network_distances(edges: pd.DataFrame, origins: pd.DataFrame, destinations: pd.DataFrame,
                      *, max_km: float | None) -> np.ndarray:
    """Dense road km from every origin point to every destination point (``inf`` beyond ``max_km``).

    Parameters
    ----------
    edges : pandas.DataFrame or studentflow.geo.RoadNetwork
        Edge list u, v, length_m (metres), geometry (WKT), as written to roads.csv.gz.
    origins, destinations : pandas.DataFrame
        One row per point with lon, lat (degrees); the index may repeat a school id (a
        school with two coordinate rows gets one row per point).
    max_km : float or None
        Search limit, km (None: every reachable pair).

    Returns
    -------
    numpy.ndarray
        (len(origins), len(destinations)) float64 km; ``inf`` where unreachable.
    """
    net = read_network(edges)

    def points(t: pd.DataFrame) -> pd.DataFrame:
        ids = pd.Index([str(k) for k in range(len(t))], name="school_id")
        geom = shapely.points(t["lon"].to_numpy(float), t["lat"].to_numpy(float))
        return pd.DataFrame({"geometry": geom}, index=ids)

    long = road_distances(points(origins), points(destinations), network=net, max_km=max_km)
    out = np.full((len(origins), len(destinations)), np.inf)
    i = long["origin_id"].to_numpy().astype(np.int64)
    j = long["destination_id"].to_numpy().astype(np.int64)
    out[i, j] = long["distance_km"].to_numpy(float)
    return out
