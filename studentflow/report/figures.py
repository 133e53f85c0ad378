"""Figures of the policy report (matplotlib; each returns a Figure).

Every function takes plain results (a :class:`ScenarioResult`, fitted models, the
bundle) and returns a :class:`matplotlib.figure.Figure` built without pyplot, so no
window opens and no global backend is touched: saving renders with the Agg canvas, and
in a notebook the returned figure displays inline. :mod:`studentflow.report.write` saves
them as PNG and embeds them in ``report.html``.
"""

from __future__ import annotations

import functools
import re

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.lines
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold",
         "axes.spines.top": False, "axes.spines.right": False}


def _styled(fn):
    """Run a figure function under the report style (rc_context, global state untouched)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _figure(nrows=1, ncols=1, **kw):
    """(Figure, axes) without pyplot."""
    fig = Figure(figsize=kw.pop("figsize"))
    return fig, fig.subplots(nrows, ncols, **kw)


COLORS = ["#1b6ca8", "#d1495b", "#2a9d8f", "#e9a03b", "#6c4f9e", "#7a7a7a"]

_TERM_LABELS = [
    (r"log1p\(distance_km\)|log1p_distance_km", "ln(1 + road km)"),
    (r"log1p\(net_cost_k\)|log1p_net_cost_k", "ln(1 + net cost, ₱1,000)"),
    (r"log1p\(origin_lgu_revenue\)|log1p_origin_lgu_revenue", "ln(1 + origin LGU revenue)"),
    (r"^esc_rating$", "ESC rating rank (1 = best)"),
    (r"^intercept$", "intercept"),
]


def term_label(term: str) -> str:
    """Readable label for a model term ("np.log1p(distance_km)" → "ln(1 + road km)")."""
    for pattern, label in _TERM_LABELS:
        if re.search(pattern, term, flags=re.IGNORECASE):
            return label
    region = re.search(r"(origin|destination)_region.*\[(?:T\.)?(.+?)\]$", term)
    if region:
        return f"{region.group(1)} in {region.group(2)} (vs NCR)"
    return term


def _term_order(term: str) -> tuple:
    """Slopes in the study's order (distance, cost, rating, revenue), then region effects."""
    for k, (pattern, _) in enumerate(_TERM_LABELS):
        if re.search(pattern, term, flags=re.IGNORECASE):
            return (k, term)
    return (len(_TERM_LABELS), term)


@_styled
def coefficient_plot(models: dict, truth: dict | None = None):
    """Point estimates and 95 % intervals of each model's slopes (intercept left out).

    Parameters
    ----------
    models : dict
        Label → fitted model with ``params`` and ``conf_int()`` (log-learner units).
    truth : dict, optional
        Known coefficients of a synthetic region (``truth/params.json``), keyed like
        :data:`studentflow.synth.STUDY_PARAMS`; drawn as black crosses.
    """
    frames = []
    for label, m in models.items():
        ci = m.conf_int()
        ci = ci.iloc[:, :2].set_axis(["lo", "hi"], axis=1)
        df = pd.DataFrame({"coef": m.params, "lo": ci["lo"], "hi": ci["hi"]}).dropna()
        df = df[~df.index.str.lower().isin(["intercept", "alpha"])]
        df["model"] = label
        frames.append(df)
    data = pd.concat(frames)
    terms = sorted(dict.fromkeys(data.index), key=_term_order)
    fig, ax = _figure(figsize=(8, 0.55 * len(terms) + 1.6))
    n = len(models)
    for k, (label, grp) in enumerate(data.groupby("model", sort=False)):
        y = np.array([terms.index(t) for t in grp.index]) + (k - (n - 1) / 2) * 0.22
        ax.errorbar(grp["coef"], y, xerr=[grp["coef"] - grp["lo"], grp["hi"] - grp["coef"]],
                    fmt="o", ms=5, capsize=3, color=COLORS[k % len(COLORS)], label=label)
    if truth:
        by_label = {term_label(k): v for k, v in truth.items()}
        pts = [(by_label[term_label(t)], i) for i, t in enumerate(terms) if term_label(t) in by_label]
        if pts:
            ax.plot(*zip(*pts), "x", color="k", ms=9, mew=2, label="synthetic truth", zorder=5)
            n += 1
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(range(len(terms)), [term_label(t) for t in terms])
    ax.invert_yaxis()
    ax.set_xlabel("coefficient (effect on log expected learners), 95 % interval")
    ax.set_title("Gravity model: what drives ESC enrolment flows")
    # at most two columns: three entries in a row are wider than the figure, which png_bytes
    # then saves with a second draw
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09 - 0.3 / len(terms)), ncol=min(n, 2),
              fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


