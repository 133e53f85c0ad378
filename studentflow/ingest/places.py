"""Municipality names → PSGC codes, across DepEd and DTI spellings.

Names are compared on a key: accents folded (ñ → n), "City of X" / "X City" /
"Science City of X" reduced to "x", "Sto."/"Sta."/"Gen." expanded, a parenthesised part
("City of San Fernando (Pampanga)") taken as a province hint. An exact key match is
disambiguated by province, then region, then by whether the name says "city"; failing
an exact key, a fuzzy match (rapidfuzz ratio >= :data:`FUZZY_PLACE_SCORE`) within the
province or region is accepted when it is unique.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pandas as pd
from rapidfuzz import fuzz, process

from studentflow.ingest.values import fold
from studentflow.schema import REGION_PSGC

FUZZY_PLACE_SCORE = 90.0
CITY_CLASS = {"Highly Urbanized City": "HUC", "Component City": "CC", "Independent Component City": "ICC"}
_ABBREV = [(r"\bsto\b", "santo"), (r"\bsta\b", "santa"), (r"\bgen\b", "general"), (r"\bsn\b", "san")]
_PSGC_REGION = {v: k for k, v in REGION_PSGC.items()}


def place_key(name: str) -> tuple[str, str, bool]:
    """(key, parenthesised hint, says-city) of a place name."""
    text = str(name)
    hint = " ".join(re.findall(r"\(([^)]*)\)", text))
    text = re.sub(r"\([^)]*\)", " ", text)
    f = fold(text)
    says_city = bool(re.search(r"\bcity\b", f))
    f = re.sub(r"^(science )?city of ", "", f)
    f = re.sub(r" city$", "", f)
    for pat, rep in _ABBREV:
        f = re.sub(pat, rep, f)
    return f.replace(" ", ""), fold(hint), says_city


def province_key(name: str) -> str:
    """Key of a province name ("City of Angeles (Independent City)" → "angeles")."""
    return place_key(name)[0]


@dataclass(frozen=True)
class Place:
    psgc_code: str
    name: str
    province: str
    region: str
    city_class: str
    population: int
    lon: float
    lat: float
    is_city: bool


@lru_cache(maxsize=1)
def psgc_places() -> pd.DataFrame:
    """Cities and municipalities of the PSGC (psgc package), one row each, index psgc_code.

    Columns: name, province (PSGC province name; the region name for NCR), region
    (canonical), city_class ('HUC', 'CC', 'ICC', 'Mun'), population, lon, lat, is_city.
    Sub-municipalities (Manila's districts) are left out.
    """
    core = resources.files("psgc") / "data" / "core"
    cities = json.loads((core / "cities.json").read_text(encoding="utf-8"))
    provinces = json.loads((core / "provinces.json").read_text(encoding="utf-8"))
    prov = {p["psgc_code"]: p["name"] for p in provinces}
    rows = []
    for c in cities:
        if c.get("geographic_level") not in ("City", "Mun"):
            continue
        region = _PSGC_REGION.get(c.get("region_code", ""), c.get("region_code", ""))
        pcode = c.get("province_code", "")
        rows.append({
            "psgc_code": c["psgc_code"],
            "name": c["name"],
            "province": prov.get(pcode, "NCR" if region == "NCR" else ""),
            "region": region,
            "city_class": CITY_CLASS.get(c.get("city_class") or "",
                                         "CC" if c.get("geographic_level") == "City" else "Mun"),
            "population": int(c.get("population") or 0),
            "lon": float((c.get("coordinate") or {}).get("longitude", float("nan"))),
            "lat": float((c.get("coordinate") or {}).get("latitude", float("nan"))),
            "is_city": c.get("geographic_level") == "City",
            "old_names": c.get("old_names") or "",
        })
    return pd.DataFrame(rows).set_index("psgc_code")


class PlaceMatcher:
    """Match (municipality, province, region) text to PSGC codes; results cached."""

    def __init__(self, regions: tuple[str, ...] | None = None):
        places = psgc_places()
        if regions:
            places = places[places["region"].isin(regions)]
        self.places = places
        self._by_key: dict[str, list[str]] = {}
        for code, name, old in zip(places.index, places["name"], places["old_names"]):
            for n in [name, *[o for o in str(old).split(",") if o.strip()]]:
                self._by_key.setdefault(place_key(n)[0], []).append(code)
        self._prov_key = {code: province_key(p) for code, p in places["province"].items()}
        self._cache: dict[tuple, str] = {}

    def match(self, name: str, province: str = "", region: str = "") -> str:
        """PSGC code of a municipality, or '' when there is no unique match."""
        k = (name, province, region)
        if k not in self._cache:
            self._cache[k] = self._match(name, province, region)
        return self._cache[k]

    def _narrow(self, codes: list[str], hint: str, province: str, region: str, says_city: bool) -> list[str]:
        for prov_text in (hint, province):
            pk = province_key(prov_text) if prov_text else ""
            if pk:
                sub = [c for c in codes if self._prov_key[c] == pk or pk in self._prov_key[c]]
                if sub:
                    codes = sub
                    break
        if len(codes) > 1 and region:
            sub = [c for c in codes if self.places.at[c, "region"] == region]
            codes = sub or codes
        if len(codes) > 1:
            sub = [c for c in codes if bool(self.places.at[c, "is_city"]) == says_city]
            codes = sub or codes
        return codes

    def _match(self, name: str, province: str, region: str) -> str:
        key, hint, says_city = place_key(name)
        if not key:
            return ""
        codes = self._by_key.get(key, [])
        if codes:
            codes = self._narrow(codes, hint, province, region, says_city)
            return codes[0] if len(codes) == 1 else ""
        pool = self.places
        pk = province_key(hint or province) if (hint or province) else ""
        if pk:
            sub = pool[[self._prov_key[c] == pk for c in pool.index]]
            pool = sub if len(sub) else pool
        if region and pool is self.places:
            pool = pool[pool["region"] == region]
        keys = {c: place_key(n)[0] for c, n in pool["name"].items()}
        hits = process.extract(key, keys, scorer=fuzz.ratio, limit=2)
        if hits and hits[0][1] >= FUZZY_PLACE_SCORE and (len(hits) == 1 or hits[1][1] < hits[0][1]):
            return hits[0][2]
        return ""
