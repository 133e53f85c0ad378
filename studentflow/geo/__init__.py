"""Geo: distances between schools in km (road matrix, road network, great circle).

- :func:`road_distances` (:mod:`.distances`): long table ``origin_id, destination_id,
  distance_km, method`` from a matrix, a road network or great-circle × circuity.
- :func:`read_network`, :func:`read_matrix`: the raw road sources.
- :func:`haversine_km`: great-circle km.

Layers, bottom up: :mod:`.blocks` (great circle, the origin-block loop) →
:mod:`.network`, :mod:`.matrix` → :mod:`.distances`; :mod:`.blocks_dask` runs blocks as
Dask tasks and is imported only when a client is given.
"""

from studentflow.geo.blocks import EARTH_RADIUS_KM, haversine_km
from studentflow.geo.distances import (
    DEFAULT_CIRCUITY, SAME_PLACE_KM, DistanceSummary, road_distances, school_points,
)
from studentflow.geo.matrix import read_matrix
from studentflow.geo.network import SNAP_CRS, RoadNetwork, read_network, snap

__all__ = [
    "EARTH_RADIUS_KM", "DEFAULT_CIRCUITY", "SAME_PLACE_KM", "SNAP_CRS", "DistanceSummary", "RoadNetwork",
    "haversine_km", "read_matrix", "read_network", "road_distances", "school_points", "snap",
]
