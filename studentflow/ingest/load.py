"""The loader: a manifest's raw files → one school year's canonical :class:`~studentflow.schema.Bundle`,
or every year's as a :class:`~studentflow.schema.Panel`.

Order of work. The ``school_id_crosswalk`` sources are read first (in this process: they
are small) and resolved (:mod:`.crosswalk`); every other source is then given the
crosswalk's 7-digit old IDs (:meth:`~.crosswalk.Crosswalk.prepare`) so that its reader
keeps them for the remap instead of dropping them as invalid. The year's sources
(:mod:`.years`) are read one task each (:func:`~studentflow.ingest.learners.read_source`,
or on Dask workers), remapped, harmonised (:mod:`.harmonise`, :mod:`.flows`) and
validated (:mod:`.validate`). A panel reads each file once, however many years share it.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import pandas as pd

from studentflow import forked
from studentflow.errors import DataError
from studentflow.ingest.crosswalk import build_crosswalk
from studentflow.ingest.harmonise import (
    areas_table, drop_rows, esc_columns, impute_places, jhs_seats, match_places, note_unplaced,
    resolve_coordinates, stack, subsidy_table,
)
from studentflow.ingest.learners import LEARNER_KINDS, LearnerPart, combine_flows, read_source
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import Source, manifest_path, read_manifest
from studentflow.ingest.places import PlaceMatcher
from studentflow.ingest.roads import scan_road_network
from studentflow.ingest.validate import validate_tables
from studentflow.ingest.values import isin
from studentflow.ingest.years import pick_year, source_years, year_key, year_sources
from studentflow.malloc import arrow_pool, trim
from studentflow.schema import ALL_REGIONS, SCHOOLS, Bundle, Panel

__all__ = ["load_bundle", "load_panel", "manifest_years"]

_SOURCE_COLS = ["kind", "file", "rows_read", "kept", "corrected", "imputed", "merged", "dropped", "remapped"]


def _manifest(manifest) -> Path:
    if manifest is None:
        from studentflow.paths import sample_manifest

        manifest = sample_manifest()
    path = Path(manifest)
    return manifest_path(path) if path.is_dir() else path


def manifest_years(manifest=None) -> tuple[str, ...]:
    """The school years a manifest names, sorted by their first calendar year.

    Parameters
    ----------
    manifest : str or Path, optional
        A ``manifest.toml`` (or its folder); default the bundled sample.

    Returns
    -------
    tuple of str
        ``("2022-2023", "2023-2024", ...)``; empty or one element for a one-year manifest.
    """
    return source_years(read_manifest(_manifest(manifest)))


def load_bundle(manifest: str | Path | None = None, *, year: str | None = None, client=None) -> Bundle:
    """Load, harmonise and validate the raw files of one school year of a manifest.

    Parameters
    ----------
    manifest : str or Path, optional
        Path of a ``manifest.toml`` (its ``[[source]]`` paths are relative to its folder).
        Default: the bundled synthetic sample (:func:`studentflow.paths.sample_manifest`).
    year : str, optional
        School year ``"YYYY-YYYY"`` of a multi-year manifest (:func:`manifest_years`):
        its own sources plus the shared ones (:mod:`studentflow.ingest.years`). Default:
        the latest. A one-year manifest reads every source, as it always did.
    client : dask.distributed.Client or str, optional
        Read the raw files as Dask tasks, one per file, on this client's workers: above
        all the learner-level files (transitions, ESC billing), each read, validated and
        compacted there; the client combines them in manifest order and applies the
        learner rules (LRN dedupe, billing match) and the harmonisation. A scheduler
        address string is connected and closed here (see
        :func:`studentflow.dask_client.resolve`). The workers must see the manifest's
        files at the same paths. The result is identical to the single-process one;
        without a client Dask is not imported.

    Returns
    -------
    Bundle
        ``schools`` (GeoDataFrame, index school_id, EPSG:4326), ``flows`` (learners),
        ``areas`` (index psgc_code; LGU revenue in pesos), ``subsidy`` (pesos), ``ledger``,
        ``sources`` (per file: rows read, kept, corrected, imputed, merged, dropped,
        remapped), ``extras`` (resolved paths of ``road_network`` and ``road_distances``
        inputs) and ``school_year`` (None when the manifest names none).

    Raises
    ------
    DataError
        Bad manifest or raw file (the message names the file and, where it applies, the
        row and column); ``year`` not in the manifest (the message lists its years); the
        year without its own enrolment source.
    """
    arrow_pool()  # Arrow's buffers from glibc: freed memory goes back to the OS (studentflow.malloc)
    path = _manifest(manifest)
    sources = read_manifest(path)
    years = source_years(sources)
    chosen = pick_year(years, year, path.name)
    earlier = [y for y in years if chosen is not None and year_key(y) < year_key(chosen)]

    def select(prepared):
        return [year_sources(prepared, chosen, path.name)] + [_slot_sources(prepared, y) for y in earlier]

    with _reading(sources, client, select) as (picked, read):
        bundle = _load(picked[0], read, school_year=chosen)[0]
        history = [_slot_table(srcs, read, y) for srcs, y in zip(picked[1:], earlier)]
    if len(years) > 1:
        bundle = replace(bundle, slot_history=_history(history))
    trim()  # the raw files' temporaries: free heap pages back to the OS (studentflow.malloc)
    return bundle


def load_panel(manifest: str | Path | None = None, *, client=None, fork: bool = False, meanwhile=None) -> Panel:
    """Load every school year of a manifest: one :class:`Bundle` per year, linked by school.

    Each file is read once, however many years share it; every year's bundle is the one
    ``load_bundle(manifest, year=...)`` returns.

    Parameters
    ----------
    manifest : str or Path, optional
        A ``manifest.toml``; default the bundled sample. A one-year manifest gives a
        one-year panel (its year ``""`` when the manifest names none).
    client : dask.distributed.Client or str, optional
        As in :func:`load_bundle`: every file of every year is one Dask task.
    fork : bool
        Load the earlier years in a forked child process while this one loads the latest
        (:mod:`studentflow.forked`; the same panel; files both need are read by both).
        For small manifests: the child's pages add to the memory in use. Not with ``client``.
    meanwhile : callable, optional
        Called with no arguments in this process once it has loaded the latest year, while
        the child still loads (e.g. the imports of the next stages); only when forked.

    Returns
    -------
    Panel
        ``years``, ``bundles``, ``identity`` (school_year, school_id, year_id: the ID the
        year's enrolment file used) and ``ledger`` (every year's, with ``school_year``).

    Raises
    ------
    DataError
        As :func:`load_bundle`, for any year.
    """
    arrow_pool()  # Arrow's buffers from glibc: freed memory goes back to the OS (studentflow.malloc)
    path = _manifest(manifest)
    sources = read_manifest(path)
    years = source_years(sources) or (None,)

    def part(chosen):  # (bundle, year ids) and slot table of each year in ``chosen``
        def select(prep):  # every year's sources, then its own slot files again (read once, kept)
            return [year_sources(prep, y, path.name) for y in chosen] + [_slot_sources(prep, y) for y in chosen]

        with _reading(sources, client, select) as (picked, read):
            return ([_load(sel, read, school_year=y) for sel, y in zip(picked, chosen)],
                    [_slot_table(sel, read, y) for sel, y in zip(picked[len(chosen):], chosen)])

    if fork and client is None and len(years) > 1:
        earlier = forked.start(lambda: part(years[:-1]))
        try:
            latest = part(years[-1:])
            if meanwhile is not None:
                meanwhile()
        except BaseException:
            earlier.cancel()
            raise
        loaded, slots = (a + b for a, b in zip(earlier.result(), latest))
    else:
        loaded, slots = part(years)
    keys = tuple(y or "" for y in years)
    bundles = {k: b for k, (b, _) in zip(keys, loaded)}
    if len(keys) > 1:  # each year's bundle knows the slots of the years before it
        bundles = {k: replace(b, slot_history=_history(slots[:i])) for i, (k, b) in enumerate(bundles.items())}
    identity = pd.concat([pd.DataFrame({"school_year": k, "school_id": b.schools.index.astype("str"),
                                        "year_id": ids.reindex(b.schools.index).astype("str").to_numpy()})
                          for k, (b, ids) in zip(keys, loaded)], ignore_index=True)
    ledger = pd.concat([b.ledger.assign(school_year=k)[["school_year", *b.ledger.columns]]
                        for k, b in bundles.items()], ignore_index=True)
    return Panel(years=keys, bundles=bundles, identity=identity, ledger=ledger)


@contextmanager
def _reading(sources: list[Source], client, select):
    """Read the crosswalks, prepare the sources (:meth:`Crosswalk.prepare`), pick the
    year(s) with ``select(prepared) -> [sources of a year, ...]``; yield that list and
    ``read(src)``, which reads each source once (crosswalks: already read here)."""
    cross = [s for s in sources if s.kind == "school_id_crosswalk"]
    done = {id(s): read_source(s) for s in cross}
    xw = build_crosswalk([(s, done[id(s)][0]) for s in cross])
    prepared = xw.prepare(sources)
    picked = select(prepared)
    uses = Counter(id(s) for sel in picked for s in sel)
    todo = [s for s in prepared if uses[id(s)] and id(s) not in done]
    if client is None:  # the files read ahead on a thread or two (studentflow.ingest.prefetch)
        from studentflow.ingest.prefetch import thread_reader

        with thread_reader(todo) as read:
            yield picked, _once(read, done, uses)
        return
    from studentflow.ingest.learners_dask import dask_reader

    with dask_reader(client, todo) as read:
        yield picked, _once(read, done, uses)


def _once(read, done: dict, uses: Counter):
    """``read`` with each source read once: a source several years use (``uses``: by id)
    is kept in ``done`` and every call gets a copy; the others are read and handed on."""
    def once(src: Source):
        if id(src) not in done:
            if uses[id(src)] <= 1:
                return read(src)
            done[id(src)] = read(src)
        got = done[id(src)]
        if isinstance(got, LearnerPart):
            return replace(got, arrays=dict(got.arrays))
        return got[0].copy(), got[1]

    return once


def _load(sources: list[Source], read, ledger: Ledger | None = None, *,
          school_year: str | None = None) -> tuple[Bundle, pd.Series]:
    """:func:`load_bundle` once the manifest is read and the year's (prepared) sources
    picked; ``read(src)`` is :func:`~studentflow.ingest.learners.read_source` or its Dask
    stand-in, called for every tabular source (school-ID crosswalks first, then the others
    in manifest order). ``ledger`` (default: a new one) receives every event,
    ``rows_read`` and ``detected``. Returns the bundle and, per school (current ID), the
    ID its enrolment row was written with (the year's ID)."""
    ledger = Ledger() if ledger is None else ledger
    matcher = PlaceMatcher(ALL_REGIONS)  # built while the files are still being read (needs none of them)
    parts: dict[str, list[tuple[Source, pd.DataFrame]]] = {}
    learners: dict[str, list[LearnerPart]] = {k: [] for k in LEARNER_KINDS}
    extras: dict = {}
    xw_parts = []
    for src in (s for s in sources if s.kind == "school_id_crosswalk"):
        df, led = read(src)
        ledger.extend(led)
        xw_parts.append((src, df))
    xw = build_crosswalk(xw_parts)
    table = xw.table() if xw else None
    for src in sources:
        if src.kind == "school_id_crosswalk":
            continue
        if src.kind == "road_network":
            extras["road_network"] = src.path
            scan_road_network(src, ledger)
        elif src.kind == "road_distances":
            remapped = xw.remap_matrix_index(src, ledger) if xw else None
            extras["road_distances"] = (src.path, remapped if remapped is not None else src.index)
        elif src.kind in LEARNER_KINDS:
            part = read(src)
            ledger.extend(part.ledger)
            learners[src.kind].append(xw.remap_part(part, ledger, table) if xw else part)
        else:
            df, led = read(src)
            ledger.extend(led)
            if src.kind == "enrollment":
                df = df.assign(_year_id=df["school_id"])
            parts.setdefault(src.kind, []).append((src, xw.remap_frame(src, df, ledger) if xw else df))
    first = {k: v[0][0] for k, v in parts.items()}

    schools = _schools(parts, ledger)
    schools["psgc_code"] = match_places(schools, matcher)
    coords = resolve_coordinates(stack(parts["coordinates"]), schools, ledger)
    schools["psgc_code"] = impute_places(schools, coords, matcher.places, ledger)
    note_unplaced(schools, coords, ledger)

    def seat_src(sector: str):
        s = first.get("seats" if sector == "public" else "private_seats") or first["enrollment"]
        return s.kind, s.file, 0

    seat_parts = parts.get("seats", []) + parts.get("private_seats", [])
    seats = stack(seat_parts) if seat_parts else pd.DataFrame(
        columns=["school_id", "seats_jhs", "_row", "_kind", "_file"])
    schools = schools.join(jhs_seats(schools, seats, ledger, seat_src))
    opt = {k: (stack(parts[k]) if k in parts else None) for k in ("esc_slots", "tuition", "esc_rating")}
    if opt["esc_slots"] is None:
        opt["esc_slots"] = pd.DataFrame(columns=["esc_id", "school_id", "slots_total", "slots_billed", "_row",
                                                 "_kind", "_file"])
    esc, crosswalk = esc_columns(schools, opt["esc_slots"], opt["tuition"], opt["esc_rating"], ledger)
    schools = schools.join(esc)

    lgu_src = first.get("lgu_income") or first["enrollment"]
    present = set(schools["region"].unique().tolist())  # not a Python pass over 59,000 Arrow strings
    regions = [r for r in ALL_REGIONS if r in present]
    areas = areas_table(schools, stack(parts["lgu_income"]) if "lgu_income" in parts else None,
                        matcher, ledger, regions, lambda: (lgu_src.kind, lgu_src.file, 0))
    rates = stack(parts["subsidy_rates"]) if "subsidy_rates" in parts else None
    subsidy = subsidy_table(schools, rates)
    flows = combine_flows(learners["transitions"], learners["esc_beneficiaries"], schools.index, crosswalk, ledger)

    geometry = gpd.points_from_xy(coords["lon"].reindex(schools.index), coords["lat"].reindex(schools.index))
    cols = [c for c in SCHOOLS if c != "geometry"]
    gdf = gpd.GeoDataFrame(schools[cols], geometry=geometry, crs="EPSG:4326")
    gdf.loc[~isin(gdf.index, coords.index), "geometry"] = None
    gdf.index.name = "school_id"
    table = xw.ledger_ids(_fill_esc_schools(ledger.frame(), parts, crosswalk))
    validate_tables({"schools": gdf, "flows": flows, "areas": areas, "subsidy": subsidy, "ledger": table})
    bundle = Bundle(schools=gdf, flows=flows, areas=areas, subsidy=subsidy, ledger=table,
                    sources=_source_table(sources, ledger, table), extras=extras, school_year=school_year)
    return bundle, schools["_year_id"].astype("str")


def _slot_sources(sources: list[Source], year: str) -> list[Source]:
    """The crosswalks and the ``esc_slots`` sources that carry ``year`` (its own contracts)."""
    return [s for s in sources if s.kind == "school_id_crosswalk" or (s.kind == "esc_slots" and s.school_year == year)]


_HISTORY = ["school_year", "school_id", "slots", "billed"]


def _slot_table(sources: list[Source], read, year: str) -> pd.DataFrame:
    """Contracted and billed ESC slots per school (current ID) in one year's own slot files."""
    ledger = Ledger()  # the history's remaps belong to no year's ledger
    xw = build_crosswalk([(s, read(s)[0]) for s in sources if s.kind == "school_id_crosswalk"])
    parts = []
    for src in (s for s in sources if s.kind == "esc_slots"):
        df = read(src)[0]
        parts.append(xw.remap_frame(src, df, ledger) if xw else df)
    if not parts:
        return pd.DataFrame(columns=_HISTORY)
    df = pd.concat(parts, ignore_index=True)
    total = df.groupby(df["school_id"].astype("str"))[["slots_total", "slots_billed"]].sum()
    return pd.DataFrame({"school_year": year, "school_id": total.index.to_numpy(),
                         "slots": total["slots_total"].to_numpy(), "billed": total["slots_billed"].to_numpy()})


def _history(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The earlier years' slot tables stacked (columns :data:`_HISTORY`)."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=_HISTORY)
    return pd.concat(tables, ignore_index=True)[_HISTORY]


def _schools(parts: dict, ledger: Ledger) -> pd.DataFrame:
    enrol = stack(parts["enrollment"])
    dup = enrol.duplicated("school_id", keep="first").to_numpy()
    enrol = drop_rows(ledger, enrol, dup, "school listed in an earlier enrolment file: merged", action="merged")
    if not len(enrol):
        raise DataError(f"{parts['enrollment'][0][0].file}: no valid school rows")
    schools = enrol.set_index("school_id")
    schools["jhs_enrolment"] = schools[[f"enrol_g{g}" for g in (7, 8, 9, 10)]].sum(axis=1).astype("int64")
    return schools


def _fill_esc_schools(table: pd.DataFrame, parts: dict, crosswalk: pd.Series) -> pd.DataFrame:
    """Name the DepEd school on ledger rows of ESC-ID files (tuition, rating) where known."""
    for kind in ("tuition", "esc_rating"):
        for src, df in parts.get(kind, []):
            sid = pd.Series(df["esc_id"].map(crosswalk).fillna("").to_numpy(), index=df["_row"].to_numpy())
            mine = (table["file"] == src.file) & (table["school_id"] == "")
            if mine.any():
                table.loc[mine, "school_id"] = sid.reindex(table.loc[mine, "row"]).fillna("").to_numpy()
    return table


def _source_table(sources: list[Source], ledger: Ledger, table: pd.DataFrame) -> pd.DataFrame:
    counted = table["row"] > 0  # per (kind, file, action): distinct rows; imputed: events
    rows = table[counted].groupby(["source", "file", "action"], sort=False)["row"].nunique().to_dict()
    imputed = (table["action"] == "imputed").groupby([table["source"], table["file"]], sort=False).sum().to_dict()
    out = []
    for s in sources:
        if (s.kind, s.file) not in ledger.rows_read:
            continue
        n = {a: int(rows.get((s.kind, s.file, a), 0)) for a in ("dropped", "merged", "corrected", "remapped")}
        n["imputed"] = int(imputed.get((s.kind, s.file), 0))
        read = int(ledger.rows_read[(s.kind, s.file)])
        out.append({"kind": s.kind, "file": s.file, "rows_read": read,
                    "kept": read - n["dropped"] - n["merged"], **n})
    return pd.DataFrame(out, columns=_SOURCE_COLS)
