"""Learner-level files: Grade 7 enrollees (transitions) and the ESC billing lists.

One row per learner with a 12-digit LRN whose first 6 digits are the school of first
registration. Bad rows (repeated LRNs, invalid Grade 6 ids, Grade 6 schools outside the
area) are *extra* rows, so the school-level truth flows are exactly what a correct ingest
keeps. LRNs are synthetic; they are written only to the learner-level raw files, never to
truth/ or quirks.csv.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.synth.io import peso

TRANSITION_COLUMNS = ["Region", "Division", "LRN", "BEIS School ID in Grade 7", "School Namein Grade 7",
                      "SY enrolled in Grade 6", "BEIS School ID in Grade 6", "School Name in Grade 6"]
BILLING_COLUMNS = ["deped id", "lrn", "school id", "school name", "grade", "billing statement number",
                   "esc_subsidy_amount"]
#: Quirk rates (share of learner rows).
REPEATED_LRN_RATE = 0.008
INVALID_ID_RATE = 0.002
OUTSIDE_AREA_RATE = 0.003
MULTI_BILLING_RATE = 0.05
TRANSFEREE_SHARE = 0.08
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9, "X": 10,
          "XI": 11, "XII": 12, "XIII": 13}


def region_slug(region: str) -> str:
    """File-name slug of a canonical region: "NCR" → "ncr", "Region IV-A" → "region4a"."""
    if region.startswith("Region "):
        num, _, suffix = region[7:].partition("-")
        return f"region{_ROMAN.get(num, num.lower())}{suffix.lower()}"
    return region.lower().replace(" ", "").replace("-", "")


def learners(flows: pd.DataFrame, origins: pd.Index, rng) -> pd.DataFrame:
    """One row per learner: origin_id, destination_id, esc (bool), lrn (12-digit str).

    The first ``esc_beneficiaries`` learners of each flow are the ESC beneficiaries.
    """
    reps = flows["learners"].to_numpy(np.int64)
    idx = np.repeat(np.arange(len(flows)), reps)
    within = np.arange(len(idx)) - np.repeat(np.cumsum(reps) - reps, reps)
    out = pd.DataFrame(
        {
            "origin_id": flows["origin_id"].to_numpy()[idx],
            "destination_id": flows["destination_id"].to_numpy()[idx],
            "esc": within < flows["esc_beneficiaries"].to_numpy()[idx],
        }
    )
    prefix = out["origin_id"].to_numpy().copy()
    moved = rng.random(len(out)) < TRANSFEREE_SHARE
    prefix[moved] = rng.choice(origins.to_numpy(), size=int(moved.sum()))
    out["lrn"] = _lrns(prefix, rng)
    return out


def _lrns(prefix: np.ndarray, rng, base: int = 0) -> np.ndarray:
    s = pd.Series(prefix)
    serial = s.groupby(s).cumcount().to_numpy()
    uniq, inv = np.unique(prefix, return_inverse=True)
    offset = rng.integers(0, 400_000, len(uniq))[inv] if base == 0 else base
    return np.array([f"{p}{n:06d}" for p, n in zip(prefix, serial + offset)], dtype=object)


def transitions(people: pd.DataFrame, schools: pd.DataFrame, rng, quirks: list, file_of) -> dict[str, pd.DataFrame]:
    """Gr 7 enrollee files, one per Grade 7 region, with extra bad rows listed in ``quirks``.

    Parameters
    ----------
    people : pandas.DataFrame
        From :func:`learners`.
    schools : pandas.DataFrame
        Institutions with name, region, division.
    quirks : list
        Quirk records are appended (kind, file, row, school_id, quirk, outcome).
    file_of : callable
        region → file name.

    Returns
    -------
    dict
        file name → DataFrame with :data:`TRANSITION_COLUMNS` (all strings).
    """
    n = len(people)
    g7 = schools.index.get_indexer(people["destination_id"])
    g6 = schools.index.get_indexer(people["origin_id"])

    def col(name, pos):
        return schools[name].to_numpy(dtype=object)[pos]

    t = pd.DataFrame(
        {
            "Region": col("region", g7),
            "Division": col("division", g7),
            "LRN": people["lrn"].to_numpy(),
            "BEIS School ID in Grade 7": people["destination_id"].to_numpy(),
            "School Namein Grade 7": col("name", g7),
            "SY enrolled in Grade 6": "2022-2023",
            "BEIS School ID in Grade 6": people["origin_id"].to_numpy(),
            "School Name in Grade 6": col("name", g6),
        }
    )
    t["_key"] = np.arange(n) * 2.0
    t["_quirk"] = ""
    # repeated LRNs: exact duplicate rows right after the original
    dup = t.iloc[np.flatnonzero(rng.random(n) < REPEATED_LRN_RATE)].copy()
    dup["_key"] += 1.0
    dup["_quirk"] = "repeated_lrn"
    # invalid Grade 6 ids and Grade 6 schools outside the study area: extra learners
    extras = []
    for quirk, rate in (("invalid_id", INVALID_ID_RATE), ("outside_area", OUTSIDE_AREA_RATE)):
        k = int(rng.binomial(n, rate))
        e = t.iloc[rng.choice(n, size=k, replace=False)].copy()
        if quirk == "invalid_id":
            bad = np.array(["", "N/A", "0", "1234", "12345678", "13651X", "9999999"], dtype=object)
            e["BEIS School ID in Grade 6"] = bad[rng.integers(0, len(bad), k)]
        else:
            ids = rng.choice(np.arange(200_000, 300_000), size=k, replace=False)
            e["BEIS School ID in Grade 6"] = [f"{x:06d}" for x in ids]
            e["School Name in Grade 6"] = [f"Outside Area Elementary School {x % 997}" for x in ids]
        base = 950_000 if quirk == "invalid_id" else 975_000  # disjoint serials: LRNs stay unique
        e["LRN"] = _lrns(rng.choice(np.arange(100_000, 200_000), size=k).astype(str), rng, base=base)
        e["_key"] = rng.integers(0, n, k) * 2.0 + 1.5
        e["_quirk"] = quirk
        extras.append(e)
    t = pd.concat([t, dup, *extras], ignore_index=True).sort_values("_key", kind="stable", ignore_index=True)
    outcome = {"repeated_lrn": "dropped", "invalid_id": "dropped", "outside_area": "dropped"}
    files = {}
    for region, part in t.groupby("Region", sort=True):
        name = file_of(region)
        part = part.reset_index(drop=True)
        for row in np.flatnonzero(part["_quirk"].to_numpy() != ""):
            q = part.at[row, "_quirk"]
            sid = part.at[row, "BEIS School ID in Grade 6"] if q != "invalid_id" else ""
            quirks.append({"kind": "transitions", "file": name, "row": int(row) + 2, "school_id": sid,
                           "quirk": q, "outcome": outcome[q]})
        files[name] = part[TRANSITION_COLUMNS]
    return files


def billing(people: pd.DataFrame, schools: pd.DataFrame, ids: pd.DataFrame, slots: pd.DataFrame,
            origins: pd.Index, rng, quirks: list, file_of) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """ESC billing lists (one per region of the ESC school) and billed learners per ESC ID.

    Every beneficiary learner in ``people`` is billed at its Grade 7 school under one of
    the school's ESC IDs; ``slots.billed - slots.beneficiaries`` further learners per school
    are billed without appearing in the transitions. A few learners get two billing rows.

    Returns
    -------
    (dict, pandas.DataFrame)
        file name → billing DataFrame (:data:`BILLING_COLUMNS`), and per ESC ID: esc_id,
        school_id, billed (distinct learners).
    """
    ben = people.loc[people["esc"], ["destination_id", "lrn"]].rename(columns={"destination_id": "school_id"})
    extra_n = (slots["billed"] - slots["beneficiaries"]).to_numpy(np.int64)
    ex_school = np.repeat(slots.index.to_numpy(), extra_n)
    ex_prefix = rng.choice(origins.to_numpy(), size=len(ex_school))
    extra = pd.DataFrame({"school_id": ex_school, "lrn": _lrns(ex_prefix, rng, base=900_000)})
    # an extra LRN shares its prefix pool with real learners: serial ≥ 900000 keeps it unique
    b = pd.concat([ben, extra], ignore_index=True)
    # choose an ESC ID per learner by the ID's share of the school's slots
    b["esc_id"] = ""
    multi = ids[ids.duplicated("school_id", keep=False)]
    school_col = b["school_id"].to_numpy()
    for sid, grp in multi.groupby("school_id", sort=True):
        rows = np.flatnonzero(school_col == sid)
        pick = rng.choice(grp["esc_id"].to_numpy(), size=len(rows), p=grp["share"].to_numpy() / grp["share"].sum())
        b.loc[rows, "esc_id"] = pick
    single = ids.groupby("school_id").filter(lambda g: len(g) == 1).set_index("school_id")["esc_id"]
    empty = b["esc_id"] == ""
    b.loc[empty, "esc_id"] = single.reindex(b.loc[empty, "school_id"]).to_numpy()
    pos = schools.index.get_indexer(b["school_id"])
    b["school name"] = schools["name"].to_numpy(dtype=object)[pos]
    b["region"] = schools["region"].to_numpy(dtype=object)[pos]
    b["amount"] = [peso(x) for x in schools["esc_amount"].to_numpy(float)[pos]]
    b = b.sort_values(["region", "esc_id", "lrn"], ignore_index=True)
    b["stmt"] = [f"BS-2023-{e}-{k:03d}" for e, k in zip(b["esc_id"], b.groupby("esc_id").cumcount() // 40 + 1)]
    billed = b.groupby("esc_id").size()
    b["_quirk"] = ""
    two = b.iloc[np.flatnonzero(rng.random(len(b)) < MULTI_BILLING_RATE)].copy()
    two["stmt"] = [f"BS-2024-{e}-{k:03d}" for e, k in zip(two["esc_id"], rng.integers(1, 50, len(two)))]
    two["_quirk"] = "several_billing_rows"
    b["_order"] = np.arange(len(b)) * 2.0
    two["_order"] = b.loc[two.index, "_order"] + 1.0
    b = pd.concat([b, two], ignore_index=True).sort_values("_order", ignore_index=True)
    files = {}
    for region, part in b.groupby("region", sort=True):
        name = file_of(region)
        part = part.reset_index(drop=True)
        for row in np.flatnonzero(part["_quirk"].to_numpy() != ""):
            quirks.append({"kind": "esc_beneficiaries", "file": name, "row": int(row) + 2,
                           "school_id": part.at[row, "school_id"], "quirk": "several_billing_rows",
                           "outcome": "merged"})
        files[name] = pd.DataFrame(
            {
                "deped id": part["school_id"], "lrn": part["lrn"], "school id": part["esc_id"],
                "school name": part["school name"], "grade": 7, "billing statement number": part["stmt"],
                "esc_subsidy_amount": part["amount"],
            }
        )
    per_id = ids[["esc_id", "school_id"]].copy()
    per_id["billed"] = billed.reindex(per_id["esc_id"], fill_value=0).to_numpy(np.int64)
    return files, per_id
