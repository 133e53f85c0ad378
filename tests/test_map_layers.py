"""The interactive map of a large run: layers drawn per municipality, sums kept exact."""

from __future__ import annotations

from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def _toy(n_jhs: int, n_esc: int, n_mun: int, seed: int):
    """A bundle-like object and a result-like object with two scenarios."""
    rng = np.random.default_rng(seed)
    ids = [f"{k:06d}" for k in range(n_jhs + n_esc)]
    mun = rng.integers(0, n_mun, len(ids))
    schools = gpd.GeoDataFrame({
        "name": [f"School {k}" for k in range(len(ids))],
        "municipality": [f"MUN {m}" for m in mun], "province": [f"PROV {m % 2}" for m in mun],
        "region": "NCR", "sector": ["public"] * n_jhs + ["private"] * n_esc,
        "psgc_code": [f"{1300000000 + 1000 * m}" for m in mun],
    }, geometry=gpd.points_from_xy(120 + rng.random(len(ids)), 14 + rng.random(len(ids))),
        index=pd.Index(ids, name="school_id"), crs="EPSG:4326")
    names = ["base", "more"]
    pj, es = [], []
    for k, name in enumerate(names):
        enrol = rng.integers(100, 1000, n_jhs).astype(float)
        seats = rng.integers(100, 1000, n_jhs).astype(float)
        rel = rng.random(n_jhs) * 50 * k
        pj.append(pd.DataFrame({
            "scenario": name, "school_id": ids[:n_jhs], "jhs_seats": seats, "enrolment_before": enrol,
            "utilisation_before": enrol / seats, "relieved_mean": rel, "relieved_lo": rel / 2, "relieved_hi": rel * 2,
            "relieved_vs_baseline_mean": rel, "relieved_vs_baseline_lo": rel / 2, "relieved_vs_baseline_hi": rel * 2,
            "utilisation_after_mean": (enrol - rel) / seats}))
        slots = rng.integers(1, 200, n_esc)
        placed = rng.random(n_esc) * slots
        es.append(pd.DataFrame({"scenario": name, "school_id": ids[n_jhs:], "slots": slots, "placed_mean": placed,
                                "placed_lo": placed / 2, "placed_hi": placed, "full_share": 0.5}))
    result = SimpleNamespace(
        scenarios=[SimpleNamespace(name=n) for n in names], baseline="base",
        table=pd.DataFrame({"scenario": names, "relieved_mean": [0.0, 10.0]}),
        public_jhs=pd.concat(pj, ignore_index=True), esc_schools=pd.concat(es, ignore_index=True))
    bundle = SimpleNamespace(schools=schools, areas=None)
    return bundle, result


@given(st.integers(1, 40), st.integers(1, 30), st.integers(1, 6), st.integers(0, 10_000))
@settings(max_examples=8)
def test_large_layers_are_drawn_per_municipality_with_exact_sums(n_jhs, n_esc, n_mun, seed):
    import studentflow.report.map_layers as ml
    from studentflow.report.interactive import map_figure

    bundle, result = _toy(n_jhs, n_esc, n_mun, seed)
    per_school = map_figure(result, bundle)
    old = ml.MAX_SCHOOLS
    ml.MAX_SCHOOLS = 0  # every layer aggregated
    try:
        per_mun = map_figure(result, bundle)
    finally:
        ml.MAX_SCHOOLS = old
    assert len(per_school.data) == len(per_mun.data)  # the same layers and menu
    code = bundle.schools["psgc_code"]
    for a, b in zip(per_school.data, per_mun.data):
        assert "(per municipality)" in b.name and "(per municipality)" not in a.name
        assert len(a.lon) == (n_jhs if "JHS" in a.name else n_esc)
        kind = "jhs" if "JHS" in a.name else "esc"
        name = "base" if "today" in a.name else a.name.split(": ", 1)[1]
        rows = (result.public_jhs if kind == "jhs" else result.esc_schools).query("scenario == @name")
        muns = code.reindex(rows["school_id"]).to_numpy()
        assert len(b.lon) == len(set(muns))  # one marker per municipality
        if kind == "jhs":
            g = rows.assign(m=muns).groupby("m")
            rel = 0.0 if "today" in a.name else g["relieved_mean"].sum()
            want = (g["enrolment_before"].sum() - rel) / g["jhs_seats"].sum()
            np.testing.assert_allclose(np.asarray(b.marker.color, float), want.to_numpy(), atol=1e-3)
        # the mean position of the municipality's schools
        lon = pd.Series(np.asarray(a.lon, float)).groupby(muns).mean()
        np.testing.assert_allclose(np.asarray(b.lon, float), lon.to_numpy(), atol=1e-5)


