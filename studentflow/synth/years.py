"""``make_years``: several consecutive school years of one evolving synthetic world.

The latest year is exactly :func:`~studentflow.synth.region.make_region`'s output for the
same seed and scale (its raw files and ``truth/`` byte for byte). Earlier years are drawn
backwards from it (:mod:`studentflow.synth.evolve`) with one truth (the same NB2
coefficients, intercept, dispersion and rationing rules) on each year's covariates:

- the cohort moves on: year *t*'s Grade 6 enrolment at an origin is year *t+1*'s Grade 7
  pool from it divided by the stay rate (plus noise); JHS grades shift back one year;
- schools open, close (new private JHS schools) and get new IDs; earlier years' files use
  the old ID, and ``school_id_mapping.csv`` (DepEd "School ID Mapping" columns
  ``school_id_2024, BEIS School ID, old_school_id``; some old IDs are 7-digit
  ``1XXXXXX`` twins; some cells written ``123456.0``) maps them to the current IDs;
- ESC slots are re-contracted with noise, tuition inflates, schools join and leave ESC;
- one ESC policy change between the last two years: :data:`~.evolve.POLICY_TIER`'s
  amount rises by :data:`~.evolve.POLICY_INCREASE` pesos and some full ESC schools get
  added contracted slots (the year before holds fewer).

Yearly files carry the year in their names (``enrollment_sy2022-2023.xlsx`` …); shared
files (coordinates, seats, roads, matrix, LGU revenue, rating, crosswalk) serve every year.
The road matrix gains columns for ESC schools absent from the latest year's ESC list
(its other cells unchanged); closed schools' points are appended to ``school_coordinates.csv``
(in the latest year they are dropped as schools not in the enrolment list, in the ledger).
Earlier years' truth is under ``truth/<school_year>/`` (the same tables as ``truth/``,
gzip-compressed: ``pairs.csv.gz`` …, and ``params.json``); ``truth/years.json`` describes the
years, the policy change and the schools opened, closed, renamed, joining and leaving ESC.
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.schema import OFFERS_ES
from studentflow.synth import evolve as V
from studentflow.synth.io import write_csv, write_json, write_npy
from studentflow.synth.region import RegionInfo, _division, _shares, make_region
from studentflow.synth.years_write import crosswalk_file, manifest_text, write_year

LATEST = "2023-2024"


@dataclass(frozen=True)
class YearsInfo:
    """What :func:`make_years` wrote.

    Attributes
    ----------
    out_dir, manifest : pathlib.Path
    years : tuple of str
        School years, oldest first ("2021-2022", …).
    latest : RegionInfo
        :func:`make_region`'s result for the latest year.
    counts : dict
        Per school year: learners, ESC beneficiaries, demand, slots, schools.
    policy : dict
        The policy change (tier, amounts before / after, schools and slots added).
    """

    out_dir: Path
    manifest: Path
    years: tuple[str, ...]
    latest: RegionInfo
    counts: dict = field(default_factory=dict)
    policy: dict = field(default_factory=dict)

    def summary(self) -> str:
        """Plain text: the latest year's summary, then one line per year and the policy."""
        lines = [self.latest.summary(), f"school years: {', '.join(self.years)}"]
        for y, c in self.counts.items():
            lines.append(f"  {y}: " + ", ".join(f"{k} {v:,}" for k, v in c.items()))
        if self.policy:
            p = self.policy
            lines.append(f"  policy {p['between'][0]} -> {p['between'][1]}: {p['tier']} amount "
                         f"{p['amount_before']:,.0f} -> {p['amount_after']:,.0f} pesos, "
                         f"{p['slots_added_total']:,} slots added at {p['schools']} schools")
        return "\n".join(lines)


def school_years(n: int, latest: str = LATEST) -> tuple[str, ...]:
    """``n`` consecutive school years ending with ``latest`` ("YYYY-YYYY"), oldest first."""
    y = int(latest[:4])
    return tuple(f"{y - k}-{y - k + 1}" for k in range(n - 1, -1, -1))


