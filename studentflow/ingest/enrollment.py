"""The school list with wide enrolment, in either real layout.

- DepEd's "SCHOOL LEVEL DATA ON ENROLLMENT" workbook: ``BEIS School ID``, ``Modified COC``,
  ``G1 Male`` … ``G10 Female`` under 3-5 title rows;
- the public data sets' wide snake_case CSV (one per school year): ``school_id``,
  ``school_name``, ``region``, …, ``offers_es``, ``offers_jhs``, ``offers_shs``, then
  ``g1_male`` … ``g10_female`` and Senior High counts by strand (``g11_stem_male``,
  ``g12_tvl_female``, from SY 2025-2026 ``g11_sshs_acad_male``: a strand may hold
  underscores, so a header is split from both ends: grade first, sex last, strand between).

The offering comes from ``Modified COC`` when the file has it, else from the three
``offers_*`` flags, else (imputed, in the ledger) from the grades with learners enrolled.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from studentflow.ingest import values as V
from studentflow.ingest.columns import Col
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source
from studentflow.ingest.readbase import SCHOOL_ID_ALIASES, dedupe, read, school_id_col
from studentflow.schema import GRADES, OFFERINGS

ENROLLMENT_COLS = [
    Col("Region"), Col("Division", required=False), Col("Province", required=False),
    Col("Municipality", ("City/Municipality", "Municipality/City")),
    Col("BEIS School ID", SCHOOL_ID_ALIASES, key="school_id"),
    Col("School Name", ("Name of School",)), Col("Sector"),
    Col("Modified COC", ("COC", "Offering"), required=False, key="offering"),
    *[Col(f"Offers {lvl}", required=False) for lvl in ("ES", "JHS", "SHS")],
    *[Col(f"G{g} {s}", (f"Grade {g} {s}",)) for g in GRADES for s in ("Male", "Female")],
]
#: Senior High count headers (snake_case): grade 11 or 12, an optional strand, the sex.
SHS_HEADER = re.compile(r"g1[12](_.+)?_(male|female)")
_YES = {"yes", "y", "true", "1", "x", "offered", "with"}
_CODE = {(True, False, False): "Purely ES", (True, True, False): "ES and JHS", (False, True, True): "JHS with SHS",
         (False, True, False): "Purely JHS", (True, True, True): "All Offering", (False, False, True): "Purely SHS"}


def grade_strand_sex(header: str) -> tuple[int, str, str] | None:
    """Split a wide count header from both ends: ("g11_sshs_acad_male") → (11, "sshs_acad", "male").

    Returns None unless the header is ``g<grade>[_<strand>]_<male|female>`` (snake_case,
    any case or spacing in the file).
    """
    parts = re.sub(r"[^a-z0-9]+", "_", str(header).lower()).strip("_").split("_")
    if len(parts) < 2 or not re.fullmatch(r"g\d{1,2}", parts[0]) or parts[-1] not in ("male", "female"):
        return None
    return int(parts[0][1:]), "_".join(parts[1:-1]), parts[-1]


def _flag(raw: pd.Series) -> pd.Series:
    return raw.astype("str").map(V.fold).isin(_YES)


def _offering(df: pd.DataFrame, enrol: pd.DataFrame, extra: list, src: Source, ledger: Ledger) -> pd.Series:
    """Canonical offering per row (rule in the module docstring; '' unrecognised)."""
    if "Modified COC" in df:
        return V.offering(df["Modified COC"])
    if all(f"Offers {lvl}" in df for lvl in ("ES", "JHS", "SHS")):
        levels = [_flag(df[f"Offers {lvl}"]) for lvl in ("ES", "JHS", "SHS")]
    else:
        shs_cols = [h for h in extra if (grade_strand_sex(h) or (0,))[0] in (11, 12)]
        shs = sum((V.counts(df[h]).fillna(0) for h in shs_cols), pd.Series(0.0, index=df.index))
        levels = [enrol[[f"enrol_g{g}" for g in range(1, 7)]].sum(axis=1) > 0,
                  enrol[[f"enrol_g{g}" for g in range(7, 11)]].sum(axis=1) > 0, shs > 0]
        ledger.add_many(src.kind, src.file, df["_row"], df["BEIS School ID"], "imputed",
                        "no offering column (Modified COC or offers_es/jhs/shs): offering derived from "
                        "the grades with learners enrolled")
    text = [_CODE.get(k, "") for k in zip(*(np.asarray(x, dtype=bool) for x in levels))]
    return pd.Series([OFFERINGS.get(t, "") for t in text], index=df.index, dtype="str")


def read_enrollment(src: Source, ledger: Ledger) -> pd.DataFrame:
    """School list with wide enrolment → one row per school.

    Columns: school_id, name, region, division, province, municipality, sector, offering,
    enrol_g1 … enrol_g10 (learners, male + female), _row. Rows with an invalid ID,
    unrecognised region, sector or offering are dropped; repeated school rows merged.
    """
    df = read(src, ENROLLMENT_COLS, ledger, extra=SHS_HEADER)
    extra = list(df.attrs.get("extra", []))
    raw_id = df["BEIS School ID"]
    df = school_id_col(df, "BEIS School ID", src, ledger)
    fixed = raw_id[df.index] != df["BEIS School ID"]
    ledger.add_many(src.kind, src.file, df.loc[fixed, "_row"], df.loc[fixed, "BEIS School ID"], "corrected",
                    "school ID written as a number, padded or without its leading zero: normalised to 6 digits")
    blank = pd.Series("", index=df.index, dtype="str")
    out = pd.DataFrame({
        "school_id": df["BEIS School ID"], "name": df["School Name"].str.strip(),
        "region": V.region(df["Region"]), "region_raw": df["Region"],
        "division": df.get("Division", blank).str.strip(),
        "province": df.get("Province", blank).str.strip(),
        "municipality": df["Municipality"].str.strip(),
        "sector": V.sector(df["Sector"]),
        "_row": df["_row"],
    })
    for g in GRADES:
        m, f = V.counts(df[f"G{g} Male"]).fillna(0), V.counts(df[f"G{g} Female"]).fillna(0)
        out[f"enrol_g{g}"] = (m + f).astype("int64")
    out.insert(out.columns.get_loc("_row"), "offering", _offering(df, out, extra, src, ledger))
    for col, what in (("region", "Region"), ("sector", "Sector"), ("offering", "Modified COC")):
        bad = out[col] == ""
        ledger.add_many(src.kind, src.file, out.loc[bad, "_row"], out.loc[bad, "school_id"], "dropped",
                        f"unrecognised {what} value")
        out = out[~bad]
    variant = out["region_raw"] != out["region"]
    ledger.add_many(src.kind, src.file, out.loc[variant, "_row"], out.loc[variant, "school_id"], "corrected",
                    "region name written differently: canonicalised")
    out = out.drop(columns="region_raw")
    same = out.drop(columns="_row").duplicated(keep="first")
    ledger.add_many(src.kind, src.file, out.loc[same, "_row"], out.loc[same, "school_id"], "dropped",
                    "exact duplicate of an earlier school row")
    return dedupe(out[~same], "school_id", src, ledger, "school row (values differ; first kept)")
