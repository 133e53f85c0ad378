"""School years of a manifest: which sources serve which year (the issue-21 contract).

A ``[[source]]`` with ``school_year = "YYYY-YYYY"`` belongs to that year; one without
serves every year. Years sort by their first calendar year; the latest is the default.

- A manifest naming at most one school year is a *one-year* manifest: every source is
  read, exactly as before years existed (:func:`year_sources` returns them all).
- In a *multi-year* manifest, year Y reads its own sources plus the shared ones
  (no ``school_year``); a yearly source replaces the shared ones of its kind for that
  year. ``school_id_crosswalk`` sources apply to every year (they link the years). Each
  year needs its own ``enrollment`` source, and a ``transitions`` and a
  ``coordinates`` source (its own or shared).
"""

from __future__ import annotations

from studentflow.errors import DataError
from studentflow.ingest.manifest import REQUIRED_KINDS, Source

__all__ = ["source_years", "pick_year", "year_sources", "year_key", "YEARLY_KINDS"]

#: Kinds whose content changes every year: in a multi-year manifest each year has its own.
YEARLY_KINDS: tuple[str, ...] = ("enrollment", "transitions", "esc_beneficiaries", "esc_slots", "tuition",
                                 "subsidy_rates")


def year_key(year: str) -> int:
    """Sort key of a ``"YYYY-YYYY"`` school year: its first calendar year."""
    return int(year[:4])


def source_years(sources: list[Source]) -> tuple[str, ...]:
    """The school years the sources name (a crosswalk's aside: it serves every year),
    sorted (empty when none names one)."""
    return tuple(sorted({s.school_year for s in sources if s.school_year and s.kind != "school_id_crosswalk"},
                        key=year_key))


def pick_year(years: tuple[str, ...], year: str | None, name: str) -> str | None:
    """The school year to load: ``year`` if the manifest has it, else (None) the latest.

    Raises
    ------
    DataError
        ``year`` is not one of the manifest's years; the message lists them.
    """
    if year is None:
        return years[-1] if years else None
    text = str(year).strip()
    if text in years:
        return text
    have = ", ".join(years) if years else "none (no source has a school_year)"
    raise DataError(f"{name}: no school year {text!r} in the manifest; its school years: {have}")


def year_sources(sources: list[Source], year: str | None, name: str) -> list[Source]:
    """The sources of one school year, in manifest order.

    Parameters
    ----------
    sources : list of Source
        The manifest's sources.
    year : str or None
        A year of :func:`source_years` (None: the manifest names no year).
    name : str
        The manifest's name, for messages.

    Raises
    ------
    DataError
        In a multi-year manifest: the year has no ``enrollment`` source of its own, or no
        ``transitions`` / ``coordinates`` source (its own or shared); the message names
        the year and the manifest.
    """
    years = source_years(sources)
    if len(years) <= 1:
        return list(sources)
    own = {s.kind for s in sources if s.school_year == year}
    out = [s for s in sources if s.kind == "school_id_crosswalk" or s.school_year == year
           or (s.school_year is None and s.kind not in own)]
    if "enrollment" not in own:
        raise DataError(f"{name}: school year {year} has no enrollment source of its own (each year of a "
                        f"multi-year manifest needs one; its school years: {', '.join(years)})")
    have = {s.kind for s in out}
    missing = [k for k in REQUIRED_KINDS if k not in have]
    if missing:
        raise DataError(f"{name}: school year {year} has no source of kind {missing} (neither its own nor one "
                        f"without a school_year)")
    return out
