"""Raw files of an earlier school year, the school-ID crosswalk and the multi-year manifest.

Used by :func:`studentflow.synth.years.make_years`. An earlier year's files are written by
the same writers as the latest year's (:mod:`~studentflow.synth.raw`,
:mod:`~studentflow.synth.learners`), with the quirks planted per year, under the IDs the
schools had that year (old IDs of renamed schools). Learner files and billing lists are
gzip-compressed (the bundled sample stays small); LRNs are made from current IDs so that
they keep 12 digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.synth import enrolment as E
from studentflow.synth import learners as L
from studentflow.synth import raw as W
from studentflow.synth.io import write_csv

#: Share of crosswalk ID cells written as floats ("136512.0"), as spreadsheets export them.
FLOAT_ID_SHARE = 0.15


def _relabel(ids, idmap: dict) -> np.ndarray:
    return np.array([idmap.get(x, x) for x in ids], dtype=object)


def _esc_ids(known: pd.DataFrame, need: pd.Index, rng) -> pd.DataFrame:
    """ESC IDs of every school ever in ESC: ``known`` plus new ones for ``need`` (unique)."""
    new = need.difference(pd.Index(known["school_id"]))
    if not len(new):
        return known
    taken = set(known["esc_id"])
    while True:
        add = E.esc_ids(new, rng)
        if not (set(add["esc_id"]) & taken) and not add["esc_id"].duplicated().any():
            break
    return pd.concat([known, add], ignore_index=True)


def write_year(out: Path, year: str, prev_year: str, yr, idmap: dict, esc_known: pd.DataFrame, tiers: dict,
               rng) -> tuple[pd.DataFrame, list[dict]]:
    """Write one earlier year's yearly files and ``truth/<year>/quirks.csv.gz``.

    Parameters
    ----------
    out : pathlib.Path
    year, prev_year : str
        This school year and the one before ("YYYY-YYYY"; transitions name the latter).
    yr : studentflow.synth.evolve.Year
        The year's world under current IDs.
    idmap : dict
        Current ID → the ID this year's files use (renamed schools not yet renamed).
    esc_known : pandas.DataFrame
        ESC IDs known so far (esc_id, school_id, share; current IDs).
    tiers : dict
        Subsidy amount by tier this year (pesos).
    rng : numpy.random.Generator

    Returns
    -------
    (pandas.DataFrame, list of dict)
        The ESC IDs known after this year, and the manifest entries written.
    """
    quirks: list[dict] = []
    entries: list[dict] = []
    y1 = int(year[:4])

    def add(kind, path, **extra):
        entries.append({"kind": kind, "path": path, "school_year": year, **extra})
        return out / path

    s = yr.schools.sort_index()
    esc_now = s.index[s["esc"].to_numpy(bool)]
    esc_known = _esc_ids(esc_known, esc_now, rng)
    ids = esc_known[esc_known["school_id"].isin(esc_now)].sort_values("esc_id", ignore_index=True)
    ys = s.copy()
    ys.index = pd.Index(_relabel(s.index, idmap), name="school_id")
    W.enrollment(add("enrollment", f"enrollment_sy{year}.xlsx", sheet="DATA"), ys.reset_index(), rng, quirks,
                 school_year=year)
    origins = yr.cohort.index
    people = L.learners(yr.flows, origins, rng)  # LRNs from current IDs (12 digits)
    people["origin_id"] = _relabel(people["origin_id"], idmap)
    people["destination_id"] = _relabel(people["destination_id"], idmap)
    for name, df in L.transitions(people, ys, rng, quirks,
                                  lambda r: f"gr7_enrollees_{L.region_slug(r)}_sy{year}.csv.gz").items():
        df = df.assign(**{"SY enrolled in Grade 6": prev_year})
        write_csv(add("transitions", name), df)
    y_ids = ids.assign(school_id=_relabel(ids["school_id"], idmap))
    billed = yr.billed.copy()
    billed.index = pd.Index(_relabel(billed.index, idmap), name="school_id")
    bill, per_id = L.billing(people, ys, y_ids, billed, origins, rng, quirks,
                             lambda r: f"esc_billing_{L.region_slug(r)}_sy{year}.csv.gz")
    for name, df in bill.items():
        stmt = df["billing statement number"].str.replace(
            r"^BS-(2023|2024)-", lambda m: f"BS-{y1 + int(m.group(1)) - 2023}-", regex=True)
        write_csv(add("esc_beneficiaries", name), df.assign(**{"billing statement number": stmt}))
    W.esc_slots(add("esc_slots", f"esc_slots_sy{year}.xlsx", sheet="ESC Slots"), ys, per_id, billed, quirks)
    W.tuition(add("tuition", f"esc_tuition_peac_sy{year}.xlsx", sheet="Tuition"), ys, per_id, rng, quirks)
    W.subsidy_rates(add("subsidy_rates", f"esc_subsidy_rates_sy{year}.csv"), tiers)
    d = out / "truth" / year
    d.mkdir(parents=True, exist_ok=True)
    q = pd.DataFrame(quirks, columns=["kind", "file", "row", "school_id", "quirk", "outcome"])
    write_csv(d / "quirks.csv.gz", q.sort_values(["kind", "file", "row"], kind="stable", ignore_index=True))
    return esc_known, entries


def crosswalk_file(path: Path, ev, world: pd.DataFrame, rng) -> None:
    """DepEd "School ID Mapping" CSV: one row per renamed school (current ID, old ID, name)."""
    r = ev.renamed.sort_values("school_id", ignore_index=True)
    n = len(r)

    def cells(ids):
        as_float = rng.random(n) < FLOAT_ID_SHARE
        return [f"{int(x)}.0" if f else x for x, f in zip(ids, as_float)]

    df = pd.DataFrame({"school_id_2024": cells(r["school_id"]), "BEIS School ID": r["school_id"].to_numpy(),
                       "old_school_id": cells(r["old_id"]),
                       "School Name": world.loc[r["school_id"], "name"].to_numpy()})
    write_csv(path, df)


def manifest_text(entries: list[dict]) -> str:
    """``manifest.toml`` text of ``entries`` (kind, path, sheet, school_year, index, columns)."""
    lines = ["# Synthetic study area over several school years, written by studentflow.synth.make_years",
             "# (not real data). Sources with school_year belong to that year; the others serve every year.", ""]
    for e in entries:
        lines.append("[[source]]")
        for k in ("kind", "path", "sheet", "school_year", "index"):
            if k in e:
                lines.append(f'{k} = "{e[k]}"')
        if e.get("columns"):
            lines.append("[source.columns]")
            lines += [f'{k} = "{v}"' for k, v in e["columns"].items()]
        lines.append("")
    return "\n".join(lines)
