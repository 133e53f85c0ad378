"""The policy report: tables, figures, maps and a self-contained HTML page.

:func:`write_report` writes into ``out_dir``:

- ``report.html``: everything below in one file (figures embedded as base64 PNG);
- ``scenarios.csv``: one row per scenario, means and 95 % intervals;
- ``esc_schools.csv`` and ``public_jhs.csv``: per-school results per scenario, with the
  schools' names and places (:mod:`.names`);
- ``esc_origins.csv.gz`` and ``jhs_destinations.csv.gz``: the per-school drill-down, when
  the result holds it (``run_scenarios(school_flows=True)``);
- ``schools.gpkg``: the same per-school results with geometry (layers ``esc_schools``
  and ``public_jhs``), when a bundle with school geometry is given;
- ``ledger.csv``: every raw record dropped, merged, corrected or imputed at ingest;
- ``model.txt``: the gravity model summary (and of every model compared);
- ``fig_*.png``: the figures (``fig_cost_effectiveness.png``: relief against cost per scenario);
- ``sections=``: further HTML sections (the optimizer's: :mod:`studentflow.report.optimize_page`).

Every file is written atomically (:mod:`.files`), so a run that fails never leaves a
half-written file under a final name. ``report.html`` is written last and marks a
complete set: an older one is removed first, so after a failed run the folder never
holds a report that does not match its tables. No learner reference number (LRN) is
written: any 12-digit number in a text field is masked.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from studentflow import forked
from studentflow.malloc import trim
from studentflow.report.figure_set import figure_set, png_bytes
from studentflow.report.files import _write_csv, _write_text, atomic_write, mask_lrns

__all__ = ["write_report", "atomic_write", "mask_lrns", "_write_csv"]


def _png(fig) -> bytes:
    return png_bytes(fig)


def _models_text(models: dict) -> str:
    parts = []
    for label, m in models.items():
        parts.append(f"=== {label} ===\n{m.summary()}\n")
    return "\n".join(parts)


def _coef_table(models: dict, truth: dict | None = None) -> pd.DataFrame:
    from studentflow.report.figures import term_label

    cols = {}
    for label, m in models.items():
        se = getattr(m, "bse", pd.Series(dtype=float))
        cols[label] = [f"{m.params[t]:.4f} ({se.get(t, float('nan')):.4f})" for t in m.params.index]
        cols[label] = pd.Series(cols[label], index=m.params.index)
        for d in getattr(m, "dropped", ()):  # left out of the fit: collinear or no variation
            cols[label][d.column] = "dropped"
    table = pd.DataFrame(cols)
    extra = {}
    for label, m in models.items():
        for year, r in getattr(m, "year_effects", pd.DataFrame()).iterrows():  # a pooled multi-year fit
            extra.setdefault(f"year effect {year}", {})[label] = "0 (reference)" if r["std_err"] == 0 and \
                r["coef"] == 0 else f"{r['coef']:.4f} ({r['std_err']:.4f})"
        for name, key, fmt in (("alpha (dispersion)", "alpha", "{:.4f}"), ("log-likelihood", "llf", "{:,.1f}"),
                               ("AIC", "aic", "{:,.1f}"), ("observations", "nobs", "{:,.0f}")):
            value = getattr(m, key, None)
            if value is not None:
                extra.setdefault(name, {})[label] = fmt.format(float(value))
    table.index = [term_label(t) for t in table.index]
    out = pd.concat([table, pd.DataFrame(extra).T])
    if truth:
        known = {("alpha (dispersion)" if k == "alpha" else term_label(k)): f"{v:.4f}" for k, v in truth.items()}
        out["synthetic truth"] = [known.get(t, "") for t in out.index]
    return out.fillna("")


def _schools_gpkg(path: Path, bundle, named: dict) -> Path | None:
    """``schools.gpkg``: layer → per-school table with names (``named``, as in the CSVs), with
    the schools' points; written through Arrow (0.8 → 0.4 s nationally, the same layers).

    SQLite's journal and synchronous writes are off while it is written (:data:`_GPKG_FAST`):
    the file is a temporary one until it is complete (:func:`.files.atomic_write`), so
    nothing needs them, and they made the national write wait 0.15 s on the disk."""
    import geopandas as gpd
    import pyogrio

    schools = bundle.schools
    if "geometry" not in schools:
        return None
    geom = gpd.GeoSeries(schools.geometry, crs=getattr(schools, "crs", None) or "EPSG:4326")

    def write(tmp: Path):
        for layer, data in named.items():
            if data is None or data.empty:
                continue
            g = gpd.GeoDataFrame(data, geometry=geom.reindex(data["school_id"]).to_numpy(), crs=geom.crs)
            g.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio", use_arrow=True)

    before = {k: pyogrio.get_gdal_config_option(k) for k in _GPKG_FAST}
    pyogrio.set_gdal_config_options(_GPKG_FAST)
    try:
        return atomic_write(path, write)
    finally:
        pyogrio.set_gdal_config_options(before)  # the process's own settings back (None: unset)


#: GDAL settings while ``schools.gpkg`` is written (:func:`_schools_gpkg`)
_GPKG_FAST = {"OGR_SQLITE_JOURNAL": "OFF", "OGR_SQLITE_SYNCHRONOUS": "OFF"}


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #1b6ca8;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.88em;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#eef3f8}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}.note{color:#555;font-size:.92em}
.key{background:#f5f9fc;border-left:4px solid #1b6ca8;padding:.6em 1em}
.table-wrap{overflow-x:auto;max-width:100%}.table-wrap table{margin:0}
"""