@_styled
def placed_plot(result, comparisons=None):
    """Learners placed per scenario (95 % intervals) and, where present, vs subsidy.

    ``comparisons`` (label → ScenarioResult of the same scenarios under another
    estimator) are drawn as dashed lines on the subsidy panel.
    """
    t = result.table
    scen = {s.name: s for s in result.scenarios}
    uniform = [s for s in result.scenarios
               if not s.subsidy_by_tier and not s.subsidy_targeted and s.capacity == "contracted"
               and not (s.add_slots or s.move_slots or s.scale_slots != 1.0 or s.radius_km
                        or s.add_slots_at or s.subsidy_at)]
    curve = t[t["scenario"].isin([s.name for s in uniform])].copy()
    curve["subsidy"] = [scen[n].subsidy for n in curve["scenario"]]
    curve = curve.sort_values("subsidy")
    two = curve["subsidy"].nunique() >= 2
    fig, axes = _figure(1, 2 if two else 1, figsize=(12 if two else 7, 4.6), squeeze=False)
    ax = axes[0, 0]
    y = np.arange(len(t))
    ax.barh(y, t["placed_mean"], color=COLORS[0], alpha=0.85)
    ax.errorbar(t["placed_mean"], y, xerr=[t["placed_mean"] - t["placed_lo"], t["placed_hi"] - t["placed_mean"]],
                fmt="none", ecolor="k", capsize=3, lw=1)
    ax.axvline(result.observed_esc, color=COLORS[1], ls="--", lw=1.2, label=f"observed ESC ({result.observed_esc:,})")
    ax.set_yticks(y, t["scenario"])
    ax.invert_yaxis()
    ax.set_xlabel("learners placed in ESC schools (mean, 95 % interval)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_title("Learners placed by scenario")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=9, frameon=False)
    if two:
        ax = axes[0, 1]
        x = curve["subsidy"] / 1000
        ax.fill_between(x, curve["placed_lo"], curve["placed_hi"], color=COLORS[0], alpha=0.25, label="95 % interval")
        ax.plot(x, curve["placed_mean"], "o-", color=COLORS[0], label="mean placed")
        slots = float(curve["slots"].iloc[0])
        ax.axhline(slots, color=COLORS[3], ls=":", lw=1.5, label=f"contracted slots ({slots:,.0f})")
        ax.axhline(result.observed_esc, color=COLORS[1], ls="--", lw=1.2, label="observed ESC")
        lows = [result.observed_esc, curve["placed_lo"].min()]
        for k, (label, other) in enumerate((comparisons or {}).items(), start=1):
            oc = other.table.set_index("scenario").reindex(curve["scenario"])
            ax.plot(x, oc["placed_mean"].to_numpy(), "s--", color=COLORS[(k + 3) % len(COLORS)],
                    label=f"{label} (point estimate)")
            lows.append(oc["placed_mean"].min())
        ax.set_xlabel("ESC amount raised by (thousand pesos) = net cost lowered by")
        ax.set_ylabel("learners placed")
        gain = curve["placed_mean"].iloc[-1] - curve["placed_mean"].iloc[0]
        full = curve["placed_mean"].iloc[-1] / max(slots, 1)
        ax.set_title("More subsidy adds little while slots bind" if full > 0.9 else
                     f"Placed learners vs subsidy\n+{gain:,.0f} over the range, {full:.0%} of slots filled")
        ax.legend(fontsize=9, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        top = max(slots, curve["placed_hi"].max())
        ax.set_ylim(min(lows) * 0.9, top * 1.05)
        ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    fig.tight_layout()
    return fig


@_styled
def utilisation_plot(result, scenarios=None):
    """Distribution of ESC slot utilisation (mean placed / slots) over schools."""
    es = result.esc_schools
    names = scenarios or _pick(result)
    fig, ax = _figure(figsize=(7.5, 4.2))
    bins = np.linspace(0, 1.0001, 21)
    for k, name in enumerate(names):
        u = es.loc[(es["scenario"] == name) & (es["slots"] > 0), "utilisation_mean"].clip(0, 1)
        ax.hist(u, bins=bins, histtype="step", lw=2, color=COLORS[k % len(COLORS)],
                label=f"{name} (median {np.median(u):.0%})")
    ax.set_xlabel("slot utilisation per ESC school (placed / slots available)")
    ax.set_ylabel("ESC schools")
    ax.set_title("How full ESC schools get")
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(fontsize=9, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


def _pick(result) -> list[str]:
    """Baseline plus the scenario placing most learners (and one in between if any)."""
    t = result.table.set_index("scenario")["placed_mean"]
    best = t.idxmax()
    names = [result.baseline] + ([best] if best != result.baseline else [])
    return names


def _outlines(ax, boundaries) -> None:
    """Polygons' exterior rings as one filled collection (geopandas' ``plot`` makes a patch
    per polygon: 4 s for the country's 1,600 municipalities against 0.1 s; holes are
    left out, the enclaves inside them are drawn on top in the same colour)."""
    import shapely
    from matplotlib.collections import PolyCollection

    parts = shapely.get_parts(boundaries.geometry.to_numpy())
    rings = shapely.get_exterior_ring(parts[shapely.get_type_id(parts) == 3])  # polygons
    xy, idx = shapely.get_coordinates(rings, return_index=True)
    cuts = np.flatnonzero(np.diff(idx)) + 1
    ax.add_collection(PolyCollection(np.split(xy, cuts) if len(xy) else [], facecolor="#f1f0ea",
                                     edgecolor="#9a9a9a", linewidth=0.4, zorder=0))


def _mapped(frame: pd.DataFrame, schools) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The rows of ``frame`` (index school id) whose school has a point in ``schools``, with
    the points' longitude and latitude (degrees)."""
    import shapely

    geom = schools.geometry.reindex(frame.index).to_numpy(dtype=object)
    geom[pd.isna(geom)] = None  # an id without a school row
    ok = ~(shapely.is_missing(geom) | shapely.is_empty(geom))
    return frame[ok], shapely.get_x(geom[ok]), shapely.get_y(geom[ok])


@_styled
def congestion_map(result, bundle, scenario: str | None = None, boundaries=None):
    """Public JHS utilisation before and after ``scenario``, with ESC schools.

    Needs the bundle's school geometry; public JHS coloured by seat utilisation
    (JHS enrolment / seats; above 1 = congested), ESC schools as squares sized by slots.
    ``boundaries`` (a GeoDataFrame of polygons, e.g.
    :func:`studentflow.geo.boundaries.municipal_boundaries`) are drawn underneath.
    """
    pj = result.public_jhs
    if scenario is None:
        t = result.table.set_index("scenario")
        scenario = t["relieved_mean"].idxmax() if "relieved_mean" in t else result.baseline
    jhs = pj[pj["scenario"] == scenario].set_index("school_id")
    relieved_all = float(jhs["relieved_mean"].sum())  # every public JHS, mapped or not
    jhs, jx, jy = _mapped(jhs, bundle.schools)
    esc, ex, ey = _mapped(result.esc_schools[result.esc_schools["scenario"] == scenario].set_index("school_id"),
                          bundle.schools)
    fig, axes = _figure(1, 2, figsize=(12, 5.6), sharex=True, sharey=True)
    norm = matplotlib.colors.TwoSlopeNorm(vmin=0.5, vcenter=1.0, vmax=max(1.6, float(jhs["utilisation_before"].max())))
    cmap = matplotlib.colormaps["RdYlGn_r"]
    extent = None
    if len(jhs) or len(esc):
        xs, ys = np.concatenate([jx, ex]), np.concatenate([jy, ey])
        pad = 0.03 * max(np.ptp(xs), np.ptp(ys), 0.05)
        extent = (xs.min() - pad, xs.max() + pad, ys.min() - pad, ys.max() + pad)
    for ax in axes if boundaries is not None and extent is not None else ():
        _outlines(ax, boundaries)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    for ax, col, title in [(axes[0], "utilisation_before", "Public JHS today"),
                           (axes[1], "utilisation_after_mean",
                            f"After: {scenario} ({relieved_all:,.0f} learners relieved"
                            + (f"; {jhs['relieved_mean'].sum():,.0f} at mapped schools)"
                               if jhs["relieved_mean"].sum() < relieved_all - 0.5 else ")"))]:
        if len(esc):  # one scatter per layer (not GeoDataFrame.plot: no GeoDataFrame, no pyplot import)
            size = 6 + 40 * esc["slots"].to_numpy(float) / max(float(esc["slots"].max()), 1)
            ax.scatter(ex, ey, marker="s", s=size, color="#1b6ca8", alpha=0.35, zorder=1)
        if col == "utilisation_before":
            size = np.full(len(jhs), 22.0)
        else:  # marker area grows with the learners relieved, so the change is visible
            size = 14 + 120 * jhs["relieved_mean"].to_numpy(float) / max(float(jhs["relieved_mean"].max()), 1.0)
        value = jhs[col].to_numpy(float)
        shown = ~np.isnan(value)  # as GeoDataFrame.plot: schools without a value are left out
        ax.scatter(jx[shown], jy[shown], c=value[shown], cmap=cmap, norm=norm, s=size[shown], edgecolor="k",
                   linewidth=0.3, zorder=2)
        n_cong = int((jhs[col] > 1).sum())
        ax.set_title(f"{title}\n{n_cong} of {len(jhs)} public JHS congested")
        ax.set_xlabel("longitude")
        lat = float(np.nanmean(jy)) if len(jhs) else 14.6
        ax.set_aspect(1 / np.cos(np.radians(lat)), adjustable="box")
    axes[0].set_ylabel("latitude")
    axes[1].set_ylabel("")
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, ax=axes, shrink=0.8, pad=0.02)
    cb.set_label("JHS seat utilisation (enrolment / seats; > 1 congested)")
    handles = [matplotlib.lines.Line2D([], [], marker="s", ls="", color="#1b6ca8", alpha=0.5,
                                       label="ESC school (size = slots)"),
               matplotlib.lines.Line2D([], [], marker="o", ls="", mfc="w", mec="k", ms=9,
                                       label="public JHS (size = learners relieved)")]
    axes[1].legend(handles=handles, loc="lower right", fontsize=9)
    return fig
