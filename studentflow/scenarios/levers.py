"""Scenario levers: slots per ESC school and the pair table a scenario works on.

Slot levers (:func:`scenario_capacities`) act on contracted/billed slots per school
(learners); subsidy and radius levers (:func:`scenario_pairs`) act on the PairTable:
extra ESC amount in pesos lowers net cost ``max(0, tuition − amount) / 1000``
(thousand pesos), a candidate radius in km keeps or adds new pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.scenarios.spec import Scenario
from studentflow.schema import SUBSIDY_TIERS, id_map

__all__ = ["needs_distances", "pair_reach", "scenario_capacities", "scenario_pairs", "subsidy_parts",
           "widened_pairs"]


# ---------------------------------------------------------------- slot levers
def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` whole units in proportion to ``weights`` (largest remainder)."""
    weights = np.asarray(weights, dtype=float)
    if total <= 0 or weights.size == 0:
        return np.zeros(weights.size, dtype=np.int64)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    if short:
        out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def scenario_capacities(scenario: Scenario, contracted, billed, school_ids) -> np.ndarray:
    """Slots each ESC school offers under ``scenario``, learners.

    Parameters
    ----------
    scenario : Scenario
    contracted, billed : array-like of int
        Contracted and billed ESC slots per school, learners.
    school_ids : array-like of str
        School ids aligned with the slot arrays (for ``add_slots_to``).

    Returns
    -------
    numpy.ndarray of int64
        Order of operations: start from contracted (or billed) slots; move
        ``move_slots`` unused contracted slots (at most all of them) from under-used
        schools (billed < contracted, in proportion to their unused slots) to full ones
        (billed ≥ contracted, in proportion to their contracted slots), keeping the
        contracted total; scale by ``scale_slots`` (rounded down); add ``add_slots``;
        add ``add_slots_at`` (a school never goes below 0 slots).
        Largest-remainder rounding keeps every split in whole slots.
    """
    contracted = np.asarray(contracted, dtype=np.int64)
    billed = np.asarray(billed, dtype=np.int64)
    caps = (contracted if scenario.capacity == "contracted" else billed).copy()
    if scenario.move_slots:
        unused = np.clip(contracted - billed, 0, None)
        full = (billed >= contracted) & (contracted > 0)
        n = int(min(scenario.move_slots, unused.sum()))
        if n and full.any():
            take = _largest_remainder(n, unused)
            take = np.minimum(take, unused)
            n = int(take.sum())
            give = np.zeros_like(caps)
            give[full] = _largest_remainder(n, contracted[full])
            if scenario.capacity == "contracted":
                caps = caps - take + give
            else:  # moved slots were unused, so billed capacity only gains
                caps = caps + give
    if scenario.scale_slots != 1.0:
        caps = np.floor(caps * scenario.scale_slots).astype(np.int64)
    if scenario.add_slots:
        if scenario.add_slots_to:
            mask = np.isin(np.asarray(school_ids, dtype=str), np.asarray(scenario.add_slots_to))
        else:
            mask = np.ones(caps.size, dtype=bool)
        caps = caps + scenario.add_slots * mask
    if scenario.add_slots_at:
        ids = pd.Index(np.asarray(school_ids, dtype=str))
        for sid, n in scenario.add_slots_at.items():
            at = ids.get_indexer([sid])[0]
            if at < 0:
                raise DataError(f"scenario {scenario.name!r}, key 'add_slots_at': {sid!r} is not an ESC "
                                "school of this data")
            caps[at] += n
    return np.clip(caps, 0, None)


# ---------------------------------------------------------------- subsidy levers
def _tiers(pairs: pd.DataFrame, bundle) -> pd.Series:
    """Location tier per pair row (from the bundle, else from today's ESC amount)."""
    if bundle is not None and "tier" in getattr(bundle, "subsidy", pd.DataFrame()):
        tier = pairs["destination_id"].map(bundle.subsidy["tier"])
        if tier.notna().all():
            return tier.astype(str)
    by_amount = {v: k for k, v in SUBSIDY_TIERS.items()}
    return pairs["esc_amount"].map(lambda a: by_amount.get(float(a), "other")).astype(str)


def _apply_subsidy(pairs: pd.DataFrame, extra: np.ndarray) -> pd.DataFrame:
    """``pairs`` with ``esc_amount += extra`` (pesos) and ``net_cost_k`` recomputed."""
    try:
        from studentflow.pairs import with_subsidy
    except ImportError:  # the pairs stage is optional for a bare pair table
        with_subsidy = None
    if with_subsidy is not None:
        return with_subsidy(pairs, pd.Series(extra, index=pairs.index))
    out = pairs.copy()
    out["esc_amount"] = out["esc_amount"].to_numpy(dtype=float) + extra
    out["net_cost_k"] = np.clip(out["tuition"].to_numpy(dtype=float) - out["esc_amount"], 0, None) / 1000
    return out


def pair_reach(pairs: pd.DataFrame) -> float:
    """Candidate radius (km) a pair table was built with: its build summary's, else the
    farthest new pair's distance (0 km when it has none)."""
    built = getattr(pairs.attrs.get("summary"), "radius_km", None)
    if built is not None:
        return float(built)
    new = pairs["pair_type"].to_numpy() == "new"
    return float(pairs.loc[new, "distance_km"].max()) if new.any() else 0.0