def _subsidy_sentence(prefix: str, t: pd.DataFrame, lo, hi) -> str:
    a, b = t.loc[lo.name, "placed_mean"], t.loc[hi.name, "placed_mean"]
    full = b / max(float(t.loc[hi.name, "slots"]), 1.0)
    text = (f"{prefix}{'r' if prefix else 'R'}aising the subsidy from +₱{lo.subsidy:,.0f} to +₱{hi.subsidy:,.0f} adds "
            f"{b - a:,.0f} learners ({100 * (b - a) / max(a, 1):+.1f} %) and fills {full:.0%} of the slots")
    if full > 0.9:
        return text + ": slot capacity, not the subsidy amount, binds."
    return text + ": slots do not bind, so the subsidy amount matters."


def _headline(result, comparisons=None) -> str:
    t = result.table.set_index("scenario")
    lines = [f"Observed ESC beneficiaries on the modelled pairs: <b>{result.observed_esc:,}</b>."]
    base = t.loc[result.baseline]
    lines.append(f"Baseline <b>{html.escape(result.baseline)}</b> places {base['placed_mean']:,.0f} "
                 f"learners (95 % interval {base['placed_lo']:,.0f}–{base['placed_hi']:,.0f}) "
                 f"against {int(base['slots']):,} slots.")
    best = t["placed_mean"].idxmax()
    if best != result.baseline:
        r = t.loc[best]
        lines.append(f"The scenario placing most, <b>{html.escape(best)}</b>, places {r['placed_mean']:,.0f} "
                     f"({r['vs_observed_pct_mean']:+.1f} % vs observed; {r['slot_utilisation_mean']:.0%} of its "
                     f"{int(r['slots']):,} slots filled).")
    subs = [s for s in result.scenarios if s.subsidy and not s.subsidy_by_tier and not s.subsidy_targeted
            and not s.subsidy_at]
    if len(subs) >= 2:
        lo, hi = min(subs, key=lambda s: s.subsidy), max(subs, key=lambda s: s.subsidy)
        lines.append(_subsidy_sentence("", t, lo, hi))
        for label, other in (comparisons or {}).items():
            lines.append(_subsidy_sentence(f"Under {html.escape(label)} (point estimate): ",
                                           other.table.set_index("scenario"), lo, hi))
    return "<div class='key'>" + "<br>".join(lines) + "</div>"


