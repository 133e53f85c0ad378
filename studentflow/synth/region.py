"""``make_region``: a synthetic "Mega Manila" written as raw files plus its ground truth.

The region uses real geography (PSGC cities/municipalities and barangay centroids), about
3,000 institutions per unit of ``scale`` in the study's proportions (or another
:class:`~studentflow.synth.mix.Mix`, e.g. the national one), learner-level Grade 6 →
Grade 7 transitions, latent ESC demand drawn from the study's NB2 gravity model over all
candidate origin→ESC pairs within ``radius_km`` of road and rationed by each ESC school's
billable slots (:mod:`studentflow.synth.rationing`), and a synthetic road network.
Every raw file kind of SOURCES.md is written with its quirks (listed in truth/quirks.csv);
truth/ holds the canonical tables a correct ingest must produce (docs/contracts.md §1).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.geo.distances import read_network
from studentflow.schema import ALL_REGIONS, REGION_PSGC, SCHOOLS, SUBSIDY_TIERS
from studentflow.synth import STUDY_ALPHA, STUDY_PARAMS
from studentflow.synth import enrolment as E
from studentflow.synth import flows as F
from studentflow.synth import learners as L
from studentflow.synth import rationing as R
from studentflow.synth import raw as W
from studentflow.synth import schools as S
from studentflow.synth.distances import network_matrix, network_pairs
from studentflow.synth.geography import STUDY_REGIONS, barangays, lgus
from studentflow.synth.io import write_csv, write_json, write_npy
from studentflow.synth.mix import STUDY_MIX, Mix
from studentflow.synth.roads import make_network

#: Grade 6 enrolment medians (learners) by origin type; NCR public schools are larger
#: (the study area's; a :class:`~studentflow.synth.mix.Mix` sets its own).
G6_MEDIAN = STUDY_MIX.grade6_median
NCR_FACTOR = STUDY_MIX.ncr_factor
G6_SIGMA = 0.45  # log-sd of Grade 6 enrolment around the median
RADIUS_KM = 5.0  # candidate pairs: ESC schools within this road distance of an origin (the study's)
STAY_RATE = 0.97  # share of Grade 6 learners appearing as Grade 7 in the data


@dataclass(frozen=True)
class RegionInfo:
    """What :func:`make_region` wrote.

    Attributes
    ----------
    out_dir, manifest : pathlib.Path
        Folder of the raw files and its ``manifest.toml``.
    files : tuple of str
        Raw file names (relative to ``out_dir``), as listed in the manifest.
    seed : int
    scale : float
    counts : dict
        Institutions by type, learners, ESC demand, beneficiaries and rationed-out learners,
        full-school share, slots, billed, pairs, quirks.
    params : dict
        True NB2 parameters of the latent demand (intercept recalibrated) and ``alpha``.
    """

    out_dir: Path
    manifest: Path
    files: tuple[str, ...]
    seed: int
    scale: float
    counts: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def summary(self) -> str:
        """Plain-text summary of the region: counts and true parameters."""
        lines = [f"synthetic region (seed={self.seed}, scale={self.scale}) in {self.out_dir}"]
        lines += [f"  {k}: {v:,}" if isinstance(v, (int, np.integer)) else f"  {k}: {v:.4g}"
                  for k, v in self.counts.items()]
        lines.append("  true NB2: " + ", ".join(f"{k}={v:.4f}" for k, v in self.params.items()))
        return "\n".join(lines)


def _division(s: pd.DataFrame, lgu: pd.DataFrame) -> pd.Series:
    cls = lgu.loc[s["psgc_code"], "city_class"].to_numpy()
    return pd.Series(np.where(cls == "Mun", "DIVISION OF " + s["province"].str.upper(),
                              "DIVISION OF " + s["municipality"]), index=s.index)


def _grade6(s: pd.DataFrame, rng, mix: Mix = STUDY_MIX) -> pd.Series:
    o = s[S.is_origin(s)]
    kind = np.where(o["sector"] == "private", "private",
                    np.where(o["offering"] == "es_jhs", "public_es_jhs", "public_es"))
    med = pd.Series(kind).map(mix.grade6_median).to_numpy(float)
    med = np.where((o["region"].to_numpy() == "NCR") & (kind != "private"), med * mix.ncr_factor, med)
    g6 = np.maximum(8, np.round(med * np.exp(rng.normal(0, G6_SIGMA, len(o))))).astype(np.int64)
    return pd.Series(g6, index=o.index)


def resolve_regions(regions) -> tuple[str, ...]:
    """Canonical region names of a ``regions`` argument.

    Parameters
    ----------
    regions : "all", str or iterable of str
        "all": every region of :data:`studentflow.schema.REGION_PSGC` in PSGC order; a
        single region name; or several (duplicates dropped, order kept).

    Returns
    -------
    tuple of str

    Raises
    ------
    ValueError
        Naming ``regions`` and the unknown value(s), or for an empty selection.
    """
    if isinstance(regions, str):
        regions = ALL_REGIONS if regions == "all" else (regions,)
    try:
        names = tuple(dict.fromkeys(regions))
    except TypeError:
        raise ValueError(f"regions: expected 'all' or region names, got {regions!r}") from None
    unknown = [r for r in names if r not in REGION_PSGC]
    if unknown:
        raise ValueError(f"regions: unknown region name(s) {unknown}; use 'all' or names of {list(ALL_REGIONS)}")
    if not names:
        raise ValueError("regions: no region given")
    return names


def make_region(seed: int = 0, scale: float = 1.0, out_dir=None, *, regions: tuple[str, ...] | str = STUDY_REGIONS,
                radius_km: float | None = None, write_matrix: bool | None = None,
                mix: Mix | None = None) -> RegionInfo:
    """Write a synthetic study area as raw files (every SOURCES.md kind) plus ``truth/``.

    Parameters
    ----------
    seed : int
        Random seed; the same seed and scale give byte-identical files.
    scale : float
        Multiplies institution counts (1.0 → about 3,000 institutions, 10 → about 30,000).
    out_dir : str or Path, optional
        Target folder (created); None writes to a new temporary directory.
    regions : tuple of str or "all"
        Canonical regions of the area, keys of :data:`studentflow.schema.REGION_PSGC`
        (default: NCR, Region III, Region IV-A), or "all" for every region in PSGC order.
        Geography, files and name variants are generic. The NB2 truth has a region dummy
        (origin and destination) for every region but NCR, the reference: the study's
        for Region III and Region IV-A, synthetic ones
        (:data:`studentflow.synth.flows.REGION_EFFECTS`) for the others.
    radius_km : float, optional
        Candidate origin→ESC pairs are those within this road distance, km. None
        (default): :data:`RADIUS_KM`, the study's 5 km (``studentflow.pairs.build_pairs``
        default), at every scale, so the pair table holds every pair the generator drew
        demand on. The pair count grows with scale² (seed 0: 19,472 pairs at scale 1,
        1.84 million at scale 10, which make_region writes in under a minute, 2.7 GB peak).
    write_matrix : bool, optional
        Also write the OSRM-style ``road_matrix.npy`` (rows origins × cols ESC schools,
        float32 metres). None (default): only when ``scale <= 2`` (the matrix grows with
        scale², about 640 MB at scale 10).
    mix : studentflow.synth.mix.Mix, optional
        Institution counts per unit of scale, ESC share of private schools and Grade 6
        cohort sizes. None (default): :data:`~studentflow.synth.mix.STUDY_MIX`, the study
        area's; :data:`~studentflow.synth.mix.NATIONAL_MIX` is the whole country's.

    Returns
    -------
    RegionInfo
    """
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale: must be a positive number, got {scale!r}")
    regions = resolve_regions(regions)
    if mix is None:
        mix = STUDY_MIX
    if not isinstance(mix, Mix):
        raise ValueError(f"mix: expected a studentflow.synth.mix.Mix, got {type(mix).__name__}")
    if radius_km is None:
        radius_km = RADIUS_KM
    if not radius_km > 0:
        raise ValueError(f"radius_km: must be > 0, got {radius_km!r}")
    out = Path(tempfile.mkdtemp(prefix="studentflow_region_")) if out_dir is None else Path(out_dir)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    rng = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 20260217]).spawn(12)]
    quirks: list[dict] = []

    lgu = lgus(regions)
    brgy = barangays(lgu)
    nodes = brgy.rename(columns={"psgc_code": "node"})[["node", "lon", "lat"]]
    edges = make_network(nodes, seed)
    schools = S.private_attributes(S.place_schools(lgu, brgy, scale, rng[0], mix.counts), rng[1],
                                   mix.esc_share_of_private)
    schools["division"] = _division(schools, lgu)
    revenue = S.lgu_revenue(lgu, rng[2])

    g6 = _grade6(schools, rng[3], mix)
    cohort = pd.Series(rng[3].binomial(g6.to_numpy(), STAY_RATE), index=g6.index)
    esc_ids_ = schools.index[schools["esc"].to_numpy()]
    origins = cohort.index
    o_pts, e_pts = schools.loc[origins], schools.loc[esc_ids_]
    net = read_network(edges)
    pi, pj, pkm = network_pairs(net, o_pts, e_pts, max_km=radius_km)
    pkm = np.round(pkm, 6)  # road km to the millimetre: short, exact CSV text
    rated = schools.loc[esc_ids_, "esc_rating"].dropna()
    rating_fill = float(rated.median())
    cand = F.candidate_pairs(schools, origins[pi], esc_ids_[pj], pkm, revenue, rating_fill)
    params = {**STUDY_PARAMS, **F.region_params(regions)}
    target = F.ESC_SHARE * float(cohort.sum())
    # latent NB2 demand on every candidate pair, rationed by each ESC school's billable slots
    pairs, capacity, intercept = R.draw_admissions(cand, esc_ids_, params, STUDY_ALPHA, target, rng[4])
    params["intercept"] = intercept
    # no origin sends more ESC applicants than half its cohort
    esc_o = pairs.groupby("origin_id")["demand"].sum().reindex(origins, fill_value=0)
    need = np.ceil(esc_o / F.MAX_ESC_SHARE_OF_COHORT).astype(np.int64)
    cohort = np.maximum(cohort, need)
    g6 = np.maximum(g6, cohort)
    flows = F.learner_flows(schools, cohort, pairs, rng[5])

    enrol = E.enrolment(schools, g6, flows, rng[6])
    schools = schools.join(enrol)
    slots = E.esc_slots(capacity, rng[7])
    ids = E.esc_ids(esc_ids_, rng[7])
    schools["esc_slots"] = slots["slots"].reindex(schools.index, fill_value=0).astype(np.int64)
    schools["esc_slots_billed"] = slots["billed"].reindex(schools.index, fill_value=0).astype(np.int64)
    schools["tuition"] = np.where(schools["esc"], schools["tuition"], np.nan)
    schools["jhs_seats_imputed"] = False

    # ------------------------------------------------------------------ raw files
    manifest: list[dict] = []

    def add(kind, path, **extra):
        manifest.append({"kind": kind, "path": path, **extra})
        return out / path

    W.enrollment(add("enrollment", "enrollment_sy2023-2024.xlsx", sheet="DATA", school_year="2023-2024"),
                 schools.reset_index(), rng[8], quirks)
    droppable = ~(S.is_origin(schools) | schools["esc"].to_numpy())
    kept = W.coordinates(add("coordinates", "school_coordinates.csv"), schools, droppable, rng[8], quirks)
    W.seats(add("seats", "seat_learner_ratio.xlsx"), schools, rng[8], quirks)
    W.private_seats(add("private_seats", "private_school_furniture.csv"), schools, rng[8], quirks)
    people = L.learners(flows, origins, rng[9])
    for name, df in L.transitions(people, schools, rng[9], quirks,
                                  lambda r: f"gr7_enrollees_{L.region_slug(r)}.csv.gz").items():
        write_csv(add("transitions", name, school_year="2023-2024"), df)
    bill_files, per_id = L.billing(people, schools, ids, slots, origins, rng[10], quirks,
                                   lambda r: f"esc_billing_{L.region_slug(r)}.csv")
    for name, df in bill_files.items():
        write_csv(add("esc_beneficiaries", name, school_year="2023-2024"), df)
    del people
    slot_rows = W.esc_slots(add("esc_slots", "esc_slots.xlsx", sheet="ESC Slots"), schools, per_id, slots, quirks)
    W.tuition(add("tuition", "esc_tuition_peac.xlsx", sheet="Tuition"), schools, per_id, rng[11], quirks)
    W.esc_rating(add("esc_rating", "esc_certification.csv"), schools, per_id, S.rating_text)
    W.lgu_income(add("lgu_income", "cmci_lgu_revenue.csv"), lgu, revenue, rng[11], quirks)
    W.subsidy_rates(add("subsidy_rates", "esc_subsidy_rates.csv"), SUBSIDY_TIERS)
    write_csv(add("road_network", "roads.csv.gz"), edges)
    if write_matrix or (write_matrix is None and scale <= 2):
        _matrix(out, add("road_distances", "road_matrix.npy", index="road_matrix_index.json"),
                net, kept, origins, esc_ids_)
    _manifest(out / "manifest.toml", manifest)

    # ------------------------------------------------------------------ truth
    truth = out / "truth"
    cols = [c for c in SCHOOLS if c != "geometry"]
    t_s = schools[cols + ["lon", "lat"]].reset_index()
    write_csv(truth / "schools.csv", t_s)
    write_csv(truth / "flows.csv", flows)
    areas = lgu[["region", "province", "municipality", "city_class", "population"]].copy()
    areas["lgu_revenue"] = revenue
    areas["lgu_revenue_imputed"] = False
    write_csv(truth / "areas.csv", areas.reset_index())
    sub = schools.loc[esc_ids_, ["tier"]].assign(amount=schools.loc[esc_ids_, "esc_amount"]).reset_index()
    write_csv(truth / "subsidy.csv", sub)
    write_csv(truth / "pairs.csv", pairs)
    cap_t = capacity.assign(billed=slots["billed"].reindex(capacity.index).to_numpy(np.int64))
    write_csv(truth / "esc_capacity.csv", cap_t.reset_index())
    shares = _shares(pairs, cap_t, flows)
    write_csv(truth / "quirks.csv", pd.DataFrame(quirks, columns=["kind", "file", "row", "school_id", "quirk", "outcome"])
              .sort_values(["kind", "file", "row"], kind="stable", ignore_index=True))
    write_json(truth / "params.json", {
        "params": params, "alpha": STUDY_ALPHA, "radius_km": radius_km, "seed": int(seed), "scale": float(scale),
        "distance": "road network (see geo)", "esc_rating_unrated_fill": rating_fill,
        "regions": list(regions), "rationing": R.rationing_parameters(), "shares": shares,
        **({} if mix == STUDY_MIX else {"mix": mix.name}),
    })

    off = schools.groupby(["sector", "offering"]).size()
    counts = {f"{a} {b}": int(v) for (a, b), v in off.items()}
    public_jhs = schools[(schools["sector"] == "public") & schools["jhs_seats"].notna()]
    congested = public_jhs["jhs_enrolment"] > public_jhs["jhs_seats"]
    to_cong = flows["destination_id"].isin(public_jhs.index[congested.to_numpy()])
    counts.update({
        "institutions": len(schools), "origins": len(origins), "esc_schools": len(esc_ids_),
        "esc_ids": len(ids), "learners": int(flows["learners"].sum()),
        "private_share": float(flows.loc[flows["destination_id"].isin(schools.index[schools["sector"] == "private"]),
                                         "learners"].sum() / flows["learners"].sum()),
        "esc_beneficiaries": int(flows["esc_beneficiaries"].sum()),
        "esc_slots": int(slot_rows["slots_total"].sum()), "esc_billed": int(slot_rows["slots_billed"].sum()),
        "esc_demand": int(pairs["demand"].sum()), "rationed_out": int((pairs["demand"] - pairs["esc_beneficiaries"]).sum()),
        "full_esc_school_share": shares["full_schools"],
        "candidate_pairs": len(pairs), "positive_pairs": int((pairs["esc_beneficiaries"] > 0).sum()),
        "mean_per_positive_pair": shares["mean_per_positive_pair"],
        "congested_public_jhs_share": float(congested.mean()),
        "learners_to_congested_share": float(flows.loc[to_cong, "learners"].sum() / flows["learners"].sum()),
        "road_edges": len(edges), "quirks": len(quirks),
    })
    return RegionInfo(out, out / "manifest.toml", tuple(m["path"] for m in manifest), int(seed), float(scale),
                      counts, {**params, "alpha": STUDY_ALPHA})


def _shares(pairs: pd.DataFrame, cap: pd.DataFrame, flows: pd.DataFrame) -> dict:
    """Headline shares of the ESC side (recorded in truth/params.json)."""
    demand, admitted = int(pairs["demand"].sum()), int(pairs["esc_beneficiaries"].sum())
    positive = pairs["esc_beneficiaries"] > 0
    return {
        "full_schools": float(cap["full"].mean()),
        "billed_over_contracted": float(cap["billed"].sum() / cap["slots"].sum()),
        "schools_with_unused_slots": float((cap["billed"] < cap["slots"]).mean()),
        "schools_billed_beyond_contract": float((cap["billed"] > cap["slots"]).mean()),
        "rationed_out_learners": demand - admitted,
        "rationed_out_share_of_demand": float((demand - admitted) / max(demand, 1)),
        "esc_share_of_grade7": float(admitted / flows["learners"].sum()),
        "mean_per_positive_pair": float(pairs.loc[positive, "esc_beneficiaries"].mean()),
        "mean_demand_per_positive_demand_pair": float(pairs.loc[pairs["demand"] > 0, "demand"].mean()),
    }


def _matrix(out: Path, npy: Path, net, kept: pd.DataFrame, origins, esc) -> None:
    rows = kept[kept["school_id"].isin(origins)].reset_index(drop=True)
    cols = kept[kept["school_id"].isin(esc)].reset_index(drop=True)
    write_npy(npy, network_matrix(net, rows, cols))

    def index(t):
        d: dict[str, list[int]] = {}
        for k, sid in enumerate(t["school_id"]):
            d.setdefault(sid, []).append(k)
        return d

    write_json(out / "road_matrix_index.json", {"units": "m", "rows": index(rows), "cols": index(cols)})


def _manifest(path: Path, entries: list[dict]) -> None:
    lines = ["# Synthetic study area written by studentflow.synth.make_region (not real data).", ""]
    for e in entries:
        lines.append("[[source]]")
        for k in ("kind", "path", "sheet", "school_year", "index"):
            if k in e:
                lines.append(f'{k} = "{e[k]}"')
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
