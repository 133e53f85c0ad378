"""Report: every output written, figures embedded, atomic writes, no LRNs."""

from __future__ import annotations

import base64
import re
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import Point
from test_scenarios import ALLOCATE, FakeModel, _toy_bundle

from studentflow.report import write as report_mod
from studentflow.report import figures as report_figures
from studentflow.report import atomic_write, mask_lrns, write_report
from studentflow.scenarios.spec import Scenario
from studentflow.scenarios import run_scenarios
from studentflow.synth.pairs import make_pairs


class SummaryModel(FakeModel):
    """FakeModel with the reporting side of the GravityModel contract."""

    def __init__(self, params, se=0.02, alpha=0.4):
        super().__init__(params, se)
        self.bse = pd.Series(se, index=self.params.index)
        self.alpha, self.llf, self.aic, self.nobs = alpha, -1234.5, 2489.0, 1440

    def conf_int(self):
        return pd.DataFrame({0: self.params - 1.96 * self.bse, 1: self.params + 1.96 * self.bse})

    def summary(self):
        return "FakeModel\n" + self.params.to_string()


@pytest.fixture(scope="module")
def setup():
    pairs = make_pairs(n_origins=80, dests_per_origin=10, seed=11)
    model = SummaryModel(pairs.attrs["params"])
    toy = _toy_bundle(pairs)
    rng = np.random.default_rng(0)
    ids = list(toy.schools.index) + sorted(pairs["destination_id"].unique())
    geometry = [Point(121.0 + rng.random() * 0.2, 14.5 + rng.random() * 0.2) for _ in ids]
    schools = gpd.GeoDataFrame(
        {"name": [f"School {i}" for i in ids]}, geometry=geometry, crs="EPSG:4326",
        index=pd.Index(ids, name="school_id"),
    )
    for col in ("sector", "offering", "jhs_enrolment", "jhs_seats"):
        schools[col] = toy.schools[col].reindex(ids).to_numpy()
    schools["sector"] = schools["sector"].fillna("private")
    schools["offering"] = schools["offering"].fillna("jhs_shs")
    ledger = pd.DataFrame({"source": ["transitions"], "file": ["gr7.csv"], "row": [7], "school_id": [""],
                           "action": ["dropped"], "reason": ["repeated learner 123456789012"]})
    sources = pd.DataFrame({"kind": ["transitions"], "file": ["gr7.csv"], "rows_read": [10], "kept": [9]})
    bundle = SimpleNamespace(schools=schools, flows=toy.flows, ledger=ledger, sources=sources,
                             subsidy=pd.DataFrame())
    scen = [Scenario("status quo", baseline=True, capacity="billed"), Scenario("fill"),
            Scenario("-5K", subsidy=5000), Scenario("-20K", subsidy=20000)]
    result = run_scenarios(bundle, model, scen, pairs=pairs, draws=4, seed=1, progress=False,
                           allocator=ALLOCATE)
    study = SummaryModel({k: v * 1.1 for k, v in pairs.attrs["params"].items()})
    return SimpleNamespace(pairs=pairs, model=model, study=study, bundle=bundle, result=result)


