"""School- and municipality-level raw files in the real sources' layouts, with quirks.

Each function builds one file's rows, plants its quirks at a few per cent, appends one
record per planted quirk to ``quirks`` (kind, file, row, school_id, quirk, outcome; row =
1-based physical row as a spreadsheet shows it) and writes the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.schema import OFFERINGS, OFFERS_JHS
from studentflow.synth.geography import dti_name, santo_variants
from studentflow.synth.io import peso, write_csv, write_xlsx

COC_TEXT = {v: k for k, v in OFFERINGS.items()}
REGION_VARIANTS = {"NCR": ["National Capital Region"], "Region III": ["Central Luzon", "REGION III"],
                   "Region IV-A": ["CALABARZON", "REGION IV-A"]}
TITLE = ["Republic of the Philippines", "DEPARTMENT OF EDUCATION", "SCHOOL LEVEL DATA ON ENROLLMENT",
         "School Year 2023-2024", "Source: Learner Information System (LIS)"]


def _q(quirks, kind, file, row, sid, quirk, outcome):
    quirks.append({"kind": kind, "file": file, "row": int(row), "school_id": sid, "quirk": quirk, "outcome": outcome})


def _pick(rng, n, probs: dict, allowed: dict | None = None, min_count: int = 2) -> np.ndarray:
    """One quirk name (or '') per row, ``round(p * n)`` rows (at least ``min_count``) per quirk.

    ``allowed[name]`` masks the rows eligible for a quirk; rows get at most one quirk.
    """
    out = np.full(n, "", dtype=object)
    for name, p in probs.items():
        ok = out == ""
        if allowed and name in allowed:
            ok &= np.asarray(allowed[name], bool)
        cand = np.flatnonzero(ok)
        k = min(len(cand), max(min_count, int(round(p * n))))
        out[rng.choice(cand, size=k, replace=False)] = name
    return out


def enrollment(path: Path, schools: pd.DataFrame, rng, quirks: list, school_year: str = "2023-2024") -> int:
    """``enrollment`` xlsx (sheet DATA): 3-5 title rows, wide G1..G10 Male/Female.

    ``school_year`` ("YYYY-YYYY") is named in the title rows. Returns the number of title rows.
    """
    name = path.name
    n_title = int(rng.integers(3, 6))
    every = TITLE[:3] + [f"School Year {school_year}"] + TITLE[4:]
    title = every[:2] + every[2 : 2 + n_title - 2] if n_title < 5 else every
    title = title[:n_title]
    header = ["Region", "Division", "Province", "Municipality", "BEIS School ID", "School Name", "Sector",
              "Modified COC"] + [f"G{g} {s}" for g in range(1, 11) for s in ("Male", "Female")]
    s = schools.sort_values(["region", "school_id"])  # a column here (index reset by the caller)
    n = len(s)
    ids = s["school_id"].to_numpy()
    lead = np.array([x.startswith("0") for x in ids])
    q = _pick(rng, n, {"id_no_leading_zero": 0.6 * lead.mean(), "region_variant": 0.04, "id_float": 0.02,
                       "id_padded": 0.02}, {"id_no_leading_zero": lead})
    rows = []
    for k, r in enumerate(s.itertuples(index=False)):
        region, sid = r.region, r.school_id
        if q[k] == "region_variant":
            opts = REGION_VARIANTS.get(region, [region.upper()])
            region = opts[int(rng.integers(0, len(opts)))]
        elif q[k] == "id_float":
            sid = f"{int(sid)}.0"
        elif q[k] == "id_padded":
            sid = f" {sid} "
        elif q[k] == "id_no_leading_zero":
            sid = sid.lstrip("0")
        cells = [region, r.division, r.province, r.municipality, sid, r.name, r.sector.capitalize(),
                 COC_TEXT[r.offering]]
        for g in range(1, 11):
            tot = int(getattr(r, f"enrol_g{g}"))
            male = int(rng.binomial(tot, 0.51)) if tot else 0
            cells += [male, tot - male]
        rows.append((cells, q[k], r.school_id))
    # exact duplicate rows right after their original
    dup = rng.random(n) < 0.015
    out, phys = [], n_title + 2
    outcome = {"region_variant": "repaired", "id_float": "repaired", "id_padded": "repaired",
               "id_no_leading_zero": "repaired"}
    for k, (cells, quirk, sid) in enumerate(rows):
        if quirk:
            _q(quirks, "enrollment", name, phys, sid, quirk, outcome[quirk])
        out.append(cells)
        phys += 1
        if dup[k]:
            out.append(list(cells))
            _q(quirks, "enrollment", name, phys, sid, "duplicate_row", "dropped")
            phys += 1
    _q(quirks, "enrollment", name, n_title + 1, "", "title_rows", "repaired")
    write_xlsx(path, header, out, title=title, sheet="DATA")
    return n_title


def coordinates(path: Path, schools: pd.DataFrame, droppable: np.ndarray, rng, quirks: list) -> pd.DataFrame:
    """``coordinates`` csv; dropped-coordinate quirks only where ``droppable``.

    Returns the coordinate rows actually written for each school that ingest keeps:
    school_id, lon, lat (true or near-duplicate point), used for the OSRM-style matrix.
    """
    name = path.name
    s = schools.sort_index()
    n = len(s)
    q = _pick(rng, n, {"blank": 0.015, "zero": 0.01, "outside_ph": 0.007, "swapped": 0.02, "two_rows": 0.02},
              {"blank": droppable, "zero": droppable, "outside_ph": droppable})
    rows, keep = [], []
    outcome = {"blank": "dropped", "zero": "dropped", "outside_ph": "dropped", "swapped": "repaired",
               "two_rows": "merged"}
    for k, (sid, lon, lat) in enumerate(zip(s.index, s["lon"], s["lat"])):
        lat_s, lon_s = f"{lat:.6f}", f"{lon:.6f}"
        quirk = q[k]
        if quirk == "blank":
            lat_s = lon_s = ""
        elif quirk == "zero":
            lat_s = lon_s = "0"
        elif quirk == "outside_ph":
            lat_s, lon_s = f"{lat + 20.5:.6f}", f"{lon + 18.3:.6f}"
        elif quirk == "swapped":
            lat_s, lon_s = lon_s, lat_s
        if quirk not in ("blank", "zero", "outside_ph"):
            keep.append((sid, lon, lat))
        if quirk and quirk != "two_rows":
            _q(quirks, "coordinates", name, len(rows) + 2, sid, quirk, outcome[quirk])
        rows.append((sid, lat_s, lon_s))
        if quirk == "two_rows":
            lon2, lat2 = round(lon, 4), round(lat, 4)
            _q(quirks, "coordinates", name, len(rows) + 2, sid, quirk, outcome[quirk])
            rows.append((sid, f"{lat2:.4f}", f"{lon2:.4f}"))
            keep.append((sid, lon2, lat2))
    write_csv(path, pd.DataFrame(rows, columns=["School ID", "Latitude", "Longitude"]))
    return pd.DataFrame(keep, columns=["school_id", "lon", "lat"])


def _fmt(x) -> str | None:
    return None if x is None or not np.isfinite(x) else int(x)


def seats(path: Path, schools: pd.DataFrame, rng, quirks: list) -> None:
    """``seats`` xlsx (public schools only); some JHS seats left blank (ingest imputes)."""
    s = schools[schools["sector"] == "public"].sort_index()
    jhs = s["offering"].isin(OFFERS_JHS).to_numpy()
    miss = jhs & (rng.random(len(s)) < 0.04)
    rows = []
    for k, (sid, r) in enumerate(s.iterrows()):
        jseats = None if miss[k] else _fmt(r["jhs_seats"])
        rows.append([sid, _fmt(r["seats_es"]), jseats, _fmt(r["seats_shs"])])
        if miss[k]:
            _q(quirks, "seats", path.name, k + 2, sid, "missing_jhs_seats", "imputed")
    write_xlsx(path, ["School ID", "Seats ES", "Seats JHS", "Seats SHS"], rows, sheet="Sheet1")


def private_seats(path: Path, schools: pd.DataFrame, rng, quirks: list) -> None:
    """``private_seats`` csv: chair counts as text, "1,250" where ≥ 1,000."""
    s = schools[schools["sector"] == "private"].sort_index()
    rows = []
    for k, (sid, r) in enumerate(s.iterrows()):
        vals = [r["seats_es"], r["jhs_seats"], r["seats_shs"]]
        text = ["" if not np.isfinite(v) else f"{int(v):,}" for v in vals]
        if any("," in t for t in text):
            _q(quirks, "private_seats", path.name, k + 2, sid, "count_as_text", "repaired")
        rows.append([sid, *text])
    write_csv(path, pd.DataFrame(rows, columns=["School ID", "Chairs ES", "Chairs JHS", "Chairs SHS"]))


def esc_slots(path: Path, schools: pd.DataFrame, per_id: pd.DataFrame, slots: pd.DataFrame, quirks: list) -> pd.DataFrame:
    """``esc_slots`` xlsx, one row per ESC ID; a school's slots are split over its IDs.

    Returns per ESC ID: esc_id, school_id, slots_total, slots_billed.
    """
    t = per_id.merge(slots[["slots"]], left_on="school_id", right_index=True).sort_values(["school_id", "esc_id"])
    t["first"] = ~t.duplicated("school_id")
    # split slots: the first ID gets the remainder so that the sum is exact
    t["slots_total"] = 0
    for sid, grp in t.groupby("school_id", sort=True):
        total = int(grp["slots"].iloc[0])
        billed = grp["billed"].to_numpy()
        share = billed / billed.sum() if billed.sum() else np.full(len(grp), 1 / len(grp))
        parts = np.floor(total * share).astype(int)
        parts[0] += total - parts.sum()
        t.loc[grp.index, "slots_total"] = parts
    rows = []
    for k, r in enumerate(t.itertuples(index=False)):
        rows.append([r.esc_id, r.school_id, schools.at[r.school_id, "name"], int(r.slots_total), int(r.billed)])
        if not r.first:
            _q(quirks, "esc_slots", path.name, k + 2, r.school_id, "several_esc_ids", "merged")
    write_xlsx(path, ["ESC School ID", "DepEd School ID", "School Name", "slots_total", "slots_billed"], rows,
               sheet="ESC Slots")
    return t.rename(columns={"billed": "slots_billed"})[["esc_id", "school_id", "slots_total", "slots_billed"]]


def tuition(path: Path, schools: pd.DataFrame, per_id: pd.DataFrame, rng, quirks: list) -> None:
    """``tuition`` xlsx per ESC ID: G7 tuition + Other + Misc fees = the school's tuition."""
    t = per_id.sort_values("esc_id")
    sids = t["school_id"].to_numpy()
    total = schools.loc[sids, "tuition"].to_numpy(float)
    uid, inv = np.unique(sids, return_inverse=True)
    no_other = (rng.random(len(uid)) < 0.06)[inv]
    peso_str = (rng.random(len(uid)) < 0.05)[inv]
    misc = np.round(total * 0.15, -1)
    other = np.where(no_other, 0.0, np.round(total * 0.08, -1))
    g7 = total - misc - other
    up = rng.uniform(1.0, 1.05, (len(uid), 3))[inv]
    blank_kind = rng.integers(0, 2, len(uid))[inv]
    first = ~pd.Series(sids).duplicated().to_numpy()
    rows = []
    for k, (eid, sid) in enumerate(zip(t["esc_id"], sids)):
        row = k + 2
        g = [float(g7[k])] + list(np.round(g7[k] * up[k], -1))
        cells = [peso(x) for x in g] if peso_str[k] else [float(x) for x in g]
        oth = ("" if blank_kind[k] == 0 else "N/A") if no_other[k] else float(other[k])
        rows.append([eid, schools.at[sid, "name"], *cells, oth, float(misc[k])])
        if first[k] and peso_str[k]:
            _q(quirks, "tuition", path.name, row, sid, "peso_string", "repaired")
        if first[k] and no_other[k]:
            _q(quirks, "tuition", path.name, row, sid, "blank_fee" if blank_kind[k] == 0 else "na_fee", "repaired")
        if not first[k]:
            _q(quirks, "tuition", path.name, row, sid, "several_esc_ids", "merged")
    header = ["ESC School ID", "School Name", "G7 Tuition", "G8 Tuition", "G9 Tuition", "G10 Tuition",
              "Other Fees", "Misc Fees"]
    write_xlsx(path, header, rows, sheet="Tuition")


