"""The dry run: read every source of a manifest and say what was found, before a long run.

:func:`check_manifest` reads each source on its own (a bad file is a problem, not an
exception), then, when every required kind is there and readable, harmonises them exactly
as :func:`~studentflow.ingest.load_bundle` does. It reports, per source, the sheet and
header row used, each canonical column with the header it matched and how (``manifest``,
``alias``, ``fuzzy`` with its score), the rows read / kept / corrected / merged /
remapped / dropped with the top ledger reasons; then the problems. Problems starting
``error:`` stop a full run (exit code 1 of ``studentflow check``); ``warning:`` ones do not.
A partial manifest (e.g. one coordinates source) is read and checked as far as it goes.
A multi-year manifest is harmonised year by year (:mod:`.years`): the report lists the
years and the sources of each, and a year's problems name it (``error: 2022-2023: …``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from studentflow.errors import DataError
from studentflow.ingest.crosswalk import ARRAY_ID_COLUMNS, FRAME_ID_COLUMNS, Crosswalk, build_crosswalk
from studentflow.ingest.learners import read_source
from studentflow.ingest.ledger import Ledger
from studentflow.ingest.load import _load, _source_table
from studentflow.ingest.manifest import Source, manifest_path, read_manifest
from studentflow.ingest.readers import READERS
from studentflow.ingest.roads import scan_road_network
from studentflow.ingest.years import source_years, year_sources

__all__ = ["check_manifest", "CheckReport", "SourceCheck"]

#: Share of schools without a point above which the dry run warns.
NO_POINT_WARN = 0.05
_COUNTS = ("rows_read", "kept", "corrected", "merged", "remapped", "dropped")


@dataclass(frozen=True)
class SourceCheck:
    """What the dry run found in one source file.

    Attributes
    ----------
    kind, file : str
        Source kind and file (relative to the manifest folder).
    sheet : str or None
        Worksheet read (None for CSV and unread files).
    header_row : int or None
        1-based row of the header.
    columns : dict
        Canonical name → ``{"header", "how", "score"}`` (how: manifest / alias / fuzzy).
    rows_read, kept, corrected, merged, remapped, dropped : int
        Raw data rows, as in ``Bundle.sources`` (kept = read − merged − dropped).
    reasons : tuple of (action, reason, rows)
        The most frequent ledger reasons of the file.
    """

    kind: str
    file: str
    sheet: str | None = None
    header_row: int | None = None
    columns: dict = field(default_factory=dict)
    rows_read: int = 0
    kept: int = 0
    corrected: int = 0
    merged: int = 0
    remapped: int = 0
    dropped: int = 0
    reasons: tuple = ()

    def as_dict(self) -> dict:
        """The JSON form (README "Using your own files"); ``reasons`` as a list of objects."""
        return {"kind": self.kind, "file": self.file, "sheet": self.sheet, "header_row": self.header_row,
                "columns": self.columns, **{k: int(getattr(self, k)) for k in _COUNTS},
                "reasons": [{"action": a, "reason": r, "rows": int(n)} for a, r, n in self.reasons]}


@dataclass(frozen=True)
class CheckReport:
    """Result of :func:`check_manifest`: per-source findings and problems.

    Attributes
    ----------
    manifest : str
        The manifest checked.
    sources : tuple of SourceCheck
        In manifest order (sources that could not be read are left out; see problems).
    problems : tuple of str
        ``error: …`` (a full run would stop) and ``warning: …`` messages.
    years : tuple of (str, tuple of str)
        Each school year the manifest names and the files that serve it (its own and the
        shared ones), sorted by year; empty when the manifest names none.
    """

    manifest: str
    sources: tuple = ()
    problems: tuple = ()
    years: tuple = ()

    @property
    def ok(self) -> bool:
        """True when a full run would proceed (no ``error:`` problem)."""
        return not any(p.startswith("error:") for p in self.problems)

    def as_dict(self) -> dict:
        """``{"manifest", "ok", "years": {year: [file, ...]}, "sources": [...], "problems": [...]}``."""
        return {"manifest": self.manifest, "ok": self.ok, "years": {y: list(f) for y, f in self.years},
                "sources": [s.as_dict() for s in self.sources], "problems": list(self.problems)}

    def to_json(self) -> str:
        """:meth:`as_dict` as one JSON object."""
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    def summary(self) -> str:
        """Plain text: per source, what was detected and counted; then the problems."""
        lines = [f"studentflow check: {self.manifest} ({len(self.sources)} source(s) read)"]
        if len(self.years) > 1:
            lines.append(f"school years: {len(self.years)}")
            lines += [f"  {y}: " + ", ".join(files) for y, files in self.years]
        for s in self.sources:
            where = ", ".join(x for x in (f"sheet {s.sheet!r}" if s.sheet else "",
                                          f"header row {s.header_row}" if s.header_row else "") if x)
            lines.append(f"\n{s.kind}: {s.file}" + (f" ({where})" if where else ""))
            cols = [f"{k} <- {v['header']!r} ({v['how']}{'' if v['how'] != 'fuzzy' else ' %.0f' % v['score']})"
                    for k, v in s.columns.items()]
            for i in range(0, len(cols), 3):
                lines.append(("  columns: " if i == 0 else "           ") + "; ".join(cols[i:i + 3]))
            lines.append("  rows: " + ", ".join(f"{getattr(s, k):,} {k.replace('rows_', '')}" for k in _COUNTS))
            for a, r, n in s.reasons:
                lines.append(f"    {n:,} {a}: {r}")
        lines.append("\nproblems:" if self.problems else "\nproblems: none")
        lines += [f"  - {p}" for p in self.problems]
        lines.append("a full run would proceed (exit 0)" if self.ok else "a full run would stop (exit 1)")
        return "\n".join(lines)


def check_manifest(manifest) -> CheckReport:
    """Dry-run a manifest: read every source, harmonise when complete, report (never raises
    for bad data).

    Parameters
    ----------
    manifest : str or Path
        A ``manifest.toml`` or the folder holding one.

    Returns
    -------
    CheckReport
        ``ok`` is True when ``load_bundle`` and a full run would proceed.
    """
    problems: list[str] = []
    try:
        path = manifest_path(manifest)
        found: list[str] = []
        sources = read_manifest(path, problems=found)
    except DataError as exc:
        return CheckReport(str(manifest), (), (f"error: {exc}",))
    problems += [f"error: {p}" for p in found]
    ledger, roads, cache, stop = Ledger(), Ledger(), {}, bool(found)
    # crosswalks first: the 7-digit old IDs they name must reach the other readers
    cross = [s for s in sources if s.kind == "school_id_crosswalk"]
    stop |= _read_all(cross, cache, roads, problems)
    xw = Crosswalk()
    try:
        xw = build_crosswalk([(s, cache[id(s)][0]) for s in cross if id(s) in cache])
    except DataError as exc:
        problems.append(f"error: {exc}")
        stop = True
    sources = xw.prepare(sources)
    stop |= _read_all([s for s in sources if s.kind != "school_id_crosswalk"], cache, roads, problems)
    years, picked = _years(sources, path.name, problems)
    stop |= any(p.startswith("error:") for p in problems)
    if not stop:
        try:
            table, counts = _harmonise(picked, cache, ledger, problems)
        except DataError as exc:
            problems.append(f"error: {exc}")
            stop = True
    if stop:
        ledger = Ledger()
        ledger.extend(roads)
        table, counts = _partial(sources, cache, xw, ledger, problems)
    return CheckReport(str(path), _source_checks(sources, ledger, table, counts), tuple(problems), years)


def _read_all(sources: list[Source], cache: dict, roads: Ledger, problems: list) -> bool:
    """Read each source into ``cache`` (by id); True when one could not be read."""
    stop = False
    for src in sources:
        try:
            if src.kind in READERS:
                cache[id(src)] = read_source(src)
            elif src.kind == "road_network":
                if not scan_road_network(src, roads):
                    problems.append(f"warning: {src.file}: road network not scanned here (not a CSV edge list "
                                    f"with u, v columns); the distance stage reads it")
            elif src.kind == "road_distances":
                _check_matrix(src)
        except DataError as exc:
            problems.append(f"error: {exc}")
            stop = True
    return stop


def _years(sources: list[Source], name: str, problems: list) -> tuple[tuple, list]:
    """The report's (year, files) pairs and the [(year, sources)] to harmonise; a year that
    cannot be built (no enrolment of its own, ...) is an ``error:`` problem."""
    years = source_years(sources)
    if len(years) <= 1:
        return tuple((y, tuple(s.file for s in sources)) for y in years), [(years[0] if years else None, sources)]
    pairs, picked = [], []
    for y in years:
        try:
            sel = year_sources(sources, y, name)
            picked.append((y, sel))
        except DataError as exc:
            problems.append(f"error: {exc}")
            sel = [s for s in sources if s.school_year in (y, None)]
        pairs.append((y, tuple(s.file for s in sel)))
    return tuple(pairs), picked


def _harmonise(picked: list, cache: dict, ledger: Ledger, problems: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Harmonise each year as :func:`~studentflow.ingest.load_bundle` does; the ledger and
    counts of each file from the latest year that reads it (a yearly file: its own)."""
    many = len(picked) > 1
    owner, out = {}, []
    for y, sel in picked:
        mine = Ledger()
        bundle, _ = _load(sel, lambda s: cache[id(s)], mine, school_year=y)
        ledger.rows_read.update(mine.rows_read)
        ledger.detected.update(mine.detected)
        for p in _bundle_problems(bundle):
            problems.append(p.replace(": ", f": {y}: ", 1) if many else p)
        owner.update({(k, f): y for k, f in bundle.sources[["kind", "file"]].itertuples(index=False)})
        out.append((y, bundle))
    latest = picked[-1][0]
    tables, counts = [], []
    for y, b in out:
        key = list(zip(b.ledger["source"], b.ledger["file"]))
        tables.append(b.ledger[[owner.get(k, latest) == y for k in key]])
        counts.append(b.sources[[owner[k] == y for k in zip(b.sources["kind"], b.sources["file"])]])
    table = pd.concat(tables, ignore_index=True) if many else out[0][1].ledger
    return table, (pd.concat(counts, ignore_index=True) if many else out[0][1].sources)


