"""School layers of the interactive map, per school or, for large runs, per municipality.

A national run has about 10,000 public JHS and 3,400 ESC schools; one marker with its
hover text per school, in every scenario's layer, made ``report.html`` 37 MB and took
seconds to build (17 MB with the public JHS alone aggregated). A layer with more than :data:`MAX_SCHOOLS` schools is drawn one
marker per city/municipality instead (at the mean position of its schools): public JHS
with their enrolment and seats summed (utilisation = the sums' ratio) and the learners
relieved summed (means over draws: the mean of a sum is the sum of the means; per-school
95 % intervals stay in ``public_jhs.csv``), ESC schools with their slots and mean
placements summed. Every school stays in the CSVs and ``schools.gpkg``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MAX_SCHOOLS", "aggregated", "by_municipality", "lonlat"]

#: A layer with more schools than this is drawn per municipality.
MAX_SCHOOLS = 3000
#: Decimal places of longitude / latitude in the figure (1e-5 degrees: about 1 m).
DIGITS = 5


def lonlat(bundle, ids) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees, rounded to :data:`DIGITS`) of schools ``ids``; NaN
    where a school has no point."""
    geom = bundle.schools.geometry.reindex(pd.Index(ids))
    ok = geom.notna().to_numpy()
    lon = np.full(len(ids), np.nan)
    lat = np.full(len(ids), np.nan)
    lon[ok] = geom[ok].x.to_numpy()
    lat[ok] = geom[ok].y.to_numpy()
    return lon.round(DIGITS), lat.round(DIGITS)


def aggregated(frame: pd.DataFrame, baseline: str) -> bool:
    """Whether a per-scenario school table (``public_jhs`` or ``esc_schools``) is drawn per
    municipality: more than :data:`MAX_SCHOOLS` schools in the baseline's rows."""
    if frame is None or frame.empty:
        return False
    return int((frame["scenario"] == baseline).sum()) > MAX_SCHOOLS


def by_municipality(rows: pd.DataFrame, bundle, sums: list[str], cache: dict | None = None) -> pd.DataFrame:
    """One row per city/municipality of the schools in ``rows`` (column ``school_id``).

    ``cache`` (a dict the caller keeps for one map): the grouping of a set of schools
    (positions, names, which row goes where) is kept there and reused for the next
    ``rows`` of the same schools in the same order (every scenario's layer), so only the
    sums are taken again.

    Returns
    -------
    pandas.DataFrame
        Index ``psgc_code``; columns ``lon``, ``lat`` (mean of the schools' points,
        degrees), ``schools`` (count), ``municipality``, ``province`` and the sums of the
        columns ``sums`` (learners, seats or slots).
    """
    ids = pd.Index(rows["school_id"].astype(str))
    key = ids.to_numpy(dtype=object)
    hit = (cache or {}).get((len(key), key[0] if len(key) else None))
    if hit is None or not np.array_equal(hit[0], key):
        hit = (key, *_grouping(ids, bundle))
        if cache is not None:
            cache[(len(key), key[0] if len(key) else None)] = hit
    _, base, group = hit
    out = base.copy()
    for col in sums:  # the same grouped sums as a groupby on the codes: groups numbered in sorted code order
        out[col] = pd.Series(rows[col].to_numpy(dtype=float)).groupby(group, sort=True).sum().to_numpy()
    return out


def _grouping(ids: pd.Index, bundle) -> tuple[pd.DataFrame, np.ndarray]:
    """Per municipality of the schools ``ids``: lon, lat, schools, municipality, province;
    and each school's group number (0.. in sorted code order)."""
    s = bundle.schools
    lon, lat = lonlat(bundle, ids)
    code = s["psgc_code"].reindex(ids).astype("string").fillna("?").to_numpy() if "psgc_code" in s else \
        np.full(len(ids), "?")
    frame = pd.DataFrame({"psgc_code": code, "lon": lon, "lat": lat, "schools": 1})
    g = frame.groupby("psgc_code", sort=True)
    out = g[["lon", "lat"]].mean().round(DIGITS)
    out["schools"] = g["schools"].sum()
    for col in ("municipality", "province"):
        if col in s:
            first = pd.Series(s[col].reindex(ids).astype("string").fillna("").to_numpy(), index=code)
            out[col] = first.groupby(level=0).first().reindex(out.index).fillna("")
        else:
            out[col] = ""
    return out, g.ngroup().to_numpy()
