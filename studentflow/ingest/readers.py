"""One short reader per raw source kind: file → tidy DataFrame (parsed values) + ledger rows.

Readers only drop what cannot be read at all (invalid IDs, unparseable key cells) and
record it; joining sources (coordinates to schools, flows, imputation) is
:mod:`studentflow.ingest.harmonise`'s job. Every returned frame keeps ``_row``, the
1-based physical row of the raw file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.ingest import values as V
from studentflow.ingest.columns import Col
from studentflow.ingest.enrollment import ENROLLMENT_COLS, read_enrollment  # noqa: F401  (one reader per kind)
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source
from studentflow.ingest.readbase import (  # noqa: F401  (note_read: used by the fast path)
    SCHOOL_ID_ALIASES, dedupe, esc_id_col, note_read, read, school_id_col, text_written,
)

#: Philippine bounding box (degrees): lon 116-127, lat 4-21.5.
PH_LON = (116.0, 127.0)
PH_LAT = (4.0, 21.5)

# the shared helpers under their former names
_read, _school_ids, _esc_ids, _dedupe, _text_written = read, school_id_col, esc_id_col, dedupe, text_written


COORD_COLS = [Col("School ID", (*SCHOOL_ID_ALIASES, "id"), key="school_id"), Col("Latitude", ("Lat",)),
              Col("Longitude", ("Lon", "Long", "Lng"))]


def read_coordinates(src: Source, ledger: Ledger) -> pd.DataFrame:
    """School points: school_id, lon, lat (degrees, EPSG:4326), decimals (precision written), _row.

    Blank or zero coordinates and points outside the Philippine bounding box are dropped;
    swapped latitude/longitude (the swap falls inside the box) are corrected. Several
    rows per school are kept for :func:`harmonise` to resolve.
    """
    df = _school_ids(_read(src, COORD_COLS, ledger), "School ID", src, ledger)
    lat = pd.to_numeric(df["Latitude"].str.strip().str.replace(",", ""), errors="coerce")
    lon = pd.to_numeric(df["Longitude"].str.strip().str.replace(",", ""), errors="coerce")
    blank = lat.isna() | lon.isna() | (lat == 0) | (lon == 0)
    inside = lon.between(*PH_LON) & lat.between(*PH_LAT)
    swapped = ~blank & ~inside & lat.between(*PH_LON) & lon.between(*PH_LAT)
    outside = ~blank & ~inside & ~swapped
    sid = df["School ID"]
    ledger.add_many(src.kind, src.file, df.loc[blank, "_row"], sid[blank], "dropped",
                    "blank or zero latitude/longitude")
    ledger.add_many(src.kind, src.file, df.loc[outside, "_row"], sid[outside], "dropped",
                    "point outside the Philippines (lon 116-127, lat 4-21.5)")
    ledger.add_many(src.kind, src.file, df.loc[swapped, "_row"], sid[swapped], "corrected",
                    "latitude and longitude swapped; swapped back")
    lat2 = lat.where(~swapped, lon)
    lon2 = lon.where(~swapped, lat)
    keep = inside | swapped
    decimals = _decimals(df["Latitude"]) + _decimals(df["Longitude"])
    return pd.DataFrame({"school_id": sid[keep], "lon": lon2[keep].astype("float64"),
                         "lat": lat2[keep].astype("float64"), "decimals": decimals[keep].astype("int64"),
                         "_row": df.loc[keep, "_row"]})


def _decimals(raw: pd.Series) -> pd.Series:
    """Digits written after the decimal point (0 for none): the length of the match of
    ``\\.(\\d+)$`` in the stripped text, by Arrow's regex engine (``\\p{Nd}``: Python's
    Unicode ``\\d``) instead of pandas' Python loop (0.25 s per national column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = raw.astype("str").str.strip()
    arr = pa.array(text.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    found = pc.extract_regex(arr, r"\.(?P<d>\p{Nd}+)$")
    n = pc.utf8_length(pc.struct_field(found, [0])).fill_null(0)
    return pd.Series(np.asarray(n.to_numpy(zero_copy_only=False), dtype="float64"), index=raw.index)


SEAT_COLS = [Col("School ID", SCHOOL_ID_ALIASES, key="school_id"), Col("Seats ES", required=False),
             Col("Seats JHS"), Col("Seats SHS", required=False)]


def _read_seat_counts(src: Source, ledger: Ledger, columns, prefix: str) -> pd.DataFrame:
    """Seat (chair) counts by level, ``prefix`` ES/JHS/SHS: school_id, seats_es/jhs/shs, _row."""
    df = _school_ids(_read(src, columns, ledger), "School ID", src, ledger)
    out = pd.DataFrame({"school_id": df["School ID"], "_row": df["_row"]})
    text = pd.Series(False, index=df.index)
    for lvl in ("ES", "JHS", "SHS"):
        col = f"{prefix} {lvl}"
        out[f"seats_{lvl.lower()}"] = V.counts(df[col]) if col in df else np.nan
        if col in df:
            text |= _text_written(df[col], out[f"seats_{lvl.lower()}"])
    ledger.add_many(src.kind, src.file, df.loc[text, "_row"], df.loc[text, "School ID"], "corrected",
                    "count written as text (e.g. with a thousands separator): parsed")
    return _dedupe(out, "school_id", src, ledger, "school row")


def read_seats(src: Source, ledger: Ledger) -> pd.DataFrame:
    """Public school seats: school_id, seats_es, seats_jhs, seats_shs (NaN missing), _row."""
    return _read_seat_counts(src, ledger, SEAT_COLS, "Seats")


PRIVATE_SEAT_COLS = [Col("School ID", SCHOOL_ID_ALIASES, key="school_id"), Col("Chairs ES", required=False),
                     Col("Chairs JHS"), Col("Chairs SHS", required=False)]


def read_private_seats(src: Source, ledger: Ledger) -> pd.DataFrame:
    """Private school chairs: school_id, seats_es, seats_jhs, seats_shs (counts), _row."""
    return _read_seat_counts(src, ledger, PRIVATE_SEAT_COLS, "Chairs")


TRANSITION_COLS = [
    Col("LRN", ("Learner Reference Number",)),
    Col("BEIS School ID in Grade 7", ("School ID in Grade 7", "Grade 7 School ID"), key="grade7_school_id"),
    Col("BEIS School ID in Grade 6", ("School ID in Grade 6", "Grade 6 School ID"), key="grade6_school_id"),
]


#: Ledger reasons of :func:`read_transitions` (shared with the fast path in :mod:`.learners_fast`).
BAD_G6 = "invalid Grade 6 school ID (not a 6-digit DepEd ID)"
BAD_G7 = "invalid Grade 7 school ID (not a 6-digit DepEd ID)"


def read_transitions(src: Source, ledger: Ledger) -> pd.DataFrame:
    """Learner-level Grade 6 → 7 records: lrn, origin_id, destination_id, _row.

    Only the three needed columns are read (pyarrow). Rows with an invalid school ID in
    either grade are dropped. The LRN stays internal: it never leaves ingestion.
    """
    df = _read(src, TRANSITION_COLS, ledger)
    o, _ = V.school_ids(df["BEIS School ID in Grade 6"], src.old_ids)
    d, _ = V.school_ids(df["BEIS School ID in Grade 7"], src.old_ids)
    bad = (o == "") | (d == "")
    ledger.add_many(src.kind, src.file, df.loc[bad, "_row"], d.where(d != "", o)[bad], "dropped",
                    np.where((o == "")[bad], BAD_G6, BAD_G7))
    return pd.DataFrame({"lrn": df["LRN"][~bad].str.strip(), "origin_id": o[~bad], "destination_id": d[~bad],
                         "_row": df["_row"][~bad]})


BILLING_COLS = [Col("deped id", ("DepEd School ID", "DepEd ID"), required=False, key="deped_id"), Col("lrn"),
                Col("school id", ("ESC School ID", "ESC ID"), key="esc_id"), Col("grade", required=False),
                Col("esc_subsidy_amount", ("subsidy amount", "amount"), required=False, key="amount")]


def read_esc_beneficiaries(src: Source, ledger: Ledger) -> pd.DataFrame:
    """ESC billing rows: lrn, esc_id, deped_id ('' unknown), grade (NaN unknown), amount, _row."""
    df = _read(src, BILLING_COLS, ledger)
    df = _esc_ids(df, "school id", src, ledger)
    dep = V.school_ids(df["deped id"], src.old_ids)[0] if "deped id" in df else pd.Series("", index=df.index)
    grade = V.grade_number(df["grade"]) if "grade" in df else pd.Series(np.nan, index=df.index)
    amount = V.pesos(df["esc_subsidy_amount"]) if "esc_subsidy_amount" in df else np.nan
    return pd.DataFrame({"lrn": df["lrn"].str.strip(), "esc_id": df["school id"], "deped_id": dep,
                         "grade": grade, "amount": amount, "_row": df["_row"]})


SLOT_COLS = [Col("ESC School ID", ("ESC ID",), key="esc_id"),
             Col("DepEd School ID", ("DepEd ID", "BEIS School ID", "LIS School ID"), key="school_id"),
             Col("School Name", required=False), Col("slots_total", ("Total Slots", "Contracted Slots")),
             Col("slots_billed", ("Billed Slots",))]


def read_esc_slots(src: Source, ledger: Ledger) -> pd.DataFrame:
    """ESC slots per ESC ID: esc_id, school_id, slots_total, slots_billed (learners), _row."""
    df = _esc_ids(_read(src, SLOT_COLS, ledger), "ESC School ID", src, ledger)
    df = _school_ids(df, "DepEd School ID", src, ledger, "DepEd school ID")
    tot, bil = V.counts(df["slots_total"]), V.counts(df["slots_billed"])
    bad = tot.isna()
    ledger.add_many(src.kind, src.file, df.loc[bad, "_row"], df.loc[bad, "DepEd School ID"], "dropped",
                    "slots_total missing or not a count")
    out = pd.DataFrame({"esc_id": df["ESC School ID"], "school_id": df["DepEd School ID"],
                        "slots_total": tot.fillna(0).astype("int64"),
                        "slots_billed": bil.fillna(0).astype("int64"), "_row": df["_row"]})[~bad]
    return _dedupe(out, "esc_id", src, ledger, "ESC school ID")


TUITION_COLS = [Col("ESC School ID", ("ESC ID",), key="esc_id"), Col("School Name", required=False),
                Col("G7 Tuition", ("Grade 7 Tuition",)), Col("Other Fees", required=False),
                Col("Misc Fees", ("Miscellaneous Fees",), required=False)]


def read_tuition(src: Source, ledger: Ledger) -> pd.DataFrame:
    """Grade 7 fees per ESC ID: esc_id, tuition (G7 tuition + misc + other, pesos), _row.

    A blank or "N/A" Grade 7 tuition gives NaN (unknown); blank fees count as 0.
    """
    df = _esc_ids(_read(src, TUITION_COLS, ledger), "ESC School ID", src, ledger)
    fees = sum(V.pesos(df[c]).fillna(0.0) for c in ("Other Fees", "Misc Fees") if c in df)
    fixed = pd.Series(False, index=df.index)
    for c in ("G7 Tuition", "Other Fees", "Misc Fees"):
        if c in df:
            fixed |= _text_written(df[c], V.pesos(df[c]))
            if c != "G7 Tuition":
                fixed |= V.is_missing(df[c])
    ledger.add_many(src.kind, src.file, df.loc[fixed, "_row"], "", "corrected",
                    "peso string parsed, or blank / N/A fee read as 0 pesos")
    out = pd.DataFrame({"esc_id": df["ESC School ID"], "tuition": V.pesos(df["G7 Tuition"]) + fees,
                        "_row": df["_row"]})
    return _dedupe(out, "esc_id", src, ledger, "ESC school ID")


RATING_COLS = [Col("ESC School ID", ("ESC ID",), key="esc_id"),
               Col("Certification", ("Rating", "Certification Status"))]


def read_esc_rating(src: Source, ledger: Ledger) -> pd.DataFrame:
    """ESC certification per ESC ID: esc_id, esc_rating (rank 1-8, NaN unrated), _row."""
    df = _esc_ids(_read(src, RATING_COLS, ledger), "ESC School ID", src, ledger)
    out = pd.DataFrame({"esc_id": df["ESC School ID"], "esc_rating": V.rating_rank(df["Certification"]),
                        "_row": df["_row"]})
    return _dedupe(out, "esc_id", src, ledger, "ESC school ID")


LGU_COLS = [Col("Province", required=False), Col("LGU", ("City/Municipality", "LGU Name")),
            Col("Total Revenues of the LGU (in Php)", ("Total Revenues", "Total Revenue", "Revenue"), key="revenue")]


def read_lgu_income(src: Source, ledger: Ledger) -> pd.DataFrame:
    """LGU revenue: province, lgu (DTI spelling), revenue (pesos, NaN = missing incl. 0), _row."""
    df = _read(src, LGU_COLS, ledger)
    rev = V.pesos(df["Total Revenues of the LGU (in Php)"])
    return pd.DataFrame({"province": df.get("Province", pd.Series("", index=df.index)).str.strip(),
                         "lgu": df["LGU"].str.strip(),
                         "revenue": rev.mask(rev <= 0), "_row": df["_row"]})


RATE_COLS = [Col("Location tier", ("Tier", "Location"), key="tier"), Col("Grade"), Col("Amount")]
_TIER = {"ncr": "NCR", "national capital region": "NCR", "huc": "HUC", "highly urbanized city": "HUC",
         "highly urbanised city": "HUC", "other": "other", "others": "other"}


def read_subsidy_rates(src: Source, ledger: Ledger) -> pd.DataFrame:
    """ESC amounts: tier ('NCR' / 'HUC' / 'other'), grade, amount (pesos), _row."""
    df = _read(src, RATE_COLS, ledger)
    tier = df["Location tier"].map(lambda t: _TIER.get(V.fold(t), "")).astype("str")
    grade = pd.to_numeric(df["Grade"].str.extract(r"(\d+)")[0], errors="coerce")
    amount = V.pesos(df["Amount"])
    bad = (tier == "") | grade.isna() | amount.isna()
    ledger.add_many(src.kind, src.file, df.loc[bad, "_row"], "", "dropped",
                    "unrecognised tier, grade or amount")
    out = pd.DataFrame({"tier": tier, "grade": grade, "amount": amount, "_row": df["_row"]})[~bad]
    out = dedupe(out, ["tier", "grade"], src, ledger, "tier and grade (first amount kept)")
    other = out["grade"] != 7
    ledger.add_many(src.kind, src.file, out.loc[other, "_row"], "", "dropped",
                    "amount for a grade other than 7: the flows are Grade 6 to 7, only Grade 7 amounts are used")
    return out[~other]


READERS = {
    "enrollment": read_enrollment, "coordinates": read_coordinates, "seats": read_seats,
    "private_seats": read_private_seats, "transitions": read_transitions,
    "esc_beneficiaries": read_esc_beneficiaries, "esc_slots": read_esc_slots,
    "tuition": read_tuition, "esc_rating": read_esc_rating, "lgu_income": read_lgu_income,
    "subsidy_rates": read_subsidy_rates, "school_id_crosswalk": lambda src, ledger: _crosswalk(src, ledger),
}


def _crosswalk(src: Source, ledger: Ledger) -> pd.DataFrame:
    from studentflow.ingest.crosswalk import read_school_id_crosswalk

    return read_school_id_crosswalk(src, ledger)