def esc_rating(path: Path, schools: pd.DataFrame, per_id: pd.DataFrame, text_of) -> None:
    """``esc_rating`` csv: certification text per ESC ID (blank = unrated)."""
    t = per_id.sort_values("esc_id")
    cert = [text_of(schools.at[sid, "esc_rating"]) for sid in t["school_id"]]
    write_csv(path, pd.DataFrame({"ESC School ID": t["esc_id"].to_numpy(), "Certification": cert}))


def lgu_income(path: Path, lgu: pd.DataFrame, revenue: pd.Series, rng, quirks: list) -> None:
    """``lgu_income`` csv in DTI spellings; a few zeros (= missing, ingest imputes)."""
    t = lgu.sort_values(["deped_province", "municipality"])
    names = t["municipality"]
    city_of = names.str.startswith("City of").to_numpy()
    q = _pick(rng, len(t), {"zero_revenue": 0.03, "province_suffix": 0.04, "upper": 0.04, "santo": 0.03,
                            "drop_city_of": 0.05},
              {"province_suffix": city_of, "drop_city_of": city_of, "santo": santo_variants(names)})
    rows = []
    for k, (code, r) in enumerate(t.iterrows()):
        quirk = q[k]
        lgu_name = dti_name(r, quirk if quirk not in ("", "zero_revenue") else None)
        rev = 0.0 if quirk == "zero_revenue" else float(revenue[code])
        rows.append([r["deped_province"], lgu_name, f"{rev:.2f}"])
        if quirk:
            _q(quirks, "lgu_income", path.name, k + 2, "", quirk,
               "imputed" if quirk == "zero_revenue" else "repaired")
    write_csv(path, pd.DataFrame(rows, columns=["Province", "LGU", "Total Revenues of the LGU (in Php)"]))


def subsidy_rates(path: Path, tiers: dict) -> None:
    """``subsidy_rates`` csv: one amount (pesos) per location tier and JHS grade."""
    label = {"NCR": "NCR", "HUC": "Highly Urbanized City", "other": "Other"}
    rows = [[label[t], g, f"{a:.2f}"] for t, a in tiers.items() for g in range(7, 11)]
    write_csv(path, pd.DataFrame(rows, columns=["Location tier", "Grade", "Amount"]))
