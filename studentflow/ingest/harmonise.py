"""Harmonisation: join the per-source tables into canonical schools, areas and subsidy.

Stated rules (each event in the ledger):

- A school is a row of the enrolment file (one per DepEd ID); its municipality is matched
  to a PSGC code (:mod:`studentflow.ingest.places`); a name that matches nothing gets the
  code of the nearest municipality centroid of its region to the school's point (imputed).
- Coordinates: a row for a school not in the enrolment list is dropped. Several
  coordinates sources have a priority: the first in manifest order with a valid point
  for a school wins, later sources' rows for it are merged, and where such a point lies
  more than :data:`CONFLICT_KM` from the winner a ``conflict`` row names both. Within one
  source, where a school has several valid points within :data:`SAME_POINT_DEG` of each
  other (one point written twice), the one written with most decimals is kept; points
  farther apart are resolved by keeping the one nearest its municipality's PSGC centroid.
  The others are merged. A school left without a point (or without a PSGC code) gets an
  ``incomplete`` row.
- JHS seats: public schools from ``seats``, private ones from ``private_seats``; only
  schools offering JHS have JHS seats. A missing value is imputed as JHS enrolment /
  median utilisation (enrolment / seats) of schools of the same sector in the same
  division (region when the division has fewer than 3 such schools), rounded to seats.
- ESC: slots summed over all ESC IDs of a DepEd school (crosswalk from ``esc_slots``);
  tuition and rating of a school come from its first ESC ID (file order) that has one.
- LGU revenue: 0 or blank means missing; imputed as population × median revenue per
  person of LGUs of the same city class in the same region (region median if fewer than
  3). Subsidy tier: NCR if the school is in NCR, HUC if its city is a highly urbanised
  city, otherwise "other"; amount = the Grade 7 amount of that tier.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from studentflow.ingest.ledger import Ledger
from studentflow.ingest.places import PlaceMatcher, psgc_places
from studentflow.ingest.values import isin
from studentflow.schema import OFFERS_JHS, SUBSIDY_TIERS

MIN_GROUP = 3
#: Two coordinate rows of one school within this many degrees (~ 200 m) are the same point.
SAME_POINT_DEG = 0.002
#: Two coordinates sources placing one school farther apart than this (km) are a conflict.
CONFLICT_KM = 1.0


def stack(parts: list[tuple]) -> pd.DataFrame:
    """Stack the frames of several files of one kind, remembering kind and file."""
    frames = [df.assign(_kind=src.kind, _file=src.file) for src, df in parts]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def drop_rows(ledger: Ledger, df: pd.DataFrame, mask, reason: str, action: str = "dropped",
          sid: str = "school_id") -> pd.DataFrame:
    """Record rows of ``df`` (which has _kind, _file, _row) under ``mask`` and remove them."""
    mask = np.asarray(mask, dtype=bool)
    sub = df[mask]
    for (kind, file), g in sub.groupby(["_kind", "_file"], sort=False):
        ledger.add_many(kind, file, g["_row"], g[sid] if sid in g else "", action, reason)
    return df[~mask]


def match_places(enrol: pd.DataFrame, matcher: PlaceMatcher) -> pd.Series:
    """PSGC code per school ('' where the municipality name has no unique match)."""
    cols = enrol[["municipality", "province", "region"]]
    if not len(cols):
        return pd.Series([], index=enrol.index, dtype="str")
    group = cols.groupby(list(cols.columns), sort=False, dropna=False).ngroup().to_numpy()
    _, first = np.unique(group, return_index=True)  # each distinct name once (not per school)
    codes = np.array([matcher.match(*k) for k in cols.iloc[first].itertuples(index=False)], dtype=object)
    return pd.Series(codes[group], index=enrol.index, dtype="str")


def impute_places(schools: pd.DataFrame, coords: pd.DataFrame, places: pd.DataFrame,
                  ledger: Ledger) -> pd.Series:
    """PSGC codes for schools whose municipality name matched nothing: the nearest
    municipality centroid of the same region to the school's point (imputed, in the ledger).

    Schools without a point keep ''.
    """
    codes = schools["psgc_code"].copy()
    todo = schools.index[(codes == "").to_numpy() & isin(schools.index, coords.index)]
    pools: dict = {}  # region → its municipalities (one scan of the places per region)
    for sid in todo:
        s = schools.loc[sid]
        if s["region"] not in pools:
            pools[s["region"]] = places[places["region"] == s["region"]]
        pool = pools[s["region"]]
        if not len(pool):
            continue
        lon, lat = coords.at[sid, "lon"], coords.at[sid, "lat"]
        d = np.hypot((pool["lon"] - lon) * np.cos(np.radians(lat)), pool["lat"] - lat)
        codes[sid] = str(d.idxmin())
        ledger.add(s["_kind"], s["_file"], int(s["_row"]), sid, "imputed",
                   f"municipality {re.sub(r'[0-9]{7,}', '...', str(s['municipality']))!r} not matched "
                   f"to a PSGC code: used the nearest "
                   f"municipality centroid in {s['region']} ({pool.at[codes[sid], 'name']})")
    return codes


def resolve_coordinates(coords: pd.DataFrame, schools: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """One point per known school (rule in the module docstring): index school_id; lon, lat.

    ``coords`` stacks the coordinates sources in manifest order (:func:`stack`): the
    first source with a point for a school wins; a later source's point more than
    :data:`CONFLICT_KM` away from it is also recorded as a ``conflict``.
    """
    coords = drop_rows(ledger, coords, ~isin(coords["school_id"], schools.index),
                   "school not in the enrolment list")
    places = psgc_places()
    code = schools["psgc_code"].reindex(coords["school_id"]).to_numpy()
    clon = places["lon"].reindex(code).to_numpy()
    clat = places["lat"].reindex(code).to_numpy()
    d = np.hypot((coords["lon"].to_numpy() - clon) * np.cos(np.radians(coords["lat"].to_numpy())),
                 coords["lat"].to_numpy() - clat)
    prio = pd.factorize(coords["_file"])[0] if len(coords) else np.zeros(0, dtype=int)
    coords = coords.assign(_prio=prio)
    g = coords.groupby(["school_id", "_prio"])
    spread = np.maximum(g["lon"].transform("max") - g["lon"].transform("min"),
                        g["lat"].transform("max") - g["lat"].transform("min"))
    near = (spread <= SAME_POINT_DEG).to_numpy()
    key = np.where(near, -coords["decimals"].to_numpy(float), np.nan_to_num(d, nan=0.0))
    coords = coords.assign(_key=key, _near=near).sort_values(["school_id", "_prio", "_key", "_row"], kind="stable")
    if (prio > 0).any():
        coords = _lower_priority(coords, ledger)
    dup = coords.duplicated("school_id", keep="first").to_numpy()
    same = dup & coords["_near"].to_numpy()
    coords = drop_rows(ledger, coords, same, "second coordinate row for the school, the same point written with "
                   "fewer decimals: kept the more precise point", action="merged")
    dup = coords.duplicated("school_id", keep="first").to_numpy()
    coords = drop_rows(ledger, coords, dup, "second coordinate row for the school, a different point: kept the "
                   "point nearer its municipality's PSGC centroid", action="merged")
    return coords.set_index("school_id")[["lon", "lat"]]


def _lower_priority(coords: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """Merge the rows of later coordinates sources for schools an earlier source placed;
    where such a point is more than :data:`CONFLICT_KM` from the winner, a ``conflict`` row."""
    win = coords.drop_duplicates("school_id", keep="first").set_index("school_id")
    wp = win["_prio"].reindex(coords["school_id"]).to_numpy()
    lose = coords["_prio"].to_numpy() > wp
    sub = coords[lose]
    w = win.reindex(sub["school_id"])
    km = _haversine_km(sub["lon"].to_numpy(), sub["lat"].to_numpy(), w["lon"].to_numpy(), w["lat"].to_numpy())
    far = km > CONFLICT_KM
    f, wf = sub[far], w[far]
    why = [f"coordinates disagree by {x:,.1f} km: {fl} row {r} vs {f2} row {r2} (kept: earlier in the manifest)"
           for x, fl, r, f2, r2 in zip(km[far], f["_file"], f["_row"], wf["_file"], wf["_row"])]
    for (kind, file), grp in f.assign(_why=why).groupby(["_kind", "_file"], sort=False):
        ledger.add_many(kind, file, grp["_row"], grp["school_id"], "conflict", grp["_why"])
    return drop_rows(ledger, coords, lose, "coordinates of a later source in the manifest for a school an earlier "
                     "coordinates source already places: the earlier source's point kept", action="merged")


def _haversine_km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in km (R = 6371.0088 km, as :mod:`studentflow.geo`)."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(x, dtype=float)) for x in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def note_unplaced(schools: pd.DataFrame, coords: pd.DataFrame, ledger: Ledger) -> None:
    """Ledger rows (``incomplete``) for schools left without a point, or without a PSGC code."""
    nopoint = ~isin(schools.index, coords.index)  # Arrow's hash lookup: pandas' builds a list
    nocode = nopoint & (schools["psgc_code"] == "").to_numpy()
    for mask, why in ((nopoint, "no valid point for the school in any coordinates source: no location (the "
                                "school is left out of road distances and pairs)"),
                      (nocode, "municipality not matched to a PSGC code and no point to place the school: "
                               "PSGC code left blank (no LGU covariates)")):
        sub = schools[mask]
        for (kind, file), grp in sub.groupby(["_kind", "_file"], sort=False):
            ledger.add_many(kind, file, grp["_row"], grp.index.to_numpy(), "incomplete", why)


def jhs_seats(schools: pd.DataFrame, seats: pd.DataFrame, ledger: Ledger, default_src) -> pd.DataFrame:
    """JHS seats and the imputed flag per school (rule in the module docstring)."""
    seats = drop_rows(ledger, seats, ~isin(seats["school_id"], schools.index), "school not in the enrolment list")
    sector_of = schools["sector"].reindex(seats["school_id"]).to_numpy()
    wrong = np.where(seats["_kind"] == "seats", sector_of != "public", sector_of != "private")
    seats = drop_rows(ledger, seats, wrong, "seat row for a school of the other sector")
    seats = seats.sort_values("_row", kind="stable")
    dup = seats.duplicated("school_id", keep="first").to_numpy()
    seats = drop_rows(ledger, seats, dup, "repeated seat row: merged into the first", action="merged")
    by_school = seats.set_index("school_id")
    offers = schools["offering"].isin(OFFERS_JHS)
    value = by_school["seats_jhs"].reindex(schools.index).where(offers)
    need = offers & (value.isna() | (value <= 0))
    util = (schools["jhs_enrolment"] / value).where(offers & ~need & (schools["jhs_enrolment"] > 0))
    imputed = value.to_numpy(dtype="float64", copy=True)
    medians: dict = {}  # (sector, level, value) → (peers, median): each group scanned once
    codes = {}  # column → (integer code per school, {value: code}): equality on integer codes
    for c in ("sector", "division", "region"):
        k, uniq = pd.factorize(schools[c])
        codes[c] = (k, {v: i for i, v in enumerate(uniq.tolist())})
    ratio = util.to_numpy(dtype="float64")
    has = ~np.isnan(ratio)

    def equal(col: str, value) -> np.ndarray:  # schools[col] == value (missing equals nothing)
        k = codes[col][1].get(value, -1) if value == value else -1
        return codes[col][0] == k if k >= 0 else np.zeros(len(schools), dtype=bool)

    def peer_median(sector, level: str | None, of) -> tuple[int, float]:
        key = (sector, level, of)
        if key not in medians:
            peers = util.dropna() if level is None else pd.Series(ratio[has & equal("sector", sector) & equal(level, of)])
            medians[key] = (len(peers), float(peers.median()) if len(peers) else 1.0)
        return medians[key]

    todo = np.flatnonzero(need.to_numpy())
    at = by_school.index.get_indexer(schools.index[todo])
    seat_kind, seat_file, seat_row = (by_school[c].tolist() for c in ("_kind", "_file", "_row"))
    cols = [schools[c].to_numpy()[todo].tolist() for c in ("sector", "division", "region", "jhs_enrolment")]
    for i, sid, j, sector, division, region, enrol in zip(todo, schools.index[todo].tolist(), at.tolist(), *cols):
        n, med = peer_median(sector, "division", division)
        how = "division"
        if n < MIN_GROUP:
            (n, med), how = peer_median(sector, "region", region), "region"
        if n < MIN_GROUP:
            (n, med), how = peer_median(None, None, None), "study area"
        imputed[i] = float(np.round(enrol / med)) if med > 0 else float(enrol)
        if j >= 0:
            kind, file, row = seat_kind[j], seat_file[j], int(seat_row[j])
        else:
            kind, file, row = default_src(sector)
        ledger.add(kind, file, row, sid, "imputed",
                   f"JHS seats missing: imputed as JHS enrolment / median utilisation "
                   f"({med:.3f}) of {sector} JHS schools in the same {how}")
    imputed = pd.Series(imputed, index=schools.index)
    return pd.DataFrame({"jhs_seats": imputed.astype("float64"), "jhs_seats_imputed": need.astype(bool)})


def esc_columns(schools: pd.DataFrame, slots: pd.DataFrame, tuition: pd.DataFrame,
                rating: pd.DataFrame, ledger: Ledger) -> tuple[pd.DataFrame, pd.Series]:
    """ESC participation, slots, tuition and rating per school; and the ESC→DepEd crosswalk."""
    slots = drop_rows(ledger, slots, ~isin(slots["school_id"], schools.index), "school not in the enrolment list")
    crosswalk = pd.Series(slots["school_id"].to_numpy(), index=slots["esc_id"].to_numpy(), dtype="str")
    total = slots.groupby("school_id")[["slots_total", "slots_billed"]].sum()
    slots = slots.sort_values("_row", kind="stable")
    drop_rows(ledger, slots, slots.duplicated("school_id", keep="first").to_numpy(),
          "further ESC ID of the same DepEd school: its slots are added to the school's", action="merged")
    out = pd.DataFrame(index=schools.index)
    out["esc_slots"] = total["slots_total"].reindex(out.index).fillna(0).astype("int64")
    out["esc_slots_billed"] = total["slots_billed"].reindex(out.index).fillna(0).astype("int64")
    out["esc"] = out.index.isin(total.index)
    for name, df, col in (("tuition", tuition, "tuition"), ("rating", rating, "esc_rating")):
        out[col] = np.nan
        if df is None or not len(df):
            continue
        df = df.assign(school_id=df["esc_id"].map(crosswalk).fillna("").astype("str"))
        df = drop_rows(ledger, df, df["school_id"] == "", f"ESC school ID not in the ESC slots list ({name})")
        df = df.sort_values("_row", kind="stable")
        has = df[df[col].notna()]
        first = has.drop_duplicates("school_id", keep="first")
        drop_rows(ledger, df, df.duplicated("school_id", keep="first").to_numpy(),
              f"further ESC ID of the same DepEd school: {name} taken from its first ESC ID", action="merged")
        out[col] = first.set_index("school_id")[col].reindex(out.index).astype("float64")
    return out, crosswalk


def areas_table(schools: pd.DataFrame, lgu: pd.DataFrame | None, matcher: PlaceMatcher,
                ledger: Ledger, regions: list[str], default_src) -> pd.DataFrame:
    """Municipality covariates (index psgc_code) for every PSGC city/municipality of
    ``regions`` (those present in the data); LGU revenue from the DTI file, imputed where missing."""
    places = matcher.places[matcher.places["region"].isin(regions)]
    areas = places[["region", "province", "name", "city_class", "population"]].rename(columns={"name": "municipality"})
    revenue = pd.Series(np.nan, index=areas.index, dtype="float64")
    row_of: dict[str, tuple] = {}
    if lgu is not None and len(lgu):
        code = pd.Series([matcher.match(l, p, "") for l, p in zip(lgu["lgu"], lgu["province"])],
                         index=lgu.index, dtype="str")
        lgu = lgu.assign(psgc_code=code, school_id="")
        lgu = drop_rows(ledger, lgu, lgu["psgc_code"] == "", "LGU name not matched to a PSGC city/municipality")
        lgu = drop_rows(ledger, lgu, ~lgu["psgc_code"].isin(areas.index), "LGU outside the regions present in the data")
        lgu = lgu.sort_values("_row", kind="stable")
        lgu = drop_rows(ledger, lgu, lgu.duplicated("psgc_code", keep="first").to_numpy(),
                    "repeated LGU row: merged into the first", action="merged")
        spelled = (lgu["lgu"] != areas["municipality"].reindex(lgu["psgc_code"]).to_numpy()).to_numpy()
        for (kind, file), g in lgu[spelled].groupby(["_kind", "_file"], sort=False):
            ledger.add_many(kind, file, g["_row"], "", "corrected",
                            "LGU name spelled differently from PSGC: matched to its PSGC code")
        revenue = lgu.set_index("psgc_code")["revenue"].reindex(areas.index).astype("float64")
        row_of = {c: (k, f, int(r)) for c, k, f, r in zip(lgu["psgc_code"], lgu["_kind"], lgu["_file"], lgu["_row"])}
    need = revenue.isna()
    pc = (revenue / areas["population"].replace(0, np.nan)).where(~need)
    for code in areas.index[need]:
        a = areas.loc[code]
        peers = pc[(areas["region"] == a["region"]) & (areas["city_class"] == a["city_class"])].dropna()
        how = f"{a['city_class']} LGUs in {a['region']}"
        if len(peers) < MIN_GROUP:
            peers, how = pc[areas["region"] == a["region"]].dropna(), f"LGUs in {a['region']}"
        if len(peers) < MIN_GROUP:
            peers, how = pc.dropna(), "LGUs of the study area"
        med = float(peers.median()) if len(peers) else 0.0
        revenue[code] = float(a["population"]) * med
        kind, file, row = row_of.get(code, default_src())
        ledger.add(kind, file, row, "", "imputed",
                   f"LGU revenue missing for PSGC {code}: imputed as population x median revenue "
                   f"per person ({med:,.0f} pesos) of {how}")
    areas["lgu_revenue"] = revenue
    areas["lgu_revenue_imputed"] = need.astype(bool)
    areas.index.name = "psgc_code"
    return areas


def subsidy_table(schools: pd.DataFrame, rates: pd.DataFrame | None) -> pd.DataFrame:
    """ESC Grade 7 amount per ESC school (index school_id): tier and amount in pesos."""
    esc = schools[schools["esc"]]
    cls = psgc_places()["city_class"].reindex(esc["psgc_code"]).to_numpy()
    tier = np.where(esc["region"] == "NCR", "NCR", np.where(cls == "HUC", "HUC", "other"))
    amounts = dict(SUBSIDY_TIERS)
    if rates is not None and len(rates):
        g7 = rates[rates["grade"] == 7].drop_duplicates("tier")
        amounts.update(dict(zip(g7["tier"], g7["amount"].astype(float))))
    out = pd.DataFrame({"tier": pd.Series(tier, index=esc.index, dtype="str")})
    out["amount"] = out["tier"].map(amounts).astype("float64")
    return out
