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

from studentflow.report.map_layers import aggregated, by_municipality, lonlat

__all__ = ["interactive_map", "map_figure", "figure_dict"]

#: Registers an empty world topology with plotly.js, so it does not download one (all of
#: its layers are off; the map draws its own outlines). Name = scope + resolution.
_NO_WORLD = ("<script>window.PlotlyGeoAssets=window.PlotlyGeoAssets||{topojson:{}};"
             "window.PlotlyGeoAssets.topojson.world_110m={type:'Topology',objects:{},arcs:[]};</script>")

_SCALE = [[0.0, "#1a9850"], [0.45, "#fee08b"], [0.5, "#fdae61"], [1.0, "#d73027"]]
_CMIN, _CMAX = 0.5, 1.5  # utilisation 1.0 (seats full) sits at the scale's middle


def _esc(v) -> str:
    return html.escape("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))


def _esc_all(values) -> list[str]:
    """:func:`_esc` of each of ``values`` (text), each distinct one escaped once: a national map
    names the same 1,600 municipalities in every scenario's layers (53,000 escapes → 3,500)."""
    seen: dict = {}
    return [seen[v] if v in seen else seen.setdefault(v, _esc(v)) for v in values]


class _Places(dict):
    """School id → escaped "<b>name</b> (id)<br>municipality, province" hover header, for
    the ids :meth:`add` was given (a national bundle has 59,000 schools; a map shows a
    few thousand)."""

    def __init__(self, labels):
        super().__init__()
        self.labels = labels

    def add(self, ids) -> None:
        """Build the headers of ``ids`` (those not built yet), in one pass."""
        new = pd.Index(pd.unique(np.asarray(ids, dtype=object))).difference(pd.Index(list(self)))
        if len(new) == 0:
            return
        t = self.labels.reindex(new.astype(str))
        self.update((sid, f"<b>{_esc(name)}</b> ({_esc(sid)})<br>" + ", ".join(_esc(v) for v in (mun, prov) if v))
                    for sid, name, mun, prov, known in zip(new, t["name"], t["municipality"], t["province"],
                                                           new.astype(str).isin(self.labels.index)) if known)

    def __missing__(self, sid):
        return f"<b>{_esc(sid)}</b>"


def _place(places, sid) -> str:
    return places[sid]


#: Above this many municipalities the outlines are simplified to 0.004 degrees (about
#: 450 m) on a 0.001-degree grid instead of 0.0012 on 0.0001 (national: 2.9 MB → 1 MB).
MANY_AREAS = 400


def _outline_trace(boundaries, bundle, splice: dict | None = None):
    """Choropleth of the municipal outlines (one flat colour; hover: municipality), or None.

    ``splice``: the trace's ``geojson`` is the placeholder :data:`_OUTLINES` and
    ``splice["geojson"]`` receives the FeatureCollection as JSON text, to put in its place
    in the page: the text GEOS writes, the same bytes as plotly's JSON of the parsed
    features, without parsing and writing 1.6 MB of coordinates again (national).
    """
    import shapely

    if boundaries is None or boundaries.empty:
        return None
    big = len(boundaries) > MANY_AREAS  # the whole country: coarser lines, 3x smaller
    tol, grid = (0.004, 1e-3) if big else (0.0012, 1e-4)
    geom = shapely.set_precision(boundaries.geometry.simplify(tol).to_numpy(), grid, mode="pointwise")
    geom = shapely.orient_polygons(geom, exterior_cw=True)  # d3-geo wants clockwise exteriors
    digits = round(-np.log10(grid))  # the nearest doubles to the decimals: short in JSON
    geom = shapely.transform(geom, lambda xy: np.round(xy, digits))
    codes = boundaries.index
    # GEOS writes each geometry's GeoJSON (geopandas' to_json walks every coordinate in Python)
    text = '{"type":"FeatureCollection","features":[' + ",".join(
        '{"id":%s,"type":"Feature","properties":{},"geometry":%s}' % (json.dumps(code), g)
        for code, g in zip(codes, shapely.to_geojson(geom)) if g is not None) + "]}"
    if splice is not None:
        splice["geojson"] = text
    hover = _esc_all(codes)
    areas = getattr(bundle, "areas", None)
    if areas is not None:  # "municipality, province" where the area is known (one reindex, not a .loc per code)
        place = areas.reindex(codes)
        mun, prov = ([None] * len(codes) if c not in place else place[c].tolist() for c in ("municipality", "province"))
        hover = [f"{m}, {p}" if k else h
                 for h, k, m, p in zip(hover, codes.isin(areas.index), _esc_all(mun), _esc_all(prov))]
    return dict(type="choropleth", geojson=_OUTLINES if splice is not None else json.loads(text),
                locations=list(codes), z=[0] * len(codes), showscale=False,
                colorscale=[[0, "#f1f0ea"], [1, "#f1f0ea"]], marker=dict(line=dict(color="#9a9a9a", width=0.5)),
                hovertext=hover, hoverinfo="text", name="municipalities (approximate)", showlegend=True)


#: Placeholder of the outlines' GeoJSON in a figure whose JSON text is spliced in (:func:`_outline_trace`).
_OUTLINES = "__studentflow_municipal_outlines__"


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


def _jhs_trace(rows, name, bundle, labels, marker, agg: bool, groups=None, **kw):
    """Public JHS today (``name`` None) or after scenario ``name``: per school, or per
    municipality when ``agg`` (:mod:`studentflow.report.map_layers`); a plotly trace as a dict."""

    iv = "relieved_vs_baseline" if "relieved_vs_baseline_mean" in rows else "relieved"
    shown = _esc(name)
    label = "public JHS today" if name is None else f"public JHS after: {shown}"
    if agg:
        m = by_municipality(rows, bundle, ["enrolment_before", "jhs_seats", "relieved_mean", iv + "_mean"], groups)
        seats = m["jhs_seats"].to_numpy(dtype=float)
        before = m["enrolment_before"].to_numpy(dtype=float) / seats
        after = (m["enrolment_before"].to_numpy(dtype=float) - m["relieved_mean"].to_numpy(dtype=float)) / seats
        head = [f"<b>{mu}</b>, {pr}<br>{n:,} public JHS" for mu, pr, n in
                zip(_esc_all(m["municipality"]), _esc_all(m["province"]), m["schools"])]
        if name is None:
            text = [f"{h}<br>today: {e:,.0f} learners / {t:,.0f} seats<br>utilisation {u:.2f}" for h, e, t, u in
                    zip(head, m["enrolment_before"], seats, before)]
        else:
            text = [f"{h}<br><i>{shown}</i><br>utilisation {u:.2f} → {v:.2f}<br>learners relieved {r:,.1f}"
                    f"<br>vs baseline {d:+,.1f} (means of draws)" for h, u, v, r, d in
                    zip(head, before, after, m["relieved_mean"], m[iv + "_mean"])]
        color = np.round(before if name is None else after, 3)
        return _scatter(m["lon"], m["lat"], hovertext=text, hoverinfo="text",
                             marker=dict(marker, color=color), name=label + " (per municipality)", **kw)
    lon, lat = lonlat(bundle, rows["school_id"])
    if name is None:
        text = [f"{_place(labels, r.school_id)}<br>public JHS today: {r.enrolment_before:,.0f} learners / "
                f"{r.jhs_seats:,.0f} seats<br>utilisation {r.utilisation_before:.2f}" for r in rows.itertuples()]
        color = rows["utilisation_before"]
    else:
        text = [f"{_place(labels, r.school_id)}<br><i>{shown}</i><br>utilisation {r.utilisation_before:.2f} "
                f"→ {r.utilisation_after_mean:.2f}<br>learners relieved {r.relieved_mean:,.1f} "
                f"[{r.relieved_lo:,.1f}, {r.relieved_hi:,.1f}]<br>vs baseline {getattr(r, iv + '_mean'):+,.1f} "
                f"[{getattr(r, iv + '_lo'):+,.1f}, {getattr(r, iv + '_hi'):+,.1f}]" for r in rows.itertuples()]
        color = rows["utilisation_after_mean"]
    return _scatter(lon, lat, hovertext=text, hoverinfo="text",
                         marker=dict(marker, color=color), name=label, **kw)


def _scatter(lon, lat, **kw) -> dict:
    """A ``scattergeo`` trace as a plain dict (lists, not arrays: JSON as is)."""
    def plain(v):
        return [None if x != x else x for x in np.asarray(v, dtype=float).tolist()]

    marker = dict(kw.pop("marker"))
    for k in ("color", "size"):
        if k in marker and np.ndim(marker[k]) > 0:
            marker[k] = plain(marker[k])
    return dict(type="scattergeo", lon=plain(lon), lat=plain(lat), mode="markers", marker=marker, **kw)


def _esc_trace(rows, name, bundle, labels, agg: bool, slots_max: float, groups=None, **kw):
    """ESC schools of scenario ``name``, sized by slots: per school, or per municipality."""

    shown = _esc(name)
    if agg:
        m = by_municipality(rows, bundle, ["slots", "placed_mean"], groups)
        slots_max = max(float(m["slots"].max()), 1.0) if len(m) else 1.0
        size = 5 + 20 * np.sqrt(m["slots"].to_numpy(float) / slots_max)
        text = [f"<b>{mu}</b>, {pr}<br>{n:,} ESC schools<br><i>{shown}</i><br>ESC placed "
                f"{p:,.1f} of {t:,.0f} slots (mean of draws)" for mu, pr, n, p, t in
                zip(_esc_all(m["municipality"]), _esc_all(m["province"]), m["schools"], m["placed_mean"], m["slots"])]
        return _scatter(m["lon"], m["lat"], hovertext=text, hoverinfo="text",
                             marker=dict(size=size.round(1), color="#1b6ca8", opacity=0.45),
                             name=f"ESC schools: {shown} (per municipality)", **kw)
    lon, lat = lonlat(bundle, rows["school_id"])
    size = 5 + 20 * np.sqrt(rows["slots"].to_numpy(float) / slots_max)
    text = [f"{_place(labels, r.school_id)}<br><i>{shown}</i><br>ESC placed {r.placed_mean:,.1f} "
            f"[{r.placed_lo:,.0f}, {r.placed_hi:,.0f}] of {r.slots:,} slots<br>full in {r.full_share:.0%} "
            "of draws" for r in rows.itertuples()]
    return _scatter(lon, lat, hovertext=text, hoverinfo="text",
                         marker=dict(size=size.round(1), color="#1b6ca8", opacity=0.45),
                         name=f"ESC schools: {shown}", **kw)


def figure_dict(result, bundle, *, boundaries=None, scenario: str | None = None, labels=None, _splice=None) -> dict:
    """The map as a plain plotly figure dict (``data``, ``layout``): built without plotly's
    validation, which deep-copies every coordinate list (seconds at national size).
    ``labels``: :func:`studentflow.report.names.school_labels` of ``bundle`` when the caller
    has them (made here otherwise). ``_splice``: see :func:`_outline_trace`."""
    from studentflow.report.names import school_labels

    labels = _Places(school_labels(bundle) if labels is None else labels)
    pj, es = result.public_jhs, result.esc_schools
    t = result.table.set_index("scenario")
    if scenario is None:
        scenario = t["relieved_mean"].idxmax() if "relieved_mean" in t else result.baseline
    names = _shown(result, scenario)
    data = []
    outline = _outline_trace(boundaries, bundle, _splice)
    if outline is not None:
        data.append(outline)
    agg_jhs, agg_esc = aggregated(pj, result.baseline), aggregated(es, result.baseline)
    for agg, frame in ((agg_jhs, pj), (agg_esc, es)):
        if not agg and len(frame):
            labels.add(frame["school_id"])
    marker = dict(size=9, colorscale=_SCALE, cmin=_CMIN, cmax=_CMAX,
                  colorbar=dict(title=dict(text="seat<br>utilisation"), x=1.0, len=0.7))
    groups: dict = {}  # each layer's municipalities, grouped once (by_municipality)
    today_trace = _jhs_trace(pj[pj["scenario"] == result.baseline], None, bundle, labels, marker, agg_jhs,
                             groups, visible=False, legendgroup="today")
    slots_max = max(float(es["slots"].max()), 1.0) if len(es) else 1.0
    for name in names:
        data.append(_esc_trace(es[es["scenario"] == name], name, bundle, labels, agg_esc, slots_max, groups,
                               visible=name == scenario, legendgroup=name))
        data.append(_jhs_trace(pj[pj["scenario"] == name], name, bundle, labels, marker, agg_jhs, groups,
                               visible=name == scenario, legendgroup=name))  # over the ESC schools
    data.append(today_trace)
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
    layout = dict(
        geo=dict(projection=dict(type="mercator"), fitbounds="locations", bgcolor="rgba(0,0,0,0)", scope="world",
                 resolution=110, **off),
        height=700, margin=dict(l=0, r=0, t=64, b=0), legend=dict(x=0.0, y=0.0, bgcolor="rgba(255,255,255,.8)"),
        updatemenus=[dict(buttons=buttons, active=names.index(scenario) + 1, x=0.0, y=1.0, xanchor="left",
                          yanchor="bottom", pad=dict(t=2))],
        annotations=[dict(text="shown: public JHS today, or after a scenario (with its ESC schools)", x=0.0, y=1.0,
                          xref="paper", yref="paper", showarrow=False, xanchor="left", yanchor="bottom", yshift=30,
                          xshift=2, font=dict(size=11, color="#555"))],
    )
    return dict(data=data, layout=layout)


def map_figure(result, bundle, *, boundaries=None, scenario: str | None = None):
    """The plotly Figure of :func:`interactive_map` (see the module text; validated)."""
    import plotly.graph_objects as go

    return go.Figure(figure_dict(result, bundle, boundaries=boundaries, scenario=scenario))


def interactive_map(result, bundle, *, boundaries=None, scenario: str | None = None, labels=None) -> str:
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
    labels : pandas.DataFrame, optional
        :func:`studentflow.report.names.school_labels` of ``bundle``, when already made.
    """
    import plotly.io as pio

    splice: dict = {}
    fig = figure_dict(result, bundle, boundaries=boundaries, scenario=scenario, labels=labels, _splice=splice)
    template = pio.templates[pio.templates.default] if pio.templates.default else None
    if template is not None:  # what a validated Figure carries: the same look
        fig["layout"]["template"] = template.to_plotly_json()
    page = pio.to_html(fig, validate=False, full_html=False, include_plotlyjs=True, div_id="studentflow-map",
                       config={"displaylogo": False, "scrollZoom": True, "responsive": True})
    if "geojson" in splice:
        page = page.replace(json.dumps(_OUTLINES), splice["geojson"], 1)
    return _NO_WORLD + page
