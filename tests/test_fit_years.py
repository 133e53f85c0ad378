"""``--fit-years all|latest`` (issue 21, item 4): the pooled fit through the CLI on a multi-year manifest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studentflow.cli import main

pytestmark = pytest.mark.slow  # two CLI runs on a small region (about a minute)

EARLIER = "2022-2023"


def two_identical_years(src: Path) -> Path:
    """A second manifest beside ``src``'s where every year-bound source is listed again for an
    earlier year, pointing at the same files (two identical school years)."""
    text = (src / "manifest.toml").read_text(encoding="utf-8")
    head, *blocks = text.split("[[source]]")
    extra = [re.sub(r'school_year = "[^"]+"', f'school_year = "{EARLIER}"', b) for b in blocks if "school_year" in b]
    assert extra, "the sample manifest has no year-bound source"
    out = src / "manifest_two_years.toml"
    out.write_text("[[source]]".join([head, *blocks, *extra]), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_region):
    root = tmp_path_factory.mktemp("fit_years")
    manifest = two_identical_years(small_region)
    out = {}
    for fit in ("all", "latest"):
        d = root / f"out_{fit}"
        assert main(["run", "--data", str(manifest), "--out", str(d), "--draws", "2", "--no-progress",
                     "--fit-years", fit]) == 0
        out[fit] = d
    return out


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


def test_two_identical_years_carry_no_new_information(runs):
    """Two copies of one year: the pooled point estimates are the year's, the year effect is 0,
    and clustered standard errors (one cluster per origin school across years) do not shrink."""
    pooled = (runs["all"] / "model.txt").read_text(encoding="utf-8")
    single = (runs["latest"] / "model.txt").read_text(encoding="utf-8")
    assert "Year effects" not in single and "pooled" not in single
    blocks = dict(zip(*[iter(re.split(r"^=== (.+) ===$", pooled, flags=re.M)[1:])] * 2))  # label -> summary
    pooled_block = next(text for label, text in blocks.items() if "pooled" in label)
    for label in ("ln(1+net cost, thousand pesos)", "ln(1+distance km)"):
        b_all, se_all = _coef(pooled_block, label)
        b_one, se_one = _coef(single, label)
        assert b_all == pytest.approx(b_one, abs=2e-4)
        assert se_all == pytest.approx(se_one, rel=0.02)
    effect = re.search(rf"{EARLIER}: ([+-]\d+\.\d+)", pooled)
    assert abs(float(effect[1])) < 1e-3
