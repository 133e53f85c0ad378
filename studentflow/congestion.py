"""Congestion of public junior high schools and of the elementary schools that feed them.

A public JHS is *congested* when its seat utilisation, JHS enrolment (Grades 7-10,
learners) divided by JHS seats (chairs), exceeds 1 (paper-facts.md; DepEd's class-size
norm is 40, maximum 45). Learners beyond the seats are *aisle learners*:
``max(0, enrolment − seats)``. An origin (Grade 6) school *feeds* congestion when at
least one of its Grade 7 learners entered a congested public JHS.

Conventions: a JHS with 0 seats and some enrolment has infinite utilisation (congested);
a JHS whose seats are unknown (NaN) has NaN utilisation and is not flagged congested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.schema import OFFERS_JHS, require_columns


def jhs_congestion(bundle) -> pd.DataFrame:
    """Seat utilisation of every public school offering JHS.

    Parameters
    ----------
    bundle : studentflow.schema.Bundle
        Uses ``schools`` columns ``sector``, ``offering``, ``jhs_enrolment`` (learners)
        and ``jhs_seats`` (chairs).

    Returns
    -------
    pandas.DataFrame
        Index ``school_id``; columns ``jhs_enrolment`` (learners), ``jhs_seats``,
        ``utilisation`` (enrolment / seats), ``aisle_learners`` (learners above the
        seats, ≥ 0) and ``congested`` (utilisation > 1).
    """
    s = bundle.schools
    require_columns(s, ["sector", "offering", "jhs_enrolment", "jhs_seats"], name="bundle.schools")
    jhs = s[(s["sector"] == "public") & s["offering"].isin(sorted(OFFERS_JHS))]
    enrol = pd.to_numeric(jhs["jhs_enrolment"], errors="coerce").fillna(0).to_numpy(float)
    seats = pd.to_numeric(jhs["jhs_seats"], errors="coerce").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(seats > 0, enrol / seats, np.where(enrol > 0, np.inf, 0.0))
    util = np.where(np.isnan(seats), np.nan, util)
    aisle = np.where(np.isnan(seats), 0, np.maximum(0, enrol - np.nan_to_num(seats)))
    out = pd.DataFrame(
        {
            "jhs_enrolment": enrol.astype(np.int64),
            "jhs_seats": seats,
            "utilisation": util,
            "aisle_learners": np.ceil(aisle).astype(np.int64),
            "congested": np.nan_to_num(util, nan=0.0) > 1.0,
        },
        index=pd.Index(jhs.index.astype(str), name="school_id"),
    )
    return out


def origin_congestion(bundle) -> pd.DataFrame:
    """Per origin (Grade 6) school: how many of its Grade 7 learners entered congested JHS.

    Parameters
    ----------
    bundle : studentflow.schema.Bundle
        Uses ``flows`` (origin_id, destination_id, learners) and, through
        :func:`jhs_congestion`, ``schools``.

    Returns
    -------
    pandas.DataFrame
        Index ``school_id`` (every origin in ``flows``); columns ``grade7_learners``
        (sum of its flows, learners), ``to_congested`` (learners who entered a congested
        public JHS), ``congested_share`` (to_congested / grade7_learners, 0 when no
        learners) and ``feeds_congested`` (to_congested ≥ 1).
    """
    f = bundle.flows
    require_columns(f, ["origin_id", "destination_id", "learners"], name="bundle.flows")
    congested = jhs_congestion(bundle)
    hot = set(congested.index[congested["congested"]])
    learners = pd.to_numeric(f["learners"], errors="coerce").fillna(0).astype(np.int64)
    origin = f["origin_id"].astype(str)
    into_hot = learners.where(f["destination_id"].astype(str).isin(hot), 0)
    table = pd.DataFrame({"grade7_learners": learners.to_numpy(), "to_congested": into_hot.to_numpy()},
                         index=pd.Index(origin.to_numpy(), name="school_id"))
    out = table.groupby(level=0, sort=True).sum()
    total = out["grade7_learners"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["congested_share"] = np.where(total > 0, out["to_congested"] / total, 0.0)
    out["feeds_congested"] = out["to_congested"] >= 1
    out.index.name = "school_id"
    return out