def _check_matrix(src: Source) -> None:
    """A road-distance matrix and its index: readable, and the index within the matrix."""
    try:
        shape = np.load(src.path, mmap_mode="r").shape
        idx = json.loads(Path(src.index).read_text(encoding="utf-8"))
        top = max((max(v) for v in idx.get("rows", {}).values() if v), default=-1)
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{src.file}: cannot read the road-distance matrix or its index ({type(exc).__name__})") from None
    if len(shape) != 2 or top >= shape[0]:
        raise DataError(f"{src.file}: the index names row {top} but the matrix has shape {shape}")


def _partial(sources, cache, xw, ledger, problems) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ledger and per-source counts from the readers alone (no harmonisation), with the
    remaps applied and a join check against the enrolment list when there is one."""
    table_ids = xw.table() if xw else None
    frames, parts = [], []
    for src in sources:
        if id(src) not in cache:
            continue
        got = cache[id(src)]
        if isinstance(got, tuple):
            df, led = got
            ledger.extend(led)
            frames.append((src, xw.remap_frame(src, df, ledger) if xw else df))
        else:
            ledger.extend(got.ledger)
            parts.append(xw.remap_part(got, ledger, table_ids) if xw else got)
    known = [df["school_id"] for s, df in frames if s.kind == "enrollment"]
    if known:
        ids = pd.Index(pd.concat(known).unique())
        for src, df in frames:
            for col in FRAME_ID_COLUMNS.get(src.kind, ()) if src.kind != "enrollment" else ():
                if len(df) and not df[col].isin(ids).any():
                    problems.append(f"warning: {src.file} ({src.kind}): none of its {len(df):,} rows names a school "
                                    f"of the enrolment list (wrong column or ID system?)")
        known_int = np.zeros(10**6, dtype=bool)
        known_int[ids.astype(int)] = True
        for p in parts:
            for key in ARRAY_ID_COLUMNS.get(p.kind, ()):
                a = p.arrays[key]
                if a.size and not known_int[a[a >= 0]].any():
                    problems.append(f"warning: {p.file} ({p.kind}): no {key} school of its {a.size:,} rows is in the "
                                    f"enrolment list")
    table = ledger.frame()
    return table, _source_table(sources, ledger, table)


def _bundle_problems(bundle) -> list[str]:
    """Problems of a harmonised bundle: what a full run needs, and what it will leave out."""
    out = []
    s = bundle.schools
    n = len(s)
    nopoint = int(s.geometry.isna().sum())
    if n and nopoint == n:
        out.append("error: no school has a valid point (coordinates join to no school of the enrolment list)")
    elif n and nopoint / n > NO_POINT_WARN:
        out.append(f"warning: {nopoint:,} of {n:,} schools ({nopoint / n:.1%}) have no valid point: left out of "
                   f"road distances and pairs")
    if not len(bundle.flows):
        out.append("error: no learner flows (no transitions row joins two schools of the enrolment list)")
    if not bool(s["esc"].any()):
        out.append("error: no ESC school (no esc_slots source, or none of its rows joins the enrolment list): "
                   "no destination for the model")
    blank = int((s["psgc_code"] == "").sum())
    if blank:
        out.append(f"warning: {blank:,} school(s) without a PSGC municipality code: no LGU covariates")
    for r in bundle.sources.itertuples(index=False):
        if r.rows_read and not r.kept:
            out.append(f"warning: {r.file} ({r.kind}): none of its {r.rows_read:,} rows is kept (see its reasons)")
    return out


def _source_checks(sources, ledger: Ledger, table: pd.DataFrame, counts: pd.DataFrame) -> tuple:
    """One :class:`SourceCheck` per source read, in manifest order."""
    by_file = {(r.kind, r.file): r for r in counts.itertuples(index=False)}
    out = []
    for src in sources:
        key = (src.kind, src.file)
        det = ledger.detected.get(key)
        if det is None and key not in by_file:
            if src.kind == "road_distances":
                out.append(SourceCheck(src.kind, src.file))
            continue
        det = det or {}
        c = by_file.get(key)
        mine = table[(table["source"] == src.kind) & (table["file"] == src.file)]
        top = mine.groupby(["action", "reason"], sort=False).size().sort_values(ascending=False, kind="stable")
        out.append(SourceCheck(
            src.kind, src.file, det.get("sheet"), det.get("header_row"),
            {k: m.as_dict() for k, m in det.get("columns", {}).items()},
            **{k: int(getattr(c, k, 0)) if c is not None else 0 for k in _COUNTS},
            reasons=tuple((a, r, int(n)) for (a, r), n in top.head(3).items())))
    return tuple(out)
