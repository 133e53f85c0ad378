"""The institution and learner mix of a synthetic region: what kinds of schools, how many, how big.

:data:`STUDY_MIX` is the study area's (paper-facts.md, "Proportions": about half public
elementary schools, about a third private schools of which two thirds take part in ESC,
large Grade 6 cohorts); :func:`studentflow.synth.make_region` uses it by default.
:data:`NATIONAL_MIX` is the whole country's (issue 8): about 47,000 public and 12,000
private schools, public elementary schools far outnumbering public JHS, a smaller ESC
share of private schools and smaller Grade 6 cohorts, so that about 2.7 million learners
move from Grade 6 to Grade 7 a year at :func:`studentflow.synth.national.national_scale`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Mix", "STUDY_MIX", "NATIONAL_MIX", "NATIONAL_SCHOOLS", "BASE_INSTITUTIONS"]

#: Institutions per unit of ``make_region``'s scale.
BASE_INSTITUTIONS = 3_000

_KINDS = ("public_es", "public_es_jhs", "private")


@dataclass(frozen=True)
class Mix:
    """Institution counts, ESC participation and Grade 6 cohort sizes of a synthetic region.

    Attributes
    ----------
    name : str
        Short label (recorded in ``truth/params.json`` and in cache keys).
    counts : dict
        (sector, offering) → institutions at scale 1 (may be fractional; the region draws
        ``round(count * scale)``, at least 1, of each kind). Order matters: it is the
        order in which schools are drawn.
    esc_share_of_private : float
        ESC schools as a share of all private schools (they are drawn among private
        schools offering JHS), in (0, 1].
    grade6_median : dict
        Median Grade 6 enrolment (learners) of an origin by kind: ``public_es`` (purely
        elementary), ``public_es_jhs`` (integrated) and ``private``; lognormal around it.
    ncr_factor : float
        Multiplies the medians of public origins in NCR (larger city schools).
    """

    name: str
    counts: dict = field(default_factory=dict)
    esc_share_of_private: float = 2 / 3
    grade6_median: dict = field(default_factory=dict)
    ncr_factor: float = 1.4

    def __post_init__(self):
        if not self.counts or any(not (v >= 0) for v in self.counts.values()):
            raise ValueError(f"counts: need non-negative institution counts, got {self.counts!r}")
        if not any(s == "public" for s, _ in self.counts) or not any(s == "private" for s, _ in self.counts):
            raise ValueError("counts: need both public and private institutions")
        if not 0 < self.esc_share_of_private <= 1:
            raise ValueError(f"esc_share_of_private: must be in (0, 1], got {self.esc_share_of_private!r}")
        if set(self.grade6_median) != set(_KINDS) or any(not (v > 0) for v in self.grade6_median.values()):
            raise ValueError(f"grade6_median: need positive medians for {_KINDS}, got {self.grade6_median!r}")
        if not self.ncr_factor > 0:
            raise ValueError(f"ncr_factor: must be > 0, got {self.ncr_factor!r}")

    def total(self, sector: str | None = None) -> float:
        """Institutions at scale 1, of one sector ("public"/"private") or all."""
        return float(sum(v for (s, _), v in self.counts.items() if sector is None or s == sector))

    def summary(self) -> str:
        """Plain-text summary: counts per 3,000 institutions, ESC share, Grade 6 medians."""
        lines = [f"mix {self.name!r}: {self.total('public'):,.0f} public + {self.total('private'):,.0f} private "
                 f"per scale unit, ESC {self.esc_share_of_private:.0%} of private"]
        lines += [f"  {s} {o}: {v:,.1f}" for (s, o), v in self.counts.items()]
        lines.append("  Grade 6 medians: " + ", ".join(f"{k}={v:g}" for k, v in self.grade6_median.items())
                     + f" (NCR public x{self.ncr_factor:g})")
        return "\n".join(lines)


#: The study area ("Mega Manila"): institutions per 3,000 at scale 1.
STUDY_MIX = Mix(
    name="study",
    counts={
        ("public", "purely_es"): 1470,
        ("public", "es_jhs"): 130,
        ("public", "jhs_shs"): 260,
        ("public", "purely_jhs"): 80,
        ("public", "purely_shs"): 40,
        ("private", "purely_es"): 150,
        ("private", "es_jhs"): 200,
        ("private", "all_offering"): 410,
        ("private", "jhs_shs"): 200,
        ("private", "purely_jhs"): 20,
        ("private", "purely_shs"): 40,
    },
    esc_share_of_private=2 / 3,
    grade6_median={"public_es": 150.0, "public_es_jhs": 100.0, "private": 40.0},
    ncr_factor=1.4,
)

#: National institution counts (schools): 47,000 public — about 38,800 teaching Grade 6
#: (36,500 purely elementary + 2,300 integrated) against about 10,100 offering JHS — and
#: 12,000 private, about 7,700 of them offering JHS. Rounded DepEd/PSA orders of magnitude.
NATIONAL_SCHOOLS: dict[tuple[str, str], int] = {
    ("public", "purely_es"): 36_500,
    ("public", "es_jhs"): 2_300,
    ("public", "jhs_shs"): 6_300,
    ("public", "purely_jhs"): 1_500,
    ("public", "purely_shs"): 400,
    ("private", "purely_es"): 3_300,
    ("private", "es_jhs"): 1_900,
    ("private", "all_offering"): 3_200,
    ("private", "jhs_shs"): 2_300,
    ("private", "purely_jhs"): 300,
    ("private", "purely_shs"): 1_000,
}
_NATIONAL_TOTAL = sum(NATIONAL_SCHOOLS.values())

#: The whole country, per 3,000 institutions at scale 1 (scale 19.67 → the counts above).
#: ESC: 28 % of private schools (about 3,400 ESC schools, 44 % of private JHS). Grade 6
#: medians are set so that about 2.7 million learners enter Grade 7 (public origins
#: average about 64 Grade 6 learners, private about 33).
NATIONAL_MIX = Mix(
    name="national",
    counts={k: v * BASE_INSTITUTIONS / _NATIONAL_TOTAL for k, v in NATIONAL_SCHOOLS.items()},
    esc_share_of_private=0.28,
    grade6_median={"public_es": 56.0, "public_es_jhs": 45.0, "private": 30.0},
    ncr_factor=1.4,
)
