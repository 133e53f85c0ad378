"""Canonical tables of a studentflow Bundle: their columns, units and validation.

Every stage after ingestion reads these tables and nothing else from the raw files.
The column lists below are the contract between :mod:`studentflow.ingest` (which
produces them), :mod:`studentflow.synth` (whose ``truth/`` folder holds the same
tables for a synthetic region) and the later stages (which consume them).

Conventions
-----------
- ``school_id``: DepEd school ID as a 6-digit string ("013651"), index of ``schools``.
- ``psgc_code``: 10-digit PSGC code of a city/municipality (string).
- ``region``: one of :data:`ALL_REGIONS` ("NCR", "Region III", "Region IV-A", "CAR", ...);
  the study area is :data:`REGIONS`.
- Money in pesos (float), distances in km, counts in learners (int).
- Ledger ``row``: the 1-based physical row of the raw file as a spreadsheet shows it
  (title rows and the header row count; for CSV, the line number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from studentflow.errors import DataError

#: Canonical region names of the study area, in reference order (NCR first).
REGIONS: tuple[str, ...] = ("NCR", "Region III", "Region IV-A")

#: PSGC region codes for the canonical region names (all 17 regions + NIR).
REGION_PSGC: dict[str, str] = {
    "Region I": "0100000000",
    "Region II": "0200000000",
    "Region III": "0300000000",
    "Region IV-A": "0400000000",
    "Region V": "0500000000",
    "Region VI": "0600000000",
    "Region VII": "0700000000",
    "Region VIII": "0800000000",
    "Region IX": "0900000000",
    "Region X": "1000000000",
    "Region XI": "1100000000",
    "Region XII": "1200000000",
    "NCR": "1300000000",
    "CAR": "1400000000",
    "Region XIII": "1600000000",
    "MIMAROPA": "1700000000",
    "NIR": "1800000000",
    "BARMM": "1900000000",
}

#: Every canonical region name ingest accepts (keys of :data:`REGION_PSGC`, in PSGC code
#: order). :data:`REGIONS` stays the study area and its reference order.
ALL_REGIONS: tuple[str, ...] = tuple(sorted(REGION_PSGC, key=REGION_PSGC.get))

#: Canonical school offerings, from DepEd's "Modified COC" text.
OFFERINGS: dict[str, str] = {
    "Purely ES": "purely_es",
    "ES and JHS": "es_jhs",
    "JHS with SHS": "jhs_shs",
    "Purely JHS": "purely_jhs",
    "All Offering": "all_offering",
    "Purely SHS": "purely_shs",
}
OFFERS_ES = frozenset({"purely_es", "es_jhs", "all_offering"})
OFFERS_JHS = frozenset({"es_jhs", "jhs_shs", "purely_jhs", "all_offering"})

#: ESC certification text → rank (1 best … 8 worst); missing means unrated (NaN).
ESC_RATING_RANK: dict[str, int] = {
    "Accredited Level IV": 1,
    "Accredited Level III": 2,
    "Accredited Level II": 3,
    "Accredited Level I": 4,
    "Certified with Commendation": 5,
    "Certified": 6,
    "For Probation": 7,
    "For Termination": 8,
}

#: ESC subsidy location tiers and their Grade 7 amount in pesos (paper-facts / DepEd).
SUBSIDY_TIERS: dict[str, float] = {"NCR": 13_000.0, "HUC": 11_000.0, "other": 9_000.0}

GRADES = tuple(range(1, 11))

# ---------------------------------------------------------------- table contracts
#: schools: one row per DepEd school, index ``school_id``; a GeoDataFrame (EPSG:4326).
SCHOOLS: dict[str, str] = {
    "name": "str: school name",
    "sector": "str: 'public' or 'private'",
    "offering": "str: one of OFFERINGS values",
    "region": "str: canonical region (ALL_REGIONS)",
    "province": "str: province name as in DepEd's file",
    "municipality": "str: municipality name as in DepEd's file",
    "psgc_code": "str: 10-digit PSGC code of the city/municipality",
    **{f"enrol_g{g}": f"int: Grade {g} enrolment, learners (male + female)" for g in GRADES},
    "jhs_enrolment": "int: Grades 7-10 enrolment, learners",
    "jhs_seats": "float: JHS seats (chairs), NaN where the school has no JHS",
    "jhs_seats_imputed": "bool: jhs_seats was imputed (see ledger)",
    "esc": "bool: takes part in ESC (has contracted slots)",
    "esc_slots": "int: contracted ESC slots, learners (0 if not ESC)",
    "esc_slots_billed": "int: billed ESC slots, learners (0 if not ESC)",
    "tuition": "float: Grade 7 yearly tuition + misc + other fees, pesos (NaN unknown)",
    "esc_rating": "float: ESC certification rank 1 (best) - 8, NaN unrated",
    "geometry": "Point (lon, lat) EPSG:4326; None where no valid coordinate",
}

#: flows: Grade 6 (SY t) -> Grade 7 (SY t+1), aggregated from learner-level records.
FLOWS: dict[str, str] = {
    "origin_id": "str: school_id of the Grade 6 school",
    "destination_id": "str: school_id of the Grade 7 school",
    "learners": "int: learners making this transition",
    "esc_beneficiaries": "int: of them, ESC beneficiaries at the destination",
}

#: areas: one row per city/municipality (index ``psgc_code``).
AREAS: dict[str, str] = {
    "region": "str: canonical region",
    "province": "str: PSGC province name",
    "municipality": "str: PSGC city/municipality name",
    "city_class": "str: 'HUC', 'CC' (component city), 'ICC', or 'Mun'",
    "population": "int: persons (PSGC)",
    "lgu_revenue": "float: total LGU revenues, pesos",
    "lgu_revenue_imputed": "bool: lgu_revenue was imputed (see ledger)",
}

#: subsidy: ESC Grade 7 amount per school (index ``school_id``), ESC schools only.
SUBSIDY: dict[str, str] = {
    "tier": "str: one of SUBSIDY_TIERS",
    "amount": "float: ESC subsidy per learner per year, pesos",
}

#: ledger: one row per raw record dropped, merged, corrected or imputed.
LEDGER: dict[str, str] = {
    "source": "str: source kind (manifest)",
    "file": "str: file name relative to the manifest folder",
    "row": "int: 1-based physical row in the raw file (0 when not row-specific)",
    "school_id": "str: 6-digit school id where known, else ''",
    "action": "str: one of LEDGER_ACTIONS",
    "reason": "str: why, in words; never an LRN or a learner name",
}
#: Ledger actions. ``dropped`` / ``merged``: the raw row is in no canonical table (removed,
#: or folded into another row); ``corrected`` / ``imputed``: a value was repaired / filled
#: in; ``remapped``: a school ID replaced through a ``school_id_crosswalk`` (the reason
#: names the old and new ID); ``conflict``: two sources disagree (on the row whose value
#: lost, naming both sources); ``incomplete``: the record is kept but a value could not be
#: established (left missing; later stages may leave the record out).
LEDGER_ACTIONS = ("dropped", "merged", "corrected", "imputed", "remapped", "conflict", "incomplete")

#: sources: one row per raw file read (road inputs are passed on in ``extras``).
#: rows_read = kept + merged + dropped; corrected and imputed rows are among the kept.
SOURCES: dict[str, str] = {
    "kind": "str: source kind (manifest)",
    "file": "str: file name relative to the manifest folder",
    "rows_read": "int: non-blank raw data rows below the header",
    "kept": "int: rows represented in the canonical tables as read or corrected",
    "corrected": "int: rows with a corrected value (ledger)",
    "imputed": "int: imputation events recorded against this file (ledger)",
    "merged": "int: rows merged into another record (ledger)",
    "dropped": "int: rows dropped (ledger)",
    "remapped": "int: rows with a school ID remapped through the school-ID crosswalk (ledger)",
}


def empty_ledger() -> pd.DataFrame:
    """An empty ledger with the canonical columns and dtypes."""
    return pd.DataFrame(
        {
            "source": pd.Series(dtype="str"),
            "file": pd.Series(dtype="str"),
            "row": pd.Series(dtype="int64"),
            "school_id": pd.Series(dtype="str"),
            "action": pd.Series(dtype="str"),
            "reason": pd.Series(dtype="str"),
        }
    )


#: Factorisations of Arrow-backed id columns, by the identity of their (immutable) Arrow
#: array: a pair table's id columns are shared by every frame derived from it (a
#: scenario's subsidy applied, its index reset), so each is hashed once per run.
_CODES: dict = {}


def _forget(key: int) -> None:
    _CODES.pop(key, None)


def id_codes(ids) -> "tuple[np.ndarray, np.ndarray]":
    """``pd.factorize(ids)`` (codes, -1 where missing; uniques in order of appearance),
    computed once per Arrow array behind ``ids`` (a ``str`` Series or Index) and reused
    while that array lives; the codes are read-only. Other inputs are factorised each call."""
    import weakref

    import numpy as np

    if not isinstance(ids, (pd.Series, pd.Index)):
        return pd.factorize(np.asarray(ids))
    arrow = getattr(ids.array, "__arrow_array__", None)
    if arrow is None:
        return pd.factorize(ids)
    chunked = arrow()
    got = _CODES.get(id(chunked))
    if got is not None and got[0]() is chunked:
        return got[1], got[2]
    codes, uniques = pd.factorize(ids)
    codes.flags.writeable = False
    try:
        ref = weakref.ref(chunked)
    except TypeError:  # an array type without weak references: not cached
        return codes, uniques
    _CODES[id(chunked)] = (ref, codes, uniques)
    weakref.finalize(chunked, _forget, id(chunked))
    return codes, uniques


def id_positions(index: pd.Index, ids) -> "np.ndarray":
    """``index.get_indexer(ids)`` (-1 where absent or missing) for a unique ``index``,
    looked up once per distinct id: the ids of a pair table (strings, repeated on
    hundreds of thousands of rows) are factorised first (:func:`id_codes`, once per
    column), so only the few thousand distinct ones go through the string hash table."""
    import numpy as np

    codes, uniques = id_codes(ids)
    pos = np.append(index.get_indexer(uniques), -1)  # code -1 (missing) → the last: -1
    return pos[codes]


def ids_isin(ids, values) -> "np.ndarray":
    """``pd.Index(ids).isin(values)`` as a bool array (a missing id matches a missing
    value). ``str`` ids and values (Series or Index, stored in Arrow) go through one
    ``pyarrow.compute.is_in``: pandas' own ``isin`` on Arrow strings makes a Python
    scalar of every value (0.4 s for the 47,000 origin ids of the national region)."""
    import numpy as np

    if isinstance(ids, (pd.Series, pd.Index)) and isinstance(values, (pd.Series, pd.Index)) \
            and ids.dtype == values.dtype == "str":
        left, right = getattr(ids.array, "__arrow_array__", None), getattr(values.array, "__arrow_array__", None)
        if left is not None and right is not None:
            import pyarrow.compute as pc

            return np.asarray(pc.is_in(left(), value_set=right().combine_chunks()), dtype=bool)
    return pd.Index(ids).isin(values)


def take_at(values: pd.Series, pos) -> pd.Series:
    """``values.reindex(ids)`` (unique index) as a fresh Series, given
    ``pos = id_positions(values.index, ids)``: missing where ``pos`` is -1."""
    return pd.Series(pd.api.extensions.take(values.array, pos, allow_fill=True))


def id_map(values: pd.Series, ids, fill=float("nan")) -> "np.ndarray":
    """``ids.map(values)`` as a float array (``fill`` where absent) for a ``values``
    Series with a unique index, through :func:`id_positions`."""
    import numpy as np

    pos = id_positions(values.index, ids)
    out = values.to_numpy(dtype=float)[pos]
    out[pos < 0] = fill
    return out


def require_columns(table: pd.DataFrame, columns, *, name: str) -> None:
    """Raise :class:`DataError` naming ``name`` if ``table`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}; found {list(table.columns)}")


@dataclass(frozen=True)
class Bundle:
    """The canonical, validated data of one study area.

    Attributes
    ----------
    schools : geopandas.GeoDataFrame
        Index ``school_id``; columns :data:`SCHOOLS`.
    flows : pandas.DataFrame
        Columns :data:`FLOWS` (learners).
    areas : pandas.DataFrame
        Index ``psgc_code``; columns :data:`AREAS`.
    subsidy : pandas.DataFrame
        Index ``school_id``; columns :data:`SUBSIDY` (pesos).
    ledger : pandas.DataFrame
        Columns :data:`LEDGER`.
    sources : pandas.DataFrame
        Per source file: kind, file, rows_read, kept, corrected, imputed, dropped, merged.
    extras : dict
        Optional inputs later stages may use, keyed by source kind and not parsed by
        ingestion: ``"road_network"`` (Path of the edge list / GraphML / GPKG) and
        ``"road_distances"`` (tuple ``(npy_path, index_json_path)``).
    school_year : str or None
        The school year ``"YYYY-YYYY"`` the bundle holds (a transitions file's year is its
        Grade 7 year); None when the manifest names none.
    slot_history : pandas.DataFrame or None
        ESC slots in the school years before this one, from a multi-year manifest's
        yearly ``esc_slots`` sources (IDs through the crosswalk): ``school_year``,
        ``school_id``, ``slots`` and ``billed`` (learners). None without earlier years.
    """

    schools: Any
    flows: pd.DataFrame
    areas: pd.DataFrame
    subsidy: pd.DataFrame
    ledger: pd.DataFrame
    sources: pd.DataFrame = field(default_factory=pd.DataFrame)
    extras: dict = field(default_factory=dict)
    school_year: str | None = None
    slot_history: pd.DataFrame | None = None

    def summary(self) -> str:
        """Plain-text summary: table sizes and, per source, rows read/kept/changed/dropped."""
        lines = [
            "studentflow Bundle" + (f" (school year {self.school_year})" if self.school_year else ""),
            f"  schools: {len(self.schools):,} "
            f"({int((self.schools['sector'] == 'public').sum()):,} public, "
            f"{int(self.schools['esc'].sum()):,} ESC)",
            f"  flows:   {len(self.flows):,} pairs, {int(self.flows['learners'].sum()):,} learners, "
            f"{int(self.flows['esc_beneficiaries'].sum()):,} ESC beneficiaries",
            f"  areas:   {len(self.areas):,} municipalities",
            f"  ledger:  {len(self.ledger):,} rows",
        ]
        if len(self.sources):
            lines.append("  per source:")
            lines.append("    " + self.sources.to_string(index=False).replace("\n", "\n    "))
        return "\n".join(lines)


@dataclass(frozen=True, repr=False)
class Panel:
    """Several school years of one study area: one :class:`Bundle` per year, linked by school.

    Every table names a school by its current ID (the ``school_id_crosswalk`` remaps the
    IDs older files used), so a school is the same row key in every year it appears in.

    Attributes
    ----------
    years : tuple of str
        School years ``"YYYY-YYYY"``, sorted by their first calendar year (``("",)`` for a
        manifest naming no year).
    bundles : dict of str to Bundle
        Year → that year's bundle (its sources plus the shared ones).
    identity : pandas.DataFrame
        One row per school and year it appears in (its enrolment list): ``school_year``,
        ``school_id`` (current ID), ``year_id`` (the ID that year's enrolment file used;
        differs from ``school_id`` where the school was remapped).
    ledger : pandas.DataFrame
        Every year's ledger (columns :data:`LEDGER`) with a ``school_year`` column first. A
        shared file's events appear under each year that read it.
    """

    years: tuple
    bundles: dict
    identity: pd.DataFrame
    ledger: pd.DataFrame

    def __repr__(self) -> str:
        return f"Panel(years={self.years!r}, schools={self.identity['school_id'].nunique():,})"

    def __getitem__(self, year: str) -> Bundle:
        if year not in self.bundles:
            raise KeyError(f"no school year {year!r} in the panel; its years: {', '.join(self.years)}")
        return self.bundles[year]

    def __iter__(self):
        return iter(self.years)

    def __len__(self) -> int:
        return len(self.years)

    @property
    def latest(self) -> Bundle:
        """The bundle of the latest school year."""
        return self.bundles[self.years[-1]]

    def remapped(self) -> pd.DataFrame:
        """Rows of :attr:`identity` whose year used another ID than the current one."""
        return self.identity[self.identity["school_id"] != self.identity["year_id"]].reset_index(drop=True)

    def summary(self) -> str:
        """Plain text: per year, schools (ESC), learners and ESC beneficiaries in the flows,
        schools that entered / left since the year before and schools under an older ID;
        then how many schools appear in every year."""
        lines = [f"studentflow Panel: {len(self.years)} school year(s)"]
        ids = self.identity.groupby("school_year", sort=False)["school_id"].agg(set)
        prev: set | None = None
        for y in self.years:
            b = self.bundles[y]
            now = ids.get(y, set())
            moved = "" if prev is None else f", {len(now - prev):,} entered, {len(prev - now):,} left"
            old = int(((self.identity["school_year"] == y)
                       & (self.identity["school_id"] != self.identity["year_id"])).sum())
            lines.append(f"  {y or '(no year)'}: {len(b.schools):,} schools ({int(b.schools['esc'].sum()):,} ESC), "
                         f"{int(b.flows['learners'].sum()):,} learners, "
                         f"{int(b.flows['esc_beneficiaries'].sum()):,} ESC beneficiaries{moved}; "
                         f"{old:,} under an older ID")
            prev = now
        every = set.intersection(*ids.tolist()) if len(ids) else set()
        lines.append(f"  schools in every year: {len(every):,}")
        return "\n".join(lines)
