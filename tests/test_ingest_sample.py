"""Acceptance: the bundled sample ingests to its truth/, every planted quirk is handled
and recorded, every raw row is accounted for, and no LRN leaves ingestion."""

from __future__ import annotations

import gzip
import io
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studentflow.schema import SCHOOLS

OUTCOME_ACTION = {"repaired": "corrected", "corrected": "corrected", "dropped": "dropped",
                  "merged": "merged", "imputed": "imputed"}


def _truth(sample_dir: Path, name: str, **kw) -> pd.DataFrame:
    return pd.read_csv(sample_dir / "truth" / name, dtype={"school_id": str, "origin_id": str,
                                                          "destination_id": str, "psgc_code": str}, **kw)


@pytest.fixture(scope="module")
def quirks(sample_dir) -> pd.DataFrame:
    q = pd.read_csv(sample_dir / "truth" / "quirks.csv", dtype=str, keep_default_na=False)
    q["row"] = q["row"].astype(int)
    return q


# ------------------------------------------------------------------ raw-file helpers
def _manifest(folder: Path) -> list[dict]:
    """The latest school year's sources and the shared ones (what ``load_bundle`` reads by default)."""
    src = tomllib.loads((folder / "manifest.toml").read_text(encoding="utf-8"))["source"]
    latest = max((e["school_year"] for e in src if "school_year" in e), default=None)
    return [e for e in src if e.get("school_year", latest) == latest]


def _raw_rows(path: Path, sheet=None) -> list[list[str]]:
    """Every physical row of a raw file as text (independent of the ingest readers)."""
    if path.name.endswith(".xlsx"):
        raw = pd.read_excel(path, sheet_name=sheet or 0, header=None, dtype=str, engine="openpyxl")
        return [["" if (isinstance(v, float) and np.isnan(v)) else str(v) for v in r]
                for r in raw.itertuples(index=False)]
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        # plain line split (not the csv module the readers use): enough to tell blank
        # lines and the header (>= 2 fields) apart
        return [line.split(",") for line in fh.read().splitlines()]


def _lrns(folder: Path) -> set[str]:
    """Every 12-digit LRN in the raw transitions and billing files."""
    out: set[str] = set()
    for s in _manifest(folder):
        if s["kind"] in ("transitions", "esc_beneficiaries"):
            p = folder / s["path"]
            opener = gzip.open if p.name.endswith(".gz") else open
            with opener(p, "rt", encoding="utf-8-sig") as fh:
                out.update(re.findall(r"(?<!\d)\d{12}(?!\d)", fh.read()))
    return out


def _bundle_text(bundle) -> str:
    parts = [bundle.summary()]
    for t in (bundle.schools.drop(columns="geometry"), bundle.flows, bundle.areas, bundle.subsidy,
              bundle.ledger, bundle.sources):
        parts.append(t.reset_index().to_csv(index=False))
    return "\n".join(parts)


def _check_accounting(bundle, folder: Path) -> None:
    src = bundle.sources
    led = bundle.ledger
    # every file read is accounted for; a road matrix is passed on unread (binary)
    assert len(src) == sum(1 for s in _manifest(folder) if s["kind"] != "road_distances")
    for s in src.itertuples(index=False):
        mine = led[(led["file"] == s.file) & (led["row"] > 0)]
        gone = mine[mine["action"].isin(["dropped", "merged"])]
        # a row is dropped or merged at most once, and never also kept
        assert not gone["row"].duplicated().any(), s.file
        assert s.dropped == (gone["action"] == "dropped").sum() and s.merged == (gone["action"] == "merged").sum()
        assert s.rows_read == s.kept + s.merged + s.dropped, s.file
        # rows_read counted independently: non-blank rows below the header
        rows = _raw_rows(folder / s.file)
        nonblank = [i for i, r in enumerate(rows, start=1) if any(str(v).strip() for v in r)]
        header = min(r for r in nonblank if len([v for v in rows[r - 1] if str(v).strip()]) >= 2)
        data = [r for r in nonblank if r > header]
        assert s.rows_read == len(data), s.file
        assert set(gone["row"]) <= set(data), s.file
    # learner rows kept = learners in the flows
    tr = src[src["kind"] == "transitions"]
    assert bundle.flows["learners"].sum() == tr["kept"].sum()


