"""The PairTable: observed and candidate origin → ESC-school pairs with covariates.

One row per (origin school, ESC school) pair (docs/contracts.md §3):

=========================  ==============================================================
column                     meaning
=========================  ==============================================================
origin_id, destination_id  6-digit school ids
pair_type                  "observed" (≥ 1 learner on the pair) or "new" (candidate)
learners                   observed learners on the pair (0 for new pairs)
esc_beneficiaries          observed ESC beneficiaries on the pair (0 for new) — the count
distance_km                road km (see ``distance_method``); 0 for a within-school pair
distance_method            "network" / "matrix" / "great_circle" (as supplied), or
                           "great_circle_fallback": observed pair missing from
                           ``distances``, filled with great-circle × circuity
tuition, esc_amount        pesos (Grade 7 tuition + fees; ESC subsidy of the destination)
net_cost_k                 max(0, tuition − esc_amount) / 1000, thousand pesos
esc_rating, esc_unrated    rank 1–8; unrated destinations get the median rank of rated
                           ESC schools and ``esc_unrated`` True
origin_lgu_revenue         pesos, LGU revenue of the origin's municipality
origin_region,             canonical regions
destination_region
origin_pool                Grade 7 learners of the origin (sum of its flows)
origin_esc_beneficiaries   ESC beneficiaries from the origin, all destinations
destination_slots,         contracted / billed ESC slots of the destination
destination_billed
origin_feeds_congested     origin sent ≥ 1 learner to a congested public JHS
origin_congested_share     share of its Grade 7 learners who entered a congested JHS
within_radius              the pair is in the outcome-independent radius set: origin with
                           Grade 7 learners × ESC school (participation flag) at most
                           ``radius_km`` road km apart in ``distances`` (a great-circle
                           fall-back distance never counts)
=========================  ==============================================================

Observed pairs are every flow with ≥ 1 learner into an ESC destination (an ESC school,
or any school receiving ESC beneficiaries), so the observed beneficiary counts sum to
the bundle's ESC total; they are in the table whatever their distance. The study's
gravity sample is the subset with ``esc_beneficiaries ≥ 1``. Which zero ("new") pairs are
added depends on ``candidates``:

- ``"study"`` (default; replicates the study's allocation): origins that feed a congested
  public JHS × ESC schools with contracted slots within ``radius_km`` road km, not
  observed today. This set is chosen with the outcome: near pairs appear whether or not
  learners took them, far pairs only when they did.
- ``"radius"``: every origin with Grade 7 learners × every ESC school within
  ``radius_km`` road km, zeros included, plus the observed pairs beyond the radius with
  ``within_radius`` False. ``pairs[pairs.within_radius]`` is a candidate set defined by
  distance alone, independently of the outcome.

Which set is consistent for which ``zeros`` mode of
:func:`studentflow.gravity.fit.fit_gravity` (counts NB2 over the pairs learners could take):

- ``zeros="include"`` (NB2 on all rows, zeros included) needs an outcome-independent
  candidate set: fit it on ``pairs[pairs.within_radius]`` of ``candidates="radius"``.
  On the ``"study"`` set it is inconsistent: zeros there are only near pairs from
  congested feeders, while other pairs enter only when learners took them. The bias
  goes either way: when far pairs appear only with beneficiaries they look popular and
  the distance coefficient is biased up (a sample whose truth reached 10 km: +0.82 for
  a true −0.45); when far pairs appear because non-ESC learners took them, with no
  beneficiaries, they look deserted and it is biased down (the rationed 5 km sample:
  −0.79). The whole ``"radius"`` table has the same problem (its rows beyond the
  radius are observed pairs): estimate on ``pairs[pairs.within_radius]`` only.
- ``zeros="truncate"`` (zero-truncated NB2) and ``zeros="drop"`` (the study's plain NB2,
  biased) use the positive pairs only, which both candidate sets contain in full, so
  the choice of set does not change them.

A selection on distance (an exogenous covariate) keeps ``"include"`` consistent even when
the radius is smaller than the reach of the true candidate set. When schools ration
admissions (full schools turn learners away), realised counts are thinned school by
school; destination-level terms absorb some of it but a pair-level covariate like
distance is the robust one to compare with a known truth.

An observed pair whose distance is missing (outside ``max_km`` of the supplied table, or
a school outside the matrix) is kept with great-circle × circuity distance and flagged;
if either school has no coordinates the pair is dropped and counted. Counts are in
``pairs.attrs["summary"]`` (:class:`PairSummary`). Missing tuition or subsidy leaves
``net_cost_k`` NaN (the gravity fit drops such rows). A within-school pair (a school
with Grade 6 and an ESC junior high) has distance 0 (:mod:`studentflow.geo.distances`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from studentflow import geo
from studentflow.congestion import origin_congestion
from studentflow.malloc import trim
from studentflow.schema import id_positions, ids_isin, require_columns, take_at as _at

log = logging.getLogger(__name__)

PAIR_COLUMNS = (
    "origin_id", "destination_id", "pair_type", "learners", "esc_beneficiaries", "distance_km",
    "distance_method", "tuition", "esc_amount", "net_cost_k", "esc_rating", "esc_unrated",
    "origin_lgu_revenue", "origin_region", "destination_region", "origin_pool",
    "origin_esc_beneficiaries", "destination_slots", "destination_billed",
    "origin_feeds_congested", "origin_congested_share", "within_radius", "destination_billed_share_before",
)
#: The destination's largest share of contracted slots billed in an earlier school year
#: (``Bundle.slot_history``; NaN without one): tells a full school from one that bills
#: what it admitted (:func:`studentflow.scenarios.calibrate.below_capacity`).
BILLED_SHARE_BEFORE = "destination_billed_share_before"
CANDIDATES = ("study", "radius")
Candidates = Literal["study", "radius"]


@dataclass(frozen=True)
class PairSummary:
    """Counts behind one :func:`build_pairs` call."""

    observed: int
    new: int
    radius_km: float
    gc_fallback: int  # observed pairs with great-circle × circuity distance
    dropped_no_location: int  # observed pairs dropped: a school without coordinates
    dropped_beneficiaries: int  # ESC beneficiaries on those dropped pairs
    unrated_destinations: int
    missing_net_cost: int  # pairs with NaN net cost (tuition or subsidy unknown)
    candidates: str = "study"
    within_radius: int = 0  # pairs in the outcome-independent radius set

    def __deepcopy__(self, memo):  # immutable: pandas deep-copies attrs on every new frame
        return self

    def summary(self) -> str:
        """One paragraph in words."""
        rule = ("congested feeders × ESC schools with slots" if self.candidates == "study"
                else "origins × ESC schools")
        return (f"PairTable ({self.candidates} candidates): {self.observed:,} observed and {self.new:,} new "
                f"pairs (new = {rule} within {self.radius_km:g} km); {self.within_radius:,} pairs within the "
                f"radius set. {self.gc_fallback:,} observed pairs use great-circle × circuity distance; "
                f"{self.dropped_no_location:,} observed pairs dropped for want of coordinates "
                f"({self.dropped_beneficiaries:,} ESC beneficiaries); "
                f"{self.unrated_destinations:,} unrated destinations got the median rank; "
                f"{self.missing_net_cost:,} pairs lack a net cost.")


def _observed(bundle, esc_ids: pd.Index) -> pd.DataFrame:
    f = bundle.flows
    require_columns(f, ["origin_id", "destination_id", "learners", "esc_beneficiaries"], name="bundle.flows")
    f = pd.DataFrame({"origin_id": f["origin_id"].astype(str), "destination_id": f["destination_id"].astype(str),
                      **{c: pd.to_numeric(f[c]).astype(np.int64) for c in ("learners", "esc_beneficiaries")}})
    f = f[(f["learners"] >= 1).to_numpy() & ids_isin(f["destination_id"], esc_ids)]
    return f.groupby(["origin_id", "destination_id"], as_index=False)[["learners", "esc_beneficiaries"]].sum()


def _extra(extras: dict, *keys):
    """First of ``keys`` present in ``extras`` with a value (no truth test: may be a DataFrame)."""
    return next((extras[k] for k in keys if extras.get(k) is not None), None)


def bundle_distances(bundle, origins, esc_ids, *, circuity: float = 1.3,
                     max_km: float | None = None, client=None) -> pd.DataFrame:
    """Road distances (km) for the given origins × ESC schools from what the bundle offers.

    ``extras["road_distances"]`` (what ingest fills: ``(npy, json)``) or
    ``extras["road_matrix"]`` (a path or tuple), either of which may also be a
    :func:`studentflow.geo.distances.road_distances` table (returned as given); else
    ``extras["road_network"]``; else great-circle × ``circuity``. ``max_km`` keeps the
    table sparse (the network search stops there). ``client`` (a
    :class:`dask.distributed.Client` or scheduler address) runs the origin blocks as
    Dask tasks, with the same table as without (:func:`studentflow.geo.distances.road_distances`).
    """
    s = bundle.schools
    o, d = s.loc[s.index.intersection(origins)], s.loc[s.index.intersection(esc_ids)]
    extras = getattr(bundle, "extras", None) or {}
    matrix = _extra(extras, "road_distances", "road_matrix")
    if isinstance(matrix, pd.DataFrame):
        return matrix
    if matrix is not None:
        return geo.road_distances(o, d, matrix=matrix, max_km=max_km, client=client)
    out = geo.road_distances(o, d, network=_extra(extras, "road_network"), circuity=circuity,
                             max_km=max_km, client=client)
    trim()  # the road search's temporaries: free heap pages back to the OS (studentflow.malloc)
    return out


def _keys(df: pd.DataFrame) -> pd.MultiIndex:  # (origin_id, destination_id)
    return pd.MultiIndex.from_frame(df[["origin_id", "destination_id"]])


def _trimmed(fn):
    """``fn``, then :func:`studentflow.malloc.trim` once its locals are gone (the national
    pair table's temporaries: 290 MB of cycles and free heap)."""
    return functools.wraps(fn)(lambda *args, **kwargs: (fn(*args, **kwargs), trim())[0])


@_trimmed
def build_pairs(bundle, distances: pd.DataFrame | None = None, *, radius_km: float = 5.0,
                circuity: float = geo.DEFAULT_CIRCUITY, candidates: Candidates = "study") -> pd.DataFrame:
    """Observed and candidate origin → ESC-school pairs with covariates and net cost.

    Parameters
    ----------
    bundle : studentflow.schema.Bundle
        Canonical schools, flows, areas and subsidy.
    distances : pandas.DataFrame, optional
        :func:`studentflow.geo.distances.road_distances` output (origin_id, destination_id,
        distance_km, method), covering at least the ESC schools within ``radius_km`` of
        every candidate origin (congested feeders for ``"study"``, every origin for
        ``"radius"``). ``None``: computed here from ``bundle.extras``
        (``road_distances`` / ``road_matrix``, else ``road_network``, else
        great-circle × ``circuity``), every origin × every ESC school, no distance limit.
    radius_km : float
        Road km within which candidate pairs are drawn (study: 5 km).
    circuity : float
        Factor for great-circle fall-back distances (road km per great-circle km).
    candidates : {"study", "radius"}
        Which zero pairs to add (module docstring): ``"study"`` = congested feeders ×
        ESC schools with slots within the radius (the study's allocation rule, selected
        on the outcome); ``"radius"`` = every origin × every ESC school within the
        radius, so that ``pairs[pairs.within_radius]`` is an outcome-independent
        estimation sample for ``fit_gravity(..., zeros="include")``.

    Returns
    -------
    pandas.DataFrame
        The PairTable (columns in the module docstring), observed pairs first, then new,
        each sorted by origin then destination; ``attrs["summary"]`` is a
        :class:`PairSummary`.
    """
    if not (np.isfinite(radius_km) and radius_km >= 0):
        raise ValueError(f"build_pairs: radius_km must be a non-negative number of km, got {radius_km}")
    if candidates not in CANDIDATES:
        raise ValueError(f"build_pairs: candidates must be one of {CANDIDATES}, got {candidates!r}")
    s = bundle.schools
    require_columns(s, ["region", "psgc_code", "esc", "esc_slots", "esc_slots_billed", "tuition",
                        "esc_rating", "geometry"], name="bundle.schools")
    s = s.set_axis(s.index.astype(str))
    esc_flag = s.index[s["esc"].fillna(False).astype(bool)]
    benef_dest = bundle.flows.loc[pd.to_numeric(bundle.flows["esc_beneficiaries"]) > 0, "destination_id"]
    esc_ids = esc_flag.union(pd.Index(benef_dest.astype(str).unique()))
    obs = _observed(bundle, esc_ids)
    oc = origin_congestion(bundle)
    feeders = oc.index[oc["feeds_congested"]]
    senders = oc.index[oc["grade7_learners"] > 0]
    if distances is None:
        need = senders if candidates == "radius" else feeders
        distances = bundle_distances(bundle, obs["origin_id"].drop_duplicates().pipe(pd.Index).union(need),
                                     esc_ids, circuity=circuity)
    require_columns(distances, ["origin_id", "destination_id", "distance_km"], name="distances")
    dist = pd.DataFrame({
        "origin_id": distances["origin_id"].astype(str), "destination_id": distances["destination_id"].astype(str),
        "distance_km": distances["distance_km"].astype(float),
        "distance_method": (distances["method"].astype(str) if "method" in distances else "supplied"),
    })
    # dedup, isin, merge rows on integer id codes: the national table's 2.3M strings hashed once
    (co, uo), (cd, ud) = (pd.factorize(dist[c]) for c in ("origin_id", "destination_id"))
    key = (co + 1) * (len(ud) + 1) + (cd + 1)  # one per (origin, destination), NaN too
    if ((ks := np.sort(key))[1:] == ks[:-1]).any():  # (a sorted copy: a third of a hash table's bytes)
        dup = pd.Series(key).duplicated().to_numpy()
        dist, co, cd, key = dist[~dup], co[~dup], cd[~dup], key[~dup]
    # the outcome-independent radius set: senders × ESC schools (flag) within the radius
    def isin(codes, uniques, ids):  # Series(uniques.take(codes)).isin(ids), -1 being NaN
        return np.append(ids_isin(pd.Index(uniques), ids), pd.Index([np.nan], dtype=object).isin(ids))[codes]
    radius_set = dist[isin(co, uo, senders) & isin(cd, ud, esc_flag) & (dist["distance_km"] <= radius_km).to_numpy()]
    # observed pairs: attach distances (rows with matching codes), else great-circle × circuity, else drop
    ok = (pd.Index(uo).get_indexer(obs["origin_id"]) + 1) * (len(ud) + 1) + pd.Index(ud).get_indexer(obs["destination_id"]) + 1
    obs = obs.merge(dist[pd.Series(key).isin(ok).to_numpy()], on=["origin_id", "destination_id"], how="left")
    del co, cd, key, ks
    miss = obs["distance_km"].isna().to_numpy()
    gc_fallback = dropped = dropped_b = 0
    if miss.any():
        ids, lon, lat, _ = geo.school_points(s[["geometry"]], name="bundle.schools")
        xy = pd.DataFrame({"lon": lon, "lat": lat}, index=ids)
        a = xy.reindex(obs.loc[miss, "origin_id"]).to_numpy()
        b = xy.reindex(obs.loc[miss, "destination_id"]).to_numpy()
        km = circuity * geo.haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
        same = (obs.loc[miss, "origin_id"] == obs.loc[miss, "destination_id"]).to_numpy()
        obs.loc[miss, "distance_km"] = np.where(same & np.isfinite(km), 0.0, km)  # within-school: 0 km
        obs.loc[miss, "distance_method"] = "great_circle_fallback"
        lost = obs["distance_km"].isna()
        gc_fallback = int(miss.sum() - lost.sum())
        dropped, dropped_b = int(lost.sum()), int(obs.loc[lost, "esc_beneficiaries"].sum())
        obs = obs[~lost]
    obs["pair_type"] = "observed"

    if candidates == "study":  # congested feeders × ESC schools with slots within radius
        slots = pd.to_numeric(s["esc_slots"], errors="coerce").fillna(0)
        with_slots = s.index[s["esc"].fillna(False).astype(bool) & (slots > 0)]
        new = radius_set[ids_isin(radius_set["origin_id"], feeders) & ids_isin(radius_set["destination_id"], with_slots)]
    else:
        new = radius_set
    new = new[~_keys(new).isin(_keys(obs))]
    new = new.assign(pair_type="new", learners=0, esc_beneficiaries=0).sort_values(["origin_id", "destination_id"])
    pairs = pd.concat([obs, new], ignore_index=True)
    pairs = pairs.astype({"learners": np.int64, "esc_beneficiaries": np.int64})
    inside = _keys(pairs).isin(_keys(radius_set))
    pairs["within_radius"] = inside & (pairs["distance_method"] != "great_circle_fallback").to_numpy()
    return _covariates(bundle, s, pairs, oc, radius_km, gc_fallback, dropped, dropped_b, candidates)


def _covariates(bundle, s, pairs, oc, radius_km, gc_fallback, dropped, dropped_b, candidates) -> pd.DataFrame:
    o, d = pairs["origin_id"], pairs["destination_id"]
    o_at, d_at = id_positions(s.index, o), id_positions(s.index, d)
    amount = pd.to_numeric(bundle.subsidy["amount"], errors="coerce").set_axis(bundle.subsidy.index.astype(str))
    pairs["tuition"] = pd.to_numeric(_at(s["tuition"], d_at), errors="coerce").to_numpy(float)
    pairs["esc_amount"] = _at(amount, id_positions(amount.index, d)).to_numpy(float)
    pairs["net_cost_k"] = net_cost_k(pairs["tuition"], pairs["esc_amount"])
    rating = pd.to_numeric(s["esc_rating"], errors="coerce")
    esc_rated = rating[s["esc"].fillna(False).astype(bool)].dropna()
    median = float(esc_rated.median()) if len(esc_rated) else float(rating.median())
    r = _at(rating, d_at).to_numpy(float)
    pairs["esc_unrated"] = np.isnan(r)
    pairs["esc_rating"] = np.where(np.isnan(r), median, r)
    revenue = pd.to_numeric(bundle.areas["lgu_revenue"], errors="coerce").set_axis(bundle.areas.index.astype(str))
    psgc = _at(s["psgc_code"], o_at).astype(str)
    pairs["origin_lgu_revenue"] = _at(revenue, id_positions(revenue.index, psgc)).to_numpy(float)
    pairs["origin_region"] = _at(s["region"], o_at).to_numpy()
    pairs["destination_region"] = _at(s["region"], d_at).to_numpy()
    f = bundle.flows
    benef = pd.to_numeric(f["esc_beneficiaries"]).groupby(f["origin_id"].astype(str)).sum()
    oc_at = id_positions(oc.index, o)
    pairs["origin_pool"] = _at(oc["grade7_learners"], oc_at).fillna(0).astype(np.int64).to_numpy()
    pairs["origin_esc_beneficiaries"] = _at(benef, id_positions(benef.index, o)).fillna(0).astype(np.int64).to_numpy()
    for col, src in (("destination_slots", "esc_slots"), ("destination_billed", "esc_slots_billed")):
        pairs[col] = pd.to_numeric(_at(s[src], d_at), errors="coerce").fillna(0).astype(np.int64).to_numpy()
    pairs["origin_feeds_congested"] = _at(oc["feeds_congested"], oc_at).fillna(False).astype(bool).to_numpy()
    pairs["origin_congested_share"] = _at(oc["congested_share"], oc_at).fillna(0.0).to_numpy(float)
    billed = billed_share_before(bundle)
    pairs[BILLED_SHARE_BEFORE] = _at(billed, id_positions(billed.index, d)).to_numpy(float)
    out = pairs.loc[:, list(PAIR_COLUMNS)].reset_index(drop=True)
    out.attrs["summary"] = PairSummary(
        observed=int((out["pair_type"] == "observed").sum()), new=int((out["pair_type"] == "new").sum()),
        radius_km=float(radius_km), gc_fallback=gc_fallback, dropped_no_location=dropped,
        dropped_beneficiaries=dropped_b, unrated_destinations=int(out.loc[out["esc_unrated"], "destination_id"].nunique()),
        missing_net_cost=int(out["net_cost_k"].isna().sum()), candidates=candidates,
        within_radius=int(out["within_radius"].sum()))
    log.info(out.attrs["summary"].summary())
    return out


def billed_share_before(bundle) -> pd.Series:
    """Per ESC school: the largest share of its contracted slots it billed in an earlier
    school year (``Bundle.slot_history``), dimensionless; empty without a history."""
    h = getattr(bundle, "slot_history", None)
    if h is None or not len(h):
        return pd.Series(dtype=float)
    slots = pd.to_numeric(h["slots"], errors="coerce")
    share = pd.to_numeric(h["billed"], errors="coerce") / slots.where(slots > 0)
    return share.groupby(h["school_id"].astype(str).to_numpy()).max()


def net_cost_k(tuition, esc_amount) -> np.ndarray:
    """Net cost in thousand pesos: ``max(0, tuition − esc_amount) / 1000`` (NaN stays NaN)."""
    t, a = np.asarray(tuition, dtype=float), np.asarray(esc_amount, dtype=float)
    return np.maximum(0.0, t - a) / 1000.0


def with_subsidy(pairs: pd.DataFrame, extra_pesos) -> pd.DataFrame:
    """A copy of ``pairs`` with the ESC amount raised by ``extra_pesos`` and net cost recomputed.

    Parameters
    ----------
    pairs : pandas.DataFrame
        A PairTable (needs ``destination_id``, ``tuition``, ``esc_amount``).
    extra_pesos : float, pandas.Series or Mapping
        Pesos added per learner: a scalar for every pair; a Series indexed like
        ``pairs`` (one value per row); or a mapping ``destination_id → pesos`` (a dict,
        or a Series indexed by destination ids; destinations not listed get 0).

    Returns
    -------
    pandas.DataFrame
        Copy with ``esc_amount`` (pesos) and ``net_cost_k`` (thousand pesos) updated.
    """
    require_columns(pairs, ["destination_id", "tuition", "esc_amount"], name="pairs")
    if isinstance(extra_pesos, pd.Series) and extra_pesos.index.equals(pairs.index):
        extra = pd.to_numeric(extra_pesos, errors="coerce").to_numpy(float)
    elif isinstance(extra_pesos, (Mapping, pd.Series)):
        mapping = pd.Series(dict(extra_pesos) if isinstance(extra_pesos, Mapping) else extra_pesos)
        mapping.index = mapping.index.astype(str)
        unknown = mapping.index.difference(pd.Index(pairs["destination_id"].astype(str).unique()))
        if len(unknown):
            raise ValueError(f"with_subsidy: extra_pesos names destination(s) not in pairs, e.g. "
                             f"{list(unknown[:5])} (a row-aligned Series must share pairs' index)")
        extra = pd.to_numeric(mapping, errors="coerce").reindex(pairs["destination_id"].astype(str)).fillna(0.0)
        extra = extra.to_numpy(float)
    else:
        try:
            extra = np.full(len(pairs), float(extra_pesos))
        except (TypeError, ValueError):
            raise ValueError(f"with_subsidy: extra_pesos must be a number, Series or mapping, "
                             f"got {type(extra_pesos).__name__}") from None
    if not np.isfinite(extra).all():
        raise ValueError(f"with_subsidy: extra_pesos row {int(np.flatnonzero(~np.isfinite(extra))[0])} "
                         "is not a finite number of pesos")
    out = pairs.copy(deep=False)  # copy-on-write: the other columns shared, not copied (65 MB nationally)
    out["esc_amount"] = out["esc_amount"].to_numpy(float) + extra
    out["net_cost_k"] = net_cost_k(out["tuition"], out["esc_amount"])
    return out
