"""Shared fixtures. Test data come from studentflow.synth, not committed fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline: on a loaded 2-core CI machine a 200 ms deadline fails tests
# for being slow, not wrong (seen on test_coordinates_every_row_kept_or_in_ledger).
settings.register_profile("studentflow", deadline=None)
# CI (.ci/run sets STUDENTFLOW_HYPOTHESIS_PROFILE=ci) draws the same examples every run, so a
# landing is gated on regressions, not on which new example a random search met that day;
# developers' runs keep searching at random (that is how test_plan's seed 1301 was found).
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile(os.environ.get("STUDENTFLOW_HYPOTHESIS_PROFILE", "studentflow"))

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "data" / "sample"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The bundled synthetic sample (raw files + truth/)."""
    if not (SAMPLE_DIR / "manifest.toml").exists():
        pytest.fail("data/sample/manifest.toml is missing: run scripts/make_sample.py")
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_bundle(sample_dir):
    """The sample loaded through the ingestion layer (once per test session)."""
    from studentflow.ingest import load_bundle

    return load_bundle(sample_dir / "manifest.toml")


@pytest.fixture(scope="session")
def small_region(tmp_path_factory) -> Path:
    """A second, smaller synthetic region (another seed and scale), written to disk."""
    from studentflow.synth import make_region

    out = tmp_path_factory.mktemp("region_s7")
    make_region(seed=7, scale=0.25, out_dir=out)
    return out