def test_aggregation_threshold_and_note():
    from studentflow.report.map_layers import MAX_SCHOOLS, aggregated
    from studentflow.report.maps import map_section

    bundle, result = _toy(30, 10, 4, 1)
    assert not aggregated(result.public_jhs, "base")
    big = pd.concat([result.public_jhs[result.public_jhs["scenario"] == "base"]] * (MAX_SCHOOLS // 30 + 1))
    assert aggregated(big, "base") and not aggregated(big, "other")
    pytest.importorskip("plotly")
    assert "one marker per city/municipality" not in map_section(result, bundle)


def test_outlines_are_read_back_from_the_disk_cache(sample_bundle, tmp_path, monkeypatch):
    import studentflow.geo.boundaries as gb

    codes = list(sample_bundle.areas.index)[:12]
    monkeypatch.setenv("STUDENTFLOW_CACHE", str(tmp_path))
    built = gb.municipal_boundaries(codes)
    files = list(tmp_path.glob("outlines-*.parquet"))
    assert built is not None and len(files) == 1

    def fail(*args):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(gb, "_outlines", fail)
    again = gb.municipal_boundaries(codes)
    assert list(again.index) == list(built.index) and again.crs == built.crs
    assert again.geom_equals_exact(built, tolerance=0).all()
    with pytest.raises(AssertionError, match="rebuilt"):  # other codes: another key, built anew
        gb.municipal_boundaries(codes[:5])
    monkeypatch.setenv("STUDENTFLOW_CACHE", "")  # empty: no disk cache at all
    assert gb.cache_dir() is None


@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 10_000), st.booleans())
@settings(max_examples=10, deadline=None)
def test_municipality_grouping_reused_only_for_the_same_schools(n, n_mun, seed, shuffle):
    """A cached grouping gives the table a fresh one gives: for the same schools (reused)
    and for another order or set of schools (grouped again)."""
    from studentflow.report.map_layers import by_municipality

    bundle, result = _toy(n, 1, n_mun, seed)
    rows = result.public_jhs
    base, more = rows[rows["scenario"] == "base"], rows[rows["scenario"] == "more"]
    other = more.sample(frac=1.0, random_state=seed) if shuffle else more.iloc[: max(1, n // 2)]
    cache: dict = {}
    sums = ["enrolment_before", "relieved_mean"]
    for frame in (base, more, other, base):
        pd.testing.assert_frame_equal(by_municipality(frame, bundle, sums, cache), by_municipality(frame, bundle, sums),
                                      check_exact=True)


def test_map_page_splices_the_outlines_figure_dict_holds(tmp_path):
    """interactive_map writes the outlines' GeoJSON text in place of the placeholder: the
    page's figure JSON is the JSON of figure_dict (the parsed outlines)."""
    import plotly.io as pio
    from shapely.geometry import box

    from studentflow.report.interactive import _NO_WORLD, _OUTLINES, figure_dict, interactive_map

    bundle, result = _toy(6, 3, 2, 1)
    codes = sorted(set(bundle.schools["psgc_code"]))
    outlines = gpd.GeoDataFrame(geometry=[box(120 + k, 14, 120.5 + k, 14.5) for k in range(len(codes))],
                                index=pd.Index(codes, name="psgc_code"), crs="EPSG:4326")
    bundle.areas = pd.DataFrame({"municipality": ["A <b>", None][: len(codes)], "province": "P"},
                                index=pd.Index(codes, name="psgc_code"))
    page = interactive_map(result, bundle, boundaries=outlines)
    assert _OUTLINES not in page
    fig = figure_dict(result, bundle, boundaries=outlines)  # the outlines parsed, as plotly would write them
    assert isinstance(fig["data"][0]["geojson"], dict) and len(fig["data"][0]["geojson"]["features"]) == len(codes)
    fig["layout"]["template"] = pio.templates[pio.templates.default].to_plotly_json()
    whole = pio.to_html(fig, validate=False, full_html=False, include_plotlyjs=True, div_id="studentflow-map",
                        config={"displaylogo": False, "scrollZoom": True, "responsive": True})
    assert page == _NO_WORLD + whole
    assert fig["data"][0]["hovertext"][0] == "A &lt;b&gt;, P"
