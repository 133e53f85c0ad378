"""Real geography of a synthetic region, read from the offline ``psgc`` package data.

The ``psgc`` package ships its core tables as JSON under ``psgc/data/core/``; reading
them with :mod:`json` is much faster than going through its API. This module turns them
into two plain tables: the cities/municipalities (LGUs) of the chosen regions and their
barangays with coordinates, plus the name spellings DepEd and DTI use for an LGU.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.schema import REGION_PSGC

#: The study area "Mega Manila" (paper-facts.md).
STUDY_REGIONS: tuple[str, ...] = ("NCR", "Region III", "Region IV-A")

#: Province that geographically contains an independent (pseudo-province) HUC; DepEd
#: files write the containing province.
_PSEUDO_PROVINCE_PARENT = {
    "0330199999": "Pampanga",  # Angeles
    "0331499999": "Zambales",  # Olongapo
    "0431299999": "Quezon",  # Lucena
}
_NCR_PROVINCE = "Metro Manila"


def _psgc_core() -> Path:
    try:
        import psgc
    except ImportError as exc:  # pragma: no cover - psgc is a hard dependency
        raise DataError("the psgc package is required for synthetic geography") from exc
    core = Path(psgc.__file__).resolve().parent / "data" / "core"
    if not (core / "barangays.json").exists():
        raise DataError(f"psgc core data not found under {core}")
    return core


@lru_cache(maxsize=4)
def _load(name: str) -> list:
    with open(_psgc_core() / f"{name}.json", encoding="utf-8") as fh:
        return json.load(fh)


def _tier(region: str, city_class: str | None) -> str:
    if region == "NCR":
        return "NCR"
    if city_class == "Highly Urbanized City":
        return "HUC"
    return "other"


def _city_class_short(level: str, city_class: str | None) -> str:
    if city_class == "Highly Urbanized City":
        return "HUC"
    if city_class == "Independent Component City":
        return "ICC"
    if level == "City":
        return "CC"
    return "Mun"


def deped_municipality(name: str) -> str:
    """DepEd's spelling of a PSGC city/municipality name: upper case, "City of X" → "X CITY".

    Parameters
    ----------
    name : str
        PSGC name, e.g. "City of San Fernando".

    Returns
    -------
    str
        e.g. "SAN FERNANDO CITY"; "Quezon City" → "QUEZON CITY"; "Sto. Tomas" → "STO. TOMAS".
    """
    m = re.match(r"^City of (.+)$", name)
    if m:
        return f"{m.group(1)} City".upper()
    return name.upper()


def lgus(regions: tuple[str, ...] = STUDY_REGIONS) -> pd.DataFrame:
    """Cities and municipalities of ``regions`` (Manila's SubMun districts skipped).

    Parameters
    ----------
    regions : tuple of str
        Canonical region names (keys of :data:`studentflow.schema.REGION_PSGC`).

    Returns
    -------
    pandas.DataFrame
        Index ``psgc_code`` (sorted); columns region, province (PSGC name), deped_province,
        municipality (PSGC name), deped_municipality, city_class (HUC/CC/ICC/Mun), tier
        (NCR/HUC/other), population (persons), lon, lat (degrees).
    """
    unknown = [r for r in regions if r not in REGION_PSGC]
    if unknown:
        raise ValueError(f"regions: unknown region name(s) {unknown}; use {sorted(REGION_PSGC)}")
    code_to_region = {REGION_PSGC[r]: r for r in regions}
    provinces = {p["psgc_code"]: p["name"] for p in _load("provinces")}
    rows = []
    for c in _load("cities"):
        region = code_to_region.get(c["region_code"])
        if region is None or c["geographic_level"] == "SubMun":
            continue
        pcode = c.get("province_code") or c["region_code"]
        if region == "NCR":
            deped_prov = _NCR_PROVINCE
        else:
            deped_prov = _PSEUDO_PROVINCE_PARENT.get(pcode, provinces.get(pcode, ""))
        rows.append(
            {
                "psgc_code": c["psgc_code"],
                "region": region,
                "province": provinces.get(pcode, ""),
                "deped_province": deped_prov,
                "municipality": c["name"],
                "deped_municipality": deped_municipality(c["name"]),
                "city_class": _city_class_short(c["geographic_level"], c.get("city_class")),
                "tier": _tier(region, c.get("city_class")),
                "population": int(c.get("population") or 0),
                "lon": float(c["coordinate"]["longitude"]),
                "lat": float(c["coordinate"]["latitude"]),
            }
        )
    out = pd.DataFrame(rows).set_index("psgc_code").sort_index()
    return out


def barangays(lgu_table: pd.DataFrame) -> pd.DataFrame:
    """Barangays with coordinates inside the LGUs of ``lgu_table``.

    Barangays of Manila's SubMun districts are attached to the City of Manila.

    Returns
    -------
    pandas.DataFrame
        Columns psgc_code (barangay), name, lgu_code, population (persons, ≥ 1), lon, lat;
        sorted by psgc_code.
    """
    subs = {c["psgc_code"]: c["psgc_code"][:5] + "00000" for c in _load("cities") if c["geographic_level"] == "SubMun"}
    wanted = set(lgu_table.index)
    rows = []
    for b in _load("barangays"):
        coord = b.get("coordinate") or {}
        if coord.get("latitude") is None or coord.get("longitude") is None:
            continue
        city = b.get("city_code")
        city = subs.get(city, city)
        if city not in wanted:
            continue
        rows.append(
            {
                "psgc_code": b["psgc_code"],
                "name": b["name"],
                "lgu_code": city,
                "population": max(1, int(b.get("population") or 1)),
                "lon": round(float(coord["longitude"]), 6),
                "lat": round(float(coord["latitude"]), 6),
            }
        )
    return pd.DataFrame(rows).sort_values("psgc_code", ignore_index=True)


def dti_name(row: pd.Series, quirk: str | None) -> str:
    """DTI (CMCI) spelling of an LGU name, optionally with a planted spelling quirk.

    Parameters
    ----------
    row : pandas.Series
        A row of :func:`lgus` (municipality, province).
    quirk : {None, "province_suffix", "upper", "santo", "drop_city_of"}
        None: the PSGC name as is. "province_suffix": "City of San Fernando (Pampanga)".
        "upper": upper case. "santo": "Sto." ↔ "Santo". "drop_city_of": "City of X" → "X".
    """
    name = str(row["municipality"])
    if quirk is None:
        return name
    if quirk == "province_suffix":
        return f"{name} ({row['deped_province']})"
    if quirk == "upper":
        return name.upper()
    if quirk == "santo":
        if "Sto." in name:
            return name.replace("Sto.", "Santo")
        if "Santo " in name:
            return name.replace("Santo ", "Sto. ")
        if "Sta." in name:
            return name.replace("Sta.", "Santa")
        return name.replace("Santa ", "Sta. ")
    if quirk == "drop_city_of":
        return re.sub(r"^City of ", "", name)
    raise ValueError(f"dti_name: unknown quirk {quirk!r}")


def santo_variants(names: pd.Series) -> np.ndarray:
    """Boolean mask of names that have a "Sto./Santo/Sta./Santa" spelling to vary."""
    return names.str.contains(r"\bSto\.|\bSanto |\bSta\.|\bSanta ", regex=True).to_numpy()