def _wider_radii(scenarios, pairs: pd.DataFrame) -> list[float]:
    """The scenario radii (km) beyond ``pairs``' own reach (:func:`pair_reach`)."""
    reach = pair_reach(pairs)
    return [s.radius_km for s in scenarios if s.radius_km is not None and s.radius_km > reach]


def needs_distances(scenarios, pairs: pd.DataFrame) -> bool:
    """Whether a run of ``scenarios`` on ``pairs`` reads the road distances at all.

    Only a scenario whose ``radius_km`` reaches beyond the table's own (:func:`pair_reach`)
    rebuilds pairs from the distance table (:func:`widened_pairs`); every other lever
    changes the table itself. False lets a caller release the distance table before
    the scenarios run (2.3 million rows, 118 MB at national scale with ``max_km`` 15).
    """
    return bool(_wider_radii(scenarios, pairs))


def widened_pairs(scenarios, pairs: pd.DataFrame, bundle=None, distances=None) -> pd.DataFrame | None:
    """The one pair table every scenario reaching beyond ``pairs`` filters from.

    Built once, at the widest scenario radius (km) above :func:`pair_reach` of
    ``pairs``, with ``build_pairs(bundle, distances, radius_km=...)``; None when no
    scenario reaches further, or when ``bundle`` or ``distances`` is missing (those
    scenarios then keep the new pairs ``pairs`` has).
    """
    wider = _wider_radii(scenarios, pairs)
    if not wider or bundle is None or distances is None:
        return None
    from studentflow.pairs import build_pairs

    return build_pairs(bundle, distances, radius_km=max(wider))


def subsidy_parts(scenario: Scenario, pairs: pd.DataFrame, bundle=None) -> tuple[pd.Series, pd.Series]:
    """A scenario's extra ESC amount as a school part plus an origin part, pesos.

    The extra amount on pair (i, j) is ``school_extra[j] + origin_extra[i]``: the uniform
    ``subsidy`` plus the tier amount of school j (``subsidy_by_tier``), and the targeted
    amount of origin i (``subsidy_targeted``: origins whose LGU revenue is below the
    quantile of the origins of ``pairs``). The cost model
    (:mod:`studentflow.scenarios.costs`) prices placements with the same two parts.

    Returns
    -------
    (pandas.Series, pandas.Series)
        Indexed by ``destination_id`` and ``origin_id`` of ``pairs``, pesos per learner.
    """
    schools = pairs.drop_duplicates("destination_id")
    school_extra = np.full(len(schools), scenario.subsidy, dtype=float)
    if scenario.subsidy_by_tier:
        school_extra += _tiers(schools, bundle).map(scenario.subsidy_by_tier).fillna(0.0).to_numpy(dtype=float)
    if scenario.subsidy_at:  # named schools (a plan's tier and catchment increases)
        ids = schools["destination_id"].astype(str)
        school_extra += ids.map(scenario.subsidy_at).fillna(0.0).to_numpy(dtype=float)
    revenue = pairs.groupby("origin_id", sort=False)["origin_lgu_revenue"].first()
    origin_extra = np.zeros(len(revenue))
    if scenario.subsidy_targeted:
        q, amount = scenario.subsidy_targeted
        cut = float(np.nanquantile(revenue.to_numpy(dtype=float), q))
        origin_extra = np.where(revenue.to_numpy(dtype=float) < cut, amount, 0.0)
    return (pd.Series(school_extra, index=schools["destination_id"].to_numpy()),
            pd.Series(origin_extra, index=revenue.index.to_numpy()))


def scenario_pairs(scenario: Scenario, pairs: pd.DataFrame, bundle=None, distances=None, *,
                   wide: pd.DataFrame | None = None, parts: bool = False):
    """The pair table a scenario works on: candidate radius and subsidy applied.

    A ``radius_km`` wider than the table's own (:func:`pair_reach`) takes its pairs from
    ``wide`` (:func:`widened_pairs`, built once for a whole run), else rebuilds them from
    ``bundle`` and ``distances``; a narrower one drops new pairs beyond it (km). Subsidy
    levers then change ``esc_amount`` (pesos) and ``net_cost_k`` of the rows they reach.
    With ``parts=True`` returns ``(pairs, school_extra, origin_extra)``, the extra
    amount's two parts (:func:`subsidy_parts`, pesos).
    """
    p = pairs
    if scenario.radius_km is not None:
        if scenario.radius_km > pair_reach(pairs):
            if wide is None and bundle is not None and distances is not None:
                wide = widened_pairs([scenario], pairs, bundle, distances)
            p = wide if wide is not None else p
        far = p["distance_km"].to_numpy() > scenario.radius_km
        p = p.loc[~(far & (p["pair_type"].to_numpy() == "new"))]
        if "within_radius" in p and far.any():  # the outcome-independent set at this radius
            p = p.assign(within_radius=p["within_radius"].to_numpy(dtype=bool)
                         & (p["distance_km"].to_numpy() <= scenario.radius_km))
    school_extra, origin_extra = subsidy_parts(scenario, p, bundle)
    extra = id_map(school_extra, p["destination_id"]) + id_map(origin_extra, p["origin_id"])
    if np.any(extra != 0):
        p = _apply_subsidy(p, extra)
    p = p.reset_index(drop=True)
    return (p, school_extra, origin_extra) if parts else p
