"""The explore page (Dash): levers on the left, answers on the right, updated on each change.

Why Dash: its graphs are the plotly figures the report already draws
(:func:`studentflow.report.interactive.map_figure`), it serves plotly.js from the
installed package (no network), and every lever is a plain Python callback, so the
page needs no hand-written JavaScript. React escapes every text it shows; the map's
hover text is escaped by ``map_figure``.

Callbacks, in the order a change flows through them: a slider and its number box keep
each other in step; the levers are checked (:meth:`ExploreSession.levers`; a bad value
shows its message and changes nothing else); the point estimate (``draws=0``) fills
the headline figures and the table of public JHS; then, chained on it, the 95 % intervals
(``draws=N``), and last the map (with the intervals in its hover text). A chained step
whose levers are no longer the page's current ones does nothing. Answers are cached per
lever setting.
"""

from __future__ import annotations

import base64
import json
import threading
import tomllib
from collections import OrderedDict

from studentflow.errors import DataError
from studentflow.explore.levers import GROUPS, SUBSIDY_MAX, CHOICES, LeverError, levers_from_scenarios, scenario_toml
from studentflow.explore.session import HEADLINES, ExploreSession
from studentflow.report.interactive import _NO_WORLD, map_figure
from studentflow.scenarios.spec import parse_scenarios

__all__ = ["make_app", "pesos", "learners"]

