"""Synthetic study areas with known ground truth, for demos, tests and validation.

- :func:`make_region` (``synth/region.py`` and helpers): a whole region written as raw
  files in the real sources' layouts, with quirks, plus ``truth/``.
- :func:`make_years` (``synth/years.py``, ``evolve.py``, ``years_write.py``): several
  consecutive school years of one evolving world; the latest is make_region's output.
- :func:`make_pairs` (``synth/pairs.py``): a bare origin->ESC pair table drawn from a
  known NB2 gravity model, for estimator tests and benchmarks.
- :class:`Mix` (``synth/mix.py``): institution counts, ESC share and Grade 6 sizes of a
  region; :data:`STUDY_MIX` (make_region's default) and :data:`NATIONAL_MIX`.
"""

from __future__ import annotations

from importlib import import_module

#: The study's Model 4 (paper-facts.md): slopes and NB2 dispersion used as synthetic truth.
#: Keys are PairTable-level names; the intercept of a synthetic region is recalibrated
#: so that totals are realistic (paper-facts.md, "Using the study's coefficients").
STUDY_PARAMS: dict[str, float] = {
    "intercept": 3.036,
    "log1p_distance_km": -0.4496,
    "log1p_net_cost_k": -0.1104,
    "esc_rating": -0.0191,
    "log1p_origin_lgu_revenue": -0.0524,
    "origin_region[Region III]": -0.0783,
    "origin_region[Region IV-A]": -0.0908,
    "destination_region[Region III]": 0.0781,
    "destination_region[Region IV-A]": 0.0969,
}
STUDY_ALPHA: float = 0.3948

__all__ = ["STUDY_PARAMS", "STUDY_ALPHA", "make_region", "make_years", "make_pairs", "Mix", "STUDY_MIX", "NATIONAL_MIX"]

_LAZY = {"make_region": "studentflow.synth.region", "make_years": "studentflow.synth.years", "make_pairs": "studentflow.synth.pairs",
         "Mix": "studentflow.synth.mix", "STUDY_MIX": "studentflow.synth.mix", "NATIONAL_MIX": "studentflow.synth.mix"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'studentflow.synth' has no attribute {name!r}")