def test_writes_every_output_and_embeds_figures(setup, tmp_path):
    out = write_report(setup.result, tmp_path / "rep", bundle=setup.bundle, model=setup.model,
                       pairs=setup.pairs, models={"study NB2 (positives)": setup.study},
                       comparisons={"study NB2 (positives)": setup.result}, timings={"ingest": 1.0},
                       truth={**setup.pairs.attrs["params"], "alpha": 0.4})
    names = {p.name for p in (tmp_path / "rep").iterdir()}
    expected = {"report.html", "scenarios.csv", "esc_schools.csv", "public_jhs.csv", "schools.gpkg",
                "ledger.csv", "sources.csv", "model.txt", "fig_coefficients.png", "fig_placed.png",
                "fig_utilisation.png", "fig_map.png", "fig_status_quo.png", "fig_cost_effectiveness.png"}
    assert expected <= names and set(out) == names
    assert not [n for n in names if n.startswith(".")]  # no temporaries left
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 6  # with the status quo vs observed scatter and the cost-effectiveness figure
    written = pd.read_csv(tmp_path / "rep" / "scenarios.csv")
    for col in ("cost", "cost_vs_baseline", "cost_inframarginal", "pesos_per_added_learner", "pesos_per_relieved"):
        assert written[f"{col}_mean"].notna().sum() >= len(written) - 1, col  # the baseline has no price
    for img in images:
        assert base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src='http" not in page and "<link" not in page  # self-contained
    for s in setup.result.scenarios:
        assert s.name in page
    assert "synthetic truth" in page and f"{setup.pairs.attrs['params']['log1p_distance_km']:.4f}" in page
    assert "Estimators compared" in page and "study NB2 (positives) (point estimate)" in page
    t = setup.result.table.set_index("scenario")
    full = t.loc["-20K", "placed_mean"] / t.loc["-20K", "slots"]
    assert f"fills {full:.0%} of the slots" in page
    assert ("slot capacity, not the subsidy amount, binds" in page) == (full > 0.9)
    table = pd.read_csv(tmp_path / "rep" / "scenarios.csv")
    pd.testing.assert_series_equal(table["placed_mean"], setup.result.table["placed_mean"], check_names=False)
    layers = dict(pyogrio.list_layers(tmp_path / "rep" / "schools.gpkg"))
    assert {"esc_schools", "public_jhs"} <= set(layers)
    esc = gpd.read_file(tmp_path / "rep" / "schools.gpkg", layer="esc_schools")
    assert len(esc) == len(setup.result.esc_schools) and esc.geometry.notna().all()
    text = (tmp_path / "rep" / "model.txt").read_text()
    assert "used for scenarios" in text and "study NB2 (positives)" in text


def test_no_lrn_in_any_output(setup, tmp_path):
    write_report(setup.result, tmp_path, bundle=setup.bundle, model=setup.model)
    for path in tmp_path.iterdir():
        if path.suffix in {".csv", ".html", ".txt"}:
            assert "123456789012" not in path.read_text(encoding="utf-8"), path.name
    assert "LRN removed" in (tmp_path / "ledger.csv").read_text()
    empty = mask_lrns(pd.DataFrame({"a": [None, None], "b": [1, 2]}))  # an all-missing text column
    assert empty["a"].isna().all() and empty["b"].tolist() == [1, 2]
    masked = mask_lrns(pd.DataFrame({"a": ["x 123456789012 y", "1234567890123"], "b": [1, 2]}))
    assert masked["a"].tolist() == ["x [LRN removed] y", "1234567890123"]


def test_failure_mid_report_leaves_nothing_complete_looking(setup, tmp_path, monkeypatch):
    out = tmp_path / "rep"

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(report_figures, "congestion_map", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(setup.result, out, bundle=setup.bundle, model=setup.model)
    names = {p.name for p in out.iterdir()}
    assert "report.html" not in names and "schools.gpkg" not in names
    assert not [n for n in names if n.startswith(".")]

    # a writer dying half-way through a file: the final name never appears
    def half(tmp):
        tmp.write_text("<html><body>half")
        raise OSError("killed")

    with pytest.raises(OSError):
        atomic_write(out / "report.html", half)
    assert not (out / "report.html").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_failed_rerun_leaves_no_stale_report(setup, tmp_path, monkeypatch):
    """report.html marks a complete set: a failed re-run must not leave the old one beside new tables."""
    write_report(setup.result, tmp_path, bundle=None, model=setup.model)
    assert (tmp_path / "report.html").exists()
    monkeypatch.setattr(report_mod, "_headline", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(setup.result, tmp_path, bundle=None, model=setup.model)
    assert not (tmp_path / "report.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_term_labels_readable():
    assert report_figures.term_label("np.log1p(distance_km)") == "ln(1 + road km)"
    assert report_figures.term_label("C(origin_region, Treatment('NCR'))[T.Region III]") == \
        "origin in Region III (vs NCR)"


def test_written_files_take_the_umask_not_private_temp_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "t.csv", lambda tmp: tmp.write_text("a\n"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        path = atomic_write(tmp_path / "u.csv", lambda tmp: tmp.write_text("a\n"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