_LABEL = {"all": "All ESC schools", "NCR": "NCR", "HUC": "Highly urbanised cities", "other": "Other places"}
_PESO_KEYS = ("cost", "pesos_per_relieved")
_TOP = 15  # public JHS in the table
_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222}
.sf-wrap{display:flex;gap:24px;padding:16px}
.sf-levers{flex:0 0 380px}
.sf-answers{flex:1;min-width:0}
.sf-row{margin:10px 0}
.sf-card{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:0 8px 8px 0;min-width:200px}
.sf-big{font-size:1.6em;font-weight:600}
.sf-small{color:#555;font-size:.85em}
.sf-msg{color:#b00020;font-weight:600;min-height:1.2em}
.sf-table{border-collapse:collapse;font-size:.9em}
.sf-table td,.sf-table th{border-bottom:1px solid #eee;padding:3px 8px;text-align:right}
.sf-table td:nth-child(-n+3),.sf-table th:nth-child(-n+3){text-align:left}
.sf-scroll{overflow-x:auto;max-width:100%}
"""


def pesos(v) -> str:
    """``₱1,234,567`` (whole pesos); ``∞`` for an unbounded ratio; ``–`` when missing."""
    if v is None:
        return "–"
    return "∞" if v == float("inf") else f"₱{v:,.0f}"


def learners(v) -> str:
    """Whole learners with thousands separators; ``–`` when missing."""
    return "–" if v is None else f"{v:,.0f}"


def _fmt(key, v) -> str:
    return pesos(v) if key in _PESO_KEYS else learners(v)


def make_app(session: ExploreSession):
    """The Dash app of ``session`` (serve it with :func:`studentflow.explore.serve`)."""
    from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

    app = Dash(__name__, title="studentflow explore", serve_locally=True, update_title=None)
    app.index_string = app.index_string.replace(
        "{%css%}", "{%css%}<style>" + _CSS + "</style>" + _NO_WORLD)
    cache: OrderedDict = OrderedDict()
    lock = threading.Lock()

    def answer(levers_dict: dict, draws: int):
        key = (json.dumps(levers_dict, sort_keys=True), draws)
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        levers = session.levers(levers_dict)
        out = session.answer(levers, draws=draws)
        with lock:
            cache[key] = out
            while len(cache) > 16:
                cache.popitem(last=False)
        return out

    schools = session.schools
    options = [{"label": f"{r.name} ({sid}) – {r.municipality}", "value": sid}
               for sid, r in zip(schools.index, schools.itertuples())]
    low = {g: -session.amounts[g] for g in GROUPS}

    def subsidy_row(g):
        return html.Div(className="sf-row", children=[
            html.Label(f"{_LABEL[g]}: subsidy change, pesos per learner", htmlFor=f"sub-{g}-input"),
            html.Div(style={"display": "grid", "gridTemplateColumns": "1fr 120px", "gap": "8px",
                            "alignItems": "center"}, children=[
                html.Div(style={"minWidth": "200px"}, children=dcc.Slider(
                    id=f"sub-{g}-slider", min=max(low[g], -10_000), max=20_000, step=500, value=0,
                    marks={-5000: "−5K", 0: "0", 10000: "+10K", 20000: "+20K"}, updatemode="mouseup")),
                dcc.Input(id=f"sub-{g}-input", type="text", inputMode="numeric", value="0", debounce=True,
                          style={"width": "110px"}),
            ])])

    levers_panel = html.Div(className="sf-levers", children=[
        html.H3("Levers"),
        *[subsidy_row(g) for g in GROUPS],
        html.H4("Slots at ESC schools"),
        dcc.Dropdown(id="slot-school", options=options, placeholder="search by name or ID", searchable=True),
        html.Div(className="sf-row", children=[
            html.Label("slots to add (negative removes) ", htmlFor="slot-amount"),
            dcc.Input(id="slot-amount", type="text", inputMode="numeric", value="50", style={"width": "80px"}),
            html.Button("add", id="slot-add", n_clicks=0),
            html.Button("clear", id="slot-clear", n_clicks=0)]),
        dcc.Store(id="slot-changes", data={}), dcc.Store(id="subsidy-at", data={}),
        html.Ul(id="slot-list"),
        html.H4("Options"),
        *[html.Div(className="sf-row", children=[html.Label(f"{k}: "), dcc.RadioItems(
            id=f"opt-{k}", options=list(v), value=v[0], inline=True)]) for k, v in CHOICES.items()],
        html.H4("Scenario files"),
        dcc.Upload(id="upload", children=html.Button("load a scenario TOML or plan.toml")),
        html.Div(id="upload-message", className="sf-msg", role="alert"),
        html.Div(className="sf-row", children=[
            html.Button("save scenario TOML", id="save-toml"), dcc.Download(id="download-toml"),
            html.Button("download tables (CSV)", id="save-csv"), dcc.Download(id="download-csv"),
            dcc.Download(id="download-jhs")]),
    ])

    def card(key):
        label, unit = HEADLINES[key]
        return html.Div(className="sf-card", children=[
            html.Div(label, className="sf-small"),
            html.Div(id=f"fig-{key}-value", className="sf-big"),
            html.Div(["95 % interval: ", html.Span(id=f"fig-{key}-interval")], className="sf-small"),
            html.Div(["status quo: ", html.Span(id=f"fig-{key}-sq")], className="sf-small"),
        ])

    answers_panel = html.Div(className="sf-answers", children=[
        html.H3("Answers"),
        html.Div(id="lever-message", className="sf-msg", role="alert"),
        html.Div([card(k) for k in HEADLINES]),
        html.Div(id="point-status", className="sf-small"),
        html.Div(id="interval-status", className="sf-small"),
        dcc.Graph(id="map", config={"displaylogo": False, "scrollZoom": True}, style={"height": "600px"}),
        html.H4(f"Public JHS relieved most (top {_TOP})"),
        html.Div(id="jhs-table", className="sf-scroll"),
    ])
    app.layout = html.Div([
        html.Div(style={"padding": "8px 16px", "background": "#f4f4f0"}, children=[
            html.B("studentflow explore"),
            html.Span(f"  data: {session.source}; intervals from {session.draws} draws, seed {session.seed}",
                      className="sf-small")]),
        html.Div(className="sf-wrap", children=[levers_panel, answers_panel]),
        dcc.Store(id="levers"), dcc.Store(id="point-done"), dcc.Store(id="interval-done"),
    ])

    for g in GROUPS:
        @app.callback(Output(f"sub-{g}-slider", "value"), Output(f"sub-{g}-input", "value"),
                      Input(f"sub-{g}-slider", "value"), Input(f"sub-{g}-input", "value"),
                      prevent_initial_call=True)
        def _sync(slider, text, g=g):
            if ctx.triggered_id == f"sub-{g}-slider":
                return no_update, f"{slider:g}"
            try:
                value = float(str(text).replace(",", "").replace("₱", ""))
            except ValueError:
                return no_update, no_update
            lo, hi = max(low[g], -10_000), 20_000
            return (value if lo <= value <= hi else no_update), no_update

    @app.callback(Output("slot-changes", "data"), Output("upload-message", "children", allow_duplicate=True),
                  Input("slot-add", "n_clicks"), Input("slot-clear", "n_clicks"),
                  State("slot-school", "value"), State("slot-amount", "value"), State("slot-changes", "data"),
                  prevent_initial_call=True)
    def _slots(_add, _clear, school, amount, changes):
        if ctx.triggered_id == "slot-clear":
            return {}, ""
        if not school:
            return no_update, "slots: choose an ESC school first (search by name or ID)"
        return {**(changes or {}), str(school): str(amount)}, ""

    @app.callback(Output("slot-list", "children"), Input("slot-changes", "data"), Input("subsidy-at", "data"))
    def _slot_list(changes, at):
        items = [html.Li(f"{schools['name'].get(sid, sid)} ({sid}): {n} slots") for sid, n in (changes or {}).items()]
        if at:
            items.append(html.Li(f"from the loaded file: subsidy changed at {len(at):,} named schools "
                                 f"(₱{min(at.values()):,.0f} to ₱{max(at.values()):,.0f})"))
        return items

    lever_inputs = [Input(f"sub-{g}-input", "value") for g in GROUPS] + [
        Input("slot-changes", "data"), Input("subsidy-at", "data")] + [Input(f"opt-{k}", "value") for k in CHOICES]

    @app.callback(Output("levers", "data"), Output("lever-message", "children"), *lever_inputs)
    def _levers(*values):
        n = len(GROUPS)
        raw = {"subsidy": dict(zip(GROUPS, values[:n])), "slots": values[n] or {}, "subsidy_at": values[n + 1] or {},
               **dict(zip(CHOICES, values[n + 2:]))}
        try:
            return session.levers(raw).as_dict(), ""
        except DataError as exc:
            return no_update, str(exc)

    headline_outputs = [Output(f"fig-{k}-{part}", "children") for k in HEADLINES for part in ("value", "sq")]

    @app.callback(*headline_outputs, Output("jhs-table", "children"), Output("point-status", "children"),
                  Output("point-done", "data"), Output("lever-message", "children", allow_duplicate=True),
                  Input("levers", "data"), prevent_initial_call="initial_duplicate")
    def _point(levers):
        if levers is None:
            return [no_update] * (len(headline_outputs) + 4)
        try:
            ans = answer(levers, 0)
        except DataError as exc:
            return [no_update] * (len(headline_outputs) + 3) + [str(exc)]
        figs = [_fmt(k, ans.figures[k][part]) for k in HEADLINES for part in ("value", "status_quo")]
        return [*figs, _jhs_table(html, ans.public_jhs), f"point estimate in {ans.seconds:.2f} s", levers, ""]

    @app.callback(*[Output(f"fig-{k}-interval", "children") for k in HEADLINES],
                  Output("interval-status", "children"), Output("interval-done", "data"),
                  Input("point-done", "data"), State("levers", "data"), prevent_initial_call=True)
    def _interval(levers, current):
        if levers is None or levers != current:
            return [no_update] * (len(HEADLINES) + 2)
        try:
            ans = answer(levers, session.draws)
        except DataError as exc:
            return ["–"] * len(HEADLINES) + [str(exc), no_update]
        ivs = [f"{_fmt(k, ans.figures[k]['lo'])} – {_fmt(k, ans.figures[k]['hi'])} "
               f"(mean {_fmt(k, ans.figures[k]['value'])})" for k in HEADLINES]
        return [*ivs, f"intervals from {ans.draws} draws in {ans.seconds:.2f} s", levers]

    # the map last: its figure is the largest thing the page sends, and it needs the intervals
    @app.callback(Output("map", "figure"), Input("interval-done", "data"), State("levers", "data"),
                  prevent_initial_call=True)
    def _map(levers, current):
        if levers is None or levers != current:
            return no_update
        try:
            ans = answer(levers, session.draws)
            return map_figure(ans.result, session.bundle, boundaries=session.boundaries,
                              scenario=ans.table["scenario"].iloc[-1])
        except DataError:
            return no_update

    @app.callback(*[Output(f"sub-{g}-input", "value", allow_duplicate=True) for g in GROUPS],
                  Output("slot-changes", "data", allow_duplicate=True), Output("subsidy-at", "data"),
                  *[Output(f"opt-{k}", "value") for k in CHOICES], Output("upload-message", "children"),
                  Input("upload", "contents"), State("upload", "filename"), prevent_initial_call=True)
    def _upload(contents, filename):
        n = len(GROUPS) + 2 + len(CHOICES)
        name = str(filename or "uploaded file")[:80]
        try:
            text = base64.b64decode(contents.split(",", 1)[1]).decode("utf-8")
            levers = levers_from_scenarios(parse_scenarios(tomllib.loads(text), source=name), source=name)
            session.levers(levers.as_dict())  # unknown schools, out-of-range values
        except (ValueError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            return [no_update] * n + [f"{name}: not a scenario TOML file ({str(exc)[:120]})"]
        except LeverError as exc:
            return [no_update] * n + [str(exc)]
        except DataError as exc:
            return [no_update] * n + [str(exc)]
        subsidy = [f"{levers.subsidy.get(g, 0):g}" for g in GROUPS]
        slots = {sid: str(v) for sid, v in levers.slots.items()}
        return [*subsidy, slots, dict(levers.subsidy_at), levers.capacity, levers.pool, levers.method,
                f"loaded {name}"]

    @app.callback(Output("download-toml", "data"), Input("save-toml", "n_clicks"), State("levers", "data"),
                  prevent_initial_call=True)
    def _save_toml(_n, levers):
        if levers is None:
            return no_update
        return {"content": scenario_toml(session.levers(levers)), "filename": "explored.toml"}

    @app.callback(Output("download-csv", "data"), Output("download-jhs", "data"), Input("save-csv", "n_clicks"),
                  State("levers", "data"), prevent_initial_call=True)
    def _save_csv(_n, levers):
        if levers is None:
            return no_update, no_update
        ans = answer(levers, session.draws)
        return ({"content": ans.table.to_csv(index=False), "filename": "explored_scenarios.csv"},
                {"content": ans.public_jhs.to_csv(index=False), "filename": "explored_public_jhs.csv"})

    return app


def _jhs_table(html, pj):
    head = ["school", "ID", "municipality", "utilisation today", "relieved vs status quo", "95 % interval",
            "utilisation after"]
    rows = []
    for r in pj.head(_TOP).itertuples():
        rows.append(html.Tr([html.Td(str(r.name)), html.Td(r.school_id), html.Td(str(r.municipality)),
                             html.Td(f"{r.utilisation_before:.2f}"), html.Td(f"{r.relieved_vs_baseline_mean:,.1f}"),
                             html.Td(f"{r.relieved_vs_baseline_lo:,.1f} – {r.relieved_vs_baseline_hi:,.1f}"),
                             html.Td(f"{r.utilisation_after_mean:.2f}")]))
    return html.Table(className="sf-table", children=[html.Thead(html.Tr([html.Th(h) for h in head])),
                                                      html.Tbody(rows)])
