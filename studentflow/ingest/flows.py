"""Learner-level Grade 6 → 7 records → school-level flows; LRNs end here.

Rules (each event in the ledger):

- a record whose Grade 6 school is not in the enrolment list is outside the study area
  (dropped); likewise a Grade 7 school not in the list;
- a repeated LRN (across all transitions files, in manifest and row order) keeps its first
  record; later ones are dropped;
- ESC beneficiaries: a learner is a beneficiary of the Grade 7 school if a Grade 7 billing
  row with their LRN names that school (ESC ID through the crosswalk from ``esc_slots``,
  else the billing row's DepEd ID). Several billing rows of one learner at one school
  are one beneficiary. Billing rows that match no kept Grade 7 record, or that are not
  Grade 7, are dropped.
"""

from __future__ import annotations

import pandas as pd

from studentflow.ingest.harmonise import drop_rows
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.values import isin


#: Ledger reasons of the flow rules (shared with the compact path, :mod:`.learners`).
REASONS = {
    "origin": "Grade 6 school outside the study area (not in the enrolment list)",
    "destination": "Grade 7 school not in the enrolment list",
    "lrn": "LRN blank or malformed (not 12 digits)",
    "repeat": "repeated LRN: learner already counted in an earlier record",
    "no_school": "ESC school ID not in the ESC slots list and no DepEd ID",
    "grade": "billing row not for Grade 7",
    "billing_repeat": "further billing row of the same learner at the same school: one beneficiary",
    "unmatched": "no kept Grade 7 record of this learner at this school",
}


def _lrn(s: pd.Series) -> pd.Series:
    return s.astype("str").str.strip().str.replace(r"\.0*$", "", regex=True)


def build_flows(trans: pd.DataFrame, billing: pd.DataFrame | None, schools_index: pd.Index,
                crosswalk: pd.Series, ledger: Ledger) -> pd.DataFrame:
    """School-level flows (origin_id, destination_id, learners, esc_beneficiaries).

    The reference implementation on stacked string frames. :func:`load_bundle` uses the
    streaming equivalent, :func:`studentflow.ingest.learners.combine_flows` (same flows
    and ledger rows on integer arrays); tests compare the two.

    Parameters
    ----------
    trans : DataFrame
        Stacked transitions readers' output with ``_kind``, ``_file``, ``_row``.
    billing : DataFrame or None
        Stacked ESC billing readers' output.
    schools_index : Index
        Known school IDs (the study area).
    crosswalk : Series
        ESC ID → DepEd school ID.
    """
    t = trans.assign(lrn=_lrn(trans["lrn"]), school_id=trans["destination_id"])
    t = drop_rows(ledger, t, ~isin(t["origin_id"], schools_index), REASONS["origin"])
    t = drop_rows(ledger, t, ~isin(t["destination_id"], schools_index), REASONS["destination"])
    blank = t["lrn"].str.fullmatch(r"\d{12}").fillna(False).astype(bool).to_numpy()
    t = drop_rows(ledger, t, ~blank, REASONS["lrn"])
    t = drop_rows(ledger, t, t.duplicated("lrn", keep="first").to_numpy(), REASONS["repeat"])
    t = t.assign(esc=False)
    if billing is not None and len(billing):
        b = billing.assign(lrn=_lrn(billing["lrn"]))
        school = b["esc_id"].map(crosswalk)
        school = school.where(school.notna(), b["deped_id"].where(b["deped_id"] != "")).fillna("")
        b = b.assign(school_id=school.astype("str"))
        b = drop_rows(ledger, b, b["school_id"] == "", REASONS["no_school"])
        b = drop_rows(ledger, b, b["grade"].notna() & (b["grade"] != 7), REASONS["grade"])
        b = drop_rows(ledger, b, b.duplicated(["lrn", "school_id"], keep="first").to_numpy(),
                  REASONS["billing_repeat"], action="merged")
        key_t = t["lrn"] + "|" + t["destination_id"]
        key_b = b["lrn"] + "|" + b["school_id"]
        b = drop_rows(ledger, b, ~isin(key_b, key_t), REASONS["unmatched"])
        t = t.assign(esc=isin(key_t, key_b))
    g = t.groupby(["origin_id", "destination_id"], sort=True)
    flows = pd.DataFrame({"learners": g.size(), "esc_beneficiaries": g["esc"].sum()}).reset_index()
    return flows.astype({"origin_id": "str", "destination_id": "str",
                         "learners": "int64", "esc_beneficiaries": "int64"})
