"""``--fit-years all|latest`` (issue 21, item 4): the pooled fit through the CLI on a multi-year manifest."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from unittest import mock

import pytest

from studentflow.cli import main

pytestmark = pytest.mark.slow  # two CLI runs on a small region (about a minute)

EARLIER = "2022-2023"


def two_identical_years(src: Path, dest: Path) -> Path:
    """A second manifest, in ``dest`` (not beside ``src``'s: the region is shared by other
    tests), where every year-bound source is listed again for an earlier year, pointing at
    the same files (two identical school years)."""
    dest = Path(shutil.copytree(src, dest / "region"))
    text = (dest / "manifest.toml").read_text(encoding="utf-8")
    head, *blocks = text.split("[[source]]")
    extra = [re.sub(r'school_year = "[^"]+"', f'school_year = "{EARLIER}"', b) for b in blocks if "school_year" in b]
    assert extra, "the sample manifest has no year-bound source"
    out = dest / "manifest_two_years.toml"
    out.write_text("[[source]]".join([head, *blocks, *extra]), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_region):
    root = tmp_path_factory.mktemp("fit_years")
    manifest = two_identical_years(small_region, root)
    out = {}
    for fit in ("all", "latest"):
        d = root / f"out_{fit}"
        with mock.patch.dict(os.environ, STUDENTFLOW_FORK="1"):  # forked whatever the load (studentflow.forked)
            assert main(["run", "--data", str(manifest), "--out", str(d), "--draws", "2", "--no-progress",
                         "--fit-years", fit]) == 0
        out[fit] = d
    out["manifest"] = manifest
    return out


def test_work_forked_to_the_other_core_leaves_every_file_the_same(runs, monkeypatch):
    """The pooled run forks (studentflow.forked: the earlier year's files and pair table, the other
    estimators, the figures); with STUDENTFLOW_FORK=0 all of it runs in one process, to the same files."""
    import gzip

    from studentflow import forked

    monkeypatch.setenv("STUDENTFLOW_FORK", "1")
    if not forked.possible():
        pytest.skip("no fork or a single core: both runs would be the same code path")
    monkeypatch.setenv("STUDENTFLOW_FORK", "0")
    one = runs["manifest"].parent / "out_one_process"
    assert main(["run", "--data", str(runs["manifest"]), "--out", str(one), "--draws", "2", "--no-progress"]) == 0
    names = sorted(p.name for p in runs["all"].iterdir())
    assert names == sorted(p.name for p in one.iterdir()) and "esc_origins.csv.gz" in names
    for name in names:
        a, b = (runs["all"] / name).read_bytes(), (one / name).read_bytes()
        if name.endswith(".gz"):
            a, b = gzip.decompress(a), gzip.decompress(b)
        if name.endswith((".csv", ".gz", ".txt", ".png")):
            assert a == b, name


def _coef(model_txt: str, label: str) -> tuple[float, float]:
    m = re.search(rf"^{re.escape(label)}\s+(-?\d+\.\d+)\s+(\d+\.\d+)", model_txt, re.M)
    return float(m[1]), float(m[2])


def test_fit_years_all_pools_the_years_and_says_so(runs):
    text = (runs["all"] / "model.txt").read_text(encoding="utf-8")
    first = text.split("\n", 1)[0]
    assert "pooled over 2 school years with year effects (used)" in first
    assert "Year effects" in text and f"{EARLIER}:" in text
    assert "alone ===" in text  # the single-year fit reported beside the pooled one
    for fit in ("all", "latest"):
        assert f'"fit_years": "{fit}"' in (runs[fit] / "run.json").read_text(encoding="utf-8")


class _OneYear:
    """A one-year panel (as :func:`studentflow.gravity.panel.pooled_fit` reads one)."""

    def __init__(self, bundle):
        self.years, self._bundle = (bundle.school_year,), bundle

    def __getitem__(self, year):
        return self._bundle


def test_two_identical_years_carry_no_new_information(runs):
    """Two copies of one year: the pooled point estimates are the year's (the same censored
    fit on that year alone), the year effect is 0, and clustered standard errors (clusters
    are schools across years) do not shrink: the pooled fit's two-way SEs are one year's."""
    from studentflow.gravity.panel import pooled_fit
    from studentflow.ingest import load_bundle
    from studentflow.pipeline import compute_distances

    pooled = (runs["all"] / "model.txt").read_text(encoding="utf-8")
    single = (runs["latest"] / "model.txt").read_text(encoding="utf-8")
    year = load_bundle(runs["manifest"])
    one = pooled_fit(_OneYear(year),
                     compute_distances(year))
    assert one.cluster == "origin_id and destination_id" and one.censored_schools > 0
    names = {"ln(1+net cost, thousand pesos)": "np.log1p(net_cost_k)", "ln(1+distance km)": "np.log1p(distance_km)"}
    assert "Year effects" not in single and "pooled" not in single
    blocks = dict(zip(*[iter(re.split(r"^=== (.+) ===$", pooled, flags=re.M)[1:])] * 2))  # label -> summary
    pooled_block = next(text for label, text in blocks.items() if "pooled" in label)
    for label in ("ln(1+net cost, thousand pesos)", "ln(1+distance km)"):
        b_all, se_all = _coef(pooled_block, label)
        assert b_all == pytest.approx(one.params[names[label]], abs=2e-4)
        assert se_all == pytest.approx(one.bse[names[label]], rel=0.02)
        assert _coef(single, label)[0] != pytest.approx(b_all, abs=2e-4)  # the study's fit differs
    effect = re.search(rf"{EARLIER}: ([+-]\d+\.\d+)", pooled)
    assert abs(float(effect[1])) < 1e-3


def test_every_years_ledger_is_in_the_pooled_runs_files(runs):
    """A pooled run reads every year: ledger.csv and run.json hold every year's records."""
    import json

    import pandas as pd

    ledger = pd.read_csv(runs["all"] / "ledger.csv", dtype=str)
    from studentflow.ingest import manifest_years

    years = manifest_years(runs["manifest"])
    assert len(years) == 2 and set(ledger["school_year"]) == set(years)
    one = pd.read_csv(runs["latest"] / "ledger.csv", dtype=str)
    assert len(ledger) == 2 * len(one)  # two identical years, each with its records
    record = json.loads((runs["all"] / "run.json").read_text(encoding="utf-8"))
    assert record["ledger"]["rows"] == len(ledger)