def make_years(seed: int = 0, scale: float = 1.0, out_dir=None, years: int = 3, *, latest: str = LATEST,
               manifest_name: str = "manifest.toml", **region_kw) -> YearsInfo:
    """Write ``years`` school years of one synthetic world (raw files, manifest, truth).

    Parameters
    ----------
    seed, scale : int, float
        As :func:`make_region` (the latest year is its output for them).
    out_dir : str or Path, optional
        Target folder; None: a new temporary directory.
    years : int
        Number of consecutive school years (>= 1; 1 is :func:`make_region` alone).
    latest : str
        The latest school year, "YYYY-YYYY" (the one make_region writes).
    manifest_name : str
        File name of the multi-year manifest (make_region's one-year ``manifest.toml``
        is replaced unless another name is given).
    **region_kw
        Passed on to :func:`make_region` (regions, radius_km, write_matrix, mix).

    Returns
    -------
    YearsInfo
    """
    if int(years) != years or years < 1:
        raise ValueError(f"years: must be a whole number >= 1, got {years!r}")
    out = Path(tempfile.mkdtemp(prefix="studentflow_years_")) if out_dir is None else Path(out_dir)
    info = make_region(seed=seed, scale=scale, out_dir=out, **region_kw)
    sy = school_years(int(years), latest)
    if years == 1:
        return YearsInfo(out, info.manifest, sy, info, {})
    last = years - 1
    rng = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 20260217, 21]).spawn(years + 2)]
    st = _latest_state(out)
    ev = V.plan_events(st["schools"], st["capacity"], years, scale, rng[0])
    world, util = _world(st, ev, rng[1])
    base = st["pairs"][["origin_id", "destination_id", "distance_km"]]
    extra = _extend_matrix(out, world, util.index.difference(st["capacity"].index), st, base)
    tiers_l = dict(st["tiers"])
    tiers_e = {**tiers_l, V.POLICY_TIER: tiers_l[V.POLICY_TIER] - V.POLICY_INCREASE}
    nxt = V.Year(st["schools"], st["cohort"], st["capacity"]["slots"])
    drawn: dict[int, V.Year] = {}
    for k in range(last - 1, -1, -1):
        nxt = V.draw_year(nxt, k, last, ev, world, util, tiers_e, base, extra, st["truth"], rng[2 + k])
        drawn[k] = nxt
    entries, esc_ids = _latest_entries(out, sy[-1]), st["esc_ids"]
    counts = {sy[-1]: _counts(st["schools"], st["flows"], st["pairs"], st["capacity"])}
    for k in range(last):
        yr = drawn[k]
        counts[sy[k]] = _counts(yr.schools, yr.flows, yr.pairs, yr.capacity)
        idmap = {c: o for c, o, b in zip(ev.renamed["school_id"], ev.renamed["old_id"], ev.renamed["boundary"])
                 if b > k}
        esc_ids, more = write_year(out, sy[k], sy[k - 1] if k else _prev(sy[0]), yr, idmap, esc_ids, tiers_e,
                                   rng[2 + k])
        entries += more
        _truth_year(out / "truth" / sy[k], st, yr, sy[k], tiers_e)
    counts = {y: counts[y] for y in sy}
    crosswalk_file(out / "school_id_mapping.csv", ev, world, rng[-1])
    closed = ev.closed  # the shared coordinates list every school of every year: closed ones appended
    with open(out / "school_coordinates.csv", "a", encoding="utf-8", newline="\n") as fh:
        fh.writelines(f"{sid},{lat:.6f},{lon:.6f}\n" for sid, lat, lon in zip(closed.index, closed["lat"], closed["lon"]))
    shared = [{"kind": "school_id_crosswalk", "path": "school_id_mapping.csv",
               "columns": {"old_id": "old_school_id", "new_id": "school_id_2024"}}]
    path = out / manifest_name
    path.write_text(manifest_text(entries + shared), encoding="utf-8")
    policy = {"between": [sy[-2], sy[-1]], "tier": V.POLICY_TIER, "amount_before": tiers_e[V.POLICY_TIER],
              "amount_after": tiers_l[V.POLICY_TIER], "schools": len(ev.policy_added),
              "slots_added_total": int(ev.policy_added.sum()),
              "slots_added": {k: int(v) for k, v in ev.policy_added.items()}}
    write_json(out / "truth" / "years.json", _years_json(sy, ev, policy, counts, tiers_e, tiers_l))
    return YearsInfo(out, path, sy, info, counts, policy)


def _prev(year: str) -> str:
    y = int(year[:4]) - 1
    return f"{y}-{y + 1}"


