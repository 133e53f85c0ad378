"""The optimizer's plan on an interactive map (``optimize.html``): plotly ``scattergeo``,
inlined and offline like the report's map (:mod:`studentflow.report.interactive`).

Traces: the municipal outlines; the congested public JHS (grey, for orientation); the
ESC schools the plan adds slots at, sized by the slots added (trace "plan: ESC slots
added"); the ESC schools whose amount a tier, catchment or uniform increase raises
(small markers, trace "plan: subsidy raised"). Hover shows the school's row of
``plan_by_school.csv`` (name and place HTML-escaped).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.report.interactive import _NO_WORLD, _esc, _outline_trace
from studentflow.report.map_layers import lonlat as _lonlat

__all__ = ["plan_map", "PLAN_TRACE"]

#: Name of the trace of ESC schools sized by added slots (the browser test looks for it).
PLAN_TRACE = "plan: ESC slots added"


def _hover(r) -> str:
    head = f"<b>{_esc(r.name)}</b> ({_esc(r.school_id)})<br>" + ", ".join(
        _esc(v) for v in (r.municipality, r.province, r.region) if isinstance(v, str) and v)
    parts = [head]
    if r.slots_added:
        parts.append(f"slots added {int(r.slots_added):,}")
    if r.subsidy_change:
        parts.append(f"subsidy +₱{int(r.subsidy_change):,} per learner")
    parts.append(f"cost ₱{int(r.cost):,} [₱{int(r.cost_lo):,}, ₱{int(r.cost_hi):,}]")
    parts.append(f"learners relieved {r.relief:,.1f} [{r.relief_lo:,.1f}, {r.relief_hi:,.1f}]")
    return "<br>".join(parts)


def plan_map(by_school: pd.DataFrame, bundle, *, raised: pd.DataFrame | None = None, boundaries=None) -> str:
    """HTML fragment (div id ``studentflow-plan-map``) of the plan on a map.

    Parameters
    ----------
    by_school : pandas.DataFrame
        ``plan_by_school.csv``.
    bundle : Bundle
        School geometry.
    raised : pandas.DataFrame, optional
        ``school_id``, ``subsidy_change`` (pesos per learner) and ``via`` (the targets):
        schools a group increase raises.
    boundaries : geopandas.GeoDataFrame, optional
        Municipal outlines.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    outline = _outline_trace(boundaries, bundle)
    if outline is not None:
        fig.add_trace(outline)
    s = bundle.schools
    if "jhs_seats" in s and "jhs_enrolment" in s and "sector" in s:
        pub = s[(s["sector"].astype(str) == "public")
                & (pd.to_numeric(s["jhs_enrolment"], errors="coerce") > pd.to_numeric(s["jhs_seats"], errors="coerce"))]
        lon, lat = _lonlat(bundle, pub.index)
        fig.add_trace(go.Scattergeo(lon=lon, lat=lat, mode="markers", hoverinfo="text", name="congested public JHS",
                                    hovertext=[f"congested public JHS {_esc(i)}" for i in pub.index],
                                    marker=dict(size=5, color="#b0b0b0")))
    if raised is not None and len(raised):
        lon, lat = _lonlat(bundle, raised["school_id"].astype(str))
        text = [f"ESC school {_esc(r.school_id)}<br>amount raised +₱{int(r.subsidy_change):,} per learner "
                f"({_esc(r.via)})" for r in raised.itertuples()]
        fig.add_trace(go.Scattergeo(lon=lon, lat=lat, mode="markers", hovertext=text, hoverinfo="text",
                                    name="plan: subsidy raised", marker=dict(size=6, color="#e08214", opacity=0.7)))
    slots = by_school[(by_school["target_kind"] == "ESC school") & (by_school["slots_added"] > 0)]
    lon, lat = _lonlat(bundle, slots["school_id"].astype(str))
    top = max(float(slots["slots_added"].max()), 1.0) if len(slots) else 1.0
    size = 6 + 24 * np.sqrt(slots["slots_added"].to_numpy(float) / top)
    fig.add_trace(go.Scattergeo(lon=lon.tolist(), lat=lat.tolist(), mode="markers", hoverinfo="text", name=PLAN_TRACE,
                                hovertext=[_hover(r) for r in slots.itertuples()],  # plain lists: readable in the page
                                marker=dict(size=size.tolist(), color="#1b6ca8", opacity=0.6,
                                            line=dict(color="#0b3c61", width=0.5))))
    off = {f"show{layer}": False for layer in ("land", "ocean", "lakes", "rivers", "countries", "coastlines",
                                               "subunits", "frame")}
    fig.update_geos(projection_type="mercator", fitbounds="locations", bgcolor="rgba(0,0,0,0)", scope="world",
                    resolution=110, **off)
    fig.update_layout(height=650, margin=dict(l=0, r=0, t=10, b=0),
                      legend=dict(x=0.0, y=0.0, bgcolor="rgba(255,255,255,.8)"))
    return _NO_WORLD + fig.to_html(full_html=False, include_plotlyjs=True, div_id="studentflow-plan-map",
                                   config={"displaylogo": False, "scrollZoom": True, "responsive": True})