# ----------------------------------------------------------------------- the tests
def test_schools_equal_truth(sample_bundle, sample_dir, quirks):
    truth = _truth(sample_dir, "schools.csv").set_index("school_id")
    got = sample_bundle.schools
    # duplicate enrolment rows are dropped, the school itself stays: one record per school
    assert got.index.is_unique and set(got.index) == set(truth.index)
    truth = truth.loc[got.index]
    imputed = got["jhs_seats_imputed"]
    for col in [c for c in SCHOOLS if c not in ("geometry",)]:
        a, b = got[col], truth[col]
        if col == "jhs_seats":
            a, b = a[~imputed], b[~imputed]
        if col == "jhs_seats_imputed":
            continue
        if pd.api.types.is_numeric_dtype(b) or pd.api.types.is_bool_dtype(b):
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-9, err_msg=col, equal_nan=True)
        else:
            assert (a.astype(str).fillna("") == b.astype(str).fillna("")).all(), col
    # imputed seats are exactly the planted missing ones, and plausible
    planted = set(quirks.loc[quirks["outcome"] == "imputed", "school_id"])
    assert set(got.index[imputed]) <= planted and (got.loc[imputed, "jhs_seats"] > 0).all()
    # locations: repaired points equal truth; schools without a point have a dropped coordinate quirk
    has = got.geometry.notna()
    np.testing.assert_allclose(got.geometry[has].x, truth.loc[has, "lon"], atol=1e-6)
    np.testing.assert_allclose(got.geometry[has].y, truth.loc[has, "lat"], atol=1e-6)
    coord_dropped = set(quirks.loc[(quirks["kind"] == "coordinates") & (quirks["outcome"] == "dropped"), "school_id"])
    assert set(got.index[~has]) <= coord_dropped


def test_flows_equal_truth(sample_bundle, sample_dir):
    truth = _truth(sample_dir, "flows.csv")
    key = ["origin_id", "destination_id"]
    a = sample_bundle.flows.sort_values(key).reset_index(drop=True)
    b = truth[a.columns].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_areas_and_subsidy_equal_truth(sample_bundle, sample_dir):
    truth = _truth(sample_dir, "areas.csv").set_index("psgc_code")
    got = sample_bundle.areas
    assert set(got.index) == set(truth.index)
    truth = truth.loc[got.index]
    for col in ("region", "province", "municipality", "city_class"):
        assert (got[col] == truth[col]).all(), col
    assert (got["population"] == truth["population"]).all()
    ok = ~got["lgu_revenue_imputed"]
    np.testing.assert_allclose(got.loc[ok, "lgu_revenue"], truth.loc[ok, "lgu_revenue"], rtol=1e-9)
    sub = _truth(sample_dir, "subsidy.csv").set_index("school_id").sort_index()
    pd.testing.assert_frame_equal(sample_bundle.subsidy.sort_index()[["tier", "amount"]], sub[["tier", "amount"]],
                                  check_dtype=False)


def test_every_quirk_handled_and_in_ledger(sample_bundle, quirks):
    led = sample_bundle.ledger
    events = set(zip(led["file"], led["row"], led["action"]))
    missing = [(q.file, q.row, q.quirk, q.outcome) for q in quirks.itertuples(index=False)
               if (q.file, q.row, OUTCOME_ACTION[q.outcome]) not in events]
    assert not missing, f"{len(missing)} of {len(quirks)} quirks not in the ledger, e.g. {missing[:5]}"


def test_accounting_invariant_sample(sample_bundle, sample_dir):
    _check_accounting(sample_bundle, sample_dir)


def test_no_lrn_in_bundle(sample_bundle, sample_dir):
    lrns = _lrns(sample_dir)
    assert len(lrns) > 100
    text = _bundle_text(sample_bundle)
    found = set(re.findall(r"(?<!\d)\d{12}(?!\d)", text))
    assert not (found & lrns)


def test_small_region_accounting_and_no_lrn(small_region):
    from studentflow.ingest import load_bundle

    bundle = load_bundle(small_region / "manifest.toml")
    _check_accounting(bundle, small_region)
    # another seed and scale: the planted quirks are handled too, and flows equal truth
    quirks = pd.read_csv(small_region / "truth" / "quirks.csv", dtype=str, keep_default_na=False)
    events = set(zip(bundle.ledger["file"], bundle.ledger["row"], bundle.ledger["action"]))
    assert all((q.file, int(q.row), OUTCOME_ACTION[q.outcome]) in events for q in quirks.itertuples())
    key = ["origin_id", "destination_id"]
    truth = _truth(small_region, "flows.csv").sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(bundle.flows.sort_values(key).reset_index(drop=True), truth[bundle.flows.columns],
                                  check_dtype=False)
    assert not (set(re.findall(r"(?<!\d)\d{12}(?!\d)", _bundle_text(bundle))) & _lrns(small_region))
    assert bundle.extras and all(Path(p).exists() for v in bundle.extras.values()
                                 for p in (v if isinstance(v, tuple) else (v,)))
