"""Road-network distances for the synthetic truth (definition: docs/contracts.md §2)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.synth.roads import distance_matrix


def network_distances(edges: pd.DataFrame, nodes: pd.DataFrame, origins: pd.DataFrame, destinations: pd.DataFrame,
                      *, max_km: float | None) -> np.ndarray:
    """Dense road km from every origin point to every destination point (``inf`` beyond ``max_km``).

    Parameters
    ----------
    edges : pandas.DataFrame
        u, v, length_m (metres), geometry.
    nodes : pandas.DataFrame
        node, lon, lat (degrees).
    origins, destinations : pandas.DataFrame
        One row per point with lon, lat (degrees); the index may repeat a school id.
    max_km : float or None
        Search limit, km.

    Returns
    -------
    numpy.ndarray
        (len(origins), len(destinations)) float64 km.
    """
    return distance_matrix(edges, nodes, origins["lon"].to_numpy(float), origins["lat"].to_numpy(float),
                           destinations["lon"].to_numpy(float), destinations["lat"].to_numpy(float), max_km=max_km)
