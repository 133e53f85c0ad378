"""The report's interactive map (plotly ``scattergeo``, everything inlined).

Why plotly: its Python package ships ``plotly.min.js`` and
``Figure.to_html(include_plotlyjs=True)`` inlines it, so ``report.html`` stays one file
that opens offline, with no hand-written JavaScript. folium loads Leaflet and its plugins
from a CDN and would need its assets vendored and inlined by hand. The cost is size:
plotly.js adds about 4.8 MB to the report.

Why ``scattergeo`` (SVG, d3) and not plotly's tile maps (``scattermap``, MapLibre):
MapLibre starts a Web Worker from a ``blob:`` URL, which Chrome refuses on a page opened
from disk (``file://``, origin "null"), so a tile map stays blank when an analyst
double-clicks the report. The geo subplot needs no worker, no WebGL and no tiles: the
background is the approximate municipal outlines of :mod:`studentflow.geo.boundaries`
(a choropleth trace; hover shows the municipality) and plotly's own world layers are
switched off. plotly.js still downloads its world topology for a geo subplot whose first
trace is a choropleth even then, so the fragment first registers an empty topology under
that name (:data:`_NO_WORLD`, the only hand-written JavaScript). Nothing is fetched from
the network.

Traces: public JHS today (coloured by seat utilisation), and per scenario the public
JHS after it (coloured by utilisation after, mean of draws) and the ESC schools (sized
by slots); a "scenario" menu shows one scenario at a time (the legend toggles any trace).
A run of more than :data:`MAX_SCENARIOS` scenarios maps the baseline and those relieving
most learners (every scenario stays in the tables).
Hover text gives the school's name and place, and the figures with their 95 % intervals.
Text from raw files is HTML-escaped before it enters the figure.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd

__all__ = ["interactive_map", "map_figure"]

#: Registers an empty world topology with plotly.js, so it does not download one (all of
#: its layers are off; the map draws its own outlines). Name = scope + resolution.
_NO_WORLD = ("<script>window.PlotlyGeoAssets=window.PlotlyGeoAssets||{topojson:{}};"
             "window.PlotlyGeoAssets.topojson.world_110m={type:'Topology',objects:{},arcs:[]};</script>")

_SCALE = [[0.0, "#1a9850"], [0.45, "#fee08b"], [0.5, "#fdae61"], [1.0, "#d73027"]]
_CMIN, _CMAX = 0.5, 1.5  # utilisation 1.0 (seats full) sits at the scale's middle


def _esc(v) -> str:
    return html.escape("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))


def _lonlat(bundle, ids) -> tuple[np.ndarray, np.ndarray]:
    geom = bundle.schools.geometry.reindex(pd.Index(ids))
    ok = geom.notna().to_numpy()
    lon = np.full(len(ids), np.nan)
    lat = np.full(len(ids), np.nan)
    lon[ok] = geom[ok].x.to_numpy()
    lat[ok] = geom[ok].y.to_numpy()
    return lon, lat


class _Places(dict):
    """School id → escaped "<b>name</b> (id)<br>municipality, province" hover header."""

    def __init__(self, labels):
        super().__init__(
            (sid, f"<b>{_esc(name)}</b> ({_esc(sid)})<br>" + ", ".join(_esc(v) for v in (mun, prov) if v))
            for sid, name, mun, prov in zip(labels.index, labels["name"], labels["municipality"],
                                            labels["province"]))

    def __missing__(self, sid):
        return f"<b>{_esc(sid)}</b>"


def _place(places, sid) -> str:
    return places[sid]


def _outline_trace(boundaries, bundle):
    """Choropleth of the municipal outlines (one flat colour; hover: municipality), or None."""
    import plotly.graph_objects as go
    import shapely

    if boundaries is None or boundaries.empty:
        return None
    geom = shapely.set_precision(boundaries.geometry.simplify(0.0012).to_numpy(), 1e-4, mode="pointwise")
    geom = shapely.orient_polygons(geom, exterior_cw=True)  # d3-geo wants clockwise exteriors
    frame = boundaries.set_geometry(geom)[["geometry"]]
    gj = json.loads(frame.to_json())
    areas = getattr(bundle, "areas", None)
    text = []
    for code in frame.index:
        if areas is not None and code in areas.index:
            a = areas.loc[code]
            text.append(f"{_esc(a.get('municipality'))}, {_esc(a.get('province'))}")
        else:
            text.append(_esc(code))
    return go.Choropleth(geojson=gj, locations=list(frame.index), z=np.zeros(len(frame)), showscale=False,
                         colorscale=[[0, "#f1f0ea"], [1, "#f1f0ea"]], marker=dict(line=dict(color="#9a9a9a",
                         width=0.5)), hovertext=text, hoverinfo="text", name="municipalities (approximate)",
                         showlegend=True)


#: At most this many scenarios get a layer (a long sweep would make the report huge).
MAX_SCENARIOS = 12


def _shown(result, scenario) -> list[str]:
    """Scenarios with a map layer, in run order: all of them up to :data:`MAX_SCENARIOS`, else
    the baseline, ``scenario`` and those relieving most learners."""
    names = [s.name for s in result.scenarios]
    if len(names) <= MAX_SCENARIOS:
        return names
    t = result.table.set_index("scenario")
    ranked = t["relieved_mean"].sort_values(ascending=False).index if "relieved_mean" in t else names
    keep = list(dict.fromkeys([result.baseline, scenario, *ranked]))[:MAX_SCENARIOS]
    return [n for n in names if n in keep]


def map_figure(result, bundle, *, boundaries=None, scenario: str | None = None):
    """The plotly Figure of :func:`interactive_map` (see the module text)."""
    import plotly.graph_objects as go

    from studentflow.report.names import school_labels

    labels = _Places(school_labels(bundle))
    pj, es = result.public_jhs, result.esc_schools
    t = result.table.set_index("scenario")
    if scenario is None:
        scenario = t["relieved_mean"].idxmax() if "relieved_mean" in t else result.baseline
    names = _shown(result, scenario)
    fig = go.Figure()
    outline = _outline_trace(boundaries, bundle)
    if outline is not None:
        fig.add_trace(outline)
    today = pj[pj["scenario"] == result.baseline]
    lon, lat = _lonlat(bundle, today["school_id"])
    text = [f"{_place(labels, r.school_id)}<br>public JHS today: {r.enrolment_before:,.0f} learners / "
            f"{r.jhs_seats:,.0f} seats<br>utilisation {r.utilisation_before:.2f}"
            for r in today.itertuples()]
    marker = dict(size=9, color=today["utilisation_before"], colorscale=_SCALE, cmin=_CMIN, cmax=_CMAX,
                  colorbar=dict(title=dict(text="seat<br>utilisation"), x=1.0, len=0.7))
    today_trace = go.Scattergeo(lon=lon, lat=lat, mode="markers", marker=marker, hovertext=text,
                                hoverinfo="text", name="public JHS today", legendgroup="today", visible=False)
    for name in names:
        after = pj[pj["scenario"] == name]
        lon, lat = _lonlat(bundle, after["school_id"])
        iv = "relieved_vs_baseline" if "relieved_vs_baseline_mean" in after else "relieved"
        text = [f"{_place(labels, r.school_id)}<br><i>{_esc(name)}</i><br>utilisation {r.utilisation_before:.2f} "
                f"→ {r.utilisation_after_mean:.2f}<br>learners relieved {r.relieved_mean:,.1f} "
                f"[{r.relieved_lo:,.1f}, {r.relieved_hi:,.1f}]<br>vs baseline {getattr(r, iv + '_mean'):+,.1f} "
                f"[{getattr(r, iv + '_lo'):+,.1f}, {getattr(r, iv + '_hi'):+,.1f}]" for r in after.itertuples()]
        jhs_trace = go.Scattergeo(
            lon=lon, lat=lat, mode="markers", hovertext=text, hoverinfo="text", visible=name == scenario,
            marker=dict(marker, color=after["utilisation_after_mean"]), name=f"public JHS after: {_esc(name)}",
            legendgroup=name)
        esc = es[es["scenario"] == name]
        lon, lat = _lonlat(bundle, esc["school_id"])
        size = 5 + 20 * np.sqrt(esc["slots"].to_numpy(float) / max(float(es["slots"].max()), 1.0))
        text = [f"{_place(labels, r.school_id)}<br><i>{_esc(name)}</i><br>ESC placed {r.placed_mean:,.1f} "
                f"[{r.placed_lo:,.0f}, {r.placed_hi:,.0f}] of {r.slots:,} slots<br>full in {r.full_share:.0%} "
                "of draws" for r in esc.itertuples()]
        fig.add_trace(go.Scattergeo(
            lon=lon, lat=lat, mode="markers", hovertext=text, hoverinfo="text", visible=name == scenario,
            marker=dict(size=size, color="#1b6ca8", opacity=0.45), name=f"ESC schools: {_esc(name)}",
            legendgroup=name))
        fig.add_trace(jhs_trace)  # public JHS drawn over the ESC schools
    fig.add_trace(today_trace)
    fixed = [True] if outline is not None else []
    # menu: "today" shows public JHS before any scenario (with the baseline's ESC schools); each
    # scenario shows its public JHS after it and its ESC schools
    # traces: [outlines], then per scenario its ESC schools and its public JHS, then public JHS today
    buttons = [dict(label="today (no scenario)", method="update", args=[{"visible": fixed + [
        k == 0 and n == result.baseline for n in names for k in (0, 1)] + [True]}])]
    buttons += [dict(label=_esc(name), method="update",
                     args=[{"visible": fixed + [n == name for n in names for _ in (0, 1)] + [False]}])
                for name in names]
    off = {f"show{layer}": False for layer in ("land", "ocean", "lakes", "rivers", "countries", "coastlines",
                                               "subunits", "frame")}
    fig.update_geos(projection_type="mercator", fitbounds="locations", bgcolor="rgba(0,0,0,0)", scope="world",
                    resolution=110, **off)
    fig.update_layout(
        height=700, margin=dict(l=0, r=0, t=64, b=0), legend=dict(x=0.0, y=0.0, bgcolor="rgba(255,255,255,.8)"),
        updatemenus=[dict(buttons=buttons, active=names.index(scenario) + 1, x=0.0, y=1.0, xanchor="left",
                          yanchor="bottom", pad=dict(t=2))],
        annotations=[dict(text="shown: public JHS today, or after a scenario (with its ESC schools)", x=0.0, y=1.0, xref="paper",
                          yref="paper", showarrow=False, xanchor="left", yanchor="bottom", yshift=30, xshift=2,
                          font=dict(size=11, color="#555"))],
    )
    return fig


def interactive_map(result, bundle, *, boundaries=None, scenario: str | None = None) -> str:
    """HTML fragment of the interactive map, plotly.js inlined (no network needed, opens from disk).

    Parameters
    ----------
    result : ScenarioResult
        With ``public_jhs`` (needs a bundle at run time) and ``esc_schools``.
    bundle : Bundle
        School geometry, names and places.
    boundaries : geopandas.GeoDataFrame, optional
        Municipal outlines (:func:`studentflow.geo.boundaries.municipal_boundaries`).
    scenario : str, optional
        Scenario shown first (default: the one relieving most learners).
    """
    fig = map_figure(result, bundle, boundaries=boundaries, scenario=scenario)
    return _NO_WORLD + fig.to_html(full_html=False, include_plotlyjs=True, div_id="studentflow-map",
                       config={"displaylogo": False, "scrollZoom": True, "responsive": True})