def _latest_state(out: Path) -> dict:
    """The latest year's world, read back from make_region's truth (current IDs)."""
    from studentflow.schema import SUBSIDY_TIERS
    from studentflow.synth.geography import lgus

    t = out / "truth"
    ids = {c: str for c in ("school_id", "origin_id", "destination_id", "psgc_code")}
    p = json.loads((t / "params.json").read_text(encoding="utf-8"))
    schools = pd.read_csv(t / "schools.csv", dtype=ids).set_index("school_id")
    lgu = lgus(tuple(p["regions"]))
    schools["tier"] = lgu.loc[schools["psgc_code"], "tier"].to_numpy()
    schools["division"] = _division(schools, lgu).to_numpy()
    areas = pd.read_csv(t / "areas.csv", dtype=ids).set_index("psgc_code")
    flows = pd.read_csv(t / "flows.csv", dtype=ids)
    pairs = pd.read_csv(t / "pairs.csv", dtype=ids)
    cap = pd.read_csv(t / "esc_capacity.csv", dtype=ids).set_index("school_id")
    origins = schools.index[schools["offering"].isin(OFFERS_ES)]
    cohort = flows.groupby("origin_id")["learners"].sum().reindex(origins, fill_value=0).astype(np.int64)
    slots = pd.read_excel(out / "esc_slots.xlsx", sheet_name="ESC Slots", dtype=str, engine="openpyxl")
    esc_ids = pd.DataFrame({"esc_id": slots["ESC School ID"], "school_id": slots["DepEd School ID"],
                            "share": slots["slots_total"].astype(float) + 1e-9})
    truth = {"params": p["params"], "alpha": p["alpha"], "rating_fill": p["esc_rating_unrated_fill"],
             "revenue": areas["lgu_revenue"], "radius_km": p["radius_km"], "json": p}
    return {"schools": schools, "flows": flows, "pairs": pairs, "capacity": cap, "cohort": cohort,
            "esc_ids": esc_ids, "truth": truth, "tiers": dict(SUBSIDY_TIERS), "areas": areas}


def _world(st: dict, ev: V.Events, rng) -> tuple[pd.DataFrame, pd.Series]:
    """Every school that ever exists, with tuition0 (latest-year price), rating and utilisation."""
    from studentflow.synth import rationing as R
    from studentflow.synth import schools as S

    s = st["schools"].copy()
    s["closed_boundary"] = np.nan
    s["esc_latest"] = s["esc"].astype(bool)
    left = ev.left.index
    n = len(left)
    s["tuition0"] = s["tuition"]
    s.loc[left, "tuition0"] = np.round(s.loc[left, "tier"].map(S.TUITION_MEDIAN).to_numpy(float)
                                       * np.exp(rng.normal(0, S.TUITION_SIGMA, n)), -1)
    s.loc[left, "esc_rating"] = np.nan  # the shared certification file lists the latest ESC IDs only
    c = ev.closed.copy()
    c["closed_boundary"] = c["boundary"].astype(float)
    c["esc_latest"] = False
    c["tuition0"] = c["tuition"]
    world = pd.concat([s, c[[col for col in c.columns if col in s.columns or col in ("closed_boundary",)]]])
    world["esc_latest"] = world["esc_latest"].astype(bool)
    new = left.append(c.index[c["esc"].to_numpy(bool)])
    u_new, _ = R.billable_capacity(np.full(len(new), 10), rng)
    util = pd.concat([st["capacity"]["utilisation"], pd.Series(u_new, index=new)])
    return world, util


def _extend_matrix(out: Path, world: pd.DataFrame, new_esc: pd.Index, st: dict, base: pd.DataFrame) -> pd.DataFrame:
    """Road km to ESC schools outside the latest ESC list; the matrix gains their columns.

    Returns the candidate pairs (origin_id, destination_id, distance_km) within the radius.
    """
    from studentflow.synth.distances import network_matrix

    origins = st["cohort"].index
    npy, idx_path = out / "road_matrix.npy", out / "road_matrix_index.json"
    index = json.loads(idx_path.read_text(encoding="utf-8")) if npy.exists() else None
    if index is not None:
        row_of = np.empty(sum(len(v) for v in index["rows"].values()), dtype=object)
        for sid, rows in index["rows"].items():
            row_of[rows] = sid
    else:
        row_of = origins.to_numpy(dtype=object)
    pts = world.loc[list(row_of), ["lon", "lat"]].reset_index(drop=True)
    cols = world.loc[new_esc, ["lon", "lat"]].reset_index(drop=True)
    m = network_matrix(out / "roads.csv.gz", pts, cols) if len(cols) else np.empty((len(pts), 0), np.float32)
    if index is not None and len(cols):
        old = np.load(npy)
        write_npy(npy, np.hstack([old, m]))
        n0 = old.shape[1]
        index["cols"].update({sid: [n0 + j] for j, sid in enumerate(new_esc)})
        write_json(idx_path, index)
    km = pd.DataFrame(m / 1000.0, index=pd.Index(row_of, name="origin_id"), columns=pd.Index(new_esc, name="destination_id"))
    km = km.groupby(level=0).min().reindex(origins)
    km.index.name = "origin_id"
    long = km.stack().rename("distance_km").reset_index()
    long = long[np.isfinite(long["distance_km"]) & (long["distance_km"] <= st["truth"]["radius_km"])]
    long["distance_km"] = np.round(long["distance_km"].astype(float), 6)
    return long.reset_index(drop=True)


