"""Enrolment by grade, JHS seats and the ESC ledger (slots, ESC IDs, billed learners).

Grade 7 enrolment of every JHS is its inflow from the flows plus a few learners from
outside the data (transferees, repeaters); Grades 8-10 follow with attrition. Public JHS
seats are classrooms × 40-45 chairs with seat utilisation drawn so that most public JHS
are congested (utilisation > 1). ESC slots: contracted slots and
billable capacity come from :mod:`studentflow.synth.rationing`; billed learners =
admitted beneficiaries in the flows plus learners outside the transition data, up to the
school's billable capacity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.schema import OFFERS_ES, OFFERS_JHS

#: Public JHS seat utilisation ~ lognormal(log(UTIL_MEDIAN), UTIL_SIGMA).
UTIL_MEDIAN = 1.22
UTIL_SIGMA = 0.28
#: Share of ESC schools holding two ESC IDs.
TWO_ESC_IDS_SHARE = 0.08


def enrolment(schools: pd.DataFrame, grade6: pd.Series, flows: pd.DataFrame, rng) -> pd.DataFrame:
    """Enrolment (learners) by grade, JHS enrolment and JHS seats for every school.

    Parameters
    ----------
    schools : pandas.DataFrame
        Institutions (index school_id) with sector, offering.
    grade6 : pandas.Series
        Grade 6 enrolment of the origins (learners), index school_id.
    flows : pandas.DataFrame
        School-level flows (schema.FLOWS).

    Returns
    -------
    pandas.DataFrame
        Index school_id; enrol_g1 … enrol_g10, jhs_enrolment (learners), jhs_seats (float,
        NaN where no JHS), seats_es, seats_shs (chairs, public and private).
    """
    n = len(schools)
    off = schools["offering"]
    es = off.isin(OFFERS_ES).to_numpy()
    jhs = off.isin(OFFERS_JHS).to_numpy()
    out = pd.DataFrame(index=schools.index)
    g6 = grade6.reindex(schools.index, fill_value=0).to_numpy(np.int64)
    for g in range(1, 6):
        out[f"enrol_g{g}"] = np.where(es, np.round(g6 * rng.uniform(0.95, 1.12, n)), 0).astype(np.int64)
    out["enrol_g6"] = g6
    inflow = flows.groupby("destination_id")["learners"].sum().reindex(schools.index, fill_value=0).to_numpy()
    g7 = inflow + np.where(jhs, rng.poisson(np.maximum(2.0, 0.05 * inflow)), 0)
    out["enrol_g7"] = np.where(jhs, g7, 0).astype(np.int64)
    prev = out["enrol_g7"].to_numpy()
    for g in range(8, 11):
        prev = np.round(prev * rng.uniform(0.9, 1.02, n)).astype(np.int64)
        out[f"enrol_g{g}"] = prev
    out["jhs_enrolment"] = out[[f"enrol_g{g}" for g in range(7, 11)]].sum(axis=1).astype(np.int64)
    public = (schools["sector"] == "public").to_numpy()
    util = np.exp(rng.normal(np.log(UTIL_MEDIAN), UTIL_SIGMA, n))
    per_room = rng.integers(40, 46, n)
    rooms = np.maximum(1, np.round(out["jhs_enrolment"].to_numpy() / util / per_room))
    private_seats = np.round(out["jhs_enrolment"].to_numpy() / rng.uniform(0.6, 0.95, n))
    seats = np.where(public, rooms * per_room, private_seats)
    out["jhs_seats"] = np.where(jhs, seats, np.nan)
    es_enrol = out[[f"enrol_g{g}" for g in range(1, 7)]].sum(axis=1).to_numpy()
    out["seats_es"] = np.where(es, np.round(es_enrol / rng.uniform(0.8, 1.3, n)), np.nan)
    shs = off.isin({"jhs_shs", "purely_shs", "all_offering"}).to_numpy()
    out["seats_shs"] = np.where(shs, rng.integers(80, 1200, n), np.nan)
    return out


def esc_ids(esc_schools: pd.Index, rng) -> pd.DataFrame:
    """ESC IDs (7 digits) of the ESC schools; a few schools hold two.

    Returns
    -------
    pandas.DataFrame
        esc_id (str), school_id, share (of the school's slots), sorted by esc_id.
    """
    two = rng.random(len(esc_schools)) < TWO_ESC_IDS_SHARE
    n = len(esc_schools) + int(two.sum())
    ids = rng.choice(np.arange(1_000_000, 9_999_999), size=n, replace=False)
    school = np.concatenate([esc_schools.to_numpy(), esc_schools.to_numpy()[two]])
    first_share = np.where(two, rng.uniform(0.5, 0.8, len(esc_schools)), 1.0)
    share = np.concatenate([first_share, 1.0 - first_share[two]])
    out = pd.DataFrame({"esc_id": [str(x) for x in ids], "school_id": school, "share": share})
    return out.sort_values("esc_id", ignore_index=True)


def esc_slots(capacity: pd.DataFrame, rng) -> pd.DataFrame:
    """Billed and contracted ESC slots per ESC school (learners).

    billed = admitted beneficiaries in the flows + learners billed outside the transition
    data (Poisson(0.1 × admitted + 0.3)), the latter only up to the school's billable
    capacity: a full school bills exactly its capacity, and no school bills more than it.

    Parameters
    ----------
    capacity : pandas.DataFrame
        Per ESC school (index school_id): ``slots`` (contracted K), ``capacity`` (billable
        C) and ``admitted`` (learners), from :func:`studentflow.synth.rationing.draw_admissions`.

    Returns
    -------
    pandas.DataFrame
        Index school_id; columns beneficiaries, billed, slots, capacity (int learners).
    """
    ben = capacity["admitted"].to_numpy(np.int64)
    cap = capacity["capacity"].to_numpy(np.int64)
    extra = np.minimum(rng.poisson(0.1 * ben + 0.3), np.maximum(0, cap - ben))
    return pd.DataFrame({"beneficiaries": ben, "billed": ben + extra,
                         "slots": capacity["slots"].to_numpy(np.int64), "capacity": cap}, index=capacity.index)
