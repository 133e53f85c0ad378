"""Ingestion: raw government files (named in a manifest) → a canonical, validated Bundle.

``check_manifest(manifest)`` is the dry run (:mod:`.check`): what each source holds,
how its columns matched, and the problems, without raising.

``load_bundle(manifest=None, *, client=None)`` reads every ``[[source]]`` of a
``manifest.toml`` with one reader per source kind (:mod:`.readers`), harmonises them (:mod:`.harmonise`,
:mod:`.flows`), validates the canonical tables (:mod:`.validate`) and returns a
:class:`studentflow.schema.Bundle` whose ledger records every raw record dropped, merged,
corrected or imputed. Learner reference numbers are read but never leave this package.

Learner-level files (transitions, ESC billing) are streamed: each is read, validated and
compacted to integer arrays on its own (:mod:`.learners`), on Dask workers when a
``client`` is given (:mod:`.learners_dask`); the result is the same either way.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from studentflow.errors import DataError
from studentflow.ingest.crosswalk import build_crosswalk
from studentflow.ingest.harmonise import (
    areas_table, drop_rows, esc_columns, impute_places, jhs_seats, match_places, note_unplaced,
    resolve_coordinates, stack, subsidy_table,
)
from studentflow.ingest.learners import LEARNER_KINDS, LearnerPart, combine_flows, read_source
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.manifest import KINDS, Source, read_manifest
from studentflow.ingest.places import PlaceMatcher
from studentflow.ingest.roads import scan_road_network
from studentflow.ingest.validate import validate_tables
from studentflow.malloc import trim
from studentflow.schema import ALL_REGIONS, SCHOOLS, Bundle

__all__ = ["load_bundle", "check_manifest", "CheckReport", "read_manifest", "KINDS", "Source"]

_SOURCE_COLS = ["kind", "file", "rows_read", "kept", "corrected", "imputed", "merged", "dropped", "remapped"]


def load_bundle(manifest: str | Path | None = None, *, client=None) -> Bundle:
    """Load, harmonise and validate the raw files named in a manifest.

    Parameters
    ----------
    manifest : str or Path, optional
        Path of a ``manifest.toml`` (its ``[[source]]`` paths are relative to its folder).
        Default: the bundled synthetic sample (:func:`studentflow.paths.sample_manifest`).
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
        remapped) and
        ``extras`` (resolved paths of ``road_network`` and ``road_distances`` inputs).

    Raises
    ------
    DataError
        Bad manifest or raw file; the message names the file and, where it applies, the
        row and column.
    """
    if manifest is None:
        from studentflow.paths import sample_manifest

        manifest = sample_manifest()
    sources = read_manifest(Path(manifest))
    if client is None:
        bundle = _load(sources, read_source)
    else:
        from studentflow.ingest.learners_dask import dask_reader

        with dask_reader(client, sources) as read:
            bundle = _load(sources, read)
    trim()  # the raw files' temporaries: free heap pages back to the OS (studentflow.malloc)
    return bundle


def _load(sources: list[Source], read, ledger: Ledger | None = None) -> Bundle:
    """:func:`load_bundle` once the manifest is read; ``read(src)`` is
    :func:`~studentflow.ingest.learners.read_source` or its Dask stand-in, called for
    every tabular source (school-ID crosswalks first, then the others in manifest order).
    ``ledger`` (default: a new one) receives every event, ``rows_read`` and ``detected``."""
    ledger = Ledger() if ledger is None else ledger
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
            parts.setdefault(src.kind, []).append((src, xw.remap_frame(src, df, ledger) if xw else df))
    first = {k: v[0][0] for k, v in parts.items()}

    schools = _schools(parts, ledger)
    matcher = PlaceMatcher(ALL_REGIONS)
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
    present = set(schools["region"])
    regions = [r for r in ALL_REGIONS if r in present]
    areas = areas_table(schools, stack(parts["lgu_income"]) if "lgu_income" in parts else None,
                        matcher, ledger, regions, lambda: (lgu_src.kind, lgu_src.file, 0))
    rates = stack(parts["subsidy_rates"]) if "subsidy_rates" in parts else None
    subsidy = subsidy_table(schools, rates)
    flows = combine_flows(learners["transitions"], learners["esc_beneficiaries"], schools.index, crosswalk, ledger)

    geometry = gpd.points_from_xy(coords["lon"].reindex(schools.index), coords["lat"].reindex(schools.index))
    cols = [c for c in SCHOOLS if c != "geometry"]
    gdf = gpd.GeoDataFrame(schools[cols], geometry=geometry, crs="EPSG:4326")
    gdf.loc[~gdf.index.isin(coords.index), "geometry"] = None
    gdf.index.name = "school_id"
    table = xw.ledger_ids(_fill_esc_schools(ledger.frame(), parts, crosswalk))
    validate_tables({"schools": gdf, "flows": flows, "areas": areas, "subsidy": subsidy, "ledger": table})
    return Bundle(schools=gdf, flows=flows, areas=areas, subsidy=subsidy, ledger=table,
                  sources=_source_table(sources, ledger, table), extras=extras)


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
    rows = []
    for s in sources:
        if (s.kind, s.file) not in ledger.rows_read:
            continue
        mine = table[(table["source"] == s.kind) & (table["file"] == s.file)]
        n = {a: int(mine.loc[(mine["action"] == a) & (mine["row"] > 0), "row"].nunique())
             for a in ("dropped", "merged", "corrected", "remapped")}
        n["imputed"] = int((mine["action"] == "imputed").sum())
        read = int(ledger.rows_read[(s.kind, s.file)])
        rows.append({"kind": s.kind, "file": s.file, "rows_read": read,
                     "kept": read - n["dropped"] - n["merged"], **n})
    return pd.DataFrame(rows, columns=_SOURCE_COLS)


from studentflow.ingest.check import CheckReport, check_manifest  # noqa: E402  (uses _load above)
