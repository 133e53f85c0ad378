"""One evolving world over several school years: the events and one earlier year's draw.

:func:`studentflow.synth.years.make_years` writes the latest year with
:func:`~studentflow.synth.region.make_region` and walks backwards from it. This module
holds what changes between years and how an earlier year is drawn from the year after it:

- :func:`plan_events`: schools that get a new ID (the old one is used before the
  boundary year), schools that open (absent before it) or close (new private JHS
  schools, present only before it), ESC schools that join (not ESC before) or leave (ESC
  before, among the latest year's private JHS schools outside ESC), and the schools that
  receive added contracted slots in the policy change between the last two years;
- :func:`draw_year`: year *t* from year *t+1* with **one truth**: the same NB2
  coefficients, intercept and dispersion on that year's covariates (tuition deflated,
  that year's subsidy amounts), the same rationing (contracted slots re-contracted with
  noise, each school's administrative utilisation kept), that year's Grade 7 pools
  (year *t+1*'s Grade 6 enrolment is its pool's source: the cohort moves on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from studentflow.schema import OFFERS_ES, OFFERS_JHS
from studentflow.synth import enrolment as E
from studentflow.synth import flows as F
from studentflow.synth import rationing as R
from studentflow.synth import schools as S
from studentflow.synth.region import STAY_RATE

#: Year-to-year noise: log-sd of an origin's Grade 7 pool and of re-contracted slots.
POOL_SIGMA = 0.05
SLOTS_SIGMA = 0.08
#: Yearly tuition inflation, uniform per school and year.
INFLATION = (0.02, 0.06)
#: Events per unit of scale over all boundaries (the sample has 3,000 institutions at scale 1).
RENAMED, OPENED, CLOSED = 40, 12, 10
#: Share of ESC schools joining (and of as many schools leaving) ESC at each boundary.
ESC_TURNOVER = 0.03
#: Policy change between the last two years: the tier whose amount rises, by how much
#: (pesos), the share of ESC schools receiving added slots (among full schools) and the
#: added share of their contracted slots (uniform).
POLICY_TIER = "NCR"
POLICY_INCREASE = 2_000.0
POLICY_SCHOOL_SHARE = 0.09
POLICY_ADDED = (0.25, 0.45)


@dataclass(frozen=True)
class Events:
    """What changes between years (index positions: year 0 is the earliest).

    Attributes
    ----------
    renamed : pandas.DataFrame
        school_id (current), old_id, boundary (first year using the current ID).
    opened : pandas.Series
        Boundary (first year present) by school_id (current schools).
    closed : pandas.DataFrame
        New schools (index school_id) present only in years before ``boundary``, with
        every school column and ``esc`` (bool: ESC while open).
    joined, left : pandas.Series
        Boundary by school_id: ESC from that year on (joined) / until the year before (left).
    policy_added : pandas.Series
        Contracted slots added at the last boundary, by school_id (learners).
    """

    renamed: pd.DataFrame
    opened: pd.Series
    closed: pd.DataFrame
    joined: pd.Series
    left: pd.Series
    policy_added: pd.Series


def _n(base: float, scale: float) -> int:
    return max(2, int(round(base * scale)))


def _unused_ids(rng, n: int, taken: set, lo: int, hi: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        for x in rng.integers(lo, hi, 2 * n):
            s = f"{x:06d}"
            if s not in taken and len(out) < n:
                taken.add(s)
                out.append(s)
    return out


def plan_events(schools: pd.DataFrame, capacity: pd.DataFrame, n_years: int, scale: float, rng) -> Events:
    """Draw the events of ``n_years`` years around the latest year's ``schools``.

    Parameters
    ----------
    schools : pandas.DataFrame
        The latest year's schools (truth/schools.csv with tier and division), index school_id.
    capacity : pandas.DataFrame
        The latest year's truth/esc_capacity.csv, index school_id (``full``, ``slots``).
    n_years : int
        Years written (>= 2); boundaries are 1 .. n_years - 1.
    scale : float
    rng : numpy.random.Generator
    """
    last = n_years - 1
    ids = schools.index
    taken = set(ids)
    origin = schools["offering"].isin(OFFERS_ES).to_numpy()
    esc = schools["esc"].to_numpy(bool)
    private_jhs = ((schools["sector"] == "private") & schools["offering"].isin(OFFERS_JHS)).to_numpy()

    def bounds(k):
        return rng.integers(1, n_years, k)

    # ESC joiners and leavers (not among the policy schools), openings among non-origin non-ESC schools
    full = capacity.index[capacity["full"].to_numpy(bool)]
    n_pol = min(len(full), max(1, int(round(POLICY_SCHOOL_SHARE * esc.sum()))))
    pol = np.sort(rng.choice(full.to_numpy(), n_pol, replace=False))
    added = capacity.loc[pol, "slots"].to_numpy(float) * rng.uniform(*POLICY_ADDED, n_pol)
    added = np.minimum(np.maximum(1, np.round(added)), capacity.loc[pol, "slots"] - R.MIN_SLOTS).astype(np.int64)
    policy = pd.Series(added, index=pd.Index(pol, name="school_id")).loc[lambda s: s > 0]
    k_turn = max(1, int(round(ESC_TURNOVER * esc.sum())))
    cand_join = ids[esc & ~ids.isin(policy.index)]
    joined_ids = rng.choice(cand_join.to_numpy(), min(len(cand_join), k_turn * last), replace=False)
    cand_leave = ids[private_jhs & ~esc]
    left_ids = rng.choice(cand_leave.to_numpy(), min(len(cand_leave), k_turn * last), replace=False)
    busy = set(joined_ids) | set(left_ids) | set(policy.index)
    cand_open = ids[~origin & ~esc & ~ids.isin(list(busy))]
    opened_ids = rng.choice(cand_open.to_numpy(), min(len(cand_open), _n(OPENED, scale)), replace=False)
    busy |= set(opened_ids)
    cand_ren = ids[~ids.isin(list(busy))]
    ren = np.sort(rng.choice(cand_ren.to_numpy(), min(len(cand_ren), _n(RENAMED, scale)), replace=False))
    twin = rng.random(len(ren)) < 0.25  # DepEd's 7-digit "1XXXXXX" twins of the current ID
    fresh = iter(_unused_ids(rng, int((~twin).sum()), taken, 100_000, 600_000))
    old = [("1" + sid) if t else next(fresh) for sid, t in zip(ren, twin)]
    renamed = pd.DataFrame({"school_id": ren, "old_id": old, "boundary": bounds(len(ren))})
    closed = _closed_schools(schools[private_jhs], _n(CLOSED, scale), taken, rng)
    closed["boundary"] = bounds(len(closed))
    return Events(renamed, pd.Series(bounds(len(opened_ids)), index=pd.Index(opened_ids, name="school_id")),
                  closed, pd.Series(bounds(len(joined_ids)), index=pd.Index(joined_ids, name="school_id")),
                  pd.Series(bounds(len(left_ids)), index=pd.Index(left_ids, name="school_id")), policy)


def _closed_schools(like: pd.DataFrame, n: int, taken: set, rng) -> pd.DataFrame:
    """New private JHS schools near existing ones (copied place, new ID, name, tuition, rating)."""
    src = like.iloc[rng.choice(len(like), n, replace=False)].copy()
    ids = _unused_ids(rng, n, taken, 400_000, 500_000)
    src.index = pd.Index(ids, name="school_id")
    src["lon"] = np.round(src["lon"].to_numpy() + rng.normal(0, 0.002, n), 6)
    src["lat"] = np.round(src["lat"].to_numpy() + rng.normal(0, 0.002, n), 6)
    words, kinds = S._PRIVATE_WORDS
    src["name"] = [f"{words[a]} {kinds[b]} of {m.title()} (closed {sid})"
                   for a, b, m, sid in zip(rng.integers(0, len(words), n), rng.integers(0, len(kinds), n),
                                           src["municipality"], ids)]
    src["esc"] = rng.random(n) < 0.5
    src["tuition"] = np.round(src["tier"].map(S.TUITION_MEDIAN).to_numpy(float)
                              * np.exp(rng.normal(0, S.TUITION_SIGMA, n)), -1)
    src["esc_rating"] = np.nan  # unrated: the shared certification file lists the latest ESC IDs only
    src["jhs_seats"] = np.nan
    src["jhs_seats_imputed"] = True
    return src


@dataclass
class Year:
    """One year's world under current IDs (what :func:`draw_year` needs of the year after)."""

    schools: pd.DataFrame  # index school_id: every school column, esc, tuition, esc_amount, enrol_g*
    cohort: pd.Series  # Grade 7 learners by origin (the pool of this year's transitions)
    slots: pd.Series  # contracted slots K by ESC school
    pairs: pd.DataFrame = None  # truth pairs (covariates, mu, demand, esc_beneficiaries)
    capacity: pd.DataFrame = None  # truth esc_capacity
    flows: pd.DataFrame = None
    billed: pd.DataFrame = None  # E.esc_slots output