def write_report(result, out_dir, *, bundle=None, model=None, pairs=None, models=None,
                 comparisons=None, truth=None, timings=None, truth_placements=None, provenance=None,
                 title="studentflow: ESC scenarios and public JHS decongestion", sections=(), ledger=True,
                 fork: bool = False) -> dict:
    """Write the report files for a :class:`~studentflow.scenario_result.ScenarioResult`.

    Parameters
    ----------
    result : ScenarioResult
    out_dir : str or Path
        Created if missing.
    bundle : Bundle, optional
        For the ledger, the per-source summary, school names and geometry (map, GPKG).
    model : GravityModel, optional
        The model used for the scenarios (``model.txt``, coefficient plot).
    pairs : pandas.DataFrame, optional
        PairTable: observed vs new pairs in the report's data section.
    models : dict, optional
        Label → model, for comparing estimators (e.g. the study's NB2 on positive flows
        against zero-truncated NB2); ``model`` is added as "used for scenarios".
    comparisons : dict, optional
        Label → ScenarioResult of the same scenarios under another estimator (e.g. the
        study's NB2, point estimate): shown beside ``result`` in a table and the figure.
    truth : dict, optional
        Known coefficients of a synthetic region (keys as in
        :data:`studentflow.synth.STUDY_PARAMS`, plus ``alpha``), shown beside the estimates.
    timings : dict, optional
        Stage → seconds, listed at the end of the report.
    truth_placements : pandas.Series, optional
        Learners placed per scenario in a synthetic world
        (:func:`studentflow.synth.oracle.oracle_placements`), for the calibration section.
    sections : sequence of str
        Further HTML sections appended to ``report.html``, e.g. a budget plan's
        (:func:`studentflow.report.optimize_page.optimize_section`).
    provenance : dict, optional
        The run's ``run.json`` record (:mod:`studentflow.report.provenance`), shown as the
        report's footer with the ledger counts and timings.
    ledger : bool
        Write ``ledger.csv`` and ``sources.csv`` from ``bundle`` (False: the caller wrote
        the same files, as :func:`studentflow.pipeline.run_pipeline` does after ingest).
    fork : bool
        Render the figures in a forked child process while the other files are written
        (:mod:`studentflow.forked`; the same files). For small runs: the child's copied
        pages add to the memory in use.

    Returns
    -------
    dict
        Output name → path of every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").unlink(missing_ok=True)  # written last: marks a complete set
    written: dict[str, Path] = {}
    all_models = dict(models or {})
    if model is not None and not any(m is model for m in all_models.values()):
        all_models = {"used for scenarios": model, **all_models}
    mapped = bundle is not None and not result.public_jhs.empty
    outlines = None
    if mapped:
        from studentflow.report.maps import boundaries_of, map_section

        outlines = boundaries_of(bundle)
    with forked.start(lambda: figure_set(result, models=all_models, truth=truth, bundle=bundle, outlines=outlines,
                                         pairs=pairs, comparisons=comparisons, truth_placements=truth_placements),
                      fork=fork) as drawn:  # the PNGs on the other core while the files below are written
        from studentflow.report.names import school_labels, with_names

        labels = school_labels(bundle)
        named = {"esc_schools": with_names(result.esc_schools, labels)}  # for the CSVs and schools.gpkg
        written["scenarios.csv"] = _write_csv(out / "scenarios.csv", result.table)
        written["esc_schools.csv"] = _write_csv(out / "esc_schools.csv", named["esc_schools"])
        if not result.public_jhs.empty:
            named["public_jhs"] = with_names(result.public_jhs, labels)
            written["public_jhs.csv"] = _write_csv(out / "public_jhs.csv", named["public_jhs"])
        written.update(_drilldown_csvs(out, result, labels))
        if bundle is not None and ledger:
            written["ledger.csv"] = _write_csv(out / "ledger.csv", bundle.ledger)
            if len(getattr(bundle, "sources", ())):
                written["sources.csv"] = _write_csv(out / "sources.csv", bundle.sources)
        if all_models:
            written["model.txt"] = _write_text(out / "model.txt", _models_text(all_models))
        trim(collect=False)  # the CSVs' text: its heap pages back to the OS before the map's (national: -40 MB)
        map_html = map_section(result, bundle, outlines, labels) if mapped else ""
        trim(collect=False)
        figures, section = drawn.result()
        trim(collect=False)  # the figures' pixel buffers
    if mapped:  # after the figures, as before they were drawn alongside: a failed map leaves no GeoPackage
        written["schools.gpkg"] = _schools_gpkg(out / "schools.gpkg", bundle, named)
    del named
    trim(collect=False)
    extra_html = "\n".join(sections)
    for name, (_, png) in figures.items():
        written[name] = atomic_write(out / name, lambda tmp, png=png: tmp.write_bytes(png))

    page = _html(result, title, figures, all_models, bundle, pairs, timings, comparisons or {}, truth, section,
                 map_html=map_html, labels=labels)
    page = page.replace("</body></html>", extra_html + "</body></html>") if extra_html else page
    if provenance is not None:
        from studentflow.report.provenance import finish_record, footer_html

        head, _, _ = page.rpartition("</body></html>")
        page = head + footer_html(finish_record(provenance, bundle=bundle, timings=timings)) + "</body></html>"
    written["report.html"] = _write_text(out / "report.html", page)
    return {k: v for k, v in written.items() if v is not None}


def _drilldown_csvs(out: Path, result, labels) -> dict:
    """``esc_origins.csv.gz`` and ``jhs_destinations.csv.gz`` (per-school drill-down), when the run kept them."""
    from studentflow.report.names import with_names

    short = ("name", "municipality")  # per pair: the names and towns of both schools (region etc. in the
    written = {}                       # per-school tables), so these long tables stay compact
    origins = getattr(result, "esc_origins", None)
    if origins is not None and not origins.empty:
        table = with_names(with_names(origins, labels, columns=short), labels, id_column="origin_id",
                           prefix="origin_", columns=short)
        written["esc_origins.csv.gz"] = _write_csv(out / "esc_origins.csv.gz", table)
    dest = getattr(result, "jhs_destinations", None)
    if dest is not None and not dest.empty:
        table = with_names(with_names(dest, labels, columns=short), labels, id_column="destination_id",
                           prefix="destination_", columns=short)
        written["jhs_destinations.csv.gz"] = _write_csv(out / "jhs_destinations.csv.gz", table)
    return written


def _table_html(frame: pd.DataFrame, **kw) -> str:
    from studentflow.report.tables import table_html

    return table_html(frame, **kw)


def _comparison_html(result, comparisons: dict) -> str:
    t = result.table.set_index("scenario")
    table = pd.DataFrame({"scenario": t.index, "slots": t["slots"].map("{:,.0f}".format).to_numpy(),
                          "used for scenarios (mean)": t["placed_mean"].map("{:,.0f}".format).to_numpy()})
    for label, other in comparisons.items():
        o = other.table.set_index("scenario").reindex(t.index)
        table[f"{label} (point estimate)"] = o["placed_mean"].map("{:,.0f}".format).to_numpy()
    text = ("<h2>Estimators compared</h2><p>Learners placed under each estimator. The study's NB2 fit on "
            "positive flows only overstates expected flows on every pair (it models the mean of pairs that "
            "<i>already</i> had beneficiaries), so it fills the slots and makes the subsidy look irrelevant. "
            "Under a consistent estimator the expected flows on today's pairs fall below today's counts "
            "(those pairs were selected for having learners: regression to the mean), and part of the demand "
            "lies on candidate pairs outside the table; compare scenarios with the baseline rather than with "
            "the observed count.</p>")
    return text + _table_html(table)


def page_open(title: str) -> str:
    """A standalone page's opening: its head with the report's style, and ``title`` as heading."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>")


