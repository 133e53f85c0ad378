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
    key = {"seed": 4, "scale": scale, "radius_km": 5.0, "regions": list(national.NATIONAL_REGIONS),
           "mix": "national", "version": national.GENERATOR_VERSION}
    out = tmp_path / "cache" / f"seed4-n600-r5-national-v{national.GENERATOR_VERSION}"
    _fake_copy(out, key)
    info = national.make_national(4, cache_dir=tmp_path / "cache", institutions=600)
    assert calls == [] and info.out_dir == out and info.counts == {"institutions": 7}
    assert info.files == ("a.csv",) and info.scale == scale
    # another seed: not a cache hit, so make_region is called with every region
    with pytest.raises(RuntimeError, match="generated"):
        national.make_national(5, cache_dir=tmp_path / "cache", institutions=600)
    assert calls[0]["regions"] == national.NATIONAL_REGIONS and calls[0]["seed"] == 5
    assert calls[0]["write_matrix"] is False and calls[0]["scale"] == scale
    assert calls[0]["mix"] is national.NATIONAL_MIX
    # a copy with a stale key in the target folder is removed before regenerating
    _fake_copy(tmp_path / "x", {**key, "seed": 9})
    with pytest.raises(RuntimeError, match="generated"):
        national.make_national(4, out_dir=tmp_path / "x", institutions=600)
    assert not (tmp_path / "x" / "national.json").exists()
    # a copy of an older generator (no mix/version in its key) is not reused either
    old = {k: v for k, v in key.items() if k not in ("mix", "version")}
    _fake_copy(tmp_path / "y", old)
    with pytest.raises(RuntimeError, match="generated"):
        national.make_national(4, out_dir=tmp_path / "y", institutions=600)
    assert len(calls) == 3


def test_national_mix_gives_the_issue_counts():
    """At the national scale the mix places ~47k public / ~12k private schools and its Grade 6
    sizes give ~2.7 million Grade 7 learners in expectation (placement only, no flows)."""
    import numpy as np

    from studentflow.schema import OFFERS_ES, OFFERS_JHS
    from studentflow.synth.geography import barangays, lgus
    from studentflow.synth.mix import NATIONAL_MIX
    from studentflow.synth.region import G6_SIGMA, STAY_RATE
    from studentflow.synth.schools import place_schools, private_attributes

    lgu = lgus(national.NATIONAL_REGIONS)
    rng = np.random.default_rng(0)
    s = place_schools(lgu, barangays(lgu), national.national_scale(), rng, NATIONAL_MIX.counts)
    s = private_attributes(s, rng, NATIONAL_MIX.esc_share_of_private)
    public = s["sector"] == "public"
    assert public.sum() == pytest.approx(47_000, abs=10) and (~public).sum() == pytest.approx(12_000, abs=10)
    assert set(s["region"]) == set(REGION_PSGC)
    es, jhs = s["offering"].isin(OFFERS_ES), s["offering"].isin(OFFERS_JHS)
    assert (public & es).sum() > 3 * (public & jhs).sum()  # public elementary schools far outnumber JHS
    assert 0.2 < s.loc[~public, "esc"].mean() < 0.35 and s.loc[s["esc"], "offering"].isin(OFFERS_JHS).all()
    o = s[es]
    kind = np.where(o["sector"] == "private", "private",
                    np.where(o["offering"] == "es_jhs", "public_es_jhs", "public_es"))
    med = np.array([NATIONAL_MIX.grade6_median[k] for k in kind])
    med = np.where((o["region"].to_numpy() == "NCR") & (kind != "private"), med * NATIONAL_MIX.ncr_factor, med)
    grade7 = (med * np.exp(G6_SIGMA**2 / 2)).sum() * STAY_RATE
    assert 2.5e6 < grade7 < 2.9e6