def present(ev: Events, ids: pd.Index, k: int) -> np.ndarray:
    """Mask of current schools ``ids`` present in year ``k`` (opened ones absent before)."""
    b = ev.opened.reindex(ids).to_numpy(float)
    return ~(b > k)


def esc_in(ev: Events, latest_esc: pd.Series, k: int) -> pd.Series:
    """ESC participation (bool by school_id, latest and closed schools) in year ``k``."""
    esc = latest_esc.copy()
    esc[ev.joined.index[ev.joined.to_numpy() > k]] = False
    esc[ev.left.index[ev.left.to_numpy() > k]] = True
    closed = ev.closed[ev.closed["boundary"].to_numpy() > k]
    return pd.concat([esc, closed["esc"].astype(bool)])


def draw_year(nxt: Year, k: int, last: int, ev: Events, world: pd.DataFrame, util: pd.Series, tiers: dict,
              base_pairs: pd.DataFrame, extra_km: pd.DataFrame, truth: dict, rng) -> Year:
    """Year ``k`` of the world drawn from year ``k + 1`` (``nxt``), under current IDs.

    Parameters
    ----------
    nxt : Year
        The year after.
    k, last : int
        This year's position and the latest year's.
    ev : Events
    world : pandas.DataFrame
        Every school that ever exists (latest schools and closed ones) with the
        time-invariant columns (place, sector, offering, tier, esc_rating, seats).
    util : pandas.Series
        Administrative utilisation u by school_id, every school ever in ESC.
    tiers : dict
        This year's subsidy amount by tier (pesos).
    base_pairs, extra_km : pandas.DataFrame
        Candidate pairs (origin_id, destination_id, distance_km) to the latest ESC
        schools, and to the other ESC schools of any year (within the radius).
    truth : dict
        params (with the intercept), alpha, rating_fill, revenue (pesos by psgc_code).
    rng : numpy.random.Generator
    """
    ids = world.index
    here = present(ev, ids, k) & ~(world["closed_boundary"].to_numpy(float) <= k)
    s = world[here].copy()
    esc = esc_in(ev, world.loc[~ids.isin(ev.closed.index), "esc_latest"], k)
    s["esc"] = esc.reindex(s.index).fillna(False).astype(bool).to_numpy()
    # tuition deflated a few per cent a year (kept for every school that was ever ESC)
    prev_t = nxt.schools["tuition"].reindex(s.index)
    prev_t = prev_t.fillna(world["tuition0"].reindex(s.index) / 1.04 ** (last - k - 1))
    s["tuition"] = np.round(prev_t.to_numpy(float) / (1 + rng.uniform(*INFLATION, len(s))), -1)
    s["esc_amount"] = np.where(s["esc"], s["tier"].map(tiers).to_numpy(float), np.nan)
    s["esc_rating"] = np.where(s["esc"], s["esc_rating"], np.nan)
    esc_ids = s.index[s["esc"].to_numpy()]
    # pools: year k's Grade 7 learners by origin, near the year after's (origins never change)
    cohort = np.maximum(1, np.round(nxt.cohort * np.exp(rng.normal(0, POOL_SIGMA, len(nxt.cohort))))).astype(np.int64)
    # candidate pairs with this year's covariates, the one truth's mean and a latent NB2 draw
    cand = pd.concat([base_pairs, extra_km], ignore_index=True)
    cand = cand[cand["destination_id"].isin(esc_ids)].sort_values(["origin_id", "destination_id"], ignore_index=True)
    pairs = F.candidate_pairs(s, cand["origin_id"].to_numpy(), cand["destination_id"].to_numpy(),
                              cand["distance_km"].to_numpy(float), truth["revenue"], truth["rating_fill"])
    params = truth["params"]
    X = F.design(pairs, [c for c in params if c != "intercept"])
    mu = np.exp(params["intercept"] + X.to_numpy() @ np.array([params[c] for c in X.columns]))
    a = truth["alpha"]
    pairs["mu"] = mu
    pairs["demand"] = rng.poisson(mu * rng.gamma(1.0 / a, a, len(mu))).astype(np.int64)
    # contracted slots: re-contracted with noise; the policy schools had fewer the year before
    expected = pairs.groupby("destination_id")["mu"].sum().reindex(esc_ids, fill_value=0.0)
    prev = nxt.slots.reindex(esc_ids)
    fresh = prev.isna().to_numpy()
    K = np.where(fresh, R.contracted_slots(expected.to_numpy(), rng), 0)
    noisy = np.maximum(R.MIN_SLOTS, np.round(prev.fillna(0).to_numpy() * np.exp(rng.normal(0, SLOTS_SIGMA, len(prev)))))
    if k == last - 1:  # the policy change: exactly the added slots fewer, no re-contracting noise
        add = ev.policy_added.reindex(esc_ids).to_numpy(float)
        noisy = np.where(np.isfinite(add), prev.to_numpy() - np.nan_to_num(add), noisy)
    K = pd.Series(np.where(fresh, K, noisy).astype(np.int64), index=esc_ids)
    cap = np.round(K.to_numpy() * util.reindex(esc_ids).to_numpy()).astype(np.int64)
    pairs["esc_beneficiaries"] = R.admit(pairs["destination_id"].to_numpy(), pairs["demand"].to_numpy(),
                                         pd.Series(cap, index=esc_ids), rng)
    need = np.ceil(pairs.groupby("origin_id")["demand"].sum().reindex(cohort.index, fill_value=0)
                   / F.MAX_ESC_SHARE_OF_COHORT).astype(np.int64)
    cohort = np.maximum(cohort, need)
    flows = F.learner_flows(s, cohort, pairs, rng)
    dem = pairs.groupby("destination_id")["demand"].sum().reindex(esc_ids, fill_value=0).to_numpy(np.int64)
    got = pairs.groupby("destination_id")["esc_beneficiaries"].sum().reindex(esc_ids, fill_value=0).to_numpy(np.int64)
    capacity = pd.DataFrame({"expected_demand": expected.to_numpy(), "slots": K.to_numpy(), "utilisation":
                             util.reindex(esc_ids).to_numpy(), "capacity": cap, "demand": dem, "admitted": got,
                             "full": dem > cap}, index=pd.Index(esc_ids, name="school_id"))
    billed = E.esc_slots(capacity, rng)
    s = _enrolment(s, nxt, flows, rng)
    s["esc_slots"] = billed["slots"].reindex(s.index, fill_value=0).astype(np.int64)
    s["esc_slots_billed"] = billed["billed"].reindex(s.index, fill_value=0).astype(np.int64)
    return Year(s, cohort, K, pairs, capacity, flows, billed)