def _html(result, title, figures, models, bundle, pairs, timings, comparisons=None, truth=None,
          calibration_section="", map_html: str = "", labels=None) -> str:
    parts = [page_open(title),
             f"<p class='note'>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · "
             f"{result.draws} Monte Carlo draws · seed {result.seed}</p>", _headline(result, comparisons)]
    parts.append("<h2>Scenarios</h2><p>Means over the Monte Carlo draws with 95 % intervals; each draw uses a "
                 "new set of gravity coefficients (their estimation uncertainty) and rounds flows to whole "
                 "learners. <i>vs baseline</i> compares with the same draw of the baseline.</p>")
    parts.append(_table_html(result.scenario_table()))
    levers = pd.DataFrame({"scenario": [s.name for s in result.scenarios],
                           "what changes": [s.summary().split(": ", 1)[1] for s in result.scenarios],
                           "description": [s.description for s in result.scenarios]})
    parts.append(_table_html(levers))
    for name, (caption, png) in figures.items():
        if name in ("fig_coefficients.png", "fig_status_quo.png"):
            continue
        parts.append(f"<figure><img alt='{name}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                     f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>")
    if map_html:
        parts.append(map_html)
    if comparisons:
        parts.append(_comparison_html(result, comparisons))
    parts.append(calibration_section)
    if not result.public_jhs.empty:
        pj = result.public_jhs
        key = "relieved_vs_baseline_mean" if "relieved_vs_baseline_mean" in pj else "relieved_mean"
        best = result.table.set_index("scenario")[key].idxmax()
        top = pj[pj["scenario"] == best].sort_values(key, ascending=False).head(15)
        if bundle is not None:
            from studentflow.report.names import school_labels, with_names

            top = with_names(top, school_labels(bundle) if labels is None else labels,
                             columns=("name", "municipality", "province"))
        parts.append(f"<h2>Public JHS relieved most ({html.escape(best)})</h2><p>Each origin school's ESC "
                     "placements above its observed ESC beneficiaries are taken out of the public JHS its "
                     "learners enter today, in proportion to today's flows. Origins placing fewer than "
                     "observed do not add learners back, so even the baseline shows some relief from "
                     "draw-to-draw variation: read the columns \"relieved vs baseline\", the difference from the "
                     "baseline scenario in the same draw (the table is sorted by it).</p>")
        parts.append(_table_html(top.drop(columns="scenario"), float_format=lambda v: f"{v:,.2f}"))
    if models:
        parts.append("<h2>Gravity model</h2><p>Negative binomial (NB2) gravity model of ESC beneficiaries per "
                     "origin school → ESC school pair; standard errors clustered by origin school. The study fit "
                     "only pairs with at least one beneficiary and then predicted all candidate pairs, which "
                     "biases the intercept and slopes (truncation); a zero-truncated NB2 on positive pairs, or an "
                     "NB2 on all candidate pairs, is consistent. Estimates (standard errors):</p>")
        if truth:
            parts.append("<p>The data are synthetic: the last column holds the coefficients they were "
                         "drawn with (the intercept refers to all candidate pairs within the generator's "
                         "radius), so the estimators' bias can be read off directly.</p>")
        parts.append(_table_html(_coef_table(models, truth), index=True))
        dropped = dict.fromkeys(f"{d.label}: {d.reason}" for m in models.values()
                                for d in getattr(m, "dropped", ()))
        if dropped:
            parts.append("<p class='note'>Terms dropped from the fit (as R's lm and fixest drop them; they "
                         "contribute 0 to predictions):</p><ul>"
                         + "".join(f"<li>{html.escape(d)}</li>" for d in dropped) + "</ul>")
        png = figures.get("fig_coefficients.png")
        if png:
            parts.append(f"<figure><img alt='fig_coefficients.png' src='data:image/png;base64,"
                         f"{base64.b64encode(png[1]).decode()}'><figcaption class='note'>"
                         f"{html.escape(png[0])}</figcaption></figure>")
    if pairs is not None:
        kinds = pairs.groupby("pair_type").agg(pairs=("origin_id", "size"),
                                               esc_beneficiaries=("esc_beneficiaries", "sum"))
        parts.append("<h2>Data</h2><p>Origin → ESC school pairs: observed (≥ 1 learner today) and new "
                     "candidates within the radius.</p>" + _table_html(kinds.reset_index()))
    if bundle is not None and len(getattr(bundle, "sources", ())):
        parts.append("<h2>Sources and ledger</h2><p>Rows read, kept and changed per raw file; every "
                     f"dropped, merged, corrected or imputed record is in ledger.csv ({len(bundle.ledger):,} rows).</p>")
        parts.append(_table_html(bundle.sources))
    if timings:
        tt = pd.DataFrame({"stage": list(timings), "seconds": [f"{v:.1f}" for v in timings.values()]})
        parts.append("<h2>Run</h2>" + _table_html(tt))
    parts.append("</body></html>")
    return "\n".join(parts)
