"""``make_national``: the synthetic region at national scale, generated once and cached.

The whole country: every region of :data:`studentflow.schema.REGION_PSGC` (the PSGC
list holds 18 since the Negros Island Region was created in 2024) in the national mix
(:data:`studentflow.synth.mix.NATIONAL_MIX`): about 47,000 public schools (about
38,800 teaching Grade 6 against 10,100 offering JHS) and 12,000 private schools (about
3,400 in ESC), and about 2.7 million Grade 6 → 7 learners a year, written by
:func:`studentflow.synth.make_region` as raw files plus ``truth/``. ESC admissions
follow the same capacity-rationed NB2 as the study area
(:mod:`studentflow.synth.rationing`); the NB2 truth has an origin and a destination
dummy for every region but NCR (the study's for Region III and Region IV-A, synthetic
:data:`studentflow.synth.flows.REGION_EFFECTS` for the rest).

Known simplification: ESC beneficiaries are still the study area's share of Grade 7
learners (about 4 %, :data:`studentflow.synth.flows.ESC_SHARE`); paper-facts.md gives no
national figure.

The files are large (hundreds of MB) and are not committed: the national benchmark
calls :func:`make_national`, which reuses a finished copy in ``cache_dir``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from studentflow.schema import REGION_PSGC
from studentflow.synth.mix import BASE_INSTITUTIONS, NATIONAL_MIX

__all__ = ["NATIONAL_INSTITUTIONS", "NATIONAL_REGIONS", "NATIONAL_RADIUS_KM", "NATIONAL_MIX", "national_scale",
           "make_national"]

#: Every canonical region, in PSGC order.
NATIONAL_REGIONS: tuple[str, ...] = tuple(sorted(REGION_PSGC, key=REGION_PSGC.get))
#: Target institution count (47,000 public + 12,000 private schools).
NATIONAL_INSTITUTIONS = 59_000
#: Candidate-pair radius of the national region, road km: the study's 5 km for new pairs.
NATIONAL_RADIUS_KM = 5.0
_BASE_INSTITUTIONS = BASE_INSTITUTIONS  # make_region institutions per unit of scale
#: Version of the generator's output for a given key: bump when make_region's national
#: output changes, so a cached copy of an older generator is regenerated.
#: 2: national mix (47k public / 12k private, 2.7 M Grade 7) and region dummies.
GENERATOR_VERSION = 2
_DONE = "national.json"  # written last: its presence marks a complete copy


def national_scale(institutions: int = NATIONAL_INSTITUTIONS) -> float:
    """The ``make_region`` scale that gives about ``institutions`` institutions."""
    if not institutions > 0:
        raise ValueError(f"institutions: must be > 0, got {institutions!r}")
    return round(institutions / _BASE_INSTITUTIONS, 4)


def make_national(seed: int = 0, out_dir=None, *, cache_dir=".cache/national",
                  institutions: int = NATIONAL_INSTITUTIONS, radius_km: float = NATIONAL_RADIUS_KM):
    """Write (or reuse) the national synthetic region.

    Parameters
    ----------
    seed : int
        Random seed; the same seed and size give byte-identical files.
    out_dir : str or Path, optional
        Target folder. None: ``cache_dir / "seed<seed>-n<institutions>-r<radius>-national-v2"``.
        A folder that already holds a finished copy with the same seed, size and
        radius is reused without regenerating.
    cache_dir : str or Path
        Folder of cached national regions (used when ``out_dir`` is None).
    institutions : int
        Target number of institutions (the scale is ``institutions / 3000``); the mix of
        kinds is :data:`NATIONAL_MIX`'s at any size.
    radius_km : float
        Candidate origin→ESC pairs within this road distance, km.

    Returns
    -------
    studentflow.synth.region.RegionInfo
        ``counts`` holds institutions, origins, learners, candidate pairs, ….
    """
    from studentflow.synth.region import RegionInfo, make_region

    scale = national_scale(institutions)
    key = {"seed": int(seed), "scale": scale, "radius_km": float(radius_km),
           "regions": list(NATIONAL_REGIONS), "mix": NATIONAL_MIX.name, "version": GENERATOR_VERSION}
    if out_dir is None:
        out_dir = (Path(cache_dir) / f"seed{int(seed)}-n{int(institutions)}-r{float(radius_km):g}"
                   f"-{NATIONAL_MIX.name}-v{GENERATOR_VERSION}")
    out = Path(out_dir)
    done = out / _DONE
    if done.is_file():
        try:
            saved = json.loads(done.read_text(encoding="utf-8"))
        except ValueError:
            saved = {}
        if saved.get("key") == key:
            return RegionInfo(out, out / "manifest.toml", tuple(saved["files"]), int(seed), scale,
                              saved["counts"], saved["params"])
    if out.exists():  # an unfinished or different copy: start clean
        shutil.rmtree(out)
    info = make_region(seed=seed, scale=scale, out_dir=out, regions=NATIONAL_REGIONS,
                       radius_km=radius_km, write_matrix=False, mix=NATIONAL_MIX)
    counts = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in info.counts.items()}
    done.write_text(json.dumps({"key": key, "files": list(info.files), "counts": counts,
                                "params": {k: float(v) for k, v in info.params.items()}}, indent=1),
                    encoding="utf-8")
    return RegionInfo(out, info.manifest, info.files, int(seed), scale, counts, info.params)
