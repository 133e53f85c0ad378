"""The plan as tables a budget officer can sign: ``plan_by_school.csv`` and a rounded,
named ``plan.csv``.

``plan_by_school.csv`` has one row per target of the plan: an ESC school receiving slots,
a location tier or a congested public JHS's catchment receiving a subsidy increase, all
ESC schools (a uniform increase, or opening unused contracted slots), or a public JHS
receiving seats. A target's cost and relief are the sums of the marginal cost and relief
of its steps, in the order the plan took them, per Monte Carlo draw; so the rows add up
to the plan's totals in every draw (the rounded means add up to the rounded totals
exactly: largest-remainder rounding), and the 95 % intervals are those of each target's
per-draw sums. Rows are sorted by relief per peso (relief per free step first, then
most relief per peso). Pesos are whole pesos, learners one decimal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["PLACE", "plan_by_school", "rounded_plan", "round_to_total", "target_kind"]

#: Name and place columns of a target (empty for a tier or all ESC schools).
PLACE = ("name", "municipality", "province", "region")

_PESOS = ("cost", "cost_lo", "cost_hi", "pesos_per_relieved", "cumulative_cost", "cumulative_cost_lo",
          "cumulative_cost_hi")
_LEARNERS = ("relief", "relief_lo", "relief_hi", "cumulative_relief", "cumulative_relief_lo",
             "cumulative_relief_hi")


def round_to_total(values, decimals: int = 0) -> np.ndarray:
    """``values`` rounded to ``decimals`` so that they add up to their rounded sum
    (largest remainder: the units lost by rounding down go to the largest remainders).

    >>> round_to_total([0.4, 0.4, 0.4]).tolist()
    [0.0, 1.0, 0.0]
    """
    v = np.asarray(values, dtype=float) * 10.0 ** decimals
    if v.size == 0:
        return v
    low = np.floor(v)
    short = int(round(np.round(v.sum()) - low.sum()))
    order = np.argsort(-(v - low), kind="stable")
    out = low.copy()
    if short > 0:
        out[order[:short]] += 1
    elif short < 0:
        out[order[::-1][:-short]] -= 1
    return out / 10.0 ** decimals


def target_kind(action) -> str:
    """"ESC school", "tier", "catchment", "all ESC schools" or "public JHS"."""
    if action.kind == "slots":
        return "ESC school"
    if action.kind == "public_seats":
        return "public JHS"
    if action.kind == "subsidy" and action.group in ("tier", "catchment"):
        return action.group
    return "all ESC schools"


def _school_of(action, problem) -> str:
    """The school id whose name a target carries ("" for a tier or all schools)."""
    if action.kind in ("slots", "public_seats"):
        return str(action.target)
    if action.kind == "subsidy" and action.group == "catchment":
        if problem is not None and "catchment" in problem.groups:
            return str(problem.groups["catchment"][0][action.index])
        return str(action.target).rsplit(" ", 1)[-1]
    return ""


def _iv(v: np.ndarray) -> tuple[float, float, float]:
    lo, hi = np.percentile(v, [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def plan_by_school(plan, labels: pd.DataFrame | None = None, problem=None) -> pd.DataFrame:
    """One row per target of ``plan`` (see the module text), rounded.

    Parameters
    ----------
    plan : Plan
        The chosen plan (its steps carry per-draw cumulative relief and cost).
    labels : pandas.DataFrame, optional
        :func:`studentflow.report.names.school_labels` (index school id): name and place.
    problem : Problem, optional
        For the public JHS id of a catchment target.

    Returns
    -------
    pandas.DataFrame
        ``target_kind``, ``target``, ``school_id``, name, municipality, province,
        region, ``slots_added`` (slots), ``subsidy_change`` (pesos per learner per
        year), ``seats_added`` (public JHS seats), ``steps``, ``cost``/``_lo``/``_hi``
        (pesos per school year), ``relief``/``_lo``/``_hi`` (learners relieved from
        congested public JHS) and ``pesos_per_relieved``.
    """
    groups: dict = {}
    prev_r = prev_c = 0.0
    for st in plan.steps:
        a = st.action
        key = (a.kind, a.group, a.target)
        g = groups.setdefault(key, {"action": a, "amount": 0.0, "steps": 0, "relief": 0.0, "cost": 0.0})
        g["amount"] += st.amount
        g["steps"] += 1
        g["relief"] = g["relief"] + (st.relief - prev_r)
        g["cost"] = g["cost"] + (st.cost - prev_c)
        prev_r, prev_c = st.relief, st.cost
    rows = []
    for g in groups.values():
        a = g["action"]
        r, c = _iv(np.atleast_1d(g["relief"])), _iv(np.atleast_1d(g["cost"]))
        sid = _school_of(a, problem)
        place = {k: "" for k in PLACE}
        if sid and labels is not None and sid in labels.index:
            place = {k: labels.at[sid, k] if k in labels else "" for k in PLACE}
        rows.append({
            "target_kind": target_kind(a), "target": str(a.target), "school_id": sid, **place,
            "slots_added": g["amount"] if a.kind in ("slots", "fill_slots") else 0.0,
            "subsidy_change": g["amount"] if a.kind == "subsidy" else 0.0,
            "seats_added": g["amount"] if a.kind == "public_seats" else 0.0, "steps": g["steps"],
            "cost": c[0], "cost_lo": c[1], "cost_hi": c[2], "relief": r[0], "relief_lo": r[1], "relief_hi": r[2],
        })
    cols = ["target_kind", "target", "school_id", *PLACE, "slots_added", "subsidy_change", "seats_added", "steps",
            "cost", "cost_lo", "cost_hi", "relief", "relief_lo", "relief_hi", "pesos_per_relieved"]
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "pesos_per_relieved"])
    if out.empty:
        return pd.DataFrame(columns=cols)
    out["cost"] = round_to_total(out["cost"], 0)
    out["relief"] = round_to_total(out["relief"], 1)
    ratio = np.where(out["cost"] > 0, out["relief"] / out["cost"].where(out["cost"] > 0, 1.0),
                     np.where(out["relief"] > 0, np.inf, np.where(out["relief"] == 0, 0.0, -np.inf)))
    out = out.iloc[np.argsort(-ratio, kind="stable")].reset_index(drop=True)  # as shown: rounded figures
    for col in ("cost_lo", "cost_hi", "slots_added", "subsidy_change", "seats_added"):
        out[col] = out[col].round(0)
    for col in ("relief_lo", "relief_hi"):
        out[col] = out[col].round(1)
    out["pesos_per_relieved"] = (out["cost"] / out["relief"].where(out["relief"] > 0)).round(0).astype("Int64")
    for col in ("cost", "cost_lo", "cost_hi", "slots_added", "subsidy_change", "seats_added"):
        out[col] = out[col].astype("int64")
    return out[cols]


def rounded_plan(table: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """``plan.csv``: the step table with name and place after ``target`` (for a school,
    a public JHS or a catchment's JHS), pesos in whole pesos, learners to one decimal and
    amounts (slots, seats, pesos per learner) whole."""
    out = table.copy()
    if labels is not None and not labels.empty and len(out):
        ids = out["target"].astype(str).str.replace("catchment of JHS ", "", regex=False)
        at = out.columns.get_loc("target") + 1
        for k, col in enumerate(PLACE):
            if col in labels:
                out.insert(at + k, col, labels[col].reindex(ids).fillna("").to_numpy())
    for col in _PESOS:
        if col in out:
            v = out[col].to_numpy(dtype=float)  # pesos per learner: inf, or ~1e19 where a step relieves ~1e-14
            exact = bool(np.all(np.abs(v) < 2.0**53))  # NaN and inf fail too: whole pesos fit an integer column
            out[col] = out[col].round(0).astype("Int64") if exact else out[col].round(0)
    for col in _LEARNERS:
        if col in out:
            out[col] = out[col].round(1)
    if "amount" in out:
        out["amount"] = out["amount"].round(0).astype("int64")
    return out
