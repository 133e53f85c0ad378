"""Institutions of a synthetic region: where they are, what they offer, what they cost.

Counts follow a :class:`studentflow.synth.mix.Mix`; by default the study area's
(paper-facts.md, "Proportions"): about half public elementary schools (the origins of
Grade 6 → 7 flows), public schools offering JHS, about a third private schools of which
about two thirds take part in ESC. Schools sit around real barangay centroids, drawn in
proportion to population.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.schema import ESC_RATING_RANK, OFFERS_ES, OFFERS_JHS, SUBSIDY_TIERS
from studentflow.synth.mix import STUDY_MIX

#: Institutions per 3,000 at scale 1: (sector, offering) → count (the study area's mix).
BASE_COUNTS: dict[tuple[str, str], float] = STUDY_MIX.counts
#: Share of private schools in ESC (all of them offer JHS), the study area's.
ESC_SHARE_OF_PRIVATE = STUDY_MIX.esc_share_of_private
#: DepEd id ranges by kind (first digit), and the share of ids written with a leading 0.
_ID_RANGES = {"public_es": (100000, 200000), "public_sec": (300000, 350000),
              "public_int": (500000, 520000), "private": (400000, 500000)}
LEADING_ZERO_SHARE = 0.03
#: Median Grade 7 tuition + fees by subsidy tier, pesos (lognormal, right-skewed).
TUITION_MEDIAN = {"NCR": 32_000.0, "HUC": 26_000.0, "other": 19_000.0}
TUITION_SIGMA = 0.35
#: ESC rating rank weights (ranks 1..8) and the unrated share.
RATING_WEIGHTS = np.array([0.03, 0.07, 0.12, 0.20, 0.18, 0.28, 0.08, 0.04])
UNRATED_SHARE = 0.12
RATING_TEXT = {rank: text for text, rank in ESC_RATING_RANK.items()}

_PRIVATE_WORDS = (["St. Mary's", "Holy Cross", "Sacred Heart", "Our Lady of Fatima", "San Lorenzo",
                   "Immaculate Conception", "Blessed Trinity", "Divine Mercy", "Good Shepherd",
                   "St. Joseph", "Christ the King", "Bright Minds", "Little Flower", "New Era"],
                  ["Academy", "School", "Learning Center", "College", "Montessori School",
                   "Christian School", "School Foundation", "Institute"])


def _ids(rng, kind: str, n: int, taken: set) -> list[str]:
    lo, hi = _ID_RANGES[kind]
    pool = np.setdiff1d(np.arange(lo, hi), np.fromiter((int(t) for t in taken), int, len(taken)))
    picked = rng.choice(pool, size=n, replace=False)
    return [f"{x:06d}" for x in picked]


def place_schools(lgu: pd.DataFrame, brgy: pd.DataFrame, scale: float, rng: np.random.Generator,
                  counts: dict[tuple[str, str], float] | None = None) -> pd.DataFrame:
    """Draw the institutions of the region, without enrolment.

    Parameters
    ----------
    lgu : pandas.DataFrame
        From :func:`studentflow.synth.geography.lgus`.
    brgy : pandas.DataFrame
        From :func:`studentflow.synth.geography.barangays`.
    scale : float
        Multiplies every institution count (1.0 → about 3,000 institutions).
    rng : numpy.random.Generator
    counts : dict, optional
        (sector, offering) → institutions at scale 1, drawn in this order (a
        :class:`studentflow.synth.mix.Mix`'s ``counts``). None: :data:`BASE_COUNTS`.

    Returns
    -------
    pandas.DataFrame
        Index school_id (6-digit str, sorted); columns name, sector, offering, psgc_code,
        region, province, municipality (DepEd spellings), tier, barangay, lon, lat (degrees).
    """
    if not scale > 0:
        raise ValueError(f"scale: must be > 0, got {scale!r}")
    pop = brgy["population"].to_numpy(float)
    tier = lgu.loc[brgy["lgu_code"], "tier"].to_numpy()
    private_w = pop * np.where(tier == "other", 1.0, 1.8)
    frames, taken = [], set()
    for (sector, offering), base in (BASE_COUNTS if counts is None else counts).items():
        n = max(1, int(round(base * scale)))
        w = private_w if sector == "private" else pop
        b = rng.choice(len(brgy), size=n, p=w / w.sum())
        if sector == "private":
            kind = "private"
        elif offering == "purely_es":
            kind = "public_es"
        elif offering == "es_jhs":
            kind = "public_int"
        else:
            kind = "public_sec"
        ids = _ids(rng, kind, n, taken)
        taken.update(ids)
        frames.append(pd.DataFrame({"school_id": ids, "sector": sector, "offering": offering, "b": b}))
    s = pd.concat(frames, ignore_index=True)
    # a few ids carry a leading zero ("0" + 5 digits, second digit non-zero)
    lead = rng.random(len(s)) < LEADING_ZERO_SHARE
    new = rng.choice(np.arange(10000, 100000), size=int(lead.sum()), replace=False)
    s.loc[lead, "school_id"] = [f"{x:06d}" for x in new]
    s = s.drop_duplicates("school_id")
    b = s["b"].to_numpy()
    s["barangay"] = brgy["name"].to_numpy()[b]
    s["psgc_code"] = brgy["lgu_code"].to_numpy()[b]
    s["lon"] = np.round(brgy["lon"].to_numpy()[b] + rng.normal(0, 0.0025, len(s)), 6)
    s["lat"] = np.round(brgy["lat"].to_numpy()[b] + rng.normal(0, 0.0025, len(s)), 6)
    area = lgu.loc[s["psgc_code"]]
    s["region"] = area["region"].to_numpy()
    s["province"] = area["deped_province"].to_numpy()
    s["municipality"] = area["deped_municipality"].to_numpy()
    s["tier"] = area["tier"].to_numpy()
    s["name"] = _names(s, rng)
    s = s.drop(columns="b").set_index("school_id").sort_index()
    return s


def _names(s: pd.DataFrame, rng) -> list[str]:
    suffix = {"purely_es": "Elementary School", "es_jhs": "Integrated School", "jhs_shs": "National High School",
              "purely_jhs": "High School", "purely_shs": "Senior High School", "all_offering": "Integrated School"}
    saints = rng.integers(0, len(_PRIVATE_WORDS[0]), len(s))
    kinds = rng.integers(0, len(_PRIVATE_WORDS[1]), len(s))
    names = []
    for k, (sector, off, brgy) in enumerate(zip(s["sector"], s["offering"], s["barangay"])):
        if sector == "public":
            names.append(f"{brgy} {suffix[off]}")
        else:
            names.append(f"{_PRIVATE_WORDS[0][saints[k]]} {_PRIVATE_WORDS[1][kinds[k]]} of {brgy}")
    seen: dict[str, int] = {}
    out = []
    for nm in names:
        seen[nm] = seen.get(nm, 0) + 1
        out.append(nm if seen[nm] == 1 else f"{nm} Annex {seen[nm] - 1}")
    return out


def private_attributes(schools: pd.DataFrame, rng: np.random.Generator,
                       esc_share: float = ESC_SHARE_OF_PRIVATE) -> pd.DataFrame:
    """ESC participation, tuition (pesos), ESC rating rank and subsidy amount (pesos).

    ``round(esc_share × private schools)`` ESC schools (at most every private school
    offering JHS) are drawn among the private schools offering JHS.

    Returns
    -------
    pandas.DataFrame
        ``schools`` with columns esc (bool), tuition (float, pesos; NaN for public and
        for private schools without JHS), esc_rating (float rank, NaN unrated or non-ESC),
        esc_amount (pesos, ESC schools only, by tier from ``schema.SUBSIDY_TIERS``).
    """
    s = schools.copy()
    private = (s["sector"] == "private").to_numpy()
    jhs = s["offering"].isin(OFFERS_JHS).to_numpy()
    cand = np.flatnonzero(private & jhs)
    n_esc = min(len(cand), int(round(esc_share * private.sum())))
    esc = np.zeros(len(s), bool)
    esc[rng.choice(cand, size=n_esc, replace=False)] = True
    s["esc"] = esc
    med = s["tier"].map(TUITION_MEDIAN).to_numpy(float)
    tuition = np.round(med * np.exp(rng.normal(0, TUITION_SIGMA, len(s))), -1)
    s["tuition"] = np.where(private & jhs, tuition, np.nan)
    rank = rng.choice(np.arange(1, 9), size=len(s), p=RATING_WEIGHTS / RATING_WEIGHTS.sum()).astype(float)
    rated = rng.random(len(s)) >= UNRATED_SHARE
    s["esc_rating"] = np.where(esc & rated, rank, np.nan)
    s["esc_amount"] = np.where(esc, s["tier"].map(SUBSIDY_TIERS).to_numpy(float), np.nan)
    return s


def lgu_revenue(lgu: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    """Total LGU revenues in pesos: population × lognormal per-capita, higher in HUC/NCR.

    Returns
    -------
    pandas.Series
        Index psgc_code, pesos (rounded to the peso, always > 0).
    """
    per_capita = np.where(lgu["tier"].to_numpy() == "other", 2_800.0, 5_500.0)
    per_capita = np.where(lgu["city_class"].to_numpy() == "CC", 3_800.0, per_capita)
    rev = lgu["population"].to_numpy(float).clip(2_000) * per_capita * np.exp(rng.normal(0, 0.35, len(lgu)))
    return pd.Series(np.round(rev), index=lgu.index, name="lgu_revenue")


def is_origin(schools: pd.DataFrame) -> np.ndarray:
    """Boolean mask: the school teaches Grade 6 (its offering includes elementary)."""
    return schools["offering"].isin(OFFERS_ES).to_numpy()


def rating_text(rank: float) -> str:
    """Certification text of an ESC rating rank ('' when unrated)."""
    return "" if not np.isfinite(rank) else RATING_TEXT[int(rank)]