def _enrolment(s: pd.DataFrame, nxt: Year, flows: pd.DataFrame, rng) -> pd.DataFrame:
    """Year k's enrolment by grade: each grade is the year after's next grade, shifted back."""
    n = len(s)
    after = nxt.schools.reindex(s.index)
    has_next = after["enrol_g1"].notna().to_numpy()
    es = s["offering"].isin(OFFERS_ES).to_numpy()
    jhs = s["offering"].isin(OFFERS_JHS).to_numpy()
    out = s.copy()
    for g in range(1, 6):
        nx = after[f"enrol_g{g + 1}"].fillna(0).to_numpy(float)
        out[f"enrol_g{g}"] = np.where(es & has_next, np.round(nx / rng.uniform(0.97, 1.03, n)), 0).astype(np.int64)
    # Grade 6 of year k is the pool of year k+1's transitions (learners who stay in the data)
    pool = nxt.cohort.reindex(s.index, fill_value=0).to_numpy(np.int64)
    out["enrol_g6"] = np.where(es, pool + rng.poisson(pool * (1.0 / STAY_RATE - 1.0)), 0).astype(np.int64)
    inflow = flows.groupby("destination_id")["learners"].sum().reindex(s.index, fill_value=0).to_numpy()
    g7 = inflow + np.where(jhs, rng.poisson(np.maximum(2.0, 0.05 * inflow)), 0)
    out["enrol_g7"] = np.where(jhs, g7, 0).astype(np.int64)
    prev = out["enrol_g7"].to_numpy()
    for g in range(8, 11):
        own = np.round(prev * rng.uniform(0.9, 1.02, n))
        nx = after[f"enrol_g{g + 1}"].to_numpy(float) if g < 10 else after["enrol_g10"].to_numpy(float)
        back = np.round(nx / rng.uniform(0.9, 1.02, n)) if g < 10 else np.round(nx * rng.uniform(0.95, 1.05, n))
        prev = np.where(jhs & has_next, np.nan_to_num(back), np.where(jhs, own, 0)).astype(np.int64)
        out[f"enrol_g{g}"] = prev
    out["jhs_enrolment"] = out[[f"enrol_g{g}" for g in range(7, 11)]].sum(axis=1).astype(np.int64)
    return out