def _latest_entries(out: Path, year: str) -> list[dict]:
    """make_region's manifest entries, yearly kinds tagged with the latest year."""
    yearly = {"enrollment", "transitions", "esc_beneficiaries", "esc_slots", "tuition", "subsidy_rates"}
    src = tomllib.loads((out / "manifest.toml").read_text(encoding="utf-8"))["source"]
    return [{**e, "school_year": year} if e["kind"] in yearly else dict(e) for e in src]


def _truth_year(d: Path, st: dict, yr: V.Year, year: str, tiers: dict) -> None:
    """truth/<school_year>/: the latest year's truth/ files, CSVs gzip-compressed (``pairs.csv.gz`` …)."""
    from studentflow.schema import SCHOOLS

    d.mkdir(parents=True, exist_ok=True)
    s = yr.schools.sort_index()
    s = s.assign(tuition=np.where(s["esc"], s["tuition"], np.nan), esc_rating=np.where(s["esc"], s["esc_rating"], np.nan),
                 jhs_seats_imputed=s["jhs_seats_imputed"].fillna(False).astype(bool))
    cols = [c for c in SCHOOLS if c != "geometry"]
    write_csv(d / "schools.csv.gz", s[cols + ["lon", "lat"]].reset_index())
    write_csv(d / "flows.csv.gz", yr.flows)
    write_csv(d / "areas.csv.gz", st["areas"].reset_index())
    esc = s[s["esc"]]
    write_csv(d / "subsidy.csv.gz", pd.DataFrame({"school_id": esc.index, "tier": esc["tier"].to_numpy(),
                                               "amount": esc["esc_amount"].to_numpy()}))
    write_csv(d / "pairs.csv.gz", yr.pairs)
    cap = yr.capacity.assign(billed=yr.billed["billed"].reindex(yr.capacity.index).to_numpy(np.int64))
    write_csv(d / "esc_capacity.csv.gz", cap.reset_index())
    p = dict(st["truth"]["json"])
    p.update({"school_year": year, "subsidy_tiers": tiers, "shares": _shares(yr.pairs, cap, yr.flows)})
    write_json(d / "params.json", p)


def _counts(s: pd.DataFrame, flows: pd.DataFrame, pairs: pd.DataFrame, cap: pd.DataFrame) -> dict:
    return {"schools": int(len(s)), "esc_schools": int(s["esc"].sum()), "learners": int(flows["learners"].sum()),
            "esc_beneficiaries": int(flows["esc_beneficiaries"].sum()), "esc_demand": int(pairs["demand"].sum()),
            "esc_slots": int(cap["slots"].sum()), "esc_capacity": int(cap["capacity"].sum())}


def _years_json(sy, ev: V.Events, policy: dict, counts: dict, tiers_e: dict, tiers_l: dict) -> dict:
    def yr(b):
        return sy[int(b)]

    return {
        "years": list(sy), "latest": sy[-1],
        "truth": {y: "truth" if y == sy[-1] else f"truth/{y}" for y in sy},
        "truth_files": {y: ("{name}.csv" if y == sy[-1] else "{name}.csv.gz") for y in sy},
        "subsidy_tiers": {y: (tiers_l if y == sy[-1] else tiers_e) for y in sy},
        "policy": policy, "counts": counts,
        "renamed": [{"school_id": c, "old_id": o, "first_year_current_id": yr(b)}
                    for c, o, b in zip(ev.renamed["school_id"], ev.renamed["old_id"], ev.renamed["boundary"])],
        "opened": [{"school_id": c, "first_year": yr(b)} for c, b in ev.opened.items()],
        "closed": [{"school_id": c, "last_year": yr(b - 1), "esc": bool(e)}
                   for c, b, e in zip(ev.closed.index, ev.closed["boundary"], ev.closed["esc"])],
        "esc_joined": [{"school_id": c, "first_year": yr(b)} for c, b in ev.joined.items()],
        "esc_left": [{"school_id": c, "last_year": yr(b - 1)} for c, b in ev.left.items()],
    }
