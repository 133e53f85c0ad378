"""National synthetic region: scale, regions and the cache (generation itself is benchmarked,
not tested: it takes about 3 minutes)."""

from __future__ import annotations

import json

import pytest

from studentflow.schema import REGION_PSGC
from studentflow.synth import national


def test_scale_and_regions():
    assert national.national_scale(59_000) * 3_000 == pytest.approx(59_000, rel=1e-4)
    assert national.national_scale(3_000) == 1.0
    assert set(national.NATIONAL_REGIONS) == set(REGION_PSGC)
    with pytest.raises(ValueError, match="institutions"):
        national.national_scale(0)


def _fake_copy(out, key, files=("a.csv",)):
    out.mkdir(parents=True)
    (out / "national.json").write_text(json.dumps({
        "key": key, "files": list(files), "counts": {"institutions": 7}, "params": {"alpha": 0.4}}))


def test_finished_copy_is_reused_and_a_different_one_regenerated(tmp_path, monkeypatch):
    calls = []

    def fake_make_region(**kw):
        calls.append(kw)
        raise RuntimeError("generated")

    monkeypatch.setattr("studentflow.synth.region.make_region", fake_make_region)
    scale = national.national_scale(600)
    key = {"seed": 4, "scale": scale, "radius_km": 5.0, "regions": list(national.NATIONAL_REGIONS)}
    out = tmp_path / "cache" / "seed4-n600-r5"
    _fake_copy(out, key)
    info = national.make_national(4, cache_dir=tmp_path / "cache", institutions=600)
    assert calls == [] and info.out_dir == out and info.counts == {"institutions": 7}
    assert info.files == ("a.csv",) and info.scale == scale
    # another seed: not a cache hit, so make_region is called with every region
    with pytest.raises(RuntimeError, match="generated"):
        national.make_national(5, cache_dir=tmp_path / "cache", institutions=600)
    assert calls[0]["regions"] == national.NATIONAL_REGIONS and calls[0]["seed"] == 5
    assert calls[0]["write_matrix"] is False and calls[0]["scale"] == scale
    # a copy with a stale key in the target folder is removed before regenerating
    _fake_copy(tmp_path / "x", {**key, "seed": 9})
    with pytest.raises(RuntimeError, match="generated"):
        national.make_national(4, out_dir=tmp_path / "x", institutions=600)
    assert not (tmp_path / "x" / "national.json").exists()
